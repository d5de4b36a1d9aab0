"""``framework models verify``: check cached models' sizes and hashes.

What is checked depends on the source (each source's ``verify``):

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

from dataclasses import dataclass, field
from typing import Any, Iterable

from .cache import CachedModel, CacheScan
from .digest import Progress
from .lockfile import ModelLock
from .manifest import Manifest, ModelSpec

APPROX_TOLERANCE = 0.5  # a cached size within +-50 % of an approximate manifest size is fine


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
    return cm.size_on_disk if hashes and cm.cached and not cm.spec.handler.in_package else 0


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
        else:
            spec.handler.verify(spec, cm, lock.get(mid), res, hashes, progress)
        if res.problems:
            res.status = "failed"
        elif res.status == "ok" and not res.checks:
            res.status = "unverified"
        if cm.cached:
            _size_note(spec, cm, res)
        results.append(res)
    return results


def _size_note(spec: ModelSpec, cm: CachedModel, res: VerifyResult) -> None:
    if spec.size_bytes is None or spec.handler.has_commits and len(cm.revisions) > 1:
        return
    expected, actual = spec.size_bytes, cm.size_on_disk
    if not spec.size_approximate:
        res.checks.append("size vs manifest (exact)")
        if actual != expected:
            res.problems.append(f"size {actual} bytes, manifest says exactly {expected}")
            res.status = "failed"
    elif expected and abs(actual - expected) > APPROX_TOLERANCE * expected:
        res.notes.append(f"size {actual:,} bytes differs from the manifest's approximate {expected:,}")
