"""`framework library list | show | remove | reindex | add`: the library of analyzed videos."""
from __future__ import annotations

import json
from pathlib import Path

import click

from . import console, main, table_of, user_errors

library_option = click.option(
    "--library", "library", type=click.Path(path_type=Path), default=None, metavar="PATH",
    help="The library database (default: $FRAMEWORK_LIBRARY, else $FRAMEWORK_HOME/library/library.db), "
         "e.g. --library ~/videos/library.db.")


def _clock(t: float | None) -> str:
    from framework.library.search import clock

    return clock(t or 0.0)


@main.group("library")
def library_group() -> None:
    """The library: every video `framework run` finished, searchable with `framework search`.

    \b
    Examples:
      framework library list
      framework library show clip.mp4
      framework library reindex --scan ~/Videos
    """


@library_group.command("list")
@library_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@user_errors
def list_cmd(library: Path | None, as_json: bool) -> None:
    """List the videos in the library, most recently analyzed first.

    \b
    Example:
      framework library list --json
    """
    from framework.library import Library

    lib = Library.open(library)
    videos = lib.videos()
    if as_json:
        click.echo(json.dumps({"library": str(lib.path), "videos": [v.to_dict() for v in videos]}, indent=2))
        return
    rows = [(str(v.id), v.name if v.file_exists else f"{v.name} [yellow](file not found)[/]", _clock(v.duration),
             str(v.moments), v.title or "", str(v.run_dir)) for v in videos]
    console.print(table_of(f"{len(videos)} video(s) in {lib.path}",
                           ("#", "video", "length", "moments", "title", "run folder"), rows, names=1))


@library_group.command("show")
@click.argument("video")
@library_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (metadata, summary and every moment).")
@user_errors
def show_cmd(video: str, library: Path | None, as_json: bool) -> None:
    """Show one video: its file, run folder, summary and searchable moments.

    VIDEO is its number (see `framework library list`), its file (found by content even if it
    moved), its run folder, its file name, or a prefix of its content hash.

    \b
    Examples:
      framework library show 3
      framework library show ~/Videos/holiday.mp4
    """
    from framework.library import Library

    lib = Library.open(library)
    v = lib.find(video)
    moments = lib.moments(v.id)
    if as_json:
        click.echo(json.dumps({**v.to_dict(), "moments_list": [m.to_dict() for m in moments]}, indent=2))
        return
    console.print(f"[bold]#{v.id} {v.name}[/]  {_clock(v.duration)}"
                  + (f"  {v.width}x{v.height}" if v.width else "") + (f" @ {v.fps:g} fps" if v.fps else ""),
                  highlight=False)
    console.print(f"file: {v.path}" + ("" if v.file_exists else " [yellow](not found there now)[/]"), highlight=False)
    console.print(f"content hash: {v.content_hash}\nrun folder: {v.run_dir}\nreport: {v.report}", highlight=False)
    if v.title or v.summary:
        console.print(f"\n[bold]{v.title or ''}[/]\n{v.summary or ''}", highlight=False)
    console.print("\nanalyzers: " + ", ".join(f"{n} ({s})" for n, s in v.tracks.items()), highlight=False)
    console.print(f"{len(moments)} searchable moment(s):", highlight=False)
    for m in moments[:200]:
        console.print(f"  {_clock(m.start)}–{_clock(m.end)}  [dim]{m.analyzer}/{m.kind}[/]  {m.text[:160]}",
                      highlight=False)
    if len(moments) > 200:
        console.print(f"  … {len(moments) - 200} more (--json lists all)", highlight=False)


@library_group.command("remove")
@click.argument("video")
@library_option
@user_errors
def remove_cmd(video: str, library: Path | None) -> None:
    """Take a video out of the library. Its file and its run folder are left alone.

    \b
    Example:
      framework library remove clip.mp4
    """
    from framework.library import Library

    v = Library.open(library).remove(video)
    console.print(f"removed #{v.id} {v.name} from the library (file and run folder {v.run_dir} kept)",
                  highlight=False)


@library_group.command("reindex")
@library_option
@click.option("--scan", "scan", multiple=True, type=click.Path(file_okay=False, path_type=Path), metavar="FOLDER",
              help="Look in FOLDER (recursively) for videos no longer at their recorded path, matched by "
                   "content hash; repeatable, e.g. --scan ~/Videos.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@user_errors
def reindex_cmd(library: Path | None, scan: tuple[Path, ...], as_json: bool) -> None:
    """Read every run folder again and rebuild the search index.

    Entries whose run folder is gone are removed; videos that moved are found again in the
    --scan folders by their content.

    \b
    Example:
      framework library reindex --scan ~/Videos --scan /mnt/archive
    """
    from framework.library import Library

    report = Library.open(library).reindex(scan=list(scan))
    if as_json:
        click.echo(json.dumps({"updated": [r.id for r in report.updated],
                               "removed": [{"video": n, "why": w} for n, w in report.removed],
                               "moved": [{"from": a, "to": b} for a, b in report.moved],
                               "missing": [r.path for r in report.missing]}, indent=2))
        return
    console.print(f"reindexed {len(report.updated)} video(s)", highlight=False)
    for old, new in report.moved:
        console.print(f"moved: {old} -> {new}", highlight=False)
    for name, why in report.removed:
        console.print(f"[yellow]removed[/] {name}: {why}", highlight=False)
    for r in report.missing:
        console.print(f"[yellow]file not found:[/] #{r.id} {r.path} (kept; --scan FOLDER looks for it)", highlight=False)


@library_group.command("add")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@library_option
@user_errors
def add_cmd(run_dirs: tuple[Path, ...], library: Path | None) -> None:
    """Add run folders to the library (runs made with --no-library, or before the library existed).

    Each argument is a run folder (it holds results.json) or a folder of run folders.

    \b
    Example:
      framework library add runs/
    """
    from framework.library import Library

    lib = Library.open(library)
    folders = []
    for d in run_dirs:
        if not d.is_dir():
            raise click.BadParameter(f"{d}: no such folder", param_hint="RUN_DIRS")
        folders += [d] if (d / "results.json").is_file() else sorted(p.parent for p in d.glob("*/results.json"))
    if not folders:
        raise click.UsageError("no run folder (a folder with results.json) in " + ", ".join(map(str, run_dirs)))
    for folder in folders:
        record = lib.add_run(folder)
        console.print(f"#{record.id} {record.name}: {record.moments} moment(s) from {folder}", highlight=False)
