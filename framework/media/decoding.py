"""``decode``: one pass over the file into every frame stream and the audio the analyzers need.

``decode`` opens the container once and runs a single demux loop that feeds the chosen video
stream's decoder and the chosen audio stream's decoder (``VideoMeta.video_stream`` /
``audio_stream``, picked by ``probe``). Each decoded frame is scaled/converted only for the
``FrameSpec`` streams that sample it (``FrameStreamWriter.wants``) and written to disk in
``cache_dir``; audio is resampled to 16 kHz mono float32 and written the same way, so RAM
stays bounded however long the file is. Large pictures on several CPUs are decoded as parallel
keyframe-aligned segments instead (``segments``), with the audio on a pass of its own.

``DecodeStats`` counts what was actually demuxed (``tally``): packets and bytes per stream, and
``demux_passes``, the most times any packet was read, so tests and benchmarks can prove that
every packet was read once.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..streams import AudioTrack, FrameSpec, FrameStream
from ..timeline import VideoMeta
from . import audio_child, segments, selection
from ._container import MediaError, check_file, open_container, origin, stream_at, stream_end
from .demux import ProgressFn, demux_loop
from .sinks import AudioSink, VideoSink, largest_scale, set_threads
from .tally import DemuxTally

logger = logging.getLogger(__name__)

SKIP_DEBLOCK_BELOW = 0.25    # every stream at most this fraction of the coded width: skip deblocking


@dataclass
class DecodeStats:
    """What one ``decode`` call did, counted as it happened."""

    demux_passes: int = 0  # the most times any packet was read (1: every packet read once)
    packets: int = 0  # packets demuxed, all streams and passes together
    bytes_read: int = 0  # bytes of those packets
    packets_by_stream: dict[str, int] = field(default_factory=dict)  # container stream index (as text, as JSON keeps it) -> packets
    bytes_by_stream: dict[str, int] = field(default_factory=dict)  # container stream index (as text) -> bytes
    packets_peeked: int = 0  # packets read past a segment's end to find it (read again by the next)
    video_frames_decoded: int = 0
    audio_frames_decoded: int = 0
    seconds: float = 0.0
    segments: int = 0  # > 0: the video was decoded as this many keyframe-aligned segments in parallel
    segment_processes: int = 0  # > 0: the segments decoded in this many worker processes (0: on threads)
    segments_abandoned: str | None = None  # why a segmented decode gave way to one pass, if it did
    #: segmented: [seconds into the segments' decode, seconds of video joined by then], as each was joined
    segments_joined: list[list[float]] = field(default_factory=list)
    truncated_at: float | None = None  # seconds: where decoding stopped early, if it did
    warnings: list[str] = field(default_factory=list)

    def count(self, tally: DemuxTally) -> None:
        """Fill the demux counts from what ``tally`` saw."""
        self.packets_by_stream = {str(i): n for i, n in sorted(tally.packets.items())}
        self.bytes_by_stream = {str(i): n for i, n in sorted(tally.bytes.items())}
        self.packets = sum(self.packets_by_stream.values())
        self.bytes_read = sum(self.bytes_by_stream.values())
        self.packets_peeked = tally.peeked
        self.demux_passes = tally.passes()


def merged_stats(a: DecodeStats, b: DecodeStats) -> DecodeStats:
    """Two ``decode`` calls' stats as one (a decode in two passes, ``decode_process``): counts and seconds
    added, the most passes and segments, the first pass's truncation and warnings before the second's."""
    def added(x: dict[str, int], y: dict[str, int]) -> dict[str, int]:
        return {k: x.get(k, 0) + y.get(k, 0) for k in sorted({*x, *y})}

    return DecodeStats(demux_passes=a.demux_passes + b.demux_passes, packets=a.packets + b.packets,
                       bytes_read=a.bytes_read + b.bytes_read,
                       packets_by_stream=added(a.packets_by_stream, b.packets_by_stream),
                       bytes_by_stream=added(a.bytes_by_stream, b.bytes_by_stream),
                       packets_peeked=a.packets_peeked + b.packets_peeked,
                       video_frames_decoded=a.video_frames_decoded + b.video_frames_decoded,
                       audio_frames_decoded=a.audio_frames_decoded + b.audio_frames_decoded,
                       seconds=a.seconds + b.seconds, segments=max(a.segments, b.segments),
                       segment_processes=max(a.segment_processes, b.segment_processes),
                       segments_abandoned=a.segments_abandoned or b.segments_abandoned,
                       truncated_at=a.truncated_at if a.truncated_at is not None else b.truncated_at,
                       warnings=[*a.warnings, *[w for w in b.warnings if w not in a.warnings]])


@dataclass
class DecodedMedia:
    """The result of ``decode``: disk-backed frame streams, 16 kHz mono audio, and stats."""

    streams: dict[FrameSpec, FrameStream]
    audio: AudioTrack | None
    stats: DecodeStats


def _chosen(container: Any, video: VideoMeta) -> tuple[Any | None, Any | None]:
    """The streams ``probe`` chose (FFmpeg's choice for a ``VideoMeta`` made without them)."""
    vs = stream_at(container, video.video_stream) if video.video_stream is not None else selection.best_video(container)
    aus = stream_at(container, video.audio_stream) if video.audio_stream is not None else selection.best_audio(container)
    return vs, aus


def decode(path: str | os.PathLike, video: VideoMeta, specs: Iterable[FrameSpec], want_audio: bool,
           cache_dir: Path, progress: ProgressFn | None = None,
           on_audio: Callable[[AudioTrack], None] | None = None,
           features: segments.StreamFeatures | None = None) -> DecodedMedia:
    """Decode ``path`` once, producing every frame stream in ``specs`` and (optionally) the audio.

    :param video: ``probe(path)``'s result (the streams to decode, rotation, display size and
        fps come from it).
    :param specs: frame streams to produce; duplicates are produced once. Ignored, with a
        warning, when the file has no video stream.
    :param want_audio: also decode the chosen audio stream to 16 kHz mono float32.
    :param cache_dir: folder for the disk-backed streams (``frames/<spec.key>/``, ``audio.f32``).
    :param progress: called now and then with the fraction of the duration decoded so far.
    :param on_audio: called (on the audio's thread) with the finished audio track as soon as it is
        complete, when the audio decodes on a pass of its own (the segmented decode) and reached its
        stated end; not called otherwise (the track then comes with the result only).
    :param features: per stream, per-frame features the parallel segment decoders compute on each
        segment as soon as it is decoded (``segments.part_features``; ``FrameStream.features``); a
        decode in one pass computes none (the analyzers compute them from the frames).
    :returns: streams keyed by spec, the audio track (``None`` if not wanted or absent), stats.
        A file that breaks off mid-way gives what decoded before the break, with
        ``stats.truncated_at`` and a warning set.
    :raises MediaError: the file cannot be opened, or nothing at all could be decoded.
    """
    p = check_file(path)
    cache_dir = Path(cache_dir)
    specs = list(dict.fromkeys(specs))
    stats = DecodeStats()
    tally = DemuxTally()
    started = time.perf_counter()
    container = open_container(p)
    try:
        start = origin(container)
        vs, aus = _chosen(container, video)
        if specs and vs is None:
            stats.warnings.append(f"{p.name}: has no video stream; no frame streams were produced")
            specs = []
        aus = aus if want_audio else None
        asink = AudioSink(cache_dir / "audio.f32") if aus is not None else None
        skip_deblock = bool(specs) and largest_scale(specs, video, vs) <= SKIP_DEBLOCK_BELOW
        duration = video.duration or (container.duration or 0) / 1_000_000
        vsink: VideoSink | segments.VideoSummary | None = None
        streams: dict[FrameSpec, FrameStream] = {}
        error: str | None = None
        if specs and video.video_stream is None:  # a VideoMeta made by hand: segments need the index
            video = video.model_copy(update={"video_stream": vs.index})
        planned = segments.plan(p, video, start) if specs else None
        if planned is not None:  # video on parallel segment decoders, audio on a thread of its own
            stop = threading.Event()  # set on Ctrl-C (or any error here): the audio pass stops too
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode-audio") as audio_thread:
                try:
                    audio_pass = (audio_thread.submit(_audio_pass, container, aus, asink, start, duration, tally,
                                                      stop, on_audio, p) if asink else None)
                    segmented = _decode_in_segments(p, video, specs, planned, cache_dir, start, skip_deblock,
                                                    progress, stats, tally, stop, features)
                    error = audio_pass.result() if audio_pass else None
                except BaseException:
                    stop.set()
                    raise
            if segmented is not None:
                streams, vsink = segmented
            else:  # the segments did not fit together: one ordinary pass over the video alone
                with open_container(p) as again:
                    streams, vsink, error = _one_pass(again, stream_at(again, vs.index), None, None, video, specs,
                                                      cache_dir, start, duration, skip_deblock, tally, progress)
        else:
            streams, vsink, error = _one_pass(container, vs, aus, asink, video, specs, cache_dir, start,
                                              duration, skip_deblock, tally, progress)
        # read the streams' stated ends now: a stream's fields are freed with its container
        ends = (stream_end(vs, start) if vs is not None else None,
                stream_end(aus, start) if aus is not None else None)
        audio = asink.close() if asink else None
    finally:
        container.close()
    stats.count(tally)
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
    check_truncation(p, error, ends, vsink, asink, duration, stats)
    if progress is not None and (vsink or asink):
        progress(1.0)
    logger.info("decoded %s: %d video frames, %d audio frames, %d packets in %.2f s", p.name,
                stats.video_frames_decoded, stats.audio_frames_decoded, stats.packets, stats.seconds)
    return_freed_memory()
    return DecodedMedia(streams=streams, audio=audio, stats=stats)


def return_freed_memory() -> None:
    """Hand the heap memory the decoders freed back to the operating system (glibc's
    ``malloc_trim``; nothing elsewhere). glibc keeps what each thread frees in that thread's
    arena: after a parallel decode, tens of MB of pictures no longer in use, which would stay in
    the process's resident size under everything the analyzers allocate next."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl, Windows)
        return
    trim(0)


def _decode_in_segments(p: Path, video: VideoMeta, specs: list[FrameSpec], planned: segments.Plan,
                        cache_dir: Path, start: float, skip_deblock: bool, progress: ProgressFn | None,
                        stats: DecodeStats, tally: DemuxTally, stop: threading.Event,
                        features: segments.StreamFeatures | None = None
                        ) -> tuple[dict[FrameSpec, FrameStream], segments.VideoSummary] | None:
    """The frame streams and a summary, decoded by parallel segment decoders (see ``segments``);
    ``None`` when the segments did not fit together."""
    try:
        result = segments.decode_segments(p, video, specs, planned, cache_dir, start, skip_deblock, tally,
                                          progress, stop, features)
    except segments.SegmentsUnusable as exc:
        logger.info("%s: decoding in one pass instead of %d segments (%s)", p.name, len(planned.segments), exc)
        stats.segments_abandoned = str(exc)
        return None
    stats.segments = len(planned.segments)
    stats.segment_processes = result[1].processes
    stats.segments_joined = [list(point) for point in result[1].joined]
    return result


def _audio_pass(container: Any, aus: Any, asink: AudioSink, start: float, duration: float, tally: DemuxTally,
                stop: threading.Event, on_audio: Callable[[AudioTrack], None] | None,
                path: Path | None = None) -> str | None:
    """The audio alone, beside the video's segment decoders; its error, if any. In a process of its
    own when it can (``audio_child``: in this one it waits for the segment decoders' threads on the
    interpreter's lock), else on this thread. When it reached its stream's stated end without an
    error, the audio is complete whatever the video does: ``on_audio`` gets the closed track at once
    (analyzers that hear only it may start before the video is done; a truncation found later in the
    video leaves the run at least as long as this audio)."""
    error: str | None = None
    in_child = path is not None and audio_child.wanted()
    if in_child:
        try:
            passed = audio_child.audio_pass_in_child(path, aus.index, start, duration, asink.path, stop)
        except audio_child.ChildUnavailable as exc:
            logger.info("%s: decoding the audio in this process (its own process failed: %s)", path.name, exc)
            in_child = False
        else:
            if passed.error == "stopped":
                return passed.error
            asink.adopt(passed.frames, passed.last_end)
            for loop in passed.loops:
                tally.add(loop)
            error = passed.error
    if not in_child:
        error = demux_loop(container, None, None, aus, asink, start, duration, tally, None, stop)
    expected = stream_end(aus, start) or duration
    if on_audio is not None and error is None and not stop.is_set() and asink.last_end >= expected - 1.0:
        on_audio(asink.close())
    return error


def _one_pass(container: Any, vs: Any, aus: Any, asink: AudioSink | None, video: VideoMeta,
              specs: list[FrameSpec], cache_dir: Path, start: float, duration: float, skip_deblock: bool,
              tally: DemuxTally, progress: ProgressFn | None
              ) -> tuple[dict[FrameSpec, FrameStream], VideoSink | None, str | None]:
    """One ordinary pass over ``container``: the frame streams (with FFmpeg's own threads) and
    the audio when ``asink`` is given. Returns the streams, the video sink and the error that
    stopped the pass early, if any. Whatever else stops it (a full disk, Ctrl-C) is raised after
    the frame-convert thread has stopped and the stream files are closed."""
    vsink = VideoSink(specs, video, vs, cache_dir) if specs else None
    try:
        if vsink is not None:
            set_threads(vs, skip_deblock)
        error = None
        if vsink is not None or asink is not None:
            error = demux_loop(container, vs, vsink, aus, asink, start, duration, tally, progress)
        return (vsink.close() if vsink is not None else {}), vsink, error
    except BaseException:
        if vsink is not None:
            vsink.abort()
        raise


def check_truncation(p: Path, error: str | None, ends: tuple[float | None, float | None],
                     vsink: VideoSink | segments.VideoSummary | None, asink: AudioSink | None, duration: float,
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
