"""``ModelSource``: everything one model source does, in one class.

A source knows where its library caches files, how to find a manifest entry there (local path
and revision), how to fetch it (``pull``), what the pull lock records, how to verify it, and how
prune checks and deletes it. ``FileSource`` is the common base of the single-file sources
(ultralytics, whisper, easyocr, url).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..cache import CachedModel
from ..digest import Progress, file_digest
from ..fsguard import deletion_refusal, lock_is_held

if TYPE_CHECKING:
    from ..cache import CacheScan
    from ..lockfile import ModelLock
    from ..manifest import ModelSpec
    from ..prune import PruneItem
    from ..roots import CacheRoots
    from ..verify import VerifyResult

logger = logging.getLogger(__name__)


class ModelSource:
    """The operations every source implements; ``name`` is the manifest's ``source:`` value."""

    name: ClassVar[str] = ""
    in_package: ClassVar[bool] = False  # True: weights ship inside a package: nothing to fetch, never deleted
    has_commits: ClassVar[bool] = False  # True: `check-pins` can ask a hub about its pins

    # --- the manifest entry -------------------------------------------------------------
    def validate(self, spec: ModelSpec) -> None:
        """Check the source-specific fields of ``spec``; raise ``ValueError`` saying what is wrong."""
        if spec.revision is not None:
            raise ValueError(f"revision applies only to source: huggingface (source is {self.name})")

    def filename(self, spec: ModelSpec) -> str | None:
        """The single file the source stores for ``spec`` (None when it is not one file)."""
        return None

    def pinned(self, spec: ModelSpec) -> bool:
        """True when the manifest pins the exact weights (a commit, or the file's hash)."""
        return bool(spec.checksums)

    # --- the cache ---------------------------------------------------------------------
    def cache_dirs(self, roots: CacheRoots) -> list[Path]:
        """Folders the source's files may be in; the first is where ``pull`` writes."""
        return []

    def scan(self, spec: ModelSpec, roots: CacheRoots, scan: CacheScan) -> CachedModel:
        """The cache state of ``spec``."""
        raise NotImplementedError

    def local_path(self, spec: ModelSpec, roots: CacheRoots, lock: ModelLock) -> Path | None:
        """What an analyzer loads ``spec`` from, or None when it is not (completely) cached."""
        raise NotImplementedError

    def revision(self, spec: ModelSpec, path: Path, lock: ModelLock) -> str | None:
        """The revision of the weights at ``path`` (a commit, ``sha256:...`` or a package version)."""
        raise NotImplementedError

    # --- pull ----------------------------------------------------------------------------
    def pull(self, spec: ModelSpec, roots: CacheRoots, lock: ModelLock, update: bool, progress: bool) -> Path:
        """Download ``spec`` into its cache; return the local path. Raises ``ModelError``."""
        raise NotImplementedError

    def lock_entry(self, spec: ModelSpec, path: Path) -> dict[str, Any]:
        """What ``models.lock.json`` records for ``spec`` fetched to ``path``."""
        raise NotImplementedError

    def check_pin(self, api: Any, spec: ModelSpec, endpoint: str | None) -> tuple[str, str | None]:
        """Ask the hub about ``spec``'s pinned commit (sources with ``has_commits`` only)."""
        raise NotImplementedError(f"{self.name} models have no commits to check")

    # --- verify --------------------------------------------------------------------------
    def verify(self, spec: ModelSpec, cm: CachedModel, entry: dict[str, Any] | None, res: VerifyResult,
               hashes: bool, progress: Progress | None) -> None:
        """Append to ``res.checks`` what was compared and to ``res.problems`` what did not match."""

    # --- prune ---------------------------------------------------------------------------
    def busy(self, spec: ModelSpec, path: Path, roots: CacheRoots) -> list[str]:
        """Reasons a download of ``spec`` into ``path`` looks in progress (re-checked before deleting)."""
        return []

    def refusal(self, scan: CacheScan, paths: list[Path], root: Path | None, revisions: list[str]) -> str | None:
        """Why deleting ``paths`` would be unsafe, or None."""
        return "bundled models are never deleted"

    def delete(self, item: PruneItem, scan: CacheScan) -> None:
        """Delete what ``item`` names (already checked by ``refusal`` and ``busy``)."""
        raise RuntimeError(f"{self.name} models are never deleted")


class FileSource(ModelSource):
    """A source that stores one file per model in a cache folder."""

    def filename(self, spec: ModelSpec) -> str | None:
        return spec.locator

    def scan(self, spec: ModelSpec, roots: CacheRoots, scan: CacheScan) -> CachedModel:
        cm = CachedModel(spec)
        name = self.filename(spec) or ""
        for folder in self.cache_dirs(roots):
            f = folder / name
            if f.is_file() or f.is_symlink():
                cm.paths.append(f)
                cm.root = cm.root or folder
                cm.cached = True
                cm.size_on_disk += f.stat().st_size if f.exists() else 0
            cm.busy += self.busy(spec, f, roots)
        if cm.root is None:
            cm.root = self.cache_dirs(roots)[0]
        return cm

    def local_path(self, spec: ModelSpec, roots: CacheRoots, lock: ModelLock) -> Path | None:
        name = self.filename(spec) or ""
        return next((folder / name for folder in self.cache_dirs(roots) if (folder / name).is_file()), None)

    def revision(self, spec: ModelSpec, path: Path, lock: ModelLock) -> str | None:
        """``sha256:<hex>`` of the file: from the lock while the file's size and mtime match what
        it recorded, else hashed now and recorded (a file replaced in place gets a new revision)."""
        st = path.stat()
        rec = ((lock.get(spec.id) or {}).get("files") or {}).get(path.name) or {}
        if rec.get("sha256") and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
            return f"sha256:{rec['sha256']}"
        entry = self.lock_entry(spec, path)
        try:
            lock.record(spec.id, entry)
        except OSError as exc:  # a read-only FRAMEWORK_HOME: the hash is known, only the cache of it is lost
            logger.warning("could not record %s's hash in %s (%s); it is hashed again next time", spec.id,
                           lock.path, exc)
        return f"sha256:{entry['files'][path.name]['sha256']}"

    def lock_entry(self, spec: ModelSpec, path: Path) -> dict[str, Any]:
        st = path.stat()
        return {"source": spec.source, "locator": spec.locator, "revision": None,
                "files": {path.name: {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                      "sha256": file_digest(path)}}}

    def busy(self, spec: ModelSpec, path: Path, roots: CacheRoots) -> list[str]:
        folder, name = path.parent, self.filename(spec) or ""
        partials = [folder / f"{name}.part", *folder.glob(f".{name}.*.part"), *folder.glob(f"{name}.*.partial")]
        partials += self.extra_partials(folder)
        found = [f"{p} is a partial download" for p in partials if p.exists()]
        lock = folder / f"{name}.lock"
        if lock_is_held(lock):
            found.append(f"{lock} is held by a running download")
        return found

    def extra_partials(self, folder: Path) -> list[Path]:
        """Other files the source's downloader leaves while it runs."""
        return []

    def verify(self, spec: ModelSpec, cm: CachedModel, entry: dict[str, Any] | None, res: VerifyResult,
               hashes: bool, progress: Progress | None) -> None:
        for path in cm.paths:
            if not path.is_file():
                res.problems.append(f"{path}: not a readable file (broken symlink?)")
                continue
            size = path.stat().st_size
            rec = (entry or {}).get("files", {}).get(path.name) if entry else None
            if rec and rec.get("size") is not None:
                res.checks.append("size vs lock")
                if rec["size"] != size:
                    res.problems.append(f"{path}: size {size}, lock says {rec['size']}")
            if not hashes:
                continue
            manifest_sum = spec.checksums.get(path.name)
            if manifest_sum:
                algo, want = manifest_sum.split(":", 1)
                origin = "manifest"
            elif rec and rec.get("sha256"):
                algo, want, origin = "sha256", rec["sha256"], "lock"
            else:
                res.notes.append(f"{path.name}: no hash known (the manifest has none; `pull` records one)")
                continue
            got = file_digest(path, algo, progress)
            res.checks.append(f"{algo} vs {origin}")
            if got != want:
                res.problems.append(f"{path}: {algo} {got[:12]}..., {origin} says {want[:12]}...")

    def refusal(self, scan: CacheScan, paths: list[Path], root: Path | None, revisions: list[str]) -> str | None:
        for p in paths:
            if root is None:
                return f"{p}: no cache folder known for it"
            if reason := deletion_refusal(p, next((d for d in self.cache_dirs(scan.roots) if p.parent == d), root)):
                return reason
        return None

    def delete(self, item: PruneItem, scan: CacheScan) -> None:
        for p in item.paths:
            os.unlink(p)  # a symlink is unlinked, never followed (and was refused above if it points out)
