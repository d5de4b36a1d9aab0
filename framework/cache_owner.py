"""Who owns a run folder's decoded-frame cache, and removing the ones whose run is gone.

A run writes ``<run folder>/.cache/owner.json`` (its pid, the process's start time and the boot
id) before it decodes anything, and deletes the cache when it finishes. A run killed with
``kill -9`` (or by the OOM killer, or a power cut) cannot delete it, so every later run sweeps the
output root, and ``framework clean`` sweeps a folder, for caches whose owner is gone:

- the boot id differs (the machine restarted since), or
- no process has that pid, or it is a zombie, or
- a process has that pid but started at another time (the pid was reused).

A cache is never removed while its process lives, when its marker names another host (a shared
folder: we cannot look at that machine's processes), or when it has no marker (a run still
starting, or a cache from an older version: ``framework clean`` lists it for you to decide).
A cache kept with ``--keep-cache`` is marked ``kept`` and left alone unless asked.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import InputError
from .timeline import atomic_write_text

logger = logging.getLogger(__name__)

CACHE_DIRNAME = ".cache"
MARKER = "owner.json"


@dataclass(frozen=True)
class CacheVerdict:
    """One cache folder and whether it can go."""

    path: Path
    stale: bool
    why: str
    size_bytes: int = 0


@dataclass
class CleanReport:
    """What a sweep removed (or, in a dry run, would remove) and what it left."""

    removed: list[CacheVerdict] = field(default_factory=list)
    left: list[CacheVerdict] = field(default_factory=list)
    dry_run: bool = False

    @property
    def freed_bytes(self) -> int:
        return sum(v.size_bytes for v in self.removed)


def claim(cache_dir: Path) -> None:
    """Create ``cache_dir`` and write this process's owner marker into it.

    :raises InputError: another run that is still going owns it (two runs into one run folder
        would decode into the same cache, and the first to finish would delete it under the other).
    """
    marker = cache_dir / MARKER
    if marker.is_file():
        verdict = judge(cache_dir)
        owner = _read_owner(marker)
        if (not verdict.stale and owner.get("state") == "running" and owner.get("pid") != os.getpid()
                and owner.get("host") in (None, socket.gethostname())):
            raise InputError(f"{cache_dir.parent} is in use by another run ({verdict.why}); wait for it to "
                             "finish, or give this run its own folder with --out")
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache_dir / MARKER, json.dumps(_owner("running"), indent=1))


def _read_owner(marker: Path) -> dict:
    try:
        owner = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def mark_kept(cache_dir: Path) -> None:
    """Mark a cache the user asked to keep (``--keep-cache``): sweeps leave it alone."""
    if cache_dir.is_dir():
        atomic_write_text(cache_dir / MARKER, json.dumps(_owner("kept"), indent=1))


def judge(cache_dir: Path, *, include_kept: bool = False) -> CacheVerdict:
    """Whether the cache's owning run is gone, and why (never stale while its process lives)."""
    try:
        owner = json.loads((cache_dir / MARKER).read_text(encoding="utf-8"))
        pid = int(owner["pid"])
    except FileNotFoundError:
        return CacheVerdict(cache_dir, False, "no owner marker (a run still starting, or made by an "
                                              "older version): remove it by hand if no run uses it")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return CacheVerdict(cache_dir, False, f"unreadable owner marker ({exc}): remove it by hand "
                                              "if no run uses it")
    if owner.get("state") == "kept":
        return CacheVerdict(cache_dir, include_kept, "kept with --keep-cache")
    if owner.get("host") not in (None, socket.gethostname()):
        return CacheVerdict(cache_dir, False, f"made on host {owner['host']}: cannot check its process")
    boot = _boot_id()
    if owner.get("boot_id") and boot and owner["boot_id"] != boot:
        return CacheVerdict(cache_dir, True, f"its run (pid {pid}) was before the last restart")
    namespace = _pid_namespace()
    if owner.get("pid_namespace") and namespace and owner["pid_namespace"] != namespace:
        return CacheVerdict(cache_dir, False, f"made in another PID namespace (a container?): cannot check "
                                              f"its process (pid {pid} there)")
    if not _alive(pid):
        return CacheVerdict(cache_dir, True, f"its run (pid {pid}) is gone")
    started = _process_start(pid)
    if owner.get("process_start") is not None and started is not None and started != owner["process_start"]:
        return CacheVerdict(cache_dir, True, f"its run (pid {pid}) is gone; the pid now belongs to another process")
    return CacheVerdict(cache_dir, False, f"its run (pid {pid}) is still running")


def find_caches(root: Path, depth: int = 1) -> Iterator[Path]:
    """``root/.cache`` and the ``.cache`` folders of run folders up to ``depth`` levels below ``root``."""
    level = [root]
    for d in range(depth + 1):
        following: list[Path] = []
        for folder in level:
            cache = folder / CACHE_DIRNAME
            if cache.is_dir() and not cache.is_symlink():
                yield cache
            if d < depth:
                try:
                    following += sorted(p for p in folder.iterdir()
                                        if p.is_dir() and not p.is_symlink() and p.name != CACHE_DIRNAME)
                except OSError:
                    continue
        level = following


def sweep(root: Path, *, depth: int = 1, dry_run: bool = False, include_kept: bool = False) -> CleanReport:
    """Remove the stale caches under ``root`` (see the module docstring for what counts as stale)."""
    report = CleanReport(dry_run=dry_run)
    for cache in find_caches(root, depth):
        verdict = judge(cache, include_kept=include_kept)
        if not verdict.stale:
            report.left.append(verdict)
            continue
        verdict = CacheVerdict(cache, True, verdict.why, _size(cache))
        if not dry_run:
            shutil.rmtree(cache, ignore_errors=True)
            if cache.exists():
                report.left.append(CacheVerdict(cache, False, "could not be removed (permissions?)"))
                continue
            logger.info("removed the stale frame cache %s (%s; %s freed)", cache, verdict.why,
                        human_size(verdict.size_bytes))
        report.removed.append(verdict)
    return report


def human_size(n: int) -> str:
    """``1536`` -> ``"1.5 KB"`` (powers of 1024, as ``du -h``)."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


# --- this machine's processes ---------------------------------------------------------------
def _owner(state: str) -> dict:
    return {"pid": os.getpid(), "process_start": _process_start(os.getpid()), "boot_id": _boot_id(),
            "pid_namespace": _pid_namespace(), "host": socket.gethostname(), "started_at": time.time(),
            "state": state}


def _pid_namespace() -> int | None:
    """This process's PID namespace (a container has its own: its pids mean nothing outside it)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None where there is no /proc)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    fields = _stat_fields(pid)
    return not (fields and fields[0] in ("Z", "X"))  # a zombie has finished


def _size(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total
