"""File hashes, read in 1 MiB chunks with an optional progress callback."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

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
