"""Decode a video's frames as keyframe-aligned segments, one decoder per segment, in parallel.

On a few cores FFmpeg's frame threads gain little (a decoder waits for the frames it references),
while independent decoders on separate stretches of the file scale with the cores. ``decode``
uses this when the file has an index to seek in (MP4/MOV, Matroska/WebM), pictures of at least
640x360 and more than one CPU:

- ``plan`` seeks to evenly spaced times and takes the keyframe each seek lands on as a boundary;
- each segment is decoded once, from its keyframe up to (not including) the next segment's, by
  a one-thread decoder that scales its own frames into a part stream in ``<cache>/segments/``;
- ``decode_segments`` joins the parts in order into the final streams. A stream sampled at an
  fps is sampled on one grid for the whole file (``FrameStreamWriter.cell``), so a segment's
  first frame is dropped when the segment before already sampled that grid interval.

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
import logging
import os
import shutil
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..streams import FrameSpec, FrameStream, FrameStreamWriter
from ..timeline import VideoMeta
from ._container import open_container, stream_at
from .sinks import VideoSink, set_threads
from .tally import DemuxTally, LoopTally

logger = logging.getLogger(__name__)

SEEKABLE_FORMATS = ("mov", "mp4", "matroska", "webm")  # containers with a keyframe index
MIN_SEGMENT_S = 2.0        # seconds: shorter files are decoded in one pass
MIN_SEGMENT_PIXELS = 640 * 360  # smaller pictures decode so fast that Python's per-frame work, not
#                                 the decoder, sets the pace, and segments gain nothing (measured)
MAX_WORKERS = 4            # parallel decoders at most (each holds its reference frames)
SEGMENTS_PER_WORKER = 2    # more segments than decoders evens out uneven keyframe spacing


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


def cpus_available() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def plan(path: Path, video: VideoMeta, origin: float) -> Plan | None:
    """Keyframe-aligned segments for this machine's decoders, or ``None`` when one pass is the
    better choice (one CPU, a short or small video, a container without a seek index)."""
    import av

    workers = min(cpus_available(), MAX_WORKERS)
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


def decode_segments(path: Path, video: VideoMeta, specs: list[FrameSpec], planned: Plan, cache_dir: Path,
                    origin: float, skip_deblock: bool, tally: DemuxTally,
                    progress: Callable[[float], None] | None = None, stop: threading.Event | None = None
                    ) -> tuple[dict[FrameSpec, FrameStream], VideoSummary]:
    """Decode ``planned``'s segments on its workers and join them into ``cache_dir/frames``.

    Decodes the stream ``video.video_stream``; every packet each segment reads is counted in
    ``tally`` (also when the segments are then given up). Every segment stops at its next packet
    once ``stop`` is set (the caller was interrupted), or once a segment failed.

    :returns: the streams and a summary of the video decoded.
    :raises SegmentsUnusable: see the module docstring; segments not started yet are dropped
        and the part streams removed.
    """
    import av

    parts_dir = cache_dir / "segments"
    done = [0.0] * len(planned.segments)  # seconds decoded by each segment, for progress
    threads_each = max(1, cpus_available() // planned.workers)
    halt = threading.Event()  # a segment failed or the caller was interrupted: the rest stop

    def halted() -> bool:
        return halt.is_set() or (stop is not None and stop.is_set())

    def run(seg: Segment) -> SegmentResult:
        container = open_container(path)
        sink: VideoSink | None = None
        read = LoopTally()
        try:
            stream = stream_at(container, video.video_stream)
            set_threads(stream, skip_deblock, threads_each)
            sink = VideoSink(specs, video, stream, parts_dir / str(seg.index), anchor=planned.anchor, threaded=False)
            first_t: float | None = None
            packets = 0

            def add(frame: Any) -> None:
                nonlocal first_t
                if seg.start is not None and frame.pts is not None and frame.pts < seg.start:
                    raise SegmentsUnusable(f"segment {seg.index} decoded a frame before its keyframe (open GOP)")
                t = sink.add(frame, origin)
                first_t = t if first_t is None else first_t
                done[seg.index] = t - first_t

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
                    sink.close()  # close the part files; they are removed below
            raise
        finally:
            tally.add(read)
            container.close()

    try:
        with ThreadPoolExecutor(max_workers=planned.workers, thread_name_prefix="decode-segment") as pool:
            futures = [pool.submit(run, seg) for seg in planned.segments]
            pending = set(futures)
            try:
                while pending:
                    finished, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                    if any(f.exception() is not None for f in finished):
                        halt.set()  # a failed segment means one pass: stop the others, start no more
                        for f in pending:
                            f.cancel()
                        break
                    if progress is not None and video.duration:
                        progress(min(1.0, sum(done) / video.duration))
            except BaseException:  # Ctrl-C, an error in progress(): stop now, not after every segment
                halt.set()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        failed = next((e for e in errors if not isinstance(e, _Halted)), errors[0] if errors else None)
        if isinstance(failed, (av.FFmpegError, EOFError, ValueError)):
            raise SegmentsUnusable(f"{type(failed).__name__}: {failed}") from failed
        if failed is not None:  # SegmentsUnusable, or a bug, raised as it is
            raise failed
        results = [f.result() for f in futures]
        return _join(results, specs, planned.anchor, cache_dir, video)
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)


def _join(results: list[SegmentResult], specs: list[FrameSpec], anchor: float, cache_dir: Path,
          video: VideoMeta) -> tuple[dict[FrameSpec, FrameStream], VideoSummary]:
    """Append the segments' part streams in order; check the boundaries fit together."""
    for before, after in zip(results, results[1:]):
        if before.last_t is None or after.first_t is None or after.first_t <= before.last_t:
            raise SegmentsUnusable("segments do not follow each other in time")
    streams: dict[FrameSpec, FrameStream] = {}
    for spec in specs:
        first = results[0].streams[spec]
        writer = FrameStreamWriter(cache_dir / "frames" / spec.key, spec, first.width, first.height, anchor=anchor)
        previous_last: float | None = None
        for result in results:
            part = result.streams[spec]
            skip = 0
            if spec.fps is not None and previous_last is not None and len(part):
                # the part sampled its first frame; the segment before may have sampled its interval
                skip = int(writer.cell(float(part.times[0])) <= writer.cell(previous_last))
            writer.append(part, skip=skip)
            previous_last = result.last_t
        streams[spec] = writer.close()
    step = 1.0 / video.fps if video.fps else 1 / 30
    summary = VideoSummary(frames=sum(r.frames for r in results), last_t=results[-1].last_t, step=step,
                           backwards=sum(r.backwards for r in results))
    return streams, summary


__all__ = ["Plan", "Segment", "SegmentsUnusable", "VideoSummary", "cpus_available", "decode_segments", "plan"]
