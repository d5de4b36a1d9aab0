"""SegFormer-b0's device step alone on a GPU: milliseconds a frame by precision and cuDNN setting, and its kernels.

In the end-to-end runs background_segmentation was busy on the GPU for 9-13 s for 600 frames beside the VLM,
and 2.9 s alone (``vision_throughput_h200.md``: 4.8 ms a frame in fp16), far from what 8 GFLOP a frame
should take on an H200. This times the analyzer's forward (``analyzers/background_segmentation.py``: uint8
frames to the device, normalised, the model, the per-pixel argmax, back to the host; copied here so that
the script needs only torch and transformers) on random 512x512 frames with SegFormer-b0's architecture
(150 ADE20K classes, random weights: speed only), then lists the GPU kernels of the slowest setting.

    python bench/segformer_step.py --frames 600 --batch 16
"""
from __future__ import annotations

import argparse
import sys
import time


def build(dtype, channels_last: bool):
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    model = SegformerForSemanticSegmentation(SegformerConfig(num_labels=150)).to("cuda", dtype).eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def step(model, batch, mean, std, channels_last: bool):
    import torch

    with torch.inference_mode():
        x = batch.to("cuda", non_blocking=True).to(mean.dtype)
        x = (x - mean) / std
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(pixel_values=x).logits
        return logits.argmax(dim=1).to(torch.int16).cpu().numpy()


def timed(frames, batch_size: int, dtype, benchmark: bool, channels_last: bool) -> tuple[float, float]:
    import torch

    torch.backends.cudnn.benchmark = benchmark
    model = build(dtype, channels_last)
    mean = torch.tensor([123.7, 116.3, 103.5], dtype=dtype, device="cuda").view(1, 3, 1, 1)
    std = torch.tensor([58.4, 57.1, 57.4], dtype=dtype, device="cuda").view(1, 3, 1, 1)
    batches = [frames[i:i + batch_size] for i in range(0, len(frames), batch_size)]
    for b in batches[:3]:  # warm-up (and cuDNN's search, when benchmark is on)
        step(model, b, mean, std, channels_last)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in batches:
        step(model, b, mean, std, channels_last)
    wall = time.perf_counter() - t0
    return wall, 1000 * wall / len(frames)


def kernels(frames, batch_size: int, dtype, top: int) -> list[str]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.backends.cudnn.benchmark = False
    model = build(dtype, False)
    mean = torch.tensor([123.7, 116.3, 103.5], dtype=dtype, device="cuda").view(1, 3, 1, 1)
    std = torch.tensor([58.4, 57.1, 57.4], dtype=dtype, device="cuda").view(1, 3, 1, 1)
    batches = [frames[i:i + batch_size] for i in range(0, 5 * batch_size, batch_size)]
    step(model, batches[0], mean, std, False)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for b in batches:
            step(model, b, mean, std, False)
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_device_time_total)[:top]
    total = sum(e.self_device_time_total for e in prof.key_averages())
    lines = ["| kernel / op | calls | GPU ms (self) | share |", "|---|---|---|---|"]
    lines += [f"| `{e.key[:90]}` | {e.count} | {e.self_device_time_total / 1000:.1f} | "
              f"{100 * e.self_device_time_total / max(total, 1):.1f}% |" for e in rows]
    lines.append(f"\nself GPU time of all ops: {total / 1000:.1f} ms for {len(batches)} batches of {batch_size}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/segformer_step.py --frames 600 --batch 16")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    import torch
    import transformers

    frames = torch.randint(0, 256, (args.frames, 3, 512, 512), dtype=torch.uint8).pin_memory()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.cuda.get_device_name()}; "
          f"{args.frames} random 512x512 frames, batches of {args.batch}\n")
    print("| precision | cudnn.benchmark | channels_last | wall s | ms a frame |")
    print("|---|---|---|---|---|")
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        for benchmark, channels_last in ((False, False), (True, False), (False, True), (True, True)):
            wall, ms = timed(frames, args.batch, dtype, benchmark, channels_last)
            print(f"| {name} | {benchmark} | {channels_last} | {wall:.2f} | {ms:.2f} |", flush=True)
    print("\nKernels of 5 batches, fp16, as the analyzer runs (no cudnn.benchmark, NCHW):\n")
    print("\n".join(kernels(frames, args.batch, torch.float16, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
