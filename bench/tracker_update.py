"""One ``ObjectTracker.update`` (ultralytics' ByteTrack) per sampled frame, as object_detection and
product_detection run it, with and without a BGR copy of the 640x360 frame handed to the tracker (ByteTrack
never reads it; the copy was made for every frame until the twenty-seventh session).

Prints a markdown table: detections per frame, image copied or not, milliseconds a frame, tracked rows.

example: python bench/tracker_update.py --frames 1000
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from machine import cpu_model, load_text, markdown_table  # noqa: E402  (bench/machine.py)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/tracker_update.py --frames 1000")
    ap.add_argument("--frames", type=int, default=1000)
    args = ap.parse_args(argv)
    from analyzers._vision.yolo import FrameDets, ObjectTracker

    frame = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)

    def dets(n: int, rng: np.random.Generator) -> FrameDets:
        b = rng.random((n, 4)).astype(np.float32) * 300
        b[:, 2:] += b[:, :2] + 20
        return FrameDets(time=0.0, width=640, height=360, boxes=b,
                         conf=rng.random(n).astype(np.float32) * 0.5 + 0.5, cls=np.zeros(n, np.int64), kpts=None)

    before = load_text()
    rows = []
    for n in (0, 5):
        for copied in (True, False):
            tracker = ObjectTracker("bytetrack", 5.0, 1.0)
            tracker.reads_frames = copied  # (True: as before, a BGR copy for every frame)
            rng = np.random.default_rng(0)
            tracked = 0
            t0 = time.perf_counter()
            for _ in range(args.frames):
                tracked += len(tracker.update(dets(n, rng), frame))
            rows.append((n, copied, (time.perf_counter() - t0) / args.frames * 1e3, tracked))
    print(f"{cpu_model()}, load {before} -> {load_text()}; {args.frames} frames of 640x360\n")
    print(markdown_table(["detections a frame", "BGR copy of the frame", "ms a frame", "tracked rows"],
                         [[n, "yes (before)" if copied else "no (now)", f"{ms:.3f}", tracked]
                          for n, copied, ms, tracked in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
