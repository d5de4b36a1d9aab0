"""``probe``: what a media file holds, read from its header and its first video packets.

Frame rate
----------
The stream's declared rate (FFmpeg's ``avg_frame_rate``, its guess, ``r_frame_rate``) is kept
exactly (``fps_rational``, e.g. ``30000/1001``) unless the timestamps really disagree with it.
The timestamps are compared in *presentation* order: packets arrive in decode order, and with
B-frames the frames just before the last packet read may still be to come, so only the
stretch that is complete (every frame up to the earliest timestamp among the last
``REORDER_WINDOW`` packets) is measured. Missing frames count as the intervals they leave, so a
dropped frame does not lower the rate. A file whose frame intervals vary (more than 2 % of them
off the median) is variable-frame-rate: its rate is the average, the header's when it covers the
whole file, else the measured one.
"""
from __future__ import annotations

import hashlib
import logging
import os
import statistics
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ..timeline import VideoMeta
from . import selection
from ._container import MediaError, check_file, cw_rotation, display_size, open_container, origin, stream_end

logger = logging.getLogger(__name__)

HASH_CHUNK = 4 * 1024 * 1024
PROBE_PACKETS = 600      # video packets whose timestamps the probe reads (about 20 s at 30 fps)
REORDER_WINDOW = 17      # packets: more than the 16 frames H.264/HEVC may reorder (max DPB size)
RATE_TOLERANCE = 0.01    # a declared rate within 1 % of the measured one is the file's rate
IMAGE_DEMUXERS = ("image2",)  # and every "*_pipe" demuxer (png_pipe, jpeg_pipe, webp_pipe, ...)
IMAGE_CODECS = {"png", "apng", "mjpeg", "jpeg2000", "jpegls", "jpegxl", "bmp", "tiff", "webp", "gif",
                "qoi", "ppm", "pgm", "pgmyuv", "pbm", "pam", "sgi", "targa", "dpx", "exr", "pcx",
                "xbm", "xwd", "hdr", "photocd", "sunrast", "dds"}


def file_hash(path: str | os.PathLike) -> str:
    """Content hash of the whole file (BLAKE2b-256, read in 4 MiB chunks), as ``"b2:<hex>"``."""
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return "b2:" + h.hexdigest()


@dataclass
class VideoScan:
    """What reading the first video packets found."""

    times: list[float] = field(default_factory=list)  # packet pts in seconds, decode order
    rotation: int = 0
    packets: int = 0
    complete: bool = False  # the whole stream was read

    def presentation_times(self) -> list[float]:
        """The timestamps in presentation order, cut where a frame may still be missing: with
        B-frames a frame presented before the last packets read may come after them."""
        times = sorted(self.times)
        if self.complete or len(self.times) <= REORDER_WINDOW:
            return times
        settled = min(self.times[-REORDER_WINDOW:])
        return [t for t in times if t <= settled]


def scan_video(container: Any, stream: Any, need_all: bool) -> VideoScan:
    """Read the first ``PROBE_PACKETS`` video packets' timestamps (all of them when ``need_all``)
    and decode one frame, for its display matrix."""
    import av

    scan = VideoScan()
    got_frame = False
    tb = stream.time_base
    for packet in container.demux(stream):
        if packet.size:
            scan.packets += 1
            if packet.pts is not None and tb:
                scan.times.append(float(packet.pts * tb))
        if not got_frame and packet.size:
            try:
                frames = packet.decode()
                if not frames and packet.is_keyframe:
                    # the decoder holds the frame back for reordering: drain it now instead of
                    # decoding the next packets too, then reset the decoder
                    frames = stream.decode(None)
                    stream.codec_context.flush_buffers()
            except av.FFmpegError:
                frames = []
            if frames:
                scan.rotation = cw_rotation(frames[0].rotation)
                got_frame = True
        if got_frame and scan.packets >= PROBE_PACKETS and not need_all:
            return scan
    scan.complete = True
    return scan


@dataclass(frozen=True)
class FrameRate:
    fps: float | None
    variable: bool = False
    exact: Fraction | None = None  # the rational rate behind ``fps``, when there is one


def _declared(stream: Any) -> list[Fraction]:
    """The header's rates: FFmpeg's average, its guess, the base rate (``r_frame_rate``)."""
    rates = []
    for r in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if r and r > 0 and Fraction(r) not in rates:
            rates.append(Fraction(r))
    return rates


def frame_rate(stream: Any, scan: VideoScan) -> FrameRate:
    """The stream's frame rate: declared unless the timestamps disagree (see the module docstring)."""
    declared = _declared(stream)
    times = scan.presentation_times()
    diffs = [b - a for a, b in zip(times, times[1:]) if b > a]
    if len(diffs) < 2:
        return FrameRate(float(declared[0]), exact=declared[0]) if declared else FrameRate(None)
    median = statistics.median(diffs)
    tolerance = 0.25 * median + 1.5 * float(stream.time_base or 0)
    irregular = sum(abs(d - median) > tolerance for d in diffs)
    if irregular > max(1, 0.02 * len(diffs)):  # one dropped frame does not make a file VFR
        if stream.frames and stream.average_rate:  # the header's average covers the whole file
            return FrameRate(float(stream.average_rate), True, Fraction(stream.average_rate))
        return FrameRate(len(diffs) / (times[-1] - times[0]), True)
    intervals = sum(max(1, round(d / median)) for d in diffs)  # a dropped frame leaves two
    measured = intervals / (times[-1] - times[0])
    # timestamps rounded to the time base shift the measured span by up to one tick
    slack = RATE_TOLERANCE * measured + measured * float(stream.time_base or 0) / (times[-1] - times[0])
    agreeing = [r for r in declared if abs(float(r) - measured) <= slack]
    if agreeing:  # the closest: an average over a file with a dropped frame is a little off
        rate = min(agreeing, key=lambda r: abs(float(r) - measured))
        return FrameRate(float(rate), exact=rate)
    if declared:
        logger.info("frame rate: the header says %s fps but the timestamps give %.4f; using the timestamps",
                    declared[0], measured)
    exact = Fraction(measured).limit_denominator(1001)
    return FrameRate(float(exact), exact=exact)


def _still_image(container: Any, stream: Any, scan: VideoScan) -> bool:
    """One picture and no sound: a PNG/JPEG/... file, or a one-frame "video" of an image codec."""
    if container.streams.audio or not scan.complete or scan.packets > 1:
        return False
    fmt = container.format.name or ""
    return fmt in IMAGE_DEMUXERS or fmt.endswith("_pipe") or stream.codec_context.name in IMAGE_CODECS


def probe(path: str | os.PathLike, video_stream: int | None = None, audio_stream: int | None = None,
          hash_content: bool = True) -> VideoMeta:
    """Read a file's metadata: duration, start offset, frame rate (exact, and whether it varies),
    display size and rotation, codec, frame count, every stream and which are analyzed, container
    format and content hash.

    Reads the container header, the first ~600 video packet timestamps and decodes one frame (for
    its display matrix); a raw stream without a duration in its header is read to the end.

    :param video_stream: container index of the video stream to analyze (default: the one FFmpeg
        would pick, see ``framework.media.selection``); likewise ``audio_stream``.
    :param hash_content: read the whole file for ``content_hash`` (the resume and library key);
        ``False`` leaves it empty, for a plan that needs only the metadata.
    :raises MediaError: the file is missing, empty, a folder, not media PyAV can read, a still
        image, or a chosen index is not a video (audio) stream of the file.
    """
    import av

    p = check_file(path)
    container = open_container(p)
    try:
        start = origin(container)
        vs, aus = selection.choose(container, p, video_stream, audio_stream)
        duration = container.duration / 1_000_000 if container.duration else None
        if duration is None:
            ends = [e for s in container.streams if (e := stream_end(s, start)) is not None]
            duration = max(ends) if ends else None
        video: dict[str, Any] = {"has_video": False}
        if vs is not None:
            try:
                scan = scan_video(container, vs, need_all=duration is None)
            except av.FFmpegError as exc:
                logger.warning("%s: reading video packets for the probe stopped early: %s", p, exc)
                scan = VideoScan()
            if _still_image(container, vs, scan):
                w, h = display_size(vs, scan.rotation)
                raise MediaError(f"{p}: is a still image ({vs.codec_context.name} {w}x{h}), not a video; "
                                 "the framework analyzes video files (MP4, MOV, MKV, WebM, ...) and audio "
                                 "files: pass one of those, or make a video of the picture first")
            rate = frame_rate(vs, scan)
            if duration is None and scan.complete:
                if len(scan.times) >= 2:
                    duration = max(scan.times) - start + (1 / rate.fps if rate.fps else 0.0)
                elif rate.fps:
                    duration = scan.packets / rate.fps
            width, height = display_size(vs, scan.rotation)
            video = {"has_video": True, "width": width, "height": height, "fps": rate.fps,
                     "fps_rational": f"{rate.exact.numerator}/{rate.exact.denominator}" if rate.exact else None,
                     "variable_frame_rate": rate.variable, "rotation": scan.rotation,
                     "video_codec": vs.codec_context.name, "frame_count": vs.frames or None}
        audio = []
        for s in container.streams.audio:
            info: dict[str, Any] = {"index": s.index, "codec": s.codec_context.name,
                                    "sample_rate": s.sample_rate, "channels": s.channels}
            lang = s.language or s.metadata.get("language")
            if lang and lang != "und":
                info["language"] = lang
            audio.append(info)
        video["video_stream"] = vs.index if vs is not None else None  # read before the container closes
        video["audio_stream"] = aus.index if aus is not None else None
        chosen = {video["video_stream"], video["audio_stream"]} - {None}
        streams = [selection.stream_info(s, s.index in chosen) for s in container.streams]
        if duration is None:
            logger.warning("%s: the container does not state its duration; progress is unavailable", p)
        fmt = container.format.name
    finally:
        container.close()
    return VideoMeta(path=str(p.resolve()), content_hash=file_hash(p) if hash_content else "", size_bytes=p.stat().st_size,
                     duration=max(0.0, duration or 0.0), start_time=start, audio_streams=audio,
                     container=fmt, streams=streams, **video)
