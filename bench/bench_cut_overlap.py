"""Would overlapping work with decoding make cut detection faster? Measures the two ideas left open.

Usage:
    .venv/bin/python bench/bench_cut_overlap.py [--media ../shared/media] [--work /tmp/bench_cuts]
                                                [--repeat 9] [--cpus N] [--out FILE | --no-save]

Both PySceneDetect and cut_analysis are bound by H.264 decoding. This script times, interleaved
on the same files (testvideo.mp4 and bench_cuts.py's 60 s 720p clip):

- ``shipped``: what ``cut_analysis`` does today: ``media.decode`` of its stream (every frame,
  96 px; in keyframe-aligned segments on parallel decoders where the file allows, see
  ``framework.media.segments``), then ``frame_signals`` over the frames read back from the disk cache;
- ``one pass, then signals``: the same with the video decoded in one pass (FFmpeg's frame threads);
- ``one pass, signals during decode``: that one pass, but each block of 64 frames is handed, as it is
  written, to a third thread that computes the signals (an experiment: the hand-over wraps
  ``FrameStreamWriter.write`` here; the framework has no such hook). BLAS and OpenCV run on one
  thread each in this variant so they do not compete with the decoder;
- ``PyAV decode, FFmpeg threads`` / ``PyAV decode, 1 thread``: decoding alone, nothing else;
- ``2 decoders on halves``: two one-thread decoders on keyframe-aligned halves of the file, in
  two threads: the ceiling of splitting the file into independently decoded segments. The
  keyframe index is read before timing, and the frame count is checked.

It prints the fastest and median seconds of each, and each median over the shipped path's.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BLOCK = 64  # frames per hand-over, as frame_signals' blocks


@contextlib.contextmanager
def one_thread_math() -> Iterator[None]:
    """BLAS (when threadpoolctl is installed) and OpenCV on one thread inside the block."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(1)
    try:
        with limits:
            yield
    finally:
        cv2.setNumThreads(before)


@contextlib.contextmanager
def one_pass() -> Iterator[None]:
    """``media.decode`` without segments inside the block (as before they existed)."""
    from framework.media import segments as media_segments

    before = media_segments.MAX_WORKERS
    media_segments.MAX_WORKERS = 1
    try:
        yield
    finally:
        media_segments.MAX_WORKERS = before


def shipped(path: Path) -> int:
    from analyzers.cut_analysis import CutAnalysis, frame_signals
    from framework import media

    spec = CutAnalysis().frame_specs()[0]
    cache = Path(tempfile.mkdtemp(prefix="cut_overlap_"))
    try:
        decoded = media.decode(path, media.probe(path), [spec], False, cache)
        frames = decoded.streams[spec].frames
        frame_signals(frames, spans=(8, 15))
        return len(frames)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def one_pass_then_signals(path: Path) -> int:
    with one_pass():
        return shipped(path)


def signals_during_decode(path: Path) -> int:
    import numpy as np

    from analyzers.cut_analysis import CutAnalysis, frame_signals
    from framework import media, streams

    spec = CutAnalysis().frame_specs()[0]
    blocks: queue.Queue = queue.Queue(maxsize=8)
    pending: list[np.ndarray] = []
    seen = [0]

    def compute() -> None:
        while (block := blocks.get()) is not None:
            frame_signals(block, spans=(8, 15))  # the first frame of a block is the previous block's last

    original = streams.FrameStreamWriter.write

    def write(self, t, pixels):  # noqa: ANN001 - same signature as the original
        original(self, t, pixels)
        pending.append(pixels)
        seen[0] += 1
        if len(pending) == BLOCK + 1:
            blocks.put(np.stack(pending))
            del pending[:BLOCK]

    cache = Path(tempfile.mkdtemp(prefix="cut_overlap_"))
    worker = threading.Thread(target=compute, name="cut-signals")
    with one_thread_math(), one_pass():
        worker.start()
        streams.FrameStreamWriter.write = write
        try:
            media.decode(path, media.probe(path), [spec], False, cache)
        finally:
            streams.FrameStreamWriter.write = original
            if len(pending) > 1:
                blocks.put(np.stack(pending))
            blocks.put(None)
            worker.join()
            shutil.rmtree(cache, ignore_errors=True)
    return seen[0]


def _decode_range(path: Path, threads: int, start_pts: int | None, stop_pts: int | None) -> int:
    """Frames decoded from the keyframe at ``start_pts`` up to (not including) the keyframe at ``stop_pts``."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if threads == 1:
            stream.thread_type, stream.codec_context.thread_count = "SLICE", 1
        else:
            stream.thread_type = "AUTO"
        if start_pts is not None:
            container.seek(start_pts, stream=stream)
        n = 0
        for packet in container.demux(stream):
            if stop_pts is not None and packet.is_keyframe and packet.pts is not None and packet.pts >= stop_pts:
                n += sum(1 for _ in stream.decode(None))  # flush what is still in the decoder
                break
            n += sum(1 for _ in packet.decode())
        return n


def split_point(path: Path) -> tuple[int, int]:
    """The keyframe pts nearest the middle (by packet count), and the file's frame count."""
    import av

    keys, count = [], 0
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                if packet.is_keyframe:
                    keys.append((count, packet.pts))
                count += 1
    inner = keys[1:] or keys
    return min(inner, key=lambda k: abs(k[0] - count / 2))[1], count


def two_halves(path: Path, middle: int) -> int:
    counts: list[int] = []
    jobs = [(None, middle), (middle, None)]
    threads = [threading.Thread(target=lambda a, b: counts.append(_decode_range(path, 1, a, b)), args=job)
               for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: .venv/bin/python bench/bench_cut_overlap.py --repeat 9 --cpus 2")
    ap.add_argument("--media", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "media")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_cuts")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--cpus", type=int, default=None, help="run on the first N CPUs only (sched_setaffinity)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_cut_overlap.md")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cpus])

    from bench_cuts import machine, make_clip

    args.work.mkdir(parents=True, exist_ok=True)
    files = [args.media / "pyscenedetect" / "testvideo.mp4", make_clip(args.work)[0]]
    lines = ["## bench_cut_overlap: overlapping work with decoding", "",
             f"Command: `python {' '.join(sys.argv)}`", "", *machine(), "",
             "| file | frames | variant | fastest s | median s | median / shipped |", "|---|---|---|---|---|---|"]
    for path in files:
        middle, count = split_point(path)
        variants: dict[str, Callable[[], int]] = {
            "shipped: decode, then signals": lambda: shipped(path),
            "one pass, then signals": lambda: one_pass_then_signals(path),
            "one pass, signals during decode (3rd thread)": lambda: signals_during_decode(path),
            "PyAV decode, FFmpeg threads": lambda: _decode_range(path, 0, None, None),
            "PyAV decode, 1 thread": lambda: _decode_range(path, 1, None, None),
            "2 decoders on halves (1 thread each)": lambda: two_halves(path, middle),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeat):
            for name, run in variants.items():
                t0 = time.perf_counter()
                frames = run()
                times[name].append(time.perf_counter() - t0)
                if frames != count:
                    raise SystemExit(f"{path.name}: {name} produced {frames} frames, the file has {count}")
        base = statistics.median(times["shipped: decode, then signals"])
        for name, ts in times.items():
            med = statistics.median(ts)
            lines.append(f"| {path.name} | {count} | {name} | {min(ts):.3f} | {med:.3f} | {med / base:.2f} |")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if not args.no_save:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
