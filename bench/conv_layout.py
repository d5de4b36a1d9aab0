"""The GPU analyzers' convolution networks, NCHW against channels-last, alone on a GPU.

SegFormer-b0 ran 4x faster channels-last on an H200 (``bench/results/segformer_step_h200.md``: as it
ran, NCHW, the GPU waited on the calls). This times the other convolution networks of the default set
the same way, each as its analyzer loads it: text_overlay's PP-OCRv4 detector (the ONNX file in
rapidocr_onnxruntime's wheel, through ``analyzers._vision.onnx_torch.torch_module``, fp32, 16 frames
at 960x544) and the YOLOs (``ultralytics`` models built from their yaml with random weights, fused as
``analyzers._vision.yolo.YoloNet`` does, fp16, 16 frames at 640x384). Speed only. Each row a fresh
module; 3 batches of warm-up, then ``--batches`` timed.

    python bench/conv_layout.py --models ocr_det,yolov8x,yolov8s --batches 40
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def ocr_det(device: str):
    import rapidocr_onnxruntime

    from analyzers._vision.onnx_torch import torch_module

    models = Path(rapidocr_onnxruntime.__file__).parent / "models"
    det = sorted(models.glob("*_det_*.onnx")) or sorted(models.glob("*det*.onnx"))
    return torch_module(det[0], "conv_layout's text detector").to(device).eval(), "float32", (3, 544, 960)


def yolo(name: str):
    def build(device: str):
        from ultralytics.nn.tasks import DetectionModel

        net = DetectionModel(f"{name}.yaml", verbose=False).fuse(verbose=False)
        return net.to(device).eval(), "float16", (3, 384, 640)
    return build


MODELS = {"ocr_det": ocr_det, "yolov8x": yolo("yolov8x"), "yolov8s": yolo("yolov8s")}


LAYOUTS = {"NCHW": (False, False), "NHWC input, NCHW weights": (True, False), "channels-last": (True, True)}


def timed(name: str, device: str, layout: str, batch: int, batches: int) -> tuple[str, float]:
    """ms a frame of ``name`` in ``layout`` (one of ``LAYOUTS``: the batches', the weights' memory format;
    text_overlay's detector ran "NHWC input, NCHW weights" before its ``det_channels_last``)."""
    import torch

    channels_last, weights_last = LAYOUTS[layout]
    module, dtype, shape = MODELS[name](device)
    dtype = getattr(torch, dtype)
    module = module.to(dtype)
    if weights_last:
        module = module.to(memory_format=torch.channels_last)
    frames = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8)
    frames = frames.pin_memory() if device.startswith("cuda") else frames

    def step() -> None:
        with torch.inference_mode():
            x = frames.to(device, non_blocking=True).to(dtype) / 255.0
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = module(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            out.float().cpu()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(batches):
        step()
    ms = 1000 * (time.perf_counter() - t0) / (batches * batch)
    return str(dtype).replace("torch.", ""), ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/conv_layout.py --models ocr_det,yolov8x --batches 40")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=40)
    args = ap.parse_args()
    import torch

    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"torch {torch.__version__}, {where}; batches of {args.batch}, {args.batches} timed\n")
    print("| model | dtype | layout | ms a frame |")
    print("|---|---|---|---|")
    for name in args.models.split(","):
        for layout in LAYOUTS:
            dtype, ms = timed(name, args.device, layout, args.batch, args.batches)
            print(f"| {name} | {dtype} | {layout} | {ms:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
