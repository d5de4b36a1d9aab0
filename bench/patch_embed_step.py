"""Qwen2-VL's patch embedding on a GPU: the 3-D convolution against the matrix product, by patch count.

The description analyzer computes Qwen2-VL's patch embedding as a matrix product
(``analyzers/vlm/families/patch_embed.py``) instead of transformers' ``Conv3d``, on reports that cuDNN
has no fast kernel for a convolution whose stride is its kernel. This times both ways at Qwen2-VL-7B's
sizes (3 channels x 2 frames x 14 x 14 pixels a patch, 1280 out), in bf16 and fp16, from one frame
group's 576 patches to a whole batch of 64 chunks (about 172,800), and checks they agree. Random
weights: speed only. Needs only torch.

    python bench/patch_embed_step.py --patches 576,17280,172800 --repeats 5
"""
from __future__ import annotations

import argparse
import sys
import time


def timed(fn, x, repeats: int) -> float:
    import torch

    fn(x)  # first call: cuDNN's choice of kernel, the allocator's first blocks
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - t0) / repeats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/patch_embed_step.py --patches 576,172800")
    ap.add_argument("--patches", default="576,17280,172800")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import torch
    import torch.nn.functional as F

    volume, out = 3 * 2 * 14 * 14, 1280
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, {torch.cuda.get_device_name()}\n")
    print("| dtype | patches | Conv3d ms | matrix product ms | ratio | relative difference |")
    print("|---|---|---|---|---|---|")
    for dtype in (torch.bfloat16, torch.float16):
        conv = torch.nn.Conv3d(3, out, kernel_size=(2, 14, 14), stride=(2, 14, 14), bias=False).to("cuda", dtype)
        weight = conv.weight.reshape(out, volume)

        def by_conv(x):
            with torch.no_grad():
                return conv(x.view(-1, 3, 2, 14, 14)).view(-1, out)

        def by_product(x):
            with torch.no_grad():
                return F.linear(x, weight)

        for n in (int(p) for p in args.patches.split(",")):
            x = torch.randn(n, volume, device="cuda", dtype=dtype)
            a, b = by_conv(x).float(), by_product(x).float()
            diff = float((a - b).norm() / a.norm())
            c_ms, p_ms = timed(by_conv, x, args.repeats), timed(by_product, x, args.repeats)
            print(f"| {str(dtype).replace('torch.', '')} | {n} | {c_ms:.3f} | {p_ms:.3f} | {c_ms / p_ms:.1f}x | "
                  f"{diff:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
