"""cut_analysis's per-frame signals of one decode segment, alone and beside threads that run Python.

In a segmented decode each segment's decoder computes its part of cut_analysis's signals
(``part_signals``) as soon as the segment is decoded, on its own thread of the decoding process,
beside the other decoders, whose threads run Python between their frames. The first way
(64-frame blocks, one ``cv2.sumElems`` call a row for the row sums) gave the interpreter's lock back
and took it again hundreds of times a block; on an H200 the decode of a 10-minute clip took up to
4 s longer with it (``end_to_end_h200_ab28.md``), so the features now also run on threads of their own, not
the decoders' (``segments.FEATURE_THREADS``). This compares that way with the one kept (512-frame
blocks, one numpy reduction an array) on the same frames: alone, and beside ``--busy`` threads that run a
Python loop (the decoders' share of the lock, at its worst), and checks that both give the same values.

    .venv/bin/python bench/part_signals_gil.py [--frames 1125] [--busy 0,1,3] [--repeat 3]

A segment of the end-to-end bench's clip (10 minutes at 30 fps in 16 segments) has 1125 frames of
96x54 pixels. Wall seconds of one ``part_signals`` call, the fastest of ``--repeat``.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import cpu_model, load_text, markdown_table  # noqa: E402  (bench/machine.py)

from analyzers import cut_analysis as ca  # noqa: E402


def first_way(frames: np.ndarray, dark_level: float = 16.0) -> dict[str, np.ndarray]:
    """``part_signals`` as first built: 64-frame blocks, the row sums a ``cv2.sumElems`` call a row."""
    n = len(frames)
    sig = ca.FrameSignals(content=np.zeros(n, dtype=np.float32), luma=np.zeros(n, dtype=np.float32),
                          lit=np.zeros(n, dtype=np.float32), hist_step=np.zeros(0, dtype=np.float32), hist_span={})
    hist = np.zeros((n, 64), dtype=np.float16)
    for s in range(0, n, 64):
        e = min(n, s + 64)
        hist[s:e] = ca._block_signals(frames, s, e, dark_level, sig)
    sig.content[0] = np.nan
    return {"content": sig.content, "luma": sig.luma, "lit": sig.lit, "hist": hist}


def clip(n: int) -> np.ndarray:
    """Noise pictures drifting sideways, a new one every 40 frames."""
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, size=(54, 96, 3), dtype=np.uint8) for _ in range(8)]
    return np.stack([np.roll(pictures[(i // 40) % 8], i % 11, axis=1) for i in range(n)])


def timed(fn, frames: np.ndarray, busy: int, repeat: int) -> float:
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    threads = [threading.Thread(target=spin, daemon=True) for _ in range(busy)]
    for t in threads:
        t.start()
    try:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn(frames)
            best = min(best, time.perf_counter() - t0)
        return best
    finally:
        stop.set()
        for t in threads:
            t.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1125, help="frames in the segment (96x54 each)")
    ap.add_argument("--busy", default="0,1,3", help="threads running a Python loop beside it, comma-separated counts")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    frames = clip(args.frames)
    kept, first = ca.part_signals(frames), first_way(frames)
    same = all(np.array_equal(kept[k], first[k], equal_nan=True) for k in kept)
    rows = []
    for busy in (int(b) for b in args.busy.split(",")):
        a = timed(first_way, frames, busy, args.repeat)
        b = timed(ca.part_signals, frames, busy, args.repeat)
        rows.append([str(busy), f"{a:.3f}", f"{b:.3f}", f"{a / b:.1f}x"])
    print(f"`{' '.join(['python', *sys.argv])}`; {cpu_model()}, {os.cpu_count()} CPUs, load {load_text()}; "
          f"{args.frames} frames of 96x54; "
          f"the two ways' values identical: {same}\n")
    print(markdown_table(["threads running Python beside it", "first way s", "kept way s", "first / kept"], rows))


if __name__ == "__main__":
    main()
