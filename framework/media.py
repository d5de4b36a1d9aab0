"""Probe a media file and decode it once into every frame stream and the audio the analyzers need.

Time convention
---------------
Every time this module produces is in seconds on the file's *presentation* timeline, with
``t = 0`` at the container's start time: the earliest start of any of its streams
(``VideoMeta.start_time`` holds that offset in the file's own clock). So ``t`` equals the
position a media player shows. Times come from each frame's presentation timestamp
(``pts * time_base``), never from counting frames, so variable-frame-rate files and streams
that start late (a video track beginning at 1.0 s after its audio) come out right. A frame
without a timestamp (raw elementary streams) is placed one frame interval after the previous
one.

Geometry
--------
Frames come out in display orientation: ``VideoMeta.rotation`` is the clockwise angle
(0/90/180/270) a player turns the coded picture by (the display matrix; the old ``rotate``
tag), and ``width``/``height`` are the display size after that rotation and after the sample
aspect ratio (non-square pixels) is applied. Mirroring in a display matrix is ignored.

One pass
--------
``decode`` opens the container once and runs a single demux loop that feeds the video decoder
and the first audio stream's decoder. Each decoded frame is scaled/converted only for the
``FrameSpec`` streams that sample it (``FrameStreamWriter.wants``) and written to disk in
``cache_dir``; audio is resampled to 16 kHz mono float32 and written the same way, so RAM
stays bounded however long the file is. ``DecodeStats`` counts demux passes, packets and
decoded frames so tests and benchmarks can prove it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import queue
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from .errors import InputError
from . import media_segments
from .streams import AUDIO_SAMPLE_RATE, AudioTrack, AudioWriter, FrameSpec, FrameStream, FrameStreamWriter
from .timeline import VideoMeta

if TYPE_CHECKING:  # PyAV is imported lazily: importing the framework must stay cheap
    import av

logger = logging.getLogger(__name__)

HASH_CHUNK = 4 * 1024 * 1024
PROBE_PACKETS = 600          # video packets whose timestamps the probe reads for VFR detection
AUDIO_GAP_FILL_S = 0.05      # audio holes longer than this are filled with silence to keep sync
PROGRESS_EVERY_S = 0.2       # wall-clock seconds between progress() calls
CONVERT_QUEUE = 6            # decoded frames waiting for the scaling thread
SKIP_DEBLOCK_BELOW = 0.25    # every stream at most this fraction of the coded width: skip deblocking

ProgressFn = Callable[[float], None]


class MediaError(InputError):
    """The input file cannot be probed or decoded; the one-line message names it and says what to do."""


# --- hashing and opening ---------------------------------------------------------------------

def file_hash(path: str | os.PathLike) -> str:
    """Content hash of the whole file (BLAKE2b-256, read in 4 MiB chunks), as ``"b2:<hex>"``."""
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return "b2:" + h.hexdigest()


def _check_file(path: str | os.PathLike) -> Path:
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


def _open(path: Path) -> "av.container.InputContainer":
    import av

    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise MediaError(f"{path}: not a video or audio file PyAV can read ({reason}); if it should "
                         "be one it is damaged or truncated: check it plays, or re-encode it") from None
    if _video_stream(container) is None and not container.streams.audio:
        fmt = container.format.name
        container.close()
        raise MediaError(f"{path}: not a video or audio file PyAV can read (format {fmt!r} has no "
                         "video or audio stream); pass a video or audio file")
    return container


def _video_stream(container: Any) -> Any | None:
    """The first real video stream (cover art attached to audio files does not count)."""
    import av

    for s in container.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:
            return s
    return None


def _origin(container: Any) -> float:
    """Seconds of the container's start: the earliest stream start (``t = 0`` for this module)."""
    if container.start_time is not None:
        return container.start_time / 1_000_000
    starts = [float(s.start_time * s.time_base) for s in container.streams
              if s.start_time is not None and s.time_base]
    return min(starts) if starts else 0.0


def _stream_end(stream: Any, origin: float) -> float | None:
    """End of a stream relative to ``t = 0``, from its header, or ``None`` when unknown."""
    if stream.duration is None or not stream.time_base:
        return None
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else origin
    return start - origin + float(stream.duration * stream.time_base)


def _display_size(stream: Any, rotation: int) -> tuple[int, int]:
    w, h = stream.codec_context.width, stream.codec_context.height
    sar = stream.sample_aspect_ratio
    if sar and sar > 0 and sar != 1:
        w = max(2, round(w * sar))
    return (h, w) if rotation in (90, 270) else (w, h)


def _cw_rotation(ccw: float) -> int:
    """PyAV's counter-clockwise display-matrix angle -> the clockwise angle a player applies."""
    return int(-round(ccw / 90.0) * 90) % 360


# --- probe -----------------------------------------------------------------------------------

@dataclass
class _VideoScan:
    times: list[float] = field(default_factory=list)  # packet pts in seconds, decode order
    rotation: int = 0
    packets: int = 0
    complete: bool = False  # the whole stream was read


def _scan_video(container: Any, stream: Any, need_all: bool) -> _VideoScan:
    """Read the first video packets' timestamps and decode one frame (for its display matrix)."""
    import av

    scan = _VideoScan()
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
                    # decoding the next packets too, then reset the decoder for the fallback
                    frames = stream.decode(None)
                    stream.codec_context.flush_buffers()
            except av.FFmpegError:
                frames = []
            if frames:
                scan.rotation = _cw_rotation(frames[0].rotation)
                got_frame = True
        if got_frame and scan.packets >= PROBE_PACKETS and not need_all:
            return scan
    scan.complete = True
    return scan


def _frame_rate(stream: Any, scan: _VideoScan) -> tuple[float | None, bool]:
    """(frames per second, variable frame rate?) from packet timestamps and the stream header."""
    candidates = [r for r in (stream.base_rate, stream.guessed_rate, stream.average_rate) if r and r > 0]
    times = sorted(scan.times)
    diffs = [b - a for a, b in zip(times, times[1:]) if b > a]
    if len(diffs) < 2:
        header = [r for r in (stream.average_rate, stream.guessed_rate, stream.base_rate) if r and r > 0]
        return (float(header[0]) if header else None), False
    median = statistics.median(diffs)
    tolerance = 0.25 * median + 1.5 * float(stream.time_base or 0)
    irregular = sum(abs(d - median) > tolerance for d in diffs)
    vfr = irregular > max(1, 0.02 * len(diffs))  # one dropped frame does not make a file VFR
    mean_rate = len(diffs) / (times[-1] - times[0])
    if vfr:
        if stream.frames and stream.average_rate:  # the header's rate covers the whole file
            return float(stream.average_rate), True
        return mean_rate, True
    for r in candidates:  # prefer an exact header rate such as 30000/1001 when it agrees
        if abs(float(r) - mean_rate) <= 0.01 * mean_rate:
            return float(r), False
    return float(Fraction(mean_rate).limit_denominator(1001)), False


def probe(path: str | os.PathLike) -> VideoMeta:
    """Read a file's metadata: duration, start offset, frame rate (and whether it varies), display
    size and rotation, codec, frame count, audio streams, container format and content hash.

    Reads the container header, the first ~600 video packet timestamps and decodes one frame (for
    its display matrix); a raw stream without a duration in its header is read to the end.

    :raises MediaError: the file is missing, empty, a folder, or not media PyAV can read.
    """
    import av

    p = _check_file(path)
    container = _open(p)
    try:
        origin = _origin(container)
        vs = _video_stream(container)
        duration = container.duration / 1_000_000 if container.duration else None
        if duration is None:
            ends = [e for s in container.streams if (e := _stream_end(s, origin)) is not None]
            duration = max(ends) if ends else None
        video: dict[str, Any] = {"has_video": False}
        if vs is not None:
            try:
                scan = _scan_video(container, vs, need_all=duration is None)
            except av.FFmpegError as exc:
                logger.warning("%s: reading video packets for the probe stopped early: %s", p, exc)
                scan = _VideoScan()
            fps, vfr = _frame_rate(vs, scan)
            if duration is None and scan.complete:
                if len(scan.times) >= 2:
                    duration = max(scan.times) - origin + (1 / fps if fps else 0.0)
                elif fps:
                    duration = scan.packets / fps
            width, height = _display_size(vs, scan.rotation)
            video = {"has_video": True, "width": width, "height": height, "fps": fps,
                     "variable_frame_rate": vfr, "rotation": scan.rotation,
                     "video_codec": vs.codec_context.name, "frame_count": vs.frames or None}
        audio = []
        for s in container.streams.audio:
            info: dict[str, Any] = {"index": s.index, "codec": s.codec_context.name,
                                    "sample_rate": s.sample_rate, "channels": s.channels}
            lang = s.language or s.metadata.get("language")
            if lang and lang != "und":
                info["language"] = lang
            audio.append(info)
        if duration is None:
            logger.warning("%s: the container does not state its duration; progress is unavailable", p)
        fmt = container.format.name
    finally:
        container.close()
    return VideoMeta(path=str(p.resolve()), content_hash=file_hash(p), size_bytes=p.stat().st_size,
                     duration=max(0.0, duration or 0.0), start_time=origin, audio_streams=audio,
                     container=fmt, **video)


# --- decode ----------------------------------------------------------------------------------

@dataclass
class DecodeStats:
    """What one ``decode`` call did; ``demux_passes`` is 1 whenever anything was decoded."""

    demux_passes: int = 0
    packets: int = 0
    video_frames_decoded: int = 0
    audio_frames_decoded: int = 0
    seconds: float = 0.0
    segments: int = 0  # > 0: the video was decoded as this many keyframe-aligned segments in parallel
    segments_abandoned: str | None = None  # why a segmented decode gave way to one pass, if it did
    truncated_at: float | None = None  # seconds: where decoding stopped early, if it did
    warnings: list[str] = field(default_factory=list)


@dataclass
class DecodedMedia:
    """The result of ``decode``: disk-backed frame streams, 16 kHz mono audio, and stats."""

    streams: dict[FrameSpec, FrameStream]
    audio: AudioTrack | None
    stats: DecodeStats


class _VideoSink:
    """Turns decoded frames into every requested stream; converts a frame only for streams that sample it."""

    def __init__(self, specs: list[FrameSpec], video: VideoMeta, stream: Any, cache_dir: Path,
                 anchor: float | None = None, threaded: bool = True):
        """:param anchor: origin (s) of the sampling grid of streams with an fps (default: the first frame).
        :param threaded: scale frames on a second thread (else inline, in ``add``)."""
        from av.video.reformatter import Interpolation, VideoReformatter

        self.rotation = video.rotation
        self.k_ccw = ((-video.rotation) % 360) // 90  # np.rot90 turns counter-clockwise
        self.step = 1.0 / video.fps if video.fps else 1 / 30
        self.writers: list[tuple[FrameStreamWriter, Any, int, int]] = []
        for spec, (w, h), (coded_w, coded_h) in _output_sizes(specs, video, stream):
            writer = FrameStreamWriter(cache_dir / "frames" / spec.key, spec, w, h, anchor=anchor)
            self.writers.append((writer, VideoReformatter(), coded_w, coded_h))
        self.interpolation = Interpolation.AREA  # a box filter: no aliasing when shrinking a lot
        self.last_t: float | None = None
        # seconds per pts tick, once: a Fraction product per frame is slow
        self.tick = float(stream.time_base) if stream.time_base else None
        self.frames = 0
        self.backwards = 0  # frames whose timestamp went back in time (clamped to keep times sorted)
        # Scaling runs on a second thread so it overlaps decoding (swscale and the decoder release
        # the GIL); a small bounded queue keeps at most a few decoded frames in memory. Scaling
        # small pictures inline was measured too: no faster, and its buffers, made on the main
        # thread, fragmented the main malloc arena (+25 % peak memory over a 60-minute run).
        self._queue: queue.Queue = queue.Queue(maxsize=CONVERT_QUEUE)
        self._error: BaseException | None = None
        self._worker: threading.Thread | None = None
        if threaded:
            self._worker = threading.Thread(target=self._convert_loop, name="frame-convert", daemon=True)
            self._worker.start()

    def time_of(self, frame: Any, origin: float) -> float:
        ts = frame.pts if frame.pts is not None else frame.dts
        tick = self.tick or (float(frame.time_base) if frame.time_base else None)
        if ts is not None and tick:
            t = ts * tick - origin
        else:  # no timestamp: one frame interval after the previous frame
            t = 0.0 if self.last_t is None else self.last_t + self.step
        return max(0.0, t)

    def add(self, frame: Any, origin: float) -> float:
        t = self.time_of(frame, origin)
        if self.last_t is not None and t < self.last_t:
            self.backwards += 1
            t = self.last_t
        self.last_t = t
        self.frames += 1
        wanted = [w for w in self.writers if w[0].wants(t)]  # sampling is decided here, in order
        if wanted:
            if self._worker is None:
                self._convert(frame, t, wanted)
                return t
            if self._error is not None:
                raise self._error
            self._queue.put((frame, t, wanted))
        return t

    def _convert(self, frame: Any, t: float, wanted: list) -> None:
        """Scale ``frame`` for every stream in ``wanted`` and append it to them."""
        src_range = 2 if frame.color_range == 2 else None  # full-range YUV tagged as such (JPEG)
        for writer, reformatter, cw, ch in wanted:
            # threads=1: this runs beside the decoder's own threads; swscale's slice threads
            # cost ~25 % more CPU on these small outputs and gain nothing
            out = reformatter.reformat(frame, cw, ch, writer.spec.pix_fmt, interpolation=self.interpolation,
                                       src_color_range=src_range, threads=1)
            pixels = out.to_ndarray()
            if self.k_ccw:
                pixels = np.rot90(pixels, self.k_ccw)
            writer.write(t, pixels)

    def _convert_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # keep draining so the decoder never blocks on a full queue
            try:
                self._convert(*item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the decoding thread
                self._error = exc

    def close(self) -> dict[FrameSpec, FrameStream]:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
        if self._error is not None:
            raise self._error
        return {writer.spec: writer.close() for writer, *_ in self.writers}


class _AudioSink:
    """Resamples the audio stream to 16 kHz mono float32 on disk, keeping it in sync with its pts."""

    def __init__(self, path: Path):
        self.path = path
        self.writer: AudioWriter | None = None
        self.resampler: Any = None
        self.layout_key: tuple | None = None
        self.frames = 0
        self.last_end = 0.0

    def _resample(self, frame: Any) -> None:
        for out in self.resampler.resample(frame):
            self.writer.write(out.to_ndarray())

    def add(self, frame: Any, origin: float) -> None:
        import av

        self.frames += 1
        t = float(frame.pts * frame.time_base) - origin if frame.pts is not None and frame.time_base else None
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self.writer is None:
            self.writer = AudioWriter(self.path, start_time=max(0.0, t or 0.0))
        elif t is not None:  # fill holes (lost packets, a paused stream) so sample index <-> time holds
            expected = self.writer.start_time + self.writer.count / AUDIO_SAMPLE_RATE
            if t - expected > AUDIO_GAP_FILL_S:
                if self.resampler is not None:
                    self._resample(None)  # flush what the resampler holds before the hole
                    self.resampler, self.layout_key = None, None
                expected = self.writer.start_time + self.writer.count / AUDIO_SAMPLE_RATE
                gap = int(round((t - expected) * AUDIO_SAMPLE_RATE))
                if gap > 0:
                    self.writer.write(np.zeros(gap, dtype=np.float32))
        if key != self.layout_key:  # first frame, or the format changed mid-stream
            if self.resampler is not None:
                self._resample(None)
            self.resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLE_RATE)
            self.layout_key = key
        self._resample(frame)
        self.last_end = self.writer.start_time + self.writer.count / AUDIO_SAMPLE_RATE

    def close(self) -> AudioTrack:
        if self.writer is None:  # the stream had no decodable frame: an empty track
            self.writer = AudioWriter(self.path)
        if self.resampler is not None:
            self._resample(None)
        self.last_end = self.writer.start_time + self.writer.count / AUDIO_SAMPLE_RATE
        return self.writer.close()


def decode(path: str | os.PathLike, video: VideoMeta, specs: Iterable[FrameSpec], want_audio: bool,
           cache_dir: Path, progress: ProgressFn | None = None) -> DecodedMedia:
    """Decode ``path`` once, producing every frame stream in ``specs`` and (optionally) the audio.

    :param video: ``probe(path)``'s result (rotation, display size and fps come from it).
    :param specs: frame streams to produce; duplicates are produced once. Ignored, with a
        warning, when the file has no video stream.
    :param want_audio: also decode the first audio stream to 16 kHz mono float32.
    :param cache_dir: folder for the disk-backed streams (``frames/<spec.key>/``, ``audio.f32``).
    :param progress: called now and then with the fraction of the duration decoded so far.
    :returns: streams keyed by spec, the audio track (``None`` if not wanted or absent), stats.
        A file that breaks off mid-way gives what decoded before the break, with
        ``stats.truncated_at`` and a warning set.
    :raises MediaError: the file cannot be opened, or nothing at all could be decoded.
    """
    p = _check_file(path)
    cache_dir = Path(cache_dir)
    specs = list(dict.fromkeys(specs))
    stats = DecodeStats()
    started = time.perf_counter()
    container = _open(p)
    try:
        origin = _origin(container)
        vs = _video_stream(container)
        if specs and vs is None:
            stats.warnings.append(f"{p.name}: has no video stream; no frame streams were produced")
            specs = []
        aus = container.streams.audio[0] if want_audio and container.streams.audio else None
        asink = _AudioSink(cache_dir / "audio.f32") if aus is not None else None
        skip_deblock = bool(specs) and _largest_scale(specs, video, vs) <= SKIP_DEBLOCK_BELOW
        duration = video.duration or (container.duration or 0) / 1_000_000
        vsink: _VideoSink | media_segments.VideoSummary | None = None
        streams: dict[FrameSpec, FrameStream] = {}
        error: str | None = None
        planned = media_segments.plan(p, video, origin) if specs else None
        if planned is not None:  # video on parallel segment decoders, audio on a thread of its own
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode-audio") as audio_thread:
                audio_pass = (audio_thread.submit(_demux_loop, container, None, None, aus, asink, origin,
                                                  duration, stats, None) if asink else None)
                segmented = _decode_in_segments(p, video, specs, planned, cache_dir, origin, skip_deblock,
                                                progress, stats)
                error = audio_pass.result() if audio_pass else None
            if audio_pass is None:
                stats.demux_passes += 1
            if segmented is not None:
                streams, vsink, packets = segmented
                stats.packets += packets
            else:  # the segments did not fit together: one ordinary pass over the video alone
                with _open(p) as again:
                    streams, vsink, error = _one_pass(again, _video_stream(again), None, None, video, specs,
                                                      cache_dir, origin, duration, skip_deblock, stats, progress)
        else:
            streams, vsink, error = _one_pass(container, vs, aus, asink, video, specs, cache_dir, origin,
                                              duration, skip_deblock, stats, progress)
        # read the streams' stated ends now: a stream's fields are freed with its container
        ends = (_stream_end(vs, origin) if vs is not None else None,
                _stream_end(aus, origin) if aus is not None else None)
        audio = asink.close() if asink else None
    finally:
        container.close()
    if vsink:
        stats.video_frames_decoded = vsink.frames
        if vsink.backwards:
            stats.warnings.append(f"{p.name}: {vsink.backwards} video frames had timestamps earlier than the "
                                  "frame before them; they were kept at the previous frame's time")
    if asink:
        stats.audio_frames_decoded = asink.frames
    stats.seconds = time.perf_counter() - started
    decoded_anything = stats.video_frames_decoded or stats.audio_frames_decoded
    if error is not None and not decoded_anything:
        raise MediaError(f"{p}: no frame could be decoded ({error}); the file is damaged, "
                         "re-download or re-encode it")
    _check_truncation(p, error, ends, vsink, asink, duration, stats)
    if progress is not None and (vsink or asink):
        progress(1.0)
    logger.info("decoded %s: %d video frames, %d audio frames, %d packets in %.2f s", p.name,
                stats.video_frames_decoded, stats.audio_frames_decoded, stats.packets, stats.seconds)
    return DecodedMedia(streams=streams, audio=audio, stats=stats)


def _output_sizes(specs: list[FrameSpec], video: VideoMeta, stream: Any
                  ) -> list[tuple[FrameSpec, tuple[int, int], tuple[int, int]]]:
    """Each spec's (width, height) as displayed, and as scaled from the coded picture (which is
    turned by the rotation metadata afterwards)."""
    if video.width and video.height:
        disp = (video.width, video.height)
    else:
        disp = _display_size(stream, video.rotation)
    turned = ((-video.rotation) % 360) // 90 % 2
    sizes = []
    for spec in specs:
        w, h = spec.output_size(*disp)
        sizes.append((spec, (w, h), (h, w) if turned else (w, h)))
    return sizes


def _largest_scale(specs: list[FrameSpec], video: VideoMeta, stream: Any) -> float:
    """The largest output width of ``specs`` over the stream's coded width (1.0 when unknown)."""
    coded = stream.codec_context.width if stream is not None else 0
    if not specs or not coded:
        return 1.0
    return max(cw for _, _, (cw, _) in _output_sizes(specs, video, stream)) / coded


def _set_threads(stream: Any, skip_deblock: bool, threads: int = 0) -> None:
    """FFmpeg's own threads for ``stream`` (0: as many as it likes), and the deblocking skip."""
    if threads == 1:
        stream.thread_type = "SLICE"
        stream.codec_context.thread_count = 1
    else:
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
    if skip_deblock:
        # every stream is a small fraction of the picture: the in-loop deblocking filter's effect
        # (well under one grey level at full size) vanishes in the box filter, and skipping it
        # makes H.264/HEVC decoding ~10-15 % faster
        stream.codec_context.options = {"skip_loop_filter": "all"}


def _decode_in_segments(p: Path, video: VideoMeta, specs: list[FrameSpec], planned: media_segments.Plan,
                        cache_dir: Path, origin: float, skip_deblock: bool, progress: ProgressFn | None,
                        stats: DecodeStats
                        ) -> tuple[dict[FrameSpec, FrameStream], media_segments.VideoSummary, int] | None:
    """The frame streams, a summary and the packets read, decoded by parallel segment decoders
    (see ``media_segments``); ``None`` when the segments did not fit together."""
    try:
        streams, summary, packets = media_segments.decode_segments(
            p, video, specs, planned, cache_dir, origin, skip_deblock, progress)
    except media_segments.SegmentsUnusable as exc:
        logger.info("%s: decoding in one pass instead of %d segments (%s)", p.name, len(planned.segments), exc)
        stats.segments_abandoned = str(exc)
        return None
    stats.segments = len(planned.segments)
    return streams, summary, packets


def _one_pass(container: Any, vs: Any, aus: Any, asink: _AudioSink | None, video: VideoMeta,
              specs: list[FrameSpec], cache_dir: Path, origin: float, duration: float, skip_deblock: bool,
              stats: DecodeStats, progress: ProgressFn | None
              ) -> tuple[dict[FrameSpec, FrameStream], _VideoSink | None, str | None]:
    """One ordinary pass over ``container``: the frame streams (with FFmpeg's own threads) and
    the audio when ``asink`` is given. Returns the streams, the video sink and the error that
    stopped the pass early, if any."""
    vsink = _VideoSink(specs, video, vs, cache_dir) if specs else None
    if vsink is not None:
        _set_threads(vs, skip_deblock)
    error = None
    if vsink is not None or asink is not None:
        error = _demux_loop(container, vs, vsink, aus, asink, origin, duration, stats, progress)
    return (vsink.close() if vsink is not None else {}), vsink, error


def _demux_loop(container: Any, vs: Any, vsink: _VideoSink | None, aus: Any,
                asink: _AudioSink | None, origin: float, duration: float, stats: DecodeStats,
                progress: ProgressFn | None) -> str | None:
    """The single demux pass. Returns the error that stopped it early, or ``None``."""
    import av

    wanted = ([vs] if vsink else []) + ([aus] if asink else [])
    stats.demux_passes += 1
    next_report = time.perf_counter() + PROGRESS_EVERY_S
    position = 0.0
    try:
        for packet in container.demux(*wanted):
            if packet.size:
                stats.packets += 1
            if vsink is not None and packet.stream is vs:
                for frame in packet.decode():
                    position = vsink.add(frame, origin)
            elif asink is not None:
                for frame in packet.decode():
                    asink.add(frame, origin)
                if vsink is None:
                    position = asink.last_end
            if progress is not None and duration > 0 and time.perf_counter() >= next_report:
                progress(min(1.0, position / duration))
                next_report = time.perf_counter() + PROGRESS_EVERY_S
    except (av.FFmpegError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        # drain what the decoders already hold: frames before the break are still good
        for stream, sink in ((vs, vsink), (aus, asink)):
            if sink is None:
                continue
            try:
                for frame in stream.decode(None):
                    sink.add(frame, origin)
            except (av.FFmpegError, EOFError, ValueError):
                pass
        return reason
    return None


def _check_truncation(p: Path, error: str | None, ends: tuple[float | None, float | None],
                      vsink: _VideoSink | None, asink: _AudioSink | None, duration: float,
                      stats: DecodeStats) -> None:
    """Set ``truncated_at`` and a warning when decoding stopped at an error or well before the end
    (``ends``: the video and audio streams' stated ends, read before the container closed)."""
    reached: list[float] = []
    short = False
    if vsink is not None:
        t = vsink.last_t
        end = (t + vsink.step) if t is not None else 0.0
        reached.append(t if t is not None else 0.0)
        expected = ends[0] or duration
        short |= bool(expected) and end < expected - max(1.0, 3 * vsink.step)
    if asink is not None:
        reached.append(asink.last_end)
        expected = ends[1] or duration
        short |= bool(expected) and asink.last_end < expected - 1.0
    if error is None and not short:
        return
    stats.truncated_at = round(max(reached, default=0.0), 3)
    why = f"error: {error}" if error else f"the file should last {duration:.2f} s"
    msg = (f"{p.name}: decoding stopped at {stats.truncated_at:.2f} s ({why}); the file looks "
           "truncated or damaged, so results cover only the part before that")
    logger.warning("%s", msg)
    stats.warnings.append(msg)
