"""`framework models list | pull | prune | verify`: thin commands over the manifest API."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console
from rich.table import Table

from framework.errors import ConfigError, ModelError

from . import console as err_console
from . import main, table_of, user_errors

_REGISTRY_HELP = "registry.yaml to use (default: ./registry.yaml, then $FRAMEWORK_HOME/registry.yaml)."
_MANIFEST_HELP = ("models_manifest.yaml to use (default: $FRAMEWORK_MANIFEST, ./models_manifest.yaml, "
                  "then the framework's own).")


def _out() -> Console:
    """stdout console; when piped and $COLUMNS is unset, wide enough that ids do not wrap."""
    wide = sys.stdout.isatty() or os.environ.get("COLUMNS")
    return Console(width=None if wide else 200, highlight=False)


def _context(registry_path: Path | None, manifest_path: Path | None, scan: bool = True) -> Any:
    from framework.models.listing import open_models

    return open_models(registry_path, manifest_path, scan=scan)


def _warn(lines: list[str]) -> None:
    for line in lines:
        err_console.print(f"[yellow]warning:[/] {line}", highlight=False)


def _dump(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _print_results(results: list[Any], as_json: bool, title: str, columns: tuple[str, ...],
                   row: Callable[[Any], tuple[str, ...]], styles: dict[str, str]) -> None:
    """Results as JSON (``as_dict()`` each) or as a table whose third column, the status, is
    coloured by ``styles``."""
    if as_json:
        _dump([r.as_dict() for r in results])
        return
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for r in results:
        cells = list(row(r))
        style = styles.get(cells[2])
        cells[2] = f"[{style}]{cells[2]}[/]" if style else cells[2]
        table.add_row(*cells)
    _out().print(table)


@main.group("models")
def models_group() -> None:
    """What models are cached, which analyzers need them, and what can be deleted.

    \b
    Examples:
      framework models list                 # every model: cached?, size, who uses it
      framework models pull --enabled       # fetch what the enabled analyzers need
      framework models prune                # dry run: what would be deleted
      framework models prune --yes          # delete it (a record goes to $FRAMEWORK_HOME)
      framework models verify               # sizes and hashes of what is cached
      framework models check-pins           # online: do the pinned commits exist on the hub?
    """


# --- list -------------------------------------------------------------------------------
@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.option("--cached", "cached_only", is_flag=True, help="Only models that are cached.")
@click.option("--registry", "registry_path", type=click.Path(path_type=Path), help=_REGISTRY_HELP)
@click.option("--manifest", "manifest_path", type=click.Path(path_type=Path), help=_MANIFEST_HELP)
@user_errors
def list_cmd(as_json: bool, cached_only: bool, registry_path: Path | None, manifest_path: Path | None) -> None:
    """List every manifest model: source, expected size, cached or not, size on disk, which
    enabled and disabled analyzers use it, and whether prune may delete it. Totals at the bottom;
    cached Hugging Face repos the manifest does not know are listed apart.

    \b
    Example:
      framework models list --cached
      framework models list --json | jq '.totals'
    """
    from framework.models.fsguard import human_size
    from framework.models.listing import model_listing

    ctx = _context(registry_path, manifest_path)
    listing = model_listing(ctx, cached_only=cached_only)
    rows, unknown, totals, warnings = listing.rows, listing.unknown, listing.totals, listing.warnings
    if as_json:
        _dump({"manifest": str(ctx.manifest.path), "registry": str(ctx.registry) if ctx.registry else None,
               "roots": ctx.roots.as_dict(), "models": rows, "unknown": unknown, "totals": totals,
               "warnings": warnings})
        return
    _warn(warnings)
    cells = []
    for r in rows:
        cached = "yes" if r["cached"] else ("partial" if r["busy"] or r["partial"] else "no")
        prune = _short_prune(r)
        approx = "~" if r["size_approximate"] and r["expected_size_bytes"] is not None else ""
        cells.append((r["id"], r["source"], approx + human_size(r["expected_size_bytes"]),
                      cached, human_size(r["size_on_disk"]) if r["cached"] or r["size_on_disk"] else "-",
                      ", ".join(r["enabled_analyzers"]) or "-", ", ".join(r["disabled_analyzers"]) or "-", prune))
    out = _out()
    table = table_of(f"models in {ctx.manifest.path}", ("id", "source", "expected", "cached", "on disk",
                                                          "enabled analyzers", "disabled analyzers", "prunable"),
                     cells, right=("expected", "on disk"), width=out.width, drop_empty=False)
    table.add_section()
    table.add_row(f"total ({totals['cached']}/{totals['models']} cached)", "", "~" + human_size(totals["expected_bytes"]),
                  "", human_size(totals["cached_bytes"]), "", "", f"{human_size(totals['reclaimable_bytes'])} reclaimable")
    out.print(table)
    if unknown:
        t2 = Table(title="cached Hugging Face repos not in the manifest (prune --include-unknown deletes them)",
                   title_justify="left")
        for col in ("repo", "size", "revisions", "path"):
            t2.add_column(col)
        for u in unknown:
            t2.add_row(u["repo_id"], human_size(u["size_on_disk"]), str(len(u["revisions"])), u["path"])
        t2.add_section()
        t2.add_row("total", human_size(totals["unknown_bytes"]), "", "")
        out.print(t2)


def _short_prune(row: dict[str, Any]) -> str:
    """The list's prunable cell; ``--json`` and ``prune`` give the full reason."""
    action, reason = row["prune_action"], row["prune_reason"] or ""
    if action is None:
        return "-"
    if action == "delete":
        return "yes"
    if action == "keep":
        return "no: bundled" if row["source"] == "bundled" else ("no: --keep" if "--keep" in reason else "no: in use")
    return "no: " + reason.split(":")[0]  # refused: "download in progress" / "unsafe"


# --- pull -------------------------------------------------------------------------------
@models_group.command("pull")
@click.argument("ids", nargs=-1)
@click.option("--enabled", is_flag=True, help="Every model the enabled analyzers of the registry use.")
@click.option("--offline", is_flag=True, help="Download nothing; fail for models that are not cached "
                                              "(also when HF_HUB_OFFLINE=1).")
@click.option("--update", is_flag=True, help="Hugging Face: fetch the newest commit instead of the locked one.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result on stdout.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--registry", "registry_path", type=click.Path(path_type=Path), help=_REGISTRY_HELP)
@click.option("--manifest", "manifest_path", type=click.Path(path_type=Path), help=_MANIFEST_HELP)
@user_errors
def pull_cmd(ids: tuple[str, ...], enabled: bool, offline: bool, update: bool, as_json: bool, no_progress: bool,
             registry_path: Path | None, manifest_path: Path | None) -> None:
    """Download models into their usual caches, each through its own library, and record the
    revision and hashes fetched in $FRAMEWORK_HOME/models.lock.json. Models an ID requires (an
    adapter's base, EasyOCR's detector) come too. Cached files are not fetched again; url and
    whisper downloads resume a partial file (see docs/models.md for each source). Offline
    (--offline, HF_HUB_OFFLINE=1) or with the host unreachable it fails with one line, exit 7.

    \b
    Examples:
      framework models pull qwen2.5-1.5b-instruct whisper-base
      framework models pull --enabled --registry registry.yaml
    """
    from framework.models.pull import pull_models

    if bool(ids) == enabled:
        raise click.UsageError("name model ids, or pass --enabled (not both); see `framework models list`")
    ctx = _context(registry_path, manifest_path, scan=False)  # plugins may register the ids
    manifest = ctx.manifest
    wanted = list(ids)
    if enabled:
        _warn(ctx.problems + ctx.usage.problems())
        wanted = sorted(m for m in ctx.usage.enabled if m in manifest)
        if not wanted:
            click.echo("the enabled analyzers use no models; nothing to pull")
            return
    results = pull_models(manifest, wanted, offline=offline, update=update, progress=not no_progress)
    if as_json:
        _dump([r.as_dict() for r in results])
        return
    for r in results:
        click.echo(f"{r.id:32s} {r.status:10s} {r.detail}")


# --- prune ------------------------------------------------------------------------------
@models_group.command("prune")
@click.option("--keep", "keep", multiple=True, metavar="ID", help="Also keep this model id or HF repo (repeatable).")
@click.option("--include-unknown", is_flag=True, help="Also delete cached HF repos the manifest does not know.")
@click.option("--yes", is_flag=True, help="Delete. Without it prune only shows what it would delete.")
@click.option("--allow-plugin-errors", is_flag=True,
              help="Delete even though a plugin failed to load (its analyzers' models count as unused).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable plan/result on stdout.")
@click.option("--registry", "registry_path", type=click.Path(path_type=Path), help=_REGISTRY_HELP)
@click.option("--manifest", "manifest_path", type=click.Path(path_type=Path), help=_MANIFEST_HELP)
@user_errors
def prune_cmd(keep: tuple[str, ...], include_unknown: bool, yes: bool, allow_plugin_errors: bool, as_json: bool,
              registry_path: Path | None, manifest_path: Path | None) -> None:
    """Delete cached models that no enabled analyzer uses. A dry run unless --yes.

    Kept: every model of an enabled analyzer in the active registry, --keep ids, and what they
    require; bundled models; anything with a download in progress. Refused: paths outside the
    cache folders (also through symlinks or '..'). Hugging Face repos are removed through
    huggingface_hub's cache API. Before deleting, a record of what was cached and what is
    removed is written to $FRAMEWORK_HOME/prune-records/.

    \b
    Examples:
      framework models prune                         # what would go, and how much it frees
      framework models prune --keep blip2-opt-2.7b --yes
      framework models prune --include-unknown --yes
    """
    from framework.models.fsguard import human_size
    from framework.models.prune import execute_prune, plan_prune

    ctx = _context(registry_path, manifest_path)
    plan = plan_prune(ctx.manifest, ctx.scan, ctx.usage, keep=keep, include_unknown=include_unknown)
    warnings = ctx.problems + plan.warnings + ctx.scan.warnings
    if yes and ctx.problems and not allow_plugin_errors and plan.to_delete:
        raise ConfigError("refusing to delete: plugin(s) failed to load, so the models of their analyzers "
                          f"would look unused ({'; '.join(ctx.problems)}). Fix them, or pass "
                          "--allow-plugin-errors")
    result = execute_prune(plan, ctx.scan, ctx.manifest, ctx.lock, ctx.registry) if yes and plan.to_delete else None
    if as_json:
        _dump({"dry_run": not yes, "registry": str(ctx.registry) if ctx.registry else None,
               "in_use": sorted(plan.in_use), "items": [i.as_dict() for i in plan.items],
               "reclaimable_bytes": plan.reclaimable, "unknown_bytes": plan.unknown_size,
               "removed": [i.id for i in result.removed] if result else [],
               "failed": [{"id": i.id, "error": e} for i, e in result.failed] if result else [],
               "record": str(result.record) if result else None, "warnings": warnings})
    else:
        _warn(warnings)
        _print_plan(plan, human_size)
        if not yes:
            click.echo(f"dry run: nothing deleted. {human_size(plan.reclaimable)} reclaimable in "
                       f"{len(plan.to_delete)} item(s); run again with --yes to delete.")
        elif result is None:
            click.echo("nothing to delete.")
        else:
            click.echo(f"deleted {len(result.removed)} item(s), freed {human_size(result.freed)}; "
                       f"record: {result.record}")
    if result and result.failed:
        raise ModelError(f"{len(result.failed)} item(s) could not be removed: "
                         + "; ".join(f"{i.id}: {e}" for i, e in result.failed))


def _print_plan(plan: Any, human_size: Any) -> None:
    out = _out()
    for kind, title in (("model", "cached manifest models"),
                        ("unknown", "cached Hugging Face repos not in the manifest")):
        items = [i for i in plan.items if i.kind == kind]
        if not items:
            continue
        table = Table(title=title, title_justify="left")
        for col in ("id", "source", "size", "action", "why"):
            table.add_column(col, justify="right" if col == "size" else "left")
        for i in sorted(items, key=lambda i: (i.action != "delete", -i.size)):
            style = {"delete": "bold red", "refused": "yellow"}.get(i.action, "")
            table.add_row(i.id, i.source, human_size(i.size), f"[{style}]{i.action}[/]" if style else i.action, i.reason)
        table.add_section()
        total = sum(i.size for i in items if i.action == "delete")
        table.add_row("total to delete", "", human_size(total), "", "")
        out.print(table)


# --- verify -----------------------------------------------------------------------------
@models_group.command("verify")
@click.argument("ids", nargs=-1)
@click.option("--sizes-only", is_flag=True, help="Skip hashing (fast): compare sizes and revisions only.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result on stdout.")
@click.option("--manifest", "manifest_path", type=click.Path(path_type=Path), help=_MANIFEST_HELP)
@user_errors
def verify_cmd(ids: tuple[str, ...], sizes_only: bool, as_json: bool, manifest_path: Path | None) -> None:
    """Check cached models' sizes and hashes against the manifest and the pull lock. Exit 7 if
    any file does not match.

    \b
    Examples:
      framework models verify
      framework models verify whisper-base yolov8x --json
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from framework.models.cache import scan_cache
    from framework.models.verify import bytes_to_hash, verify_models

    ctx = _context(None, manifest_path, scan=False)
    manifest, roots = ctx.manifest, ctx.roots
    unknown = [i for i in ids if i not in manifest]
    if unknown:
        raise ModelError(f"unknown model id(s) {', '.join(unknown)}: not in {manifest.path}")
    scan = scan_cache(manifest, roots)
    wanted = list(ids) or [m for m, cm in scan.models.items() if cm.cached]
    total = sum(bytes_to_hash(scan.models[m], not sizes_only) for m in wanted)
    with Progress(TextColumn("hashing"), BarColumn(), DownloadColumn(), console=err_console,
                  disable=as_json or total == 0, transient=True) as bar:
        task = bar.add_task("hash", total=total)
        results = verify_models(manifest, scan, ctx.lock, wanted, hashes=not sizes_only,
                                progress=lambda n: bar.update(task, advance=n))
    _print_results(results, as_json, "verify", ("id", "source", "status", "checked", "problems / notes"),
                   lambda r: (r.id, r.source, r.status, "; ".join(r.checks), "; ".join(r.problems + r.notes)),
                   {"failed": "bold red", "unverified": "yellow"})
    if not results and not as_json:
        click.echo("nothing cached to verify")
    failed = [r.id for r in results if r.status == "failed"]
    if failed:
        raise ModelError(f"verification failed for {', '.join(failed)}; delete and pull again "
                         "(`framework models prune` or remove the files, then `framework models pull ID`)")


@models_group.command("check-pins")
@click.argument("ids", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result on stdout.")
@click.option("--manifest", "manifest_path", type=click.Path(path_type=Path), help=_MANIFEST_HELP)
@user_errors
def check_pins_cmd(ids: tuple[str, ...], as_json: bool, manifest_path: Path | None) -> None:
    """Ask the Hugging Face hub whether each pinned commit in the manifest exists, and where `main`
    points now (the commit to pin where the manifest has none). Needs the network; downloads
    nothing. Exit 7 if a pinned commit is missing.

    \b
    Examples:
      framework models check-pins
      framework models check-pins qwen2-vl-2b-instruct clip-vit-base-patch32 --json
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from framework.models.pins import check_pins

    manifest = _context(None, manifest_path, scan=False).manifest
    total = len(ids) or sum(1 for spec in manifest if spec.source == "huggingface")
    with Progress(TextColumn("asking the hub about {task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err_console, disable=as_json, transient=True) as bar:
        task = bar.add_task("", total=total)

        def advance(model_id: str) -> None:
            bar.update(task, advance=1, description=model_id)

        results = check_pins(manifest, ids, progress=advance)
    _print_results(results, as_json, "check-pins", ("id", "repo", "status", "pinned", "main now"),
                   lambda r: (r.id, r.repo, r.status, (r.pinned or "-")[:12],
                              (r.main or "")[:12] + (" (moved)" if r.main_moved else "")),
                   {"missing": "bold red", "repo-missing": "bold red", "unpinned": "yellow", "gated": "yellow"})
    bad = [r.id for r in results if r.status in ("missing", "repo-missing")]
    if bad:
        raise ModelError(f"pinned commit not on the hub for {', '.join(bad)}; fix `revision` in "
                         f"{manifest.path} (the `main now` column is a commit that exists)")
