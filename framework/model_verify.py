"""``framework models verify``: check cached models' sizes and hashes.

What is checked, per source:

- huggingface: every file of every cached revision against its blob name, which huggingface_hub
  sets to the file's SHA-256 (LFS files) or git blob SHA-1 (small files); the locked commit
  (``models.lock.json``) must be cached; the revision's size against the manifest's.
- whisper / easyocr / ultralytics / url: the file's hash against the manifest's checksum (from
  the library's own table) or else the hash ``pull`` recorded; its size against the lock's exact
  size and the manifest's size.
- bundled: the package's model paths exist.

Sizes in the manifest are approximate (``size_approximate: true``); a difference of more than
``APPROX_TOLERANCE`` is reported as a note, not a failure. Exact sizes (lock, or
``size_approximate: false``) must match.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .manifest import Manifest, ModelSpec
from .model_cache import CacheScan, CachedModel, ModelLock

APPROX_TOLERANCE = 0.5  # a cached size within +-50 % of an approximate manifest size is fine
_CHUNK = 1 << 20

Progress = Callable[[int], None]


def _feed(h: Any, path: Path, progress: Progress | None) -> str:
    """Feed ``path`` to hash object ``h`` in 1 MiB chunks (``progress(n)`` after each); its hex digest."""
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            if progress:
                progress(len(chunk))
    return h.hexdigest()


def file_digest(path: Path, algo: str = "sha256", progress: Progress | None = None) -> str:
    """Hex digest of ``path``, read in 1 MiB chunks; ``progress(n)`` after each chunk."""
    return _feed(hashlib.new(algo), path, progress)


def git_blob_sha1(path: Path, progress: Progress | None = None) -> str:
    """The git object id of a file (how the hub names non-LFS blobs)."""
    h = hashlib.sha1()
    h.update(f"blob {path.stat().st_size}\0".encode())
    return _feed(h, path, progress)


@dataclass
class VerifyResult:
    """The outcome for one model: ``ok``, ``failed``, ``unverified`` (nothing to compare), or
    ``not cached``; ``checks`` says what was compared, ``problems`` what did not match."""

    id: str
    source: str
    status: str = "ok"
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "status": self.status, "checks": self.checks,
                "problems": self.problems, "notes": self.notes}


def bytes_to_hash(cm: CachedModel, hashes: bool) -> int:
    """How many bytes verify will read for ``cm`` (for a progress bar)."""
    return cm.size_on_disk if hashes and cm.cached and cm.spec.source != "bundled" else 0


def verify_models(manifest: Manifest, scan: CacheScan, lock: ModelLock, ids: Iterable[str] | None = None,
                  hashes: bool = True, progress: Progress | None = None) -> list[VerifyResult]:
    """Verify ``ids`` (default: every cached manifest model)."""
    wanted = list(ids) if ids else [m for m, cm in scan.models.items() if cm.cached or cm.paths]
    results = []
    for mid in wanted:
        spec = manifest[mid]
        cm = scan.models[mid]
        res = VerifyResult(mid, spec.source)
        if not cm.cached:
            res.status = "not cached"
            what = "partly cached (an interrupted pull)" if cm.partial or cm.busy else "not cached"
            res.notes.append(f"{what}: `framework models pull {mid}` fetches it")
        elif spec.source == "huggingface":
            _verify_hf(spec, cm, lock.get(mid), res, hashes, progress)
        elif spec.source == "bundled":
            res.checks.append(f"{len(cm.paths)} path(s) present in {spec.locator} {cm.package_version or ''}".rstrip())
        else:
            _verify_file(spec, cm, lock.get(mid), res, hashes, progress)
        if res.problems:
            res.status = "failed"
        elif res.status == "ok" and not res.checks:
            res.status = "unverified"
        if cm.cached:
            _size_note(spec, cm, res)
        results.append(res)
    return results


def _size_note(spec: ModelSpec, cm: CachedModel, res: VerifyResult) -> None:
    if spec.size_bytes is None or spec.source == "huggingface" and len(cm.revisions) > 1:
        return
    expected, actual = spec.size_bytes, cm.size_on_disk
    if not spec.size_approximate:
        res.checks.append("size vs manifest (exact)")
        if actual != expected:
            res.problems.append(f"size {actual} bytes, manifest says exactly {expected}")
            res.status = "failed"
    elif expected and abs(actual - expected) > APPROX_TOLERANCE * expected:
        res.notes.append(f"size {actual:,} bytes differs from the manifest's approximate {expected:,}")


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def _verify_hf(spec: ModelSpec, cm: CachedModel, entry: dict[str, Any] | None, res: VerifyResult,
               hashes: bool, progress: Progress | None) -> None:
    locked = entry.get("revision") if entry else None
    pinned = spec.revision or locked
    if pinned:
        res.checks.append(f"revision {pinned[:12]} cached")
        if pinned not in cm.revisions:
            res.problems.append(f"revision {pinned} ({'manifest' if spec.revision else 'lock'}) is not cached; "
                                f"cached: {', '.join(r[:12] for r in cm.revisions) or 'none'}")
    seen: set[Path] = set()
    n = 0
    for repo in cm.paths:
        for snap in sorted((repo / "snapshots").iterdir()) if (repo / "snapshots").is_dir() else []:
            for f in sorted(p for p in snap.rglob("*") if not p.is_dir()):
                blob = f.resolve()
                if blob in seen:
                    continue
                seen.add(blob)
                if locked and entry and snap.name == locked:
                    rec = entry.get("files", {}).get(f.relative_to(snap).as_posix())
                    if rec and rec.get("size") is not None and rec["size"] != blob.stat().st_size:
                        res.problems.append(f"{f.relative_to(repo)}: size {blob.stat().st_size}, lock says {rec['size']}")
                if not hashes:
                    continue
                name = blob.name
                if _SHA256.match(name):
                    got, kind = file_digest(blob, "sha256", progress), "sha256"
                elif _SHA1.match(name):
                    got, kind = git_blob_sha1(blob, progress), "git sha1"
                else:
                    res.notes.append(f"{f.relative_to(repo)}: blob name {name!r} is not a hash; not checked")
                    continue
                n += 1
                if got != name:
                    res.problems.append(f"{f.relative_to(repo)}: {kind} {got[:12]}..., blob name says {name[:12]}...")
    if hashes:
        res.checks.append(f"{n} file hash(es) vs blob names")


def _verify_file(spec: ModelSpec, cm: CachedModel, entry: dict[str, Any] | None, res: VerifyResult,
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
