"""``framework run`` arguments -> media files: files as given, folders searched recursively for
video and audio files, and glob patterns (``"footage/**/*.mov"``) expanded.

A folder is searched by file type: the extensions below, else what ``mimetypes`` says
(``video/*`` or ``audio/*``). Hidden files and folders (``.name``) and the framework's own run
folders (those holding ``results.json``) are not searched. What a folder or pattern finds is sorted,
so the order, and with it each video's run folder, is the same on every run. An argument that is
neither an existing path nor a pattern matching something is kept as given, so the runner reports
it as a missing file beside the others; so is a folder with no media in it.
"""
from __future__ import annotations

import glob
import logging
import mimetypes
import os
from pathlib import Path
from typing import Iterable

logger = logging.getLogger(__name__)

MEDIA_EXTENSIONS = frozenset({
    # video
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".m2v", ".ts", ".mts",
    ".m2ts", ".vob", ".ogv", ".3gp", ".3g2", ".mxf", ".asf", ".divx", ".f4v", ".y4m", ".dv", ".hevc", ".h264",
    # audio
    ".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".wma", ".aiff", ".aif", ".ac3", ".amr",
})
_GLOB_CHARS = set("*?[")


def is_media_file(path: Path) -> bool:
    """Whether ``path``'s name says video or audio (its extension, or ``mimetypes``)."""
    suffix = path.suffix.lower()
    if suffix in MEDIA_EXTENSIONS:
        return True
    kind, _ = mimetypes.guess_type(path.name)
    return bool(kind) and kind.split("/")[0] in ("video", "audio")


def _walk(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        if "results.json" in files and Path(root) != folder:
            dirs[:] = []  # a run folder: thumbnails and caches, not inputs
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and is_media_file(Path(name)):
                found.append(Path(root) / name)
    return found


def expand_inputs(args: Iterable[str | os.PathLike]) -> list[Path]:
    """The media files ``args`` name, in order, each once (by resolved path)."""
    out: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        try:
            key = path.resolve()
        except OSError:
            key = path.absolute()
        if key not in seen:
            seen.add(key)
            out.append(path)

    for arg in args:
        text = os.fspath(arg)
        path = Path(os.path.expanduser(text))
        if path.is_dir():
            media = _walk(path)
            if media:
                logger.info("%s: %d media file(s) found", text, len(media))
                for m in media:
                    add(m)
            else:
                logger.warning("%s: no video or audio files in this folder", text)
                add(path)  # the runner reports it (a folder is not a file)
            continue
        if not path.exists() and _GLOB_CHARS & set(text):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True))
            files = [m for m in matches if m.is_file() and (is_media_file(m) or not m.name.startswith("."))]
            files = [m for m in files if is_media_file(m)] or files
            if files:
                logger.info("%s: %d file(s) match", text, len(files))
                for m in files:
                    add(m)
                continue
            logger.warning("%s: no file matches this pattern", text)
        add(path)
    return out
