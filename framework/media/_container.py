"""Opening a file and reading its container's clock and geometry: what every part of ``media`` shares.

Private to ``framework.media``: ``probing``, ``selection``, ``sinks``, ``segments`` and ``decoding``
import from here, and nothing here imports them, so the package has no import cycle.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:  # PyAV is imported lazily: importing the framework must stay cheap
    import av


class MediaError(InputError):
    """The input file cannot be probed or decoded; the one-line message names it and says what to do."""


def check_file(path: str | os.PathLike) -> Path:
    """``path`` as a ``Path`` when it is a readable, non-empty regular file.

    :raises MediaError: it is missing, a folder, not a regular file, unreadable or empty.
    """
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: file not found; check the path (quote it if it contains spaces)")
    if p.is_dir():
        raise MediaError(f"{p}: is a folder, not a media file; pass the path of a video or audio file")
    if not p.is_file():
        raise MediaError(f"{p}: is not a regular file; pass the path of a video or audio file")
    if not os.access(p, os.R_OK):
        raise MediaError(f"{p}: permission denied; make the file readable for this user")
    if p.stat().st_size == 0:
        raise MediaError(f"{p}: the file is empty (0 bytes); re-download or re-export it")
    return p


def open_container(path: Path) -> "av.container.InputContainer":
    """Open ``path`` for reading; it must hold at least one video or audio stream.

    :raises MediaError: PyAV cannot read it, or it has neither video nor audio.
    """
    import av

    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise MediaError(f"{path}: not a video or audio file PyAV can read ({reason}); if it should "
                         "be one it is damaged or truncated: check it plays, or re-encode it") from None
    if not video_streams(container) and not container.streams.audio:
        fmt = container.format.name
        container.close()
        raise MediaError(f"{path}: not a video or audio file PyAV can read (format {fmt!r} has no "
                         "video or audio stream); pass a video or audio file")
    return container


def is_cover_art(stream: Any) -> bool:
    """A picture attached to the file (album art), not a video stream."""
    import av

    return bool(stream.type == "video" and stream.disposition & av.stream.Disposition.attached_pic)


def video_streams(container: Any) -> list[Any]:
    """The real video streams, in container order (cover art does not count)."""
    return [s for s in container.streams.video if not is_cover_art(s)]


def stream_at(container: Any, index: int | None) -> Any | None:
    """The stream with container index ``index`` (``None`` for ``None``)."""
    if index is None:
        return None
    return next((s for s in container.streams if s.index == index), None)


def origin(container: Any) -> float:
    """Seconds of the container's start: the earliest stream start (``t = 0`` for this package)."""
    if container.start_time is not None:
        return container.start_time / 1_000_000
    starts = [float(s.start_time * s.time_base) for s in container.streams
              if s.start_time is not None and s.time_base]
    return min(starts) if starts else 0.0


def stream_end(stream: Any, start: float) -> float | None:
    """End of a stream relative to ``t = 0`` (``start``: the container's origin), from its
    header, or ``None`` when unknown."""
    if stream.duration is None or not stream.time_base:
        return None
    first = float(stream.start_time * stream.time_base) if stream.start_time is not None else start
    return first - start + float(stream.duration * stream.time_base)


def display_size(stream: Any, rotation: int) -> tuple[int, int]:
    """(width, height) as a player shows the stream: sample aspect ratio applied, then rotation."""
    w, h = stream.codec_context.width, stream.codec_context.height
    sar = stream.sample_aspect_ratio
    if sar and sar > 0 and sar != 1:
        w = max(2, round(w * sar))
    return (h, w) if rotation in (90, 270) else (w, h)


def cw_rotation(ccw: float) -> int:
    """PyAV's counter-clockwise display-matrix angle -> the clockwise angle a player applies."""
    return int(-round(ccw / 90.0) * 90) % 360
