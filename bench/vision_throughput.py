"""Throughput of the vision analyzers: frames/s, seconds of video per second, device busy share, peak VRAM.

Each analyzer runs its real code (``load`` from a model saved in the real on-disk format, then
``analyze`` through the device step) on frame streams written the way the decoder writes them,
for a clip of ``--minutes`` (synthetic: a panning texture with moving boxes, a caption on screen
part of the time and a real face photo part of the time; or ``--video FILE`` decoded once with
the framework's decoder). Decoding is not timed: the framework decodes once for all analyzers.

``--device cuda`` (the GPU machine): the GPU analyzers with their real architectures and random
weights (real sizes, so speed and memory are real; outputs are meaningless):
object_detection (YOLOv8x), product_detection (YOLOv8s), body_pose (YOLOv8x-pose),
background_segmentation (SegFormer-b0, 150 ADE20K classes), content_quality and
composition_analysis (CLIP ViT-B-32, one shared copy); plus YOLOv8x's bare forward pass at
640x640 fp16, batch 1 and 32, to set beside Ultralytics' published 3.53 ms/image (A100, TensorRT FP16).

``--device cpu`` (this 2-core machine): the analyzers that run on the CPU by default, at their
default sampling: text_overlay (rapidocr, real weights), eye_tracking (mediapipe, real
weights), content_quality's model-free measures, and (``--with-clip``) CLIP ViT-B-32 on the CPU.

    python bench/vision_throughput.py --device cuda --minutes 10 --out bench/results/vision_throughput_h200.md
    .venv/bin/python bench/vision_throughput.py --device cpu --minutes 2 --out bench/results/vision_throughput_cpu.md

Prints a markdown report (and writes it to ``--out``); progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import cli_device, host_lines, load_text, write_report  # noqa: E402  (bench/machine.py)

logger = logging.getLogger("vision_throughput")

GPU_SET = ["object_detection", "product_detection", "body_pose", "background_segmentation", "content_quality",
           "composition_analysis"]
CPU_SET = ["text_overlay", "eye_tracking", "quality_measures"]
ULTRALYTICS_YOLOV8X_MS = 3.53  # docs.ultralytics.com/models/yolov8: A100 TensorRT FP16, 640, batch 1


# --- models in their real formats, random weights ------------------------------------------------------
def build_models(folder: Path, names: list[str], device: str) -> dict[str, Path]:
    """Manifest id -> path of a real-architecture, random-weight model saved in the real format."""
    out: dict[str, Path] = {}
    want = set(names)
    folder.mkdir(parents=True, exist_ok=True)
    yolo = {"object_detection": ("yolov8x", "yolov8x.yaml"), "product_detection": ("yolov8s", "yolov8s.yaml"),
            "body_pose": ("yolov8x-pose", "yolov8x-pose.yaml")}
    for analyzer, (mid, yaml_name) in yolo.items():
        if analyzer in want or (analyzer == "object_detection" and "yolo_forward" in want):
            import ultralytics
            from ultralytics import YOLO
            from ultralytics.utils import YAML

            model = YOLO(yaml_name)
            model.model.names = ({0: "person"} if "pose" in mid else
                                 YAML.load(Path(ultralytics.__file__).parent / "cfg/datasets/coco.yaml")["names"])
            path = folder / f"{mid}.pt"
            model.save(str(path))
            out[mid] = path
    if "background_segmentation" in want:
        from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

        labels = {i: f"ade_{i}" for i in range(150)}
        labels.update({0: "wall", 1: "building", 2: "sky", 3: "floor", 4: "tree", 12: "person", 20: "car"})
        cfg = SegformerConfig(num_labels=150, id2label=labels, label2id={v: k for k, v in labels.items()})  # = mit-b0
        path = folder / "segformer-b0"
        SegformerForSemanticSegmentation(cfg).save_pretrained(path)
        SegformerImageProcessor(size={"height": 512, "width": 512}).save_pretrained(path)
        out["segformer-b0-ade-512"] = path
    if want & {"content_quality", "composition_analysis", "clip_cpu"}:
        import open_clip
        from safetensors.torch import save_file

        cfg = open_clip.get_model_config("ViT-B-32-quickgelu")
        model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
        path = folder / "open-clip-vit-b-32"
        path.mkdir(parents=True, exist_ok=True)
        (path / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "open_clip_model.safetensors"))
        out["open-clip-vit-b-32"] = path
    if want & {"text_overlay", "eye_tracking"}:
        from framework.models import find_model, load_manifest

        manifest = load_manifest()
        for mid in ("rapidocr-ppocrv4", "mediapipe-face-mesh"):
            found = find_model(manifest[mid])
            if found is not None:
                out[mid] = found.path
    return out


# --- input streams -------------------------------------------------------------------------------------
class SyntheticClip:
    """Frame i at any size: a panning texture, two moving boxes, a caption during 6 s of every 15 s
    and a real face photo (ultralytics' zidane.jpg) during 10 s of every 30 s."""

    def __init__(self, seed: int = 0):
        import cv2

        rng = np.random.default_rng(seed)
        small = rng.integers(30, 220, size=(60, 200, 3), dtype=np.uint8)
        self.texture = cv2.resize(small, (2400, 720), interpolation=cv2.INTER_CUBIC)
        import ultralytics

        face = cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "zidane.jpg"))
        self.face = None if face is None else face[:, :, ::-1].copy()
        self._sized: dict[tuple[int, int], tuple[np.ndarray, np.ndarray | None]] = {}

    def frame(self, t: float, w: int, h: int) -> np.ndarray:
        import cv2

        if (w, h) not in self._sized:
            tex = cv2.resize(self.texture, (int(2400 * h / 720), h), interpolation=cv2.INTER_AREA)
            face = None if self.face is None else cv2.resize(self.face, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            self._sized[(w, h)] = (tex, face)
        tex, face = self._sized[(w, h)]
        x = int(t * w * 0.05) % max(1, tex.shape[1] - w)
        img = tex[:, x:x + w].copy()
        for k, speed in ((0, 0.07), (1, -0.05)):
            bx = int((0.1 + (t * speed + 0.3 * k) % 0.7) * w)
            cv2.rectangle(img, (bx, int(h * (0.2 + 0.3 * k))), (bx + w // 8, int(h * (0.45 + 0.3 * k))),
                          (200, 40 + 150 * k, 40), -1)
        if face is not None and (t % 30.0) < 10.0:
            img[h // 4:h // 4 + face.shape[0], w // 4:w // 4 + face.shape[1]] = face
        if (t % 15.0) < 6.0:
            text = f"Caption number {int(t // 15) + 1}"
            scale = h / 360
            cv2.rectangle(img, (int(30 * scale), int(h - 70 * scale)), (int(30 * scale + 16 * scale * len(text)),
                                                                         int(h - 25 * scale)), (20, 20, 30), -1)
            cv2.putText(img, text, (int(40 * scale), int(h - 38 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.9 * scale,
                        (250, 250, 250), max(1, int(2 * scale)), cv2.LINE_AA)
        return img


def synthetic_streams(specs: list[Any], seconds: float, folder: Path, src: tuple[int, int] = (1280, 720)):
    from framework.streams import FrameStreamWriter

    clip = SyntheticClip()
    streams = {}
    for spec in dict.fromkeys(specs):
        w, h = spec.output_size(*src)
        writer = FrameStreamWriter(folder / spec.key, spec, w, h)
        step = 1.0 / (spec.fps or 30.0)
        for i in range(int(round(seconds / step))):
            f = clip.frame(i * step, w, h)
            if spec.pix_fmt == "gray":
                import cv2

                f = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
            writer.write(i * step, f)
        streams[spec] = writer.close()
    return streams


def decoded_streams(video: Path, specs: list[Any], folder: Path):
    from framework.media import decode, probe

    meta = probe(video)
    decoded = decode(video, meta, specs, want_audio=False, cache_dir=folder)
    return decoded.streams, meta


# --- one measurement -----------------------------------------------------------------------------------
def make_analyzer(name: str, device: str, params: dict[str, Any] | None = None) -> Any:
    """The analyzer ``name`` from its own module (``analyzers/<name>.py``; the other analyzers'
    modules are not imported), with default parameters (default sampling) unless given."""
    import importlib

    from framework import Analyzer

    module = importlib.import_module(f"analyzers.{name}")
    cls = next(c for c in vars(module).values()
               if isinstance(c, type) and issubclass(c, Analyzer) and getattr(c, "name", "") == name)
    return cls(params or {})


def measure(analyzer: Any, models: dict[str, Path], streams: dict, meta: Any, device: str) -> dict[str, Any]:
    from framework import AnalyzerInputs
    from framework.scheduler import Placement

    cuda = device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    analyzer.placement = Placement(device=device)
    t0 = time.perf_counter()
    analyzer.load(device, {m: models[m] for m in analyzer.model_ids()})
    load_s = time.perf_counter() - t0
    inputs = AnalyzerInputs(video=meta, streams={s: streams[s] for s in analyzer.frame_specs()})
    t0 = time.perf_counter()
    track = analyzer.analyze(inputs)
    wall = time.perf_counter() - t0
    peak = None
    if cuda:
        import torch

        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    step = track.receipt.get("step", {})
    items = step.get("items") or len(next(iter(inputs.streams.values())))
    return {"analyzer": analyzer.name, "load_s": load_s, "wall_s": wall, "items": items,
            "busy_s": step.get("busy_s"), "batch_sizes": step.get("batch_sizes"), "peak_mb": peak,
            "events": len(track.events), "track": track}


def measure_quality_measures(streams: dict, seconds: float) -> dict[str, Any]:
    """content_quality's model-free part alone (what runs on the CPU whatever the device)."""
    from analyzers.content_quality import ContentQuality
    from analyzers._vision.quality import frame_measures

    spec = ContentQuality().frame_specs()[1]
    stream = streams[spec]
    t0 = time.perf_counter()
    n = 0
    for _, frame in stream:
        frame_measures(frame)
        n += 1
    wall = time.perf_counter() - t0
    return {"analyzer": "quality_measures", "load_s": 0.0, "wall_s": wall, "items": n, "busy_s": wall,
            "batch_sizes": None, "peak_mb": None, "events": 0, "track": None}


def yolo_forward(path: Path, device: str) -> list[dict[str, Any]]:
    """YOLOv8x's bare forward pass at 640x640 fp16 (no letterbox, no NMS), batch 1 and 32."""
    import torch

    from analyzers._vision.yolo import load_yolo

    net = load_yolo(path, device, "fp16", "bench")
    rows = []
    for batch in (1, 8, 32):
        x = torch.rand(batch, 3, 640, 640, device=device, dtype=torch.float16)
        with torch.inference_mode():
            for _ in range(5):
                net.net(x)
            torch.cuda.synchronize()
            reps = max(5, 200 // batch)
            t0 = time.perf_counter()
            for _ in range(reps):
                net.net(x)
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) / (reps * batch) * 1000
        rows.append({"batch": batch, "ms_per_image": ms})
    return rows


def num(v: float) -> str:
    """1 decimal, or 2 significant digits under 1 (0.043)."""
    return f"{v:.1f}" if v >= 1 else f"{v:.2g}"


def busy_peak(r: dict) -> tuple[str, str]:
    """A row's busy share (busy s over wall s) and peak VRAM MB as table cells, ``-`` where unknown."""
    busy = f"{r['busy_s'] / r['wall_s']:.2f}" if r.get("busy_s") is not None and r["wall_s"] else "-"
    peak = f"{r['peak_mb']:.0f}" if r.get("peak_mb") is not None else "-"
    return busy, peak


def sampling(analyzer: Any) -> str:
    parts = []
    for spec in analyzer.frame_specs():
        size = f"{spec.width or 'auto'}x{spec.height or 'auto'}"
        parts.append(f"{spec.fps:g} fps {size} {spec.pix_fmt}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N")
    ap.add_argument("--minutes", type=float, default=None, help="length of the synthetic clip (default: 10 on cuda, 2 on cpu)")
    ap.add_argument("--video", type=Path, default=None, help="decode this file instead of the synthetic clip")
    ap.add_argument("--analyzers", default=None, help="comma-separated subset")
    ap.add_argument("--with-clip", action="store_true", help="cpu: also content_quality with CLIP ViT-B-32 on the CPU")
    ap.add_argument("--ocr-threads", default=None,
                    help="also text_overlay with these rapidocr thread counts (comma list, e.g. 4,8), one engine")
    ap.add_argument("--ocr-workers", default=None,
                    help="also text_overlay with these numbers of worker processes, 2 threads each (comma list, "
                         "e.g. 2,4,6)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    device = cli_device(args.device)
    cuda = device.startswith("cuda")
    minutes = args.minutes if args.minutes is not None else (10.0 if cuda else 2.0)
    names = args.analyzers.split(",") if args.analyzers else (GPU_SET + ["yolo_forward"] if cuda else list(CPU_SET))
    if not cuda and args.with_clip and "content_quality" not in names:
        names.append("content_quality")
    load_before = load_text()
    work = Path(tempfile.mkdtemp(prefix="vision_bench_"))
    t_build = time.perf_counter()
    models = build_models(work / "models", names, device)
    logger.info("models built in %.1f s: %s", time.perf_counter() - t_build, ", ".join(models))
    analyzers = {n: make_analyzer(n, device) for n in names if n not in ("quality_measures", "yolo_forward")}
    extra = []  # (label, analyzer): YOLOv8x at a bigger batch, to see what batching buys on a GPU
    if cuda and "object_detection" in analyzers:
        extra.append(("object_detection", make_analyzer("object_detection", device, {"batch_size": 64})))
    for threads in (args.ocr_threads.split(",") if args.ocr_threads else []):
        extra.append(("text_overlay", make_analyzer("text_overlay", "cpu", {"threads": int(threads), "workers": 1})))
    for workers in (args.ocr_workers.split(",") if args.ocr_workers else []):
        extra.append(("text_overlay", make_analyzer("text_overlay", "cpu", {"threads": 2, "workers": int(workers)})))
    specs = [s for a in analyzers.values() for s in a.frame_specs()]
    if "quality_measures" in names:
        from analyzers.content_quality import ContentQuality

        specs += ContentQuality().frame_specs()
    t0 = time.perf_counter()
    if args.video:
        streams, meta = decoded_streams(args.video, specs, work / "frames")
        seconds = meta.duration
        source = f"{args.video.name} ({meta.width}x{meta.height}, {seconds:.1f} s), decoded once by the framework"
    else:
        from framework import VideoMeta

        seconds = minutes * 60
        streams = synthetic_streams(specs, seconds, work / "frames")
        meta = VideoMeta(path="synthetic.mp4", content_hash="synthetic", size_bytes=1, duration=seconds,
                         has_video=True, width=1280, height=720)
        source = f"synthetic 1280x720 clip, {minutes:g} min (panning texture, moving boxes, captions, a face photo)"
    logger.info("streams ready in %.1f s", time.perf_counter() - t0)

    rows = []
    for name in names:
        if name == "yolo_forward":
            continue
        logger.info("measuring %s", name)
        if name == "quality_measures":
            rows.append(measure_quality_measures(streams, seconds) | {"sampling": "1 fps 640xauto gray",
                                                                      "what": "model-free measures (sharpness, noise, exposure)"})
            continue
        a = analyzers[name]
        row = measure(a, models, streams, meta, device)
        row["sampling"] = sampling(a)
        row["what"] = {"object_detection": "YOLOv8x", "product_detection": "YOLOv8s", "body_pose": "YOLOv8x-pose",
                       "background_segmentation": "SegFormer-b0 (mit-b0, 150 classes)",
                       "content_quality": "CLIP ViT-B-32 + measures", "composition_analysis": "CLIP ViT-B-32 + measures",
                       "text_overlay": "rapidocr PP-OCRv4 (real weights)",
                       "eye_tracking": "mediapipe face detection + FaceMesh/iris (real weights)"}.get(name, name)
        row["precision"] = getattr(getattr(a, "yolo", None), "precision", None) or getattr(a, "run_precision", None) or (
            getattr(getattr(a, "clip", None), "precision", None))
        a.unload()
        rows.append(row)
    for name, a in extra:
        if name == "text_overlay":
            logger.info("measuring %s: %d rapidocr engines of %d threads", name, a.params.workers, a.params.threads)
            row = measure(a, models, streams, meta, "cpu")
            row.update(sampling=sampling(a), what=f"rapidocr PP-OCRv4, {a.params.workers} x {a.params.threads} threads")
        else:
            logger.info("measuring %s at batch %d", name, a.params.batch_size)
            row = measure(a, models, streams, meta, device)
            row.update(sampling=sampling(a), what=f"YOLOv8x, batch_size {a.params.batch_size}",
                       precision=a.yolo.precision)
        a.unload()
        rows.append(row)
    forward = yolo_forward(models["yolov8x"], device) if cuda and "yolo_forward" in names else []

    lines = [f"# Vision analyzer throughput ({'GPU' if cuda else 'CPU'})", "",
             f"- command: `python bench/vision_throughput.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
             *host_lines(load_before, cuda)]
    lines += [f"- input: {source}; streams written before timing (decoding is not timed)",
              "- weights: " + ("real-architecture random weights for the GPU models (speed/memory only, outputs meaningless)"
                               if cuda else "rapidocr and mediapipe ship real weights; CLIP (if run) random"), "",
              "| analyzer | model | sampling | precision | frames | wall s | frames/s | video s per s | busy share | "
              "peak VRAM MB | batch sizes |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fps = r["items"] / r["wall_s"] if r["wall_s"] else float("nan")
        busy, peak = busy_peak(r)
        lines.append(f"| {r['analyzer']} | {r['what']} | {r['sampling']} | {r.get('precision') or '-'} | {r['items']} | "
                     f"{r['wall_s']:.2f} | {num(fps)} | {num(seconds / r['wall_s'])} | {busy} | {peak} | "
                     f"{r['batch_sizes'] or '-'} |")
    if forward:
        lines += ["", "YOLOv8x bare forward pass, 640x640, fp16, PyTorch eager (no TensorRT), random weights:", "",
                  "| batch | ms per image | vs Ultralytics' 3.53 ms (A100, TensorRT FP16, batch 1) |", "|---|---|---|"]
        for f in forward:
            lines.append(f"| {f['batch']} | {f['ms_per_image']:.2f} | {f['ms_per_image'] / ULTRALYTICS_YOLOV8X_MS:.2f}x |")
    lines += ["", "busy share: the device step's time inside forward() (outputs ready) over the analyzer's wall time; "
              "on the CPU it is the share spent in the model/engine. video s per s: clip seconds analysed per wall second."]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
