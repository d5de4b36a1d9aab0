"""text_overlay's line reuse (``analyzers/_vision/ocr_reuse.py``) on real footage and on the end-to-end clip, on the CPU.

For each video: its frames at ``--fps`` (960 px wide, as text_overlay reads them), read by one rapidocr engine
(real weights from the wheel, detection on the CPU too) with the reuse off and on; the table gives the line crops
recognized and given a reading back, the seconds of each pass, and whether every frame's lines came out the same.
A study column gives, over every crop and the latest recent crop of its size, the largest cell difference among
pairs read the same and the smallest among pairs read differently (what the threshold must separate).

    .venv/bin/python bench/ocr_reuse.py            # the three videos, threshold 12
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import cpu_model, load_text  # noqa: E402

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
logger = logging.getLogger("ocr_reuse")


def frames_of(path: Path, fps: float, width: int = 960, seconds: float | None = None) -> list[np.ndarray]:
    """RGB frames of ``path`` every 1/``fps`` s, ``width`` wide (even height)."""
    import av
    import cv2

    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        due = 0.0
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            if seconds is not None and t > seconds:
                break
            if t + 1e-6 < due:
                continue
            due += 1.0 / fps
            img = frame.to_ndarray(format="rgb24")
            h, w = img.shape[:2]
            out.append(cv2.resize(img, (width, int(round(h * width / w / 2)) * 2), interpolation=cv2.INTER_AREA))
    return out


class Study:
    """Around a recognizer: each crop's smallest cell difference to a recent crop of its size, and whether the two
    were read the same."""

    def __init__(self, recognizer: Any):
        self.recognizer, self.recent, self.pairs = recognizer, [], []

    def __call__(self, crops: Any, return_word_box: bool = False) -> Any:
        from analyzers._vision.ocr_reuse import cells

        readings, elapse = self.recognizer(crops, return_word_box)
        for crop, reading in zip(crops, readings):
            sig = cells(crop)
            near = [(float(np.abs(s - sig).max()), text) for shape, s, text in self.recent[-64:] if shape == crop.shape]
            if near:
                diff, text = min(near)
                self.pairs.append((diff, text == reading[0]))
            self.recent.append((crop.shape, sig, reading[0]))
        return readings, elapse


class Timed:
    """Around the recognizer itself: its seconds and crops."""

    def __init__(self, recognizer: Any):
        self.recognizer, self.seconds, self.crops = recognizer, 0.0, 0

    def __call__(self, crops: Any, return_word_box: bool = False) -> Any:
        t = time.perf_counter()
        try:
            return self.recognizer(crops, return_word_box)
        finally:
            self.seconds += time.perf_counter() - t
            self.crops += len(crops)


def read(frames: list[np.ndarray], reuse: float | None, study: bool = False) -> dict[str, Any]:
    import rapidocr_onnxruntime

    from analyzers._vision.ocr import RapidOcr

    folder = Path(rapidocr_onnxruntime.__file__).parent / "models"
    engine = RapidOcr(folder, 2, 0.6, det_side=640, workers=1, reuse_threshold=reuse)
    engine.read_many(frames[:1])  # (onnxruntime's first call, untimed)
    rec = engine.reader.engine.text_rec
    timed = Timed(rec.recognizer if reuse is not None else rec)
    if reuse is not None:
        rec.recognizer = timed
    else:
        engine.reader.engine.text_rec = Study(timed) if study else timed
    reused0 = getattr(rec, "reused", 0)
    t = time.perf_counter()
    lines = engine.read_many(frames)
    seconds = time.perf_counter() - t
    out = {"seconds": seconds, "texts": [[ln.text for ln in f] for f in lines], "read": timed.crops,
           "rec_seconds": timed.seconds, "reused": getattr(rec, "reused", 0) - reused0}
    if study:
        pairs = engine.reader.engine.text_rec.pairs
        same = [d for d, eq in pairs if eq]
        other = [d for d, eq in pairs if not eq]
        out["study"] = (max(same) if same else None, min(other) if other else None, len(same), len(other))
    engine.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threshold", type=float, default=12.0, help="reuse_threshold (grey levels of a cell)")
    ap.add_argument("--fps", type=float, default=2.0, help="frames read per second of video")
    ap.add_argument("--clip-seconds", type=float, default=60.0, help="length of the end-to-end bench's clip made here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from end_to_end_gpu import make_clip

    clip = Path("/tmp/ocr_reuse_clip.mp4")
    if not clip.is_file():
        make_clip(clip, args.clip_seconds / 60.0, 1280, 720, 30.0)
    videos = [("smpte-2997.mp4 (burned-in counter and timecode, changing every frame)", MEDIA / "video" / "smpte-2997.mp4"),
              ("pyscenedetect testvideo.mp4 (a copyright line over real footage)", MEDIA / "pyscenedetect" / "testvideo.mp4"),
              (f"the end-to-end bench's clip, {args.clip_seconds:g} s (a caption bar over a panning texture)", clip)]
    print(f"machine: {cpu_model()}; load {load_text()}; threshold {args.threshold:g}; {args.fps:g} frames/s, "
          "960 px wide; one rapidocr engine, 2 threads, detection and recognition on the CPU\n")
    print("| video | frames | line crops | recognized / reused (reuse on) | s reuse off (of it recognizer) | "
          "s reuse on (of it recognizer) | on / off | every frame's lines the same | "
          "study: largest diff read the same / smallest read differently (pairs) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, path in videos:
        frames = frames_of(path, args.fps)
        off = read(frames, None, study=True)
        on = read(frames, args.threshold)
        same_max, other_min, n_same, n_other = off["study"]
        print(f"| {name} | {len(frames)} | {off['read']} | {on['read']} / {on['reused']} | {off['seconds']:.2f} "
              f"({off['rec_seconds']:.2f}) | {on['seconds']:.2f} ({on['rec_seconds']:.2f}) | "
              f"{on['seconds'] / off['seconds']:.2f} | "
              f"{'yes' if on['texts'] == off['texts'] else 'no'} | {same_max} / {other_min} ({n_same} / {n_other}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
