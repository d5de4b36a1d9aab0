"""FP8 linear layers (``analyzers._fp8.Fp8Linear``) against bf16 ``nn.Linear``: time per call and error.

The shapes are Qwen2-VL-7B's language model (hidden 3584, MLP 18944, 4 key/value heads of 128), at the
rows a decoding step has (one per chunk in the batch: 21, 60) and a prefill has (a batch of chunks
of about 1,440 tokens each). Each call is timed with CUDA events over ``--iters`` calls after a
warm-up, launched one by one and replayed from one CUDA graph (as the VLM's decoding steps run); the error is the relative Frobenius distance of the FP8 output from the bf16 one, on
random weights (std 0.02) and inputs (std 1): it shows how far the arithmetic moves, not what a
trained model would answer.

    python bench/fp8_linear.py --out bench/results/fp8_linear_h200.md
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analyzers._fp8 import fp8_linear_class  # noqa: E402
from bench.machine import write_report  # noqa: E402

SHAPES = [("q_proj, o_proj", 3584, 3584), ("k_proj, v_proj", 3584, 512), ("gate_proj, up_proj", 3584, 18944),
          ("down_proj", 18944, 3584)]


def time_ms(fn, iters: int) -> float:
    import torch

    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def graph_ms(fn, iters: int) -> float:
    """Per call, replaying ``iters`` calls captured in one CUDA graph (as the decoding steps run)."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(iters):
            fn()
    return time_ms(graph.replay, 5) / iters


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="21,60,8640,30240", help="rows per call (comma list)")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    cls = fp8_linear_class()
    lines = [f"GPU {torch.cuda.get_device_name(0)}; torch {torch.__version__}; python {platform.python_version()}",
             "", "| layer | in -> out | rows | bf16 ms | fp8 ms | fp8 / bf16 | in a CUDA graph: bf16 ms | fp8 ms | fp8 / bf16 "
             "| path | relative error |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, n_in, n_out in SHAPES:
        linear = torch.nn.Linear(n_in, n_out, bias=False, device=dev, dtype=torch.bfloat16)
        torch.nn.init.normal_(linear.weight, std=0.02)
        fp8 = cls(linear, dev)
        for rows in (int(r) for r in args.rows.split(",")):
            x = torch.randn(rows, n_in, device=dev, dtype=torch.bfloat16)
            with torch.inference_mode():
                ref, out = linear(x).float(), fp8(x).float()
                err = ((out - ref).norm() / ref.norm()).item()
                iters = max(5, args.iters if rows < 1000 else args.iters // 5)
                t_bf16 = time_ms(lambda: linear(x), iters)
                t_fp8 = time_ms(lambda: fp8(x), iters)
                g_bf16 = graph_ms(lambda: linear(x), iters)
                g_fp8 = graph_ms(lambda: fp8(x), iters)
            lines.append(f"| {label} | {n_in} -> {n_out} | {rows} | {t_bf16:.3f} | {t_fp8:.3f} | {t_fp8 / t_bf16:.2f} | "
                         f"{g_bf16:.3f} | {g_fp8:.3f} | {g_fp8 / g_bf16:.2f} | {fp8.path} | {err:.4f} |")
    write_report([f"`{' '.join(sys.argv)}`", "", *lines], args.out)


if __name__ == "__main__":
    main()
