"""Throughput of the face analyzers: frames/s, seconds of video per second, device busy share, peak VRAM.

Each analyzer runs its real code (``load``, then ``analyze`` through the device step) on frame
streams written the way the decoder writes them (``vision_throughput.SyntheticClip``: a panning
texture with moving boxes, captions, and ultralytics' zidane.jpg face photo 10 s of every 30 s).
Decoding is not timed.

- face_detection and facial_details: mediapipe's bundled models (real weights, CPU only);
- emotion_detection and age_estimation: mediapipe face detection (CPU, in the preprocess thread)
  + a ViT-B/16 image classifier with the real architecture and random weights (real size, so
  speed and memory are real; the labels it outputs mean nothing), on ``--device``;
- the ViT-B/16 classifier's bare forward pass (224x224): batch 1, 16 and 64 in fp16 on a GPU,
  batch 1 and 8 in fp32 on the CPU; it needs only torch and transformers.

    .venv/bin/python bench/face_throughput.py --device cpu --minutes 1 --out bench/results/face_throughput_cpu.md
    python bench/face_throughput.py --device cuda --minutes 10 --out bench/results/face_throughput_h200.md

The face analyzers need mediapipe 0.10.21 (with protobuf < 5); where it does not import (the GPU
machine's image has none), only the bare forward pass is measured and the report says so.
Prints a markdown report (and writes it to ``--out``); progress goes to stderr.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import cli_device, host_lines, load_text, write_report  # noqa: E402  (bench/machine.py)
from vision_throughput import busy_peak, make_analyzer, measure, num, sampling, synthetic_streams  # noqa: E402

logger = logging.getLogger("face_throughput")

MEDIAPIPE_SET = ["face_detection", "facial_details"]
CLASSIFIER_SET = ["emotion_detection", "age_estimation"]
LABELS = {"vit-face-expression": ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"],
          "vit-age-classifier": ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]}


def mediapipe_problem() -> str | None:
    """Why mediapipe's legacy face solutions cannot run here, or None."""
    try:
        import mediapipe as mp

        mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True).close()
    except Exception as exc:  # noqa: BLE001 - reported in the table instead
        return f"{type(exc).__name__}: {exc}"
    return None


def build_models(folder: Path, with_mediapipe: bool) -> dict[str, Path]:
    """Manifest id -> path: the ViT-B/16 classifiers (random weights, real size, the real label
    sets) saved with save_pretrained; mediapipe's bundled models where they load."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    out: dict[str, Path] = {}
    for mid, labels in LABELS.items():
        cfg = ViTConfig(num_labels=len(labels), id2label=dict(enumerate(labels)),
                        label2id={n: i for i, n in enumerate(labels)})  # the defaults are ViT-B/16 at 224
        path = folder / mid
        ViTForImageClassification(cfg).save_pretrained(path)
        ViTImageProcessor().save_pretrained(path)
        out[mid] = path
    if with_mediapipe:
        from framework.models import find_model, load_manifest

        manifest = load_manifest()
        for mid in ("mediapipe-face-detection", "mediapipe-face-mesh"):
            found = find_model(manifest[mid])
            if found is not None:
                out[mid] = found.path
    return out


def vit_forward(path: Path, device: str) -> list[dict[str, Any]]:
    """ViT-B/16's bare forward pass on random 224x224 input, fp16 on a GPU (fp32 on the CPU)."""
    import torch
    from transformers import ViTForImageClassification

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    net = ViTForImageClassification.from_pretrained(path, dtype=dtype).to(device).eval()
    rows = []
    cuda = device.startswith("cuda")
    for batch in (1, 16, 64) if cuda else (1, 8):  # ViT-B is ~17.5 GFLOPs a face: keep the CPU run short
        x = torch.rand(batch, 3, 224, 224, device=device, dtype=dtype)
        with torch.inference_mode():
            for _ in range(3 if cuda else 1):
                net(pixel_values=x)
            if cuda:
                torch.cuda.synchronize()
            reps = max(3, 128 // batch) if cuda else 2
            t0 = time.perf_counter()
            for _ in range(reps):
                net(pixel_values=x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        rows.append({"batch": batch, "ms_per_face": (time.perf_counter() - t0) / (reps * batch) * 1000})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N (for the two classifiers)")
    ap.add_argument("--minutes", type=float, default=None, help="length of the synthetic clip (default: 10 on cuda, 1 on cpu)")
    ap.add_argument("--analyzers", default=None, help="comma-separated subset of the four")
    ap.add_argument("--no-forward", action="store_true", help="skip the bare ViT forward pass")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    device = cli_device(args.device)
    cuda = device.startswith("cuda")
    minutes = args.minutes if args.minutes is not None else (10.0 if cuda else 1.0)
    names = args.analyzers.split(",") if args.analyzers else MEDIAPIPE_SET + CLASSIFIER_SET
    load_before = load_text()
    problem = mediapipe_problem()
    if problem:
        logger.warning("mediapipe's face solutions do not run here (%s): only the bare forward pass is measured", problem)
        names = []
    work = Path(tempfile.mkdtemp(prefix="face_bench_"))
    models = build_models(work / "models", problem is None)
    rows = []
    if names:
        from framework import VideoMeta

        analyzers = {n: make_analyzer(n, device if n in CLASSIFIER_SET else "cpu") for n in names}
        seconds = minutes * 60
        t0 = time.perf_counter()
        streams = synthetic_streams([s for a in analyzers.values() for s in a.frame_specs()], seconds, work / "frames")
        logger.info("streams ready in %.1f s", time.perf_counter() - t0)
        meta = VideoMeta(path="synthetic.mp4", content_hash="synthetic", size_bytes=1, duration=seconds,
                         has_video=True, width=1280, height=720)
        for name, a in analyzers.items():
            logger.info("measuring %s", name)
            row = measure(a, models, streams, meta, device if name in CLASSIFIER_SET else "cpu")
            row["sampling"] = sampling(a)
            row["what"] = {"face_detection": "mediapipe full-range face detector (real weights)",
                           "facial_details": "mediapipe face detector + FaceMesh (real weights)",
                           "emotion_detection": "mediapipe detector + ViT-B/16, 7 labels (random weights)",
                           "age_estimation": "mediapipe detector + ViT-B/16, 9 labels (random weights)"}[name]
            row["precision"] = getattr(a, "run_precision", None)
            row["faces"] = row["track"].data.get("face_tracks")
            a.unload()
            rows.append(row)
    forward = [] if args.no_forward else vit_forward(models["vit-face-expression"], device)

    cmd = " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"# Face analyzer throughput ({'GPU' if cuda else 'CPU'})", "",
             f"- command: `python bench/face_throughput.py {cmd}`",
             *host_lines(load_before, cuda)]
    if problem:
        lines.append(f"- the analyzers were not run: mediapipe's face solutions failed here ({problem})")
    else:
        lines += [f"- input: synthetic 1280x720 clip, {minutes:g} min (a face photo 10 s of every 30 s); streams "
                  "written before timing (decoding is not timed)",
                  "- weights: mediapipe's real bundled models; the ViT-B/16 classifiers random (speed/memory only)", "",
                  "| analyzer | model | sampling | device | precision | frames | face tracks | wall s | frames/s | "
                  "video s per s | busy share | peak VRAM MB |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            fps = r["items"] / r["wall_s"] if r["wall_s"] else float("nan")
            busy, peak = busy_peak(r)
            dev = device if r["analyzer"] in CLASSIFIER_SET else "cpu"
            lines.append(f"| {r['analyzer']} | {r['what']} | {r['sampling']} | {dev} | {r.get('precision') or '-'} | "
                         f"{r['items']} | {r['faces']} | {r['wall_s']:.2f} | {num(fps)} | "
                         f"{num(minutes * 60 / r['wall_s'])} | {busy} | {peak} |")
    if forward:
        lines += ["", f"ViT-B/16 classifier bare forward pass, 224x224, {'fp16' if cuda else 'fp32'}, random weights:", "",
                  "| batch | ms per face |", "|---|---|"]
        lines += [f"| {f['batch']} | {f['ms_per_face']:.2f} |" for f in forward]
    lines += ["", "busy share: the device step's time inside forward() over the analyzer's wall time (for the classifiers "
              "the face detector runs in preprocess, on a CPU thread, overlapped). video s per s: clip seconds analysed "
              "per wall second."]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
