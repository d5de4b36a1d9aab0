"""The guards prune relies on (never delete outside a cache, never delete a running download)
and file sizes, shared by every model source."""
from __future__ import annotations

import os
import site
import sys
import sysconfig
from pathlib import Path


def site_package_dirs() -> list[Path]:
    """Every site-packages folder of this interpreter (resolved)."""
    dirs = set()
    candidates = list(getattr(site, "getsitepackages", lambda: [])())
    candidates.append(site.getusersitepackages())
    for key in ("purelib", "platlib"):
        candidates.append(sysconfig.get_paths().get(key, ""))
    candidates += [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))]
    for c in candidates:
        if c:
            dirs.add(Path(os.path.realpath(c)))
    return sorted(dirs)


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False


def deletion_refusal(path: Path, root: Path) -> str | None:
    """Why ``path`` must not be deleted as part of the cache ``root``, or None when it may.

    Refused: a path naming ``..``; the root itself; anything that is outside the root as
    written or once symlinks are resolved (a symlink pointing out of the cache); anything
    inside a site-packages folder.
    """
    raw = str(path)
    if ".." in Path(raw).parts:
        return f"{raw}: the path contains '..'"
    root_abs, root_real = os.path.abspath(root), os.path.realpath(root)
    abs_path, real_path = os.path.abspath(raw), os.path.realpath(raw)
    if abs_path in (root_abs, root_real) or real_path == root_real:
        return f"{raw}: is the cache folder itself"
    if not (_inside(abs_path, root_abs) or _inside(abs_path, root_real)):
        return f"{raw}: is outside the cache folder {root}"
    if not _inside(real_path, root_real):
        return f"{raw}: resolves through a symlink to {real_path}, outside the cache folder {root}"
    for sp in site_package_dirs():
        if _inside(real_path, str(sp)):
            return f"{raw}: is inside the Python packages folder {sp} (bundled models are never deleted)"
    return None


def lock_is_held(lock_path: Path) -> bool:
    """True when another process holds ``lock_path`` (the flock huggingface_hub and filelock use).

    The file is never created: a missing lock file is not held.
    """
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: assume a download owns it
    try:
        try:
            import fcntl
        except ImportError:  # Windows: let filelock decide
            os.close(fd)
            fd = -1
            from filelock import FileLock, Timeout

            lock = FileLock(str(lock_path), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                return True
            lock.release()
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (symlinks not followed)."""
    try:
        st = path.lstat()
    except OSError:
        return 0
    if not path.is_dir() or path.is_symlink():
        return st.st_size if not path.is_symlink() else (path.stat().st_size if path.exists() else 0)
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                s = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(dirpath, name)):
                total += s.st_size
    return total


def human_size(n: int | None) -> str:
    """Decimal units, as model sizes are published: ``human_size(1_234_000_000) == '1.23 GB'``."""
    if n is None:
        return "?"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"

