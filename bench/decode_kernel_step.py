"""One decoding step's attention, one layer, three ways: ``decode_kernel`` (Triton, flash-decoding), the two
matrix products per key/value head it replaced, and SDPA (what transformers runs without either), on a GPU.

Shapes: fusion's summary model (Qwen2.5-1.5B: 12 query heads on 2 key/value heads, head dimension 128, one row)
after 1000, 3000 and 5500 tokens; the description VLM (Qwen2-VL-7B: 28 on 4) at batches of 60 and 114 chunks of
1700 tokens. Each way's calls are captured in a CUDA graph, as the decoding loop replays them, and its replays
timed by CUDA events (per call: the mean of 5 replays of 50 calls), in bfloat16, with a boolean mask that
lets through all but the last 5 % (a static cache's unfilled end).

    python bench/decode_kernel_step.py [--out FILE]
    TRITON_INTERPRET=1 python bench/decode_kernel_step.py --cpu-check
        (this script's code on the CPU, tiny shapes, one call each: measures nothing)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHAPES = [  # (label, rows, query heads, key/value heads, keys)
    ("summary model, 1000 tokens", 1, 12, 2, 1000),
    ("summary model, 3000 tokens", 1, 12, 2, 3000),
    ("summary model, 5500 tokens", 1, 12, 2, 5500),
    ("VLM, 60 chunks", 60, 28, 4, 1700),
    ("VLM, 114 chunks", 114, 28, 4, 1700),
]
TINY = [("tiny", 2, 4, 2, 150)]


def ways(torch):
    """name -> function(q, k, v, mask, scale) returning (rows, 1, heads, dim)."""
    from framework.generation import decode_attention, decode_kernel

    class Module(torch.nn.Module):
        pass

    def sdpa(q, k, v, m, scale):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        module = Module()
        module.num_key_value_groups, module.is_causal = q.shape[1] // k.shape[1], True
        return sdpa_attention_forward(module, q, k, v, m, scaling=scale)[0]

    return {"decode_kernel": decode_kernel.attend, "two products": decode_attention.products, "sdpa": sdpa}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-check", action="store_true", help="tiny shapes on the CPU, one call each (Triton's "
                    "interpreter: set TRITON_INTERPRET=1); checks this script, measures nothing")
    ap.add_argument("--calls", type=int, default=50, help="calls captured in one CUDA graph")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch
    from fp8_linear import graph_ms

    from framework.generation import decode_kernel

    cuda = not args.cpu_check
    assert not cuda or torch.cuda.is_available(), "needs a CUDA device (or --cpu-check)"
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float16)
    funcs = ways(torch)
    lines = [f"# A decoding step's attention, one layer ({torch.cuda.get_device_name(0) if cuda else 'cpu check'})",
             "", f"torch {torch.__version__}; {dtype}; `python bench/decode_kernel_step.py`", "",
             "| shape | rows | heads / kv heads | keys | stretches | " + " | ".join(f"{w} us" for w in funcs)
             + " | kernel's largest difference |", "|" + "---|" * (6 + len(funcs))]
    for label, rows, heads, kv_heads, keys in (TINY if args.cpu_check else SHAPES):
        gen = torch.Generator(device=device).manual_seed(0)
        q = torch.randn(rows, heads, 1, 128, device=device, dtype=dtype, generator=gen)
        k, v = (torch.randn(rows, kv_heads, keys, 128, device=device, dtype=dtype, generator=gen) for _ in range(2))
        m = torch.ones(rows, 1, 1, keys, device=device, dtype=torch.bool)
        m[..., int(keys * 0.95):] = False
        scale = 128 ** -0.5
        times = {}
        for name, fn in funcs.items():
            if not cuda:
                fn(q, k, v, m, scale)
                times[name] = float("nan")
                continue
            times[name] = 1e3 * graph_ms(lambda: fn(q, k, v, m, scale), args.calls)  # (fp8_linear's timer)
        diff = (decode_kernel.attend(q, k, v, m, scale).float()
                - decode_kernel.reference(q, k, v, m, scale)).abs().max()
        splits = decode_kernel.splits_for(rows * kv_heads, keys, decode_kernel._multiprocessors(q.device))[0]
        lines.append(f"| {label} | {rows} | {heads} / {kv_heads} | {keys} | {splits} | "
                     + " | ".join(f"{times[w]:.1f}" for w in funcs) + f" | {diff.item():.2g} |")
        print(lines[-1], file=sys.stderr, flush=True)
    if decode_kernel._broken:
        lines += ["", f"The kernel was set aside: {decode_kernel._broken[0]}"]
    report = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
