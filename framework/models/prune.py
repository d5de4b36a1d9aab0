"""Plan and carry out ``framework models prune``: delete cached models no enabled analyzer uses.

In use: every model of an enabled analyzer in the active registry (with its params), plus
``--keep`` ids, plus what those require. Candidates: cached manifest models not in use, and,
listed apart and deleted only with ``include_unknown``, cached Hugging Face model repos the
manifest does not know. Never deleted: a model an enabled analyzer uses; a bundled model; a
path outside its cache folder (as written, through ``..``, or through a symlink); a model with
a download in progress. Hugging Face repos are removed through huggingface_hub's cache API.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from ..errors import ConfigError
from .cache import CachedModel, CacheScan, UnknownRepo
from .fsguard import human_size
from .lockfile import ModelLock, now_iso, write_json_atomic
from .manifest import Manifest
from .sources import source_for
from .sources.huggingface import hf_refusal
from .usage import ModelUsage

logger = logging.getLogger(__name__)

Action = Literal["delete", "keep", "refused", "listed"]


@dataclass
class PruneItem:
    """One row of the prune table."""

    kind: Literal["model", "unknown"]
    id: str
    source: str
    size: int
    action: Action
    reason: str
    paths: list[Path] = field(default_factory=list)
    revisions: list[str] = field(default_factory=list)
    root: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "source": self.source, "size_bytes": self.size,
                "action": self.action, "reason": self.reason, "paths": [str(p) for p in self.paths],
                "revisions": self.revisions}


@dataclass
class PrunePlan:
    """What prune would do; ``execute_prune`` carries out the ``delete`` rows."""

    items: list[PruneItem]
    in_use: set[str]
    include_unknown: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def to_delete(self) -> list[PruneItem]:
        return [i for i in self.items if i.action == "delete"]

    @property
    def reclaimable(self) -> int:
        return sum(i.size for i in self.to_delete)

    @property
    def unknown_size(self) -> int:
        return sum(i.size for i in self.items if i.kind == "unknown" and i.action in ("delete", "listed"))

    def prunable_ids(self) -> set[str]:
        return {i.id for i in self.items if i.kind == "model" and i.action == "delete"}


def _users(names: list[str]) -> str:
    return ", ".join(names)


def plan_prune(manifest: Manifest, scan: CacheScan, usage: ModelUsage, keep: Iterable[str] = (),
               include_unknown: bool = False) -> PrunePlan:
    """Decide, for every cached model and unknown HF repo, whether prune deletes it and why.

    :raises ConfigError: an enabled analyzer names a model the manifest lacks, or cannot say
        which models it uses (prune cannot know what to keep), or a ``keep`` id is unknown.
    """
    bad = [(a, m) for a, m in usage.unknown if a in {n for ns in usage.enabled.values() for n in ns}]
    if bad or usage.enabled_failures:
        what = "; ".join([f"enabled analyzer {a!r} uses model id {m!r}, which {manifest.path} lacks"
                          for a, m in bad] +
                         [f"enabled analyzer {a!r} cannot list its models" for a in usage.enabled_failures])
        raise ConfigError(f"refusing to prune: {what}. Add the id to the manifest or disable the analyzer.")
    by_repo = manifest.by_repo_id()
    keep = [by_repo.get(k.lower(), k) for k in keep]  # a manifest model may be named by its repo id
    unknown_repo_ids = {u.repo_id.lower() for u in scan.unknown}
    for k in keep:
        if k not in manifest and k.lower() not in unknown_repo_ids:
            raise ConfigError(f"--keep {k}: not a model id of {manifest.path} nor a cached Hugging Face repo; "
                              "see `framework models list`")
    keep_ids = [k for k in keep if k in manifest]
    in_use = usage.in_use(manifest, keep_ids)
    required_by = {r: s.id for s in manifest for r in s.requires if s.id in in_use}
    plan = PrunePlan([], in_use, include_unknown,
                     warnings=[f"disabled analyzer {a!r} names unknown model id {m!r}" for a, m in usage.unknown
                               if (a, m) not in bad])
    for cm in scan.models.values():
        if not (cm.cached or cm.paths):
            continue
        plan.items.append(_model_item(cm, scan, usage, in_use, keep_ids, required_by))
    for repo in scan.unknown:
        plan.items.append(_unknown_item(repo, scan, keep, include_unknown))
    _keep_overlaps(plan)
    return plan


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def _keep_overlaps(plan: PrunePlan) -> None:
    """Second guard: a candidate whose files overlap a kept model's files is kept too (two manifest
    entries on one repo or file are rejected when the manifest loads; this catches what slips by)."""
    kept = [(i, p) for i in plan.items if i.kind == "model" and i.action == "keep" for p in i.paths]
    for item in plan.items:
        if item.action not in ("delete", "listed"):
            continue
        hit = next(((k, p) for k, p in kept for q in item.paths if _overlaps(p, q)), None)
        if hit:
            item.action = "keep"
            item.reason = f"shares {hit[1]} with {hit[0].id}, which is kept ({hit[0].reason})"


def _model_item(cm: CachedModel, scan: CacheScan, usage: ModelUsage, in_use: set[str],
                keep: list[str], required_by: dict[str, str]) -> PruneItem:
    spec = cm.spec
    item = PruneItem("model", spec.id, spec.source, cm.size_on_disk, "delete", "", list(cm.paths),
                     list(cm.revisions), cm.root)
    enabled, disabled = usage.enabled.get(spec.id, []), usage.disabled.get(spec.id, [])
    if spec.handler.in_package:
        item.action, item.reason = "keep", f"bundled inside the {spec.locator} package (never deleted)"
    elif spec.id in in_use:
        item.action = "keep"
        if enabled:
            item.reason = f"used by enabled analyzer(s) {_users(enabled)}"
        elif spec.id in keep:
            item.reason = "kept with --keep"
        else:
            item.reason = f"required by {required_by.get(spec.id, '?')}, which is in use"
    elif cm.busy:
        item.action, item.reason = "refused", f"download in progress: {cm.busy[0]}"
    elif reason := spec.handler.refusal(scan, cm.paths, cm.root, cm.revisions):
        item.action, item.reason = "refused", f"unsafe: {reason}"
    else:
        item.reason = (f"used only by disabled analyzer(s) {_users(disabled)}" if disabled
                       else "used by no registered analyzer")
    return item


def _unknown_item(repo: UnknownRepo, scan: CacheScan, keep: list[str], include_unknown: bool) -> PruneItem:
    item = PruneItem("unknown", repo.repo_id, "huggingface", repo.size_on_disk, "listed",
                     "not in the manifest; deleted only with --include-unknown", [repo.path],
                     list(repo.revisions), scan.roots.hf_hub)
    if repo.repo_id.lower() in {k.lower() for k in keep}:
        item.action, item.reason = "keep", "kept with --keep"
    elif repo.busy:
        item.action, item.reason = "refused", f"download in progress: {repo.busy[0]}"
    elif reason := hf_refusal(scan, [repo.path], repo.revisions):
        item.action, item.reason = "refused", f"unsafe: {reason}"
    elif include_unknown:
        item.action, item.reason = "delete", "not in the manifest (--include-unknown)"
    return item


@dataclass
class PruneResult:
    removed: list[PruneItem]
    failed: list[tuple[PruneItem, str]]
    record: Path

    @property
    def freed(self) -> int:
        return sum(i.size for i in self.removed)


def execute_prune(plan: PrunePlan, scan: CacheScan, manifest: Manifest, lock: ModelLock | None = None,
                  registry: Path | None = None) -> PruneResult:
    """Write the record, then delete the plan's ``delete`` rows, re-checking each just before."""
    roots = scan.roots
    stamp = now_iso().replace(":", "").replace("-", "").replace("+0000", "Z")
    record_path = roots.framework_home / "prune-records" / f"prune-{stamp}.json"
    n = 1
    while record_path.exists():
        n += 1
        record_path = record_path.with_name(f"prune-{stamp}-{n}.json")
    record: dict[str, Any] = {
        "version": 1, "started": now_iso(), "registry": str(registry) if registry else None,
        "manifest": str(manifest.path), "roots": roots.as_dict(), "in_use": sorted(plan.in_use),
        "cached": [{"id": cm.id, "source": cm.spec.source, "size_bytes": cm.size_on_disk,
                    "paths": [str(p) for p in cm.paths], "revisions": cm.revisions}
                   for cm in scan.models.values() if cm.cached or cm.paths]
                  + [{"id": u.repo_id, "source": "huggingface", "unknown": True, "size_bytes": u.size_on_disk,
                      "paths": [str(u.path)], "revisions": u.revisions} for u in scan.unknown],
        "planned": [i.as_dict() for i in plan.to_delete], "removed": [], "failed": [], "finished": None,
    }
    write_json_atomic(record_path, record)
    removed: list[PruneItem] = []
    failed: list[tuple[PruneItem, str]] = []
    for item in plan.to_delete:
        try:
            _delete(item, scan, manifest)
        except Exception as exc:  # noqa: BLE001 - report each failure, go on with the rest
            logger.warning("could not remove %s: %s", item.id, exc)
            failed.append((item, str(exc)))
            continue
        removed.append(item)
        logger.info("removed %s (%s)", item.id, human_size(item.size))
    record["removed"] = [i.as_dict() for i in removed]
    record["failed"] = [{**i.as_dict(), "error": e} for i, e in failed]
    record["finished"] = now_iso()
    write_json_atomic(record_path, record)
    if lock is not None:
        lock.forget([i.id for i in removed if i.kind == "model"])
    return PruneResult(removed, failed, record_path)


def _delete(item: PruneItem, scan: CacheScan, manifest: Manifest) -> None:
    # Re-check right before deleting: a download may have started since the plan was made.
    source = manifest[item.id].handler if item.kind == "model" else source_for("huggingface")
    spec = manifest[item.id] if item.kind == "model" else None
    busy = [b for p in item.paths for b in source.busy(spec, p, scan.roots)]  # type: ignore[arg-type]
    if busy:
        raise RuntimeError(f"refused: download in progress: {busy[0]}")
    if reason := source.refusal(scan, item.paths, item.root, item.revisions):
        raise RuntimeError(f"refused: {reason}")
    source.delete(item, scan)
