"""Field checks several sources share."""
from __future__ import annotations

from pathlib import PurePosixPath


def plain_filename(name: str, what: str) -> str:
    """A single file name: no folder, no ``..``, nothing that could leave a cache folder."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ValueError(f"{what} must be a plain file name (no '/', '\\' or '..'), got {name!r}")
    return name


def safe_relpath(path: str, what: str) -> str:
    """A relative path that stays inside its folder (no ``..``, not absolute)."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or any(part in ("..", "") for part in path.split("/")) or "\\" in path:
        raise ValueError(f"{what} must be a relative path inside the package without '..', got {path!r}")
    return path
