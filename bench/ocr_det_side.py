"""text_overlay's detection size (``det_side``): time per frame against what is read, on real media.

rapidocr's text detector runs on the frame scaled so its longest side is at most ``det_side``; the
lines it finds are then recognized on crops of the full-size frame. For each side asked for:

- **speed**: one rapidocr engine (``--threads``) reads frames of a generated 1280x720 clip (a
  panning texture under a caption), sampled at 960 px wide as text_overlay samples them; the
  detector's, classifier's and recognizer's seconds come from rapidocr's own timers;
- **what is read**: MEDIA.md's whole images (english.png's three lines, french.jpg's sign, read
  whole, not cropped) and pyscenedetect/testvideo.mp4's two burned-in lines through the runner
  (text_overlay with that ``det_side``): the best-matching line's character error rate.

    .venv/bin/python bench/ocr_det_side.py --sides 960,736,640 --out bench/results/ocr_det_side.md
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import cpu_model, load_text, write_report  # noqa: E402  (bench/machine.py)
from ocr_eval import VIDEO, best_match, score  # noqa: E402

IMAGES = [("ocr/english.png", ["World Health", "clean hands with soap and water", "or alcohol-based hand rub"]),
          ("ocr/french.jpg", ["Théâtre"])]  # MEDIA.md; PP-OCRv4 reads French without accents: 'loose' counts
CAPTION = "Breaking news: the framework reads captions"


def engine_settings(det_side: int, threads: int) -> dict:
    import rapidocr_onnxruntime

    models = Path(rapidocr_onnxruntime.__file__).parent / "models"
    files = {p: str(sorted(models.glob(f"*_{p}_*.onnx"))[0]) for p in ("det", "rec", "cls")}
    return dict(det_model_path=files["det"], rec_model_path=files["rec"], cls_model_path=files["cls"],
                threads=threads, det_side=det_side, min_conf=0.5, spaces=True)


def clip_frames(work: Path, n: int) -> list[np.ndarray]:
    import av

    from framework.testing.synth import ShotSpec, make_video

    video = make_video(work / "caption_clip.mp4", [ShotSpec(n / 4, "pan", look=0), ShotSpec(n / 4, look=1)], fps=10.0,
                       width=1280, height=720, audio=False, text=CAPTION)
    frames = []
    with av.open(str(video.path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 5 == 0:  # 2 fps, as text_overlay samples
                frames.append(frame.reformat(width=960, height=540, format="rgb24").to_ndarray())
    return frames[:n]


def speed(det_side: int, threads: int, frames: list[np.ndarray]) -> dict:
    from analyzers._vision.ocr import EngineReader

    reader = EngineReader(engine_settings(det_side, threads))
    reader(frames[0])  # onnxruntime's first run allocates
    parts, lines = np.zeros(3), 0
    t0 = time.perf_counter()
    for f in frames:
        res, elapsed = reader.engine(np.ascontiguousarray(f[..., ::-1]), return_word_box=True, text_score=0.5)
        if elapsed and len(elapsed) == 3:
            parts += np.array(elapsed)
        lines += len(res or [])
    wall = time.perf_counter() - t0
    n = len(frames)
    caption = [ln.text for ln in reader(frames[-1])]
    return {"ms": 1000 * wall / n, "det_ms": 1000 * parts[0] / n, "cls_ms": 1000 * parts[1] / n,
            "rec_ms": 1000 * parts[2] / n, "lines": lines / n, "last_frame": caption}


def images(media: Path, det_side: int, threads: int) -> list[dict]:
    import cv2

    from analyzers._vision.ocr import EngineReader

    reader = EngineReader(engine_settings(det_side, threads))
    rows = []
    for name, truths in IMAGES:
        bgr = cv2.imread(str(media / name))
        if bgr is None:
            raise SystemExit(f"{media / name}: cannot read it (is --media the shared media folder?)")
        read = [ln.text for ln in reader(bgr[:, :, ::-1].copy())]
        for truth in truths:
            got = best_match(truth, read)
            rows.append({"source": name, "truth": truth, "read": got, **score(truth, got)})
    return rows


def video(media: Path, det_side: int, work: Path) -> tuple[list[dict], float]:
    import yaml

    from framework.runner import analyze

    name, truths = VIDEO
    registry = work / f"registry_{det_side}.yaml"
    registry.write_text(yaml.safe_dump({"analyzers": {"text_overlay": {"enabled": True,
                                                                       "params": {"det_side": det_side}}}}))
    t0 = time.perf_counter()
    result = analyze(media / name, registry_path=registry, out_dir=work / f"run_{det_side}", progress=False,
                     load_entrypoints=False, resume=False)
    wall = time.perf_counter() - t0
    track = result.timeline.tracks["text_overlay"]
    if track.status != "ok":
        raise SystemExit(f"text_overlay {track.status}: {track.reason}")
    texts = [e.data["text"] for e in track.events]
    return [{"source": name, "truth": t, "read": best_match(t, texts), **score(t, best_match(t, texts))}
            for t in truths], wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/ocr_det_side.py --sides 960,736,640 --frames 40")
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media", help="the shared media folder")
    ap.add_argument("--sides", default="960,736,640", help="detection sizes to compare (longest side, pixels)")
    ap.add_argument("--frames", type=int, default=40, help="frames of the generated clip timed per size")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime threads of the one engine timed")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sides = [int(s) for s in args.sides.split(",")]
    load_before = load_text()
    work = Path(tempfile.mkdtemp(prefix="ocr_det_side_"))
    frames = clip_frames(work, args.frames)
    results = {}
    for side in sides:
        rows, wall = video(args.media, side, work)
        results[side] = {"speed": speed(side, args.threads, frames), "read": images(args.media, side, args.threads) + rows,
                         "video_wall": wall}
    lines = ["# text_overlay's detection size: time per frame and what is read", "",
             f"- command: `python bench/ocr_det_side.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
             f"- machine: {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs, load {load_before} before, "
             f"{load_text()} after",
             f"- speed: one rapidocr engine ({args.threads} threads), {len(frames)} frames of a generated 1280x720 clip "
             f"(panning texture, the caption {CAPTION!r}) at 960x540; detector, classifier and recognizer times "
             "from rapidocr's own timers", "",
             "| det_side | ms per frame | detect ms | classify ms | recognize ms | lines per frame | last frame reads |",
             "|---|---|---|---|---|---|---|"]
    for side in sides:
        s = results[side]["speed"]
        lines.append(f"| {side} | {s['ms']:.0f} | {s['det_ms']:.0f} | {s['cls_ms']:.0f} | {s['rec_ms']:.0f} | "
                     f"{s['lines']:.1f} | {' / '.join(s['last_frame'])} |")
    lines += ["", "What is read (best-matching line; images read whole; the video through the runner, its "
              "whole run's seconds in brackets):", "",
              "| source | truth | " + " | ".join(f"det_side {s}: read, CER" for s in sides) + " |",
              "|---|---|" + "---|" * len(sides)]
    for i, row in enumerate(results[sides[0]]["read"]):
        cells = []
        for side in sides:
            r = results[side]["read"][i]
            cells.append(f"{r['read']!r}, {r['cer']:.2f}" + (" (loose)" if r["loose"] and not r["exact"] else ""))
        lines.append(f"| {row['source']} | {row['truth']} | " + " | ".join(cells) + " |")
    lines += ["", "whole runner on the video: " + ", ".join(f"det_side {s}: {results[s]['video_wall']:.1f} s"
                                                         for s in sides)]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
