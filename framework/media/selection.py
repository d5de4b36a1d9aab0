"""Which video and audio stream to analyze, and a description of every stream in the file.

The choice follows FFmpeg's own (the ``ffmpeg`` command's automatic mapping, and
``av_find_best_stream``): a stream the file marks as *default* first; then, for video, the
most pixels; for audio, the most channels, then the highest bit rate; on a tie the first stream
in the file. Cover art is never the video. The user overrides it with a container stream index
(``--video-stream N`` / ``--audio-stream N``). FFmpeg also prefers audio in the same *program*
as the chosen video (MPEG-TS files with several programs); PyAV does not expose programs, so
that relation is not used here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..timeline import StreamInfo
from ._container import MediaError, is_cover_art, video_streams


def _is_default(stream: Any) -> bool:
    import av

    return bool(stream.disposition & av.stream.Disposition.default)


def _pixels(stream: Any) -> int:
    cc = stream.codec_context
    return (cc.width or 0) * (cc.height or 0)


def _bit_rate(stream: Any) -> int:
    return stream.codec_context.bit_rate or stream.bit_rate or 0


def best_video(container: Any) -> Any | None:
    """FFmpeg's choice of video stream: default first, then the most pixels, then the first."""
    candidates = video_streams(container)
    if not candidates:
        return None
    return max(candidates, key=lambda s: (_is_default(s), _pixels(s), -s.index))


def best_audio(container: Any) -> Any | None:
    """FFmpeg's choice of audio stream: default first, then channels, bit rate, then the first.
    Streams without a sample rate or channels (not decodable as sound) are passed over."""
    candidates = [s for s in container.streams.audio if s.sample_rate and s.channels] or list(container.streams.audio)
    if not candidates:
        return None
    return max(candidates, key=lambda s: (_is_default(s), s.channels or 0, _bit_rate(s), -s.index))


def describe(stream: Any) -> str:
    """``#3 video h264 480x270 29.97 fps (default)``: one stream, for messages."""
    info = stream_info(stream, analyzed=False)
    parts = [f"#{info.index}", "cover art" if is_cover_art(stream) else info.kind, info.codec or "?"]
    if info.width and info.height:
        parts.append(f"{info.width}x{info.height}")
    if info.fps:
        parts.append(f"{info.fps:.4g} fps")
    if info.channels:
        parts.append(f"{info.channels} ch")
    if info.sample_rate:
        parts.append(f"{info.sample_rate} Hz")
    if info.language:
        parts.append(info.language)
    if info.default:
        parts.append("(default)")
    return " ".join(parts)


def choose(container: Any, path: Path, video_index: int | None, audio_index: int | None
           ) -> tuple[Any | None, Any | None]:
    """(video stream, audio stream) to analyze: the user's indices when given, else FFmpeg's choice.

    :raises MediaError: an index that is not a video (or audio) stream of the file; the message
        lists the file's streams.
    """
    video = _wanted(container, path, video_index, "video") if video_index is not None else best_video(container)
    audio = _wanted(container, path, audio_index, "audio") if audio_index is not None else best_audio(container)
    return video, audio


def _wanted(container: Any, path: Path, index: int, kind: str) -> Any:
    options = video_streams(container) if kind == "video" else list(container.streams.audio)
    chosen = next((s for s in options if s.index == index), None)
    if chosen is not None:
        return chosen
    listing = "; ".join(describe(s) for s in container.streams) or "none"
    if options:
        what = f"choose one of {', '.join(str(s.index) for s in options)} with --{kind}-stream N"
    else:
        what = f"the file has no {kind} stream: leave out --{kind}-stream"
    article = "an" if kind == "audio" else "a"
    raise MediaError(f"{path}: stream #{index} is not {article} {kind} stream of this file (its streams: "
                     f"{listing}); {what}")


def stream_info(stream: Any, analyzed: bool) -> StreamInfo:
    """The ``StreamInfo`` recorded in ``VideoMeta.streams`` for one stream."""
    kind = stream.type if stream.type in ("video", "audio", "subtitle") else "data"
    cc = stream.codec_context
    fields: dict[str, Any] = {}
    if kind == "video":
        rate = stream.average_rate or stream.guessed_rate
        fields = {"width": cc.width or None, "height": cc.height or None,
                  "fps": round(float(rate), 6) if rate else None}
    elif kind == "audio":
        fields = {"sample_rate": stream.sample_rate or None, "channels": stream.channels or None}
    lang = stream.language or stream.metadata.get("language")
    codec = cc.name if cc is not None else None
    return StreamInfo(index=stream.index, kind=kind, codec=codec,
                      language=lang if lang and lang != "und" else None,
                      default=_is_default(stream), analyzed=analyzed, **fields)
