"""Which video and audio stream to analyze, and a description of every stream in the file.

The choice ranks streams first by ``av_find_best_stream``'s disposition score: one point for
*not* being flagged ``hearing_impaired`` or ``visual_impaired`` (an audio description track, a
track for the hard of hearing), one point for the *default* flag; so a default impaired track
ties with a plain one. Among streams of the best score: for video, the most pixels (the measure
of the ``ffmpeg`` command's automatic mapping; that command weighs *default* as 5 million pixels
and ignores the impaired flags, here the score always comes first); for audio, the most
channels (the ``ffmpeg`` command's measure), then the highest bit rate (``av_find_best_stream``'s);
on a tie the first stream in the file. Cover art is never the video. The user overrides it with a container stream index
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


def disposition_score(stream: Any) -> int:
    """``av_find_best_stream``'s first criterion: not impaired (hearing or visual) + default."""
    import av

    flags = stream.disposition
    impaired = av.stream.Disposition.hearing_impaired | av.stream.Disposition.visual_impaired
    return int(not flags & impaired) + int(bool(flags & av.stream.Disposition.default))


def _pixels(stream: Any) -> int:
    cc = stream.codec_context
    return (cc.width or 0) * (cc.height or 0)


def _bit_rate(stream: Any) -> int:
    return stream.codec_context.bit_rate or stream.bit_rate or 0


def best_video(container: Any) -> Any | None:
    """The video stream to analyze: the best ``disposition_score``, then the most pixels, then the
    first in the file (see the module docstring)."""
    candidates = video_streams(container)
    if not candidates:
        return None
    return max(candidates, key=lambda s: (disposition_score(s), _pixels(s), -s.index))


def best_audio(container: Any) -> Any | None:
    """The audio stream to analyze: the best ``disposition_score``, then the most channels, then
    the highest bit rate, then the first in the file (see the module docstring). Streams without a sample rate or channels (not decodable as sound) are passed over."""
    candidates = [s for s in container.streams.audio if s.sample_rate and s.channels] or list(container.streams.audio)
    if not candidates:
        return None
    return max(candidates, key=lambda s: (disposition_score(s), s.channels or 0, _bit_rate(s), -s.index))


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
