"""Decode a video's frames as keyframe-aligned segments, one decoder per segment, in parallel.

On a few cores FFmpeg's frame threads gain little (a decoder waits for the frames it references),
while independent decoders on separate stretches of the file scale with the cores. ``decode``
uses this when the file has an index to seek in (MP4/MOV, Matroska/WebM), pictures of at least
640x360 and more than one CPU:

- ``plan`` seeks to evenly spaced times and takes the keyframe each seek lands on as a boundary;
- each segment is decoded once, from its keyframe up to (not including) the next segment's, by
  a decoder that scales its own frames into a part stream, ``frames/<spec>/part<i>/`` inside the
  stream's own folder; the decoders are worker processes for a video of a minute or more
  (``in_processes``: each decoder's Python has an interpreter to itself, where threads took turns
  on one lock and, beside a busy machine's other work, decoded at half the speed), else threads;
- ``decode_segments`` joins the parts in order into the final streams, each segment as soon as it
  and every segment before it are done (on the waiting thread, while the others still decode).
  Joining copies no frame: the stream's ``meta.json`` lists the parts' frame files as its pieces
  (``framework.streams``), so every frame is written to disk once. A stream sampled at an fps is
  sampled on one grid for the whole file (``FrameStreamWriter.cell``), so a segment's first frame
  is dropped when the segment before already sampled that grid interval.

Every packet is read by one segment, every frame decoded once (a segment also reads the next
segment's first packet, to find where it ends; ``DecodeStats.packets_peeked`` counts those). Whatever does not fit this
(a decode error, a truncated file, a frame that belongs to the previous segment, as open-GOP
files have, a segment that output fewer or more frames than it read video packets, as an open-GOP
HEVC segment does when its fresh decoder drops the leading RASL pictures after a CRA keyframe, a
timestamp out of order across a boundary) raises ``SegmentsUnusable``, and the caller decodes the
file in one ordinary pass instead.

An exception in the waiting thread (Ctrl-C's ``KeyboardInterrupt``, an error in ``progress``)
stops every segment at its next packet, drops those not started, and propagates at once.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import queue
import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..devices import cpus_available
from ..process_workers import ProcessWorkers, WorkerError, children_supported
from ..streams import FrameSpec, FrameStream, FrameStreamWriter
from ..timeline import VideoMeta
from ..work_streams import asked_for, number_setting, switched_on
from ._container import open_container, stream_at
from .sinks import VideoSink, set_threads
from .tally import DemuxTally, LoopTally

logger = logging.getLogger(__name__)

#: per stream, the features to compute on each segment's part of it: ``(function, kwargs)`` pairs,
#: ``function`` as ``"module:name"`` (``Analyzer.stream_features``)
StreamFeatures = dict[FrameSpec, list[tuple[str, dict[str, Any]]]]

SEEKABLE_FORMATS = ("mov", "mp4", "matroska", "webm")  # containers with a keyframe index
MIN_SEGMENT_S = 2.0        # seconds: shorter files are decoded in one pass
MIN_SEGMENT_PIXELS = 640 * 360  # smaller pictures decode so fast that Python's per-frame work, not
#                                 the decoder, sets the pace, and segments gain nothing (measured)
MAX_WORKERS = 8            # parallel decoders at most (each holds its reference frames)
FEATURE_THREADS = 4        # threads computing the segments' stream features at most (``part_features``)
SEGMENTS_PER_WORKER = 2    # more segments than decoders evens out uneven keyframe spacing
PROCESSES_FROM_S = 60.0    # seconds of video from which the segments decode in worker processes (``in_processes``)


class SegmentsUnusable(RuntimeError):
    """The file cannot be decoded in segments; decode it in one pass."""


class _Halted(SegmentsUnusable):
    """A segment stopped because another one failed or the decode was interrupted."""


@dataclass
class Segment:
    index: int
    start: int | None  # pts of the first keyframe (None: the start of the file)
    stop: int | None   # pts of the next segment's keyframe (None: the end of the file)
    seek: int | None = None  # the seek target that lands on ``start`` (seeking to ``start``
    #                          itself may land a keyframe earlier: MP4 seeks by decoding time)


@dataclass
class Plan:
    """How to decode a file in segments."""

    segments: list[Segment]
    anchor: float  # time (s) of the first keyframe: the origin of every fps stream's sampling grid
    workers: int   # parallel decoders


@dataclass
class SegmentResult:
    streams: dict[FrameSpec, FrameStream]
    frames: int
    first_t: float | None
    last_t: float | None
    backwards: int


@dataclass
class VideoSummary:
    """What ``decoding.check_truncation`` and the stats need from the joined video."""

    frames: int
    last_t: float | None
    step: float
    backwards: int
    #: (seconds since the segments began decoding, seconds of video the joined streams then reached), as each
    #: segment was joined: how early a prefix of the streams was complete
    joined: list[tuple[float, float]] = field(default_factory=list)
    processes: int = 0  # the worker processes the segments decoded in (0: threads of this process)


def decoders(cpus: int) -> int:
    """Parallel decoders for ``cpus``: one per CPU up to 4, one per 2 CPUs above (FFmpeg's threads
    share the rest), at most ``MAX_WORKERS``. On an H200 host's 16 CPUs 8 decoders of 2 threads
    decoded the end-to-end clip's streams (10 min of 720p) in 5.99 s, 4 of 4 threads in 7.55 s
    (``bench/results/decode_phase_h200.md``)."""
    return max(1, min(MAX_WORKERS, max(min(cpus, 4), cpus // 2)))


def decoders_asked(cpus: int, env: Any = None) -> int:
    """``decoders(cpus)``, or ``FRAMEWORK_SEGMENT_DECODERS=N`` where set (1 to ``MAX_WORKERS``; 1 decodes in one
    pass): a benchmark's knob, to measure a decode that leaves CPUs to the work beside it. A value that is
    not a whole number in that range is logged and the default used."""
    try:
        asked = number_setting("FRAMEWORK_SEGMENT_DECODERS", env, parse=int, valid=lambda n: 1 <= n <= MAX_WORKERS,
                               hint=f"give a whole number from 1 to {MAX_WORKERS}")
    except ValueError as exc:
        logger.warning("%s; decoding with %d", exc, decoders(cpus))
        return decoders(cpus)
    return decoders(cpus) if asked is None else asked


def plan(path: Path, video: VideoMeta, origin: float) -> Plan | None:
    """Keyframe-aligned segments for this machine's decoders, or ``None`` when one pass is the
    better choice (one CPU, a short or small video, a container without a seek index)."""
    import av

    workers = decoders_asked(cpus_available())
    duration = video.duration or 0.0
    if (workers < 2 or not video.has_video or duration < 2 * MIN_SEGMENT_S
            or (video.width or 0) * (video.height or 0) < MIN_SEGMENT_PIXELS):
        return None
    container = open_container(path)
    try:
        fmt = (container.format.name or "").split(",")
        stream = stream_at(container, video.video_stream)
        if stream is None or not stream.time_base or not any(f in fmt for f in SEEKABLE_FORMATS):
            return None
        count = int(min(workers * SEGMENTS_PER_WORKER, duration // MIN_SEGMENT_S))
        tick = float(stream.time_base)
        keys: dict[int, int] = {}  # keyframe pts -> the seek target that landed on it
        for i in range(count):
            target = int((origin + duration * i / count) / tick)
            container.seek(target, stream=stream, backward=True)
            packet = next((pk for pk in container.demux(stream) if pk.size), None)
            if packet is None or packet.pts is None or not packet.is_keyframe:
                return None
            keys.setdefault(packet.pts, target)
    except av.FFmpegError:
        return None
    finally:
        container.close()
    first = min(keys)
    bounds = sorted(k for k in keys if k > first)
    if not bounds:
        return None
    starts: list[int | None] = [None, *bounds]
    stops: list[int | None] = [*bounds, None]
    segments = [Segment(i, a, b, keys[a] if a is not None else None) for i, (a, b) in enumerate(zip(starts, stops))]
    return Plan(segments, first * tick - origin, workers)


@dataclass
class SegmentSettings:
    """What decoding any segment of one file needs (sent once to each worker process)."""

    path: Path
    video: VideoMeta
    specs: list[FrameSpec]
    anchor: float  # the origin of every fps stream's sampling grid (``Plan.anchor``)
    cache_dir: Path
    origin: float  # the file's start time (s), subtracted from every timestamp
    skip_deblock: bool
    threads: int  # FFmpeg's threads for each segment's decoder


def decode_segment(seg: Segment, settings: SegmentSettings, halted: Callable[[], bool],
                   decoded: Callable[[float], None], read: LoopTally) -> SegmentResult:
    """Decode one segment into its part streams (``frames/<spec>/part<i>/``): from its keyframe up to the next
    segment's. ``halted()`` is asked at every packet (true: raise ``_Halted``); ``decoded(seconds)`` hears how
    much of the segment is done, as it goes; ``read`` counts the packets read.

    :raises SegmentsUnusable: the segment does not decode on its own (see the module docstring).
    """
    path, video = settings.path, settings.video
    container = open_container(path)
    sink: VideoSink | None = None
    try:
        stream = stream_at(container, video.video_stream)
        set_threads(stream, settings.skip_deblock, settings.threads)
        sink = VideoSink(settings.specs, video, stream, settings.cache_dir, anchor=settings.anchor, threaded=False,
                         part=_part_name(seg.index))
        first_t: float | None = None
        packets = 0

        def add(frame: Any) -> None:
            nonlocal first_t
            if seg.start is not None and frame.pts is not None and frame.pts < seg.start:
                raise SegmentsUnusable(f"segment {seg.index} decoded a frame before its keyframe (open GOP)")
            t = sink.add(frame, settings.origin)
            first_t = t if first_t is None else first_t
            decoded(t - first_t)

        if seg.start is not None:
            container.seek(seg.seek if seg.seek is not None else seg.start, stream=stream, backward=True)
        flushed = False
        for packet in container.demux(stream):
            if halted():
                raise _Halted(f"segment {seg.index} stopped")
            if seg.stop is not None and packet.is_keyframe and packet.pts is not None and packet.pts >= seg.stop:
                read.peeked += 1  # the next segment's first packet, which that segment reads again
                break
            read.read(packet)
            if seg.start is not None and not packets and packet.size and packet.pts != seg.start:
                raise SegmentsUnusable(f"segment {seg.index}: seeking landed at pts {packet.pts}, "
                                       f"not at its keyframe {seg.start}")
            packets += 1 if packet.size else 0
            flushed = not packet.size
            for frame in packet.decode():
                add(frame)
        if not flushed:
            for frame in stream.decode(None):
                add(frame)
        if sink.frames != packets:  # e.g. open-GOP HEVC: a fresh decoder drops the RASL pictures
            raise SegmentsUnusable(f"segment {seg.index} decoded {sink.frames} frames from {packets} "
                                   "video packets (frames dropped at its start, as in open-GOP files)")
        return SegmentResult(sink.close(), sink.frames, first_t, sink.last_t, sink.backwards)
    except BaseException:
        if sink is not None:
            with contextlib.suppress(Exception):
                sink.close()  # close the part files; they are removed by the caller
        raise
    finally:
        container.close()


def in_processes(duration: float, env: Any = None) -> bool:
    """Whether the segments of a video ``duration`` seconds long decode in worker processes of their own: each
    decoder's Python then has an interpreter to itself instead of taking turns on one lock with the other
    decoders and with the threads beside the decode (the import warm-up, the analyzers of a run without a GPU).
    Beside 10 busy CPUs an H200 host's 16 decoded the end-to-end clip's streams (10 min of 720p) in 9.5 s
    instead of 17.7 (alone: 5.9 s either way); on 2 CPUs a 2-minute clip in 4.5 s instead of 5.1, beside the
    import warm-up in 6.0 s instead of 10.2 (``bench/results/decode_phase_h200_procs.md``,
    ``decode_phase_2cpu_procs.md``). Starting the processes costs about 0.4 s, more than they gain on a short
    video: by default videos of at least ``PROCESSES_FROM_S`` use them. ``FRAMEWORK_SEGMENT_PROCESSES``: ``0``
    never, ``1`` always (where ``children_supported``)."""
    if not children_supported() or not switched_on("FRAMEWORK_SEGMENT_PROCESSES", env):
        return False
    return asked_for("FRAMEWORK_SEGMENT_PROCESSES", env) or duration >= PROCESSES_FROM_S


class SegmentWorker:
    """A worker process's decoder (``ProcessWorkers``): ``worker(segment)`` is ``(result, read)``, the result a
    ``SegmentResult`` or the exception the segment ended with (as the value: its type decides whether the
    file is decoded again in one pass), ``read`` the ``LoopTally`` of its packets."""

    def __init__(self, settings: SegmentSettings):
        self.settings = settings

    def __call__(self, seg: Segment) -> tuple[SegmentResult | BaseException, LoopTally]:
        import av

        read = LoopTally()
        try:
            return decode_segment(seg, self.settings, lambda: False, lambda seconds: None, read), read
        except SegmentsUnusable as exc:
            return exc, read
        except (av.FFmpegError, EOFError, ValueError) as exc:  # (FFmpeg's errors need not pickle)
            return SegmentsUnusable(f"segment {seg.index}: {type(exc).__name__}: {exc}"), read


def _worker_processes(settings: SegmentSettings, count: int) -> ProcessWorkers | None:
    """``count`` worker processes decoding segments, or None (logged) when they cannot start: the threads do."""
    try:
        return ProcessWorkers(f"{__name__}:SegmentWorker", settings, count)
    except (WorkerError, OSError) as exc:
        logger.warning("the video's segments decode on threads: their worker processes did not start (%s)", exc)
        return None


def decode_segments(path: Path, video: VideoMeta, specs: list[FrameSpec], planned: Plan, cache_dir: Path,
                    origin: float, skip_deblock: bool, tally: DemuxTally,
                    progress: Callable[[float], None] | None = None, stop: threading.Event | None = None,
                    features: StreamFeatures | None = None) -> tuple[dict[FrameSpec, FrameStream], VideoSummary]:
    """Decode ``planned``'s segments on its workers and join them into ``cache_dir/frames``.

    ``features``: per stream, the per-frame features to compute on each segment's part of it as soon as
    the segment is decoded (``part_features``, on up to ``FEATURE_THREADS`` threads of their own), while
    later segments still decode; the joined streams hold them (``FrameStream.features``).

    Decodes the stream ``video.video_stream``; every packet each segment reads is counted in
    ``tally`` (also when the segments are then given up). Every segment stops at its next packet
    once ``stop`` is set (the caller was interrupted), or once a segment failed. Any other
    exception (Ctrl-C, a bug) sets ``stop`` itself, so the caller's other loops stop at once.

    :returns: the streams and a summary of the video decoded.
    :raises SegmentsUnusable: see the module docstring; segments not started yet are dropped
        and the part streams removed.
    """
    import av

    done = [0.0] * len(planned.segments)  # seconds decoded by each segment, for progress
    settings = SegmentSettings(path, video, specs, planned.anchor, cache_dir, origin, skip_deblock,
                               max(1, cpus_available() // planned.workers))
    halt = threading.Event()  # a segment failed or the caller was interrupted: the rest stop
    workers = _worker_processes(settings, planned.workers) if in_processes(video.duration or 0.0) else None

    def halted() -> bool:
        return halt.is_set() or (stop is not None and stop.is_set())

    def stop_segments() -> None:
        halt.set()
        if workers is not None:
            workers.kill()  # their segments unfinished: the threads waiting on them raise _Halted

    idle: "queue.SimpleQueue[int]" = queue.SimpleQueue()  # worker processes free for a segment
    for i in range(planned.workers if workers is not None else 0):
        idle.put(i)

    def run(seg: Segment) -> SegmentResult:
        if workers is None:  # on this thread
            read = LoopTally()
            try:
                return decode_segment(seg, settings, halted, lambda seconds: done.__setitem__(seg.index, seconds), read)
            finally:
                tally.add(read)
        if halted():
            raise _Halted(f"segment {seg.index} stopped")
        index = idle.get()
        try:
            outcome, read = workers.ask(index, seg)
        except WorkerError:
            if halted():
                raise _Halted(f"segment {seg.index} stopped") from None
            raise
        finally:
            idle.put(index)
        tally.add(read)
        if isinstance(outcome, BaseException):
            raise outcome
        done[seg.index] = (outcome.last_t or 0.0) - (outcome.first_t or 0.0)
        return outcome

    joiner = _Joiner(specs, planned.anchor, cache_dir, video)
    began = time.perf_counter()
    # the features of each segment's parts, on threads of their own as each segment ends: a decoder goes on to
    # its next segment at once, and the features' turns on the interpreter's lock hold up no decoder
    wanted = {spec: f for spec, f in (features or {}).items() if f and spec in specs}
    featuring = ThreadPoolExecutor(max_workers=min(FEATURE_THREADS, planned.workers),
                                   thread_name_prefix="decode-features") if wanted else None

    def start_features(result: SegmentResult) -> None:
        for spec, pairs in wanted.items():  # (none without ``featuring``)
            if spec in result.streams:
                featuring.submit(part_features, result.streams[spec], pairs)

    try:
        with ThreadPoolExecutor(max_workers=planned.workers, thread_name_prefix="decode-segment") as pool:
            futures = [pool.submit(run, seg) for seg in planned.segments]
            pending = set(futures)
            joined = 0  # segments appended to the final streams (a prefix of ``futures``)

            def join_ready() -> None:
                """Append the finished segments that follow those already appended, in order."""
                nonlocal joined
                while joined < len(futures) and _succeeded(futures[joined]):
                    joiner.add(futures[joined].result(), time.perf_counter() - began)
                    joined += 1

            try:
                while pending:
                    finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    if any(f.exception() is not None for f in finished):
                        stop_segments()  # a failed segment means one pass: stop the others, start no more
                        for f in pending:
                            f.cancel()
                        break
                    for f in finished:
                        start_features(f.result())
                    join_ready()  # while the others decode
                    if stop is not None and stop.is_set():
                        stop_segments()  # (a thread's segment stops at its next packet; a process's now)
                    if progress is not None and video.duration:
                        progress(min(1.0, sum(done) / video.duration))
            except BaseException:  # Ctrl-C, an error in progress(): stop now, not after every segment
                stop_segments()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        failed = next((e for e in errors if not isinstance(e, _Halted)), errors[0] if errors else None)
        if isinstance(failed, (av.FFmpegError, EOFError, ValueError)):
            raise SegmentsUnusable(f"{type(failed).__name__}: {failed}") from failed
        if failed is not None:  # SegmentsUnusable, or a bug, raised as it is
            raise failed
        join_ready()
        if featuring is not None:
            featuring.shutdown(wait=True)  # every part's features, before the joiner joins them (failures are logged)
        streams, summary = joiner.close()
        if workers is not None:
            summary.processes = workers.count
            workers.close()
        return streams, summary
    except BaseException as exc:
        if featuring is not None:
            featuring.shutdown(wait=True, cancel_futures=True)  # before the parts are removed
        if workers is not None:
            workers.kill()  # (a process still decoding writes no more into the parts removed below)
            workers.close()
        joiner.abort()
        if stop is not None and not isinstance(exc, SegmentsUnusable):
            stop.set()  # interrupted (or a bug): the caller's other loops stop now, not after the clean-up
        for spec in specs:  # the parts, and what the joiner had written (on SegmentsUnusable the
            for folder in (cache_dir / "frames" / spec.key).glob(_part_name("*")):  # caller decodes again)
                shutil.rmtree(folder, ignore_errors=True)
        raise


def part_features(stream: FrameStream, wanted: list[tuple[str, dict[str, Any]]]) -> None:
    """Compute and keep ``stream``'s features: each ``(function, kwargs)`` of ``wanted`` is called as
    ``function(stream.frames, **kwargs)`` (``function`` as ``"module:name"``) and returns arrays with a
    row per frame. One that fails is logged and left out: the analyzer that asked computes it itself."""
    for function, kwargs in wanted:
        try:
            module, _, name = function.partition(":")
            arrays = getattr(importlib.import_module(module), name)(stream.frames, **kwargs)
            stream.store_features(function, kwargs, arrays)
        except Exception as exc:  # noqa: BLE001 - a feature is an optimisation: the stream is what counts
            logger.warning("stream %s: feature %s not computed in the decode (%s: %s)", stream.spec.key,
                           function, type(exc).__name__, exc)


def _part_name(index: int | str) -> str:
    """The subfolder of a stream's folder holding segment ``index``'s part of it."""
    return f"part{index}"


def _succeeded(future: Future) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


class _Joiner:
    """Appends the segments' part streams, in order, to the final streams in ``cache_dir/frames``,
    checking that each segment follows the one before in time."""

    def __init__(self, specs: list[FrameSpec], anchor: float, cache_dir: Path, video: VideoMeta):
        self.specs, self.anchor, self.cache_dir = specs, anchor, cache_dir
        self.step = 1.0 / video.fps if video.fps else 1 / 30
        self.writers: dict[FrameSpec, FrameStreamWriter] = {}  # made from the first segment's part sizes
        self.previous: SegmentResult | None = None
        self.frames = self.backwards = 0
        self.joined: list[tuple[float, float]] = []  # (seconds into the decode, video seconds reached)

    def add(self, result: SegmentResult, at: float = 0.0) -> None:
        """Append the next segment (its part files become pieces of the final streams); ``at``: seconds
        since the segments began decoding.

        :raises SegmentsUnusable: it does not follow the segment before in time.
        """
        before = self.previous
        if before is not None and (before.last_t is None or result.first_t is None
                                   or result.first_t <= before.last_t):
            raise SegmentsUnusable("segments do not follow each other in time")
        for spec in self.specs:
            part = result.streams[spec]
            writer = self.writers.get(spec)
            if writer is None:
                writer = self.writers[spec] = FrameStreamWriter(self.cache_dir / "frames" / spec.key, spec,
                                                                part.width, part.height, anchor=self.anchor)
            skip = 0
            if spec.fps is not None and before is not None and before.last_t is not None and len(part):
                # the part sampled its first frame; the segment before may have sampled its interval
                skip = int(writer.cell(float(part.times[0])) <= writer.cell(before.last_t))
            writer.append(part, skip=skip)
        self.frames += result.frames
        self.backwards += result.backwards
        self.previous = result
        if result.last_t is not None:
            self.joined.append((round(at, 3), round(result.last_t + self.step, 3)))

    def close(self) -> tuple[dict[FrameSpec, FrameStream], VideoSummary]:
        streams = {spec: writer.close() for spec, writer in self.writers.items()}
        last_t = self.previous.last_t if self.previous is not None else None
        return streams, VideoSummary(frames=self.frames, last_t=last_t, step=self.step, backwards=self.backwards,
                                     joined=list(self.joined))

    def abort(self) -> None:
        """Close the final stream files after a failure (the caller decodes again, or gives up)."""
        for writer in self.writers.values():
            with contextlib.suppress(Exception):
                writer.abort()


__all__ = ["Plan", "Segment", "SegmentsUnusable", "StreamFeatures", "VideoSummary", "cpus_available", "decode_segments",
           "part_features", "plan"]
