"""``framework models pull``, and the runner's fetch on first use: fetch models into their usual
caches and record what was fetched.

Each source goes through its own library where that library has a downloader that fits (see
each class in ``framework.models.sources``): huggingface_hub's ``snapshot_download``,
ultralytics' ``attempt_download_asset``, easyocr's ``download_and_unzip``, and for whisper and
url files the resumable ``download_url``. Bundled models have nothing to fetch; the package
version is reported.

Offline (``--offline``, ``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``) nothing is downloaded:
models already cached are reported, the rest fail with one ``ModelError`` line.
The commit / hash actually fetched goes to ``$FRAMEWORK_HOME/models.lock.json``; later pulls
and loads use that commit (``--update`` moves it).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import ModelError
from .cache import package_version
from .download import offline_reason
from .fsguard import human_size
from .lockfile import ModelLock
from .manifest import Manifest, ModelSpec
from .roots import CacheRoots

logger = logging.getLogger(__name__)


@dataclass
class PullResult:
    """``status``: downloaded, cached (already there), bundled, or failed (``detail`` says why)."""

    id: str
    source: str
    status: str
    detail: str = ""
    path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "status": self.status, "detail": self.detail,
                "path": str(self.path) if self.path else None}


def pull_models(manifest: Manifest, ids: Iterable[str], roots: CacheRoots | None = None,
                offline: bool = False, update: bool = False, progress: bool = True,
                lock: ModelLock | None = None) -> list[PullResult]:
    """Fetch ``ids`` and what they require. Raises ``ModelError`` (one line) if any could not be fetched."""
    roots = roots or CacheRoots.from_env()
    ids = list(ids)
    unknown = [i for i in ids if i not in manifest]
    if unknown:
        raise ModelError(f"unknown model id(s) {', '.join(unknown)}: not in {manifest.path}; "
                         "see `framework models list`")
    lock = lock if lock is not None else ModelLock.load(roots)
    why_offline = offline_reason(offline)
    results: list[PullResult] = []
    for mid in manifest.with_requirements(ids):
        spec = manifest[mid]
        try:
            results.append(_pull_one(spec, roots, lock, why_offline, update, progress))
        except ModelError as exc:
            results.append(PullResult(mid, spec.source, "failed", str(exc)))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        first = failed[0].detail
        more = f" (and {len(failed) - 1} more: {', '.join(r.id for r in failed[1:])})" if len(failed) > 1 else ""
        raise ModelError(f"{failed[0].id}: {first}{more}")
    return results


def _pull_one(spec: ModelSpec, roots: CacheRoots, lock: ModelLock, why_offline: str | None,
              update: bool, progress: bool) -> PullResult:
    source = spec.handler
    if source.in_package:  # bundled: nothing to fetch
        path = source.local_path(spec, roots, lock)
        version = package_version(spec.locator)
        if version is None or path is None:
            source.pull(spec, roots, lock, update, progress)  # raises with the pip command
        return PullResult(spec.id, spec.source, "bundled", f"{spec.locator} {version}", path)
    existing = None if update else source.local_path(spec, roots, lock)  # HF: only a complete snapshot
    if existing is not None:
        if lock.get(spec.id) is None:
            lock.record(spec.id, source.lock_entry(spec, existing))
        return PullResult(spec.id, spec.source, "cached", "already cached", existing)
    if why_offline:
        raise ModelError(f"offline ({why_offline}): cannot download {spec.source} model {spec.locator}; "
                         "pull it where the network is reachable, or unset the offline setting")
    size = ("~" if spec.size_approximate else "") + human_size(spec.size_bytes) if spec.size_bytes else "size unknown"
    logger.info("downloading model %s (%s, %s) from %s", spec.id, size, spec.source, spec.locator)
    path = source.pull(spec, roots, lock, update, progress)
    lock.record(spec.id, source.lock_entry(spec, path))
    return PullResult(spec.id, spec.source, "downloaded", str(path), path)
