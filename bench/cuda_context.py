"""How much device memory a process's CUDA context takes outside torch's allocator: the figure behind
``framework.own_process.CONTEXT_MB`` (each GPU analyzer in a process of its own has one).

Each repeat starts a fresh interpreter that creates its context (``torch.zeros(1)`` on the GPU), then
runs what the analyzers' children run first: a cuBLAS matrix product, a cuDNN convolution, an SDPA
call, a CUDA graph. After each step it reads the device's used memory (total less free,
``torch.cuda.mem_get_info``) less what torch's allocator holds (``memory_reserved``): on a GPU that
nothing else uses, that is this process's context and libraries. Run it before anything else on the
device machine (another process's memory would count too; the report says what was used before).

    python bench/cuda_context.py --repeats 3          # on the GPU machine; prints a table
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, torch
dev = torch.device("cuda")
out = []
def note(step):
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info(dev)
    out.append((step, (total - free - torch.cuda.memory_reserved(dev)) / 2**20))
torch.zeros(1, device=dev); note("context (torch.zeros(1))")
a = torch.randn(1024, 1024, device=dev, dtype=torch.float16); (a @ a).sum().item(); note("+ cuBLAS (fp16 matmul)")
x = torch.randn(8, 3, 224, 224, device=dev, dtype=torch.float16)
w = torch.randn(16, 3, 3, 3, device=dev, dtype=torch.float16)
torch.nn.functional.conv2d(x, w).sum().item(); note("+ cuDNN (fp16 conv)")
q = torch.randn(4, 8, 256, 64, device=dev, dtype=torch.bfloat16)
torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().item(); note("+ SDPA (bf16)")
g = torch.cuda.CUDAGraph(); s = torch.zeros(1, device=dev)
with torch.cuda.graph(g):
    s.add_(1)
g.replay(); note("+ a CUDA graph")
print(json.dumps({"steps": out, "device": torch.cuda.get_device_name(dev), "torch": torch.__version__,
                  "allocator_reserved_mb": torch.cuda.memory_reserved(dev) / 2**20}))
"""


def context_estimate() -> float:
    """``own_process.CONTEXT_MB``, read from its source (the device image may lack the framework's
    dependencies: this script needs only torch)."""
    import re
    from pathlib import Path

    source = (Path(__file__).resolve().parents[1] / "framework" / "own_process.py").read_text(encoding="utf-8")
    return float(re.search(r"^CONTEXT_MB = ([\d.]+)", source, re.M).group(1))  # type: ignore[union-attr]


def used_before() -> str:
    """What nvidia-smi says the GPU has in use before the children start (context for the reader)."""
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=memory.used,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown (no nvidia-smi)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/cuda_context.py --repeats 3")
    ap.add_argument("--repeats", type=int, default=3, help="fresh interpreters, one after the other")
    args = ap.parse_args(argv)
    before = used_before()
    runs = []
    for _ in range(args.repeats):
        proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"# CUDA context outside the allocator: {runs[0]['device']}, torch {runs[0]['torch']}")
    print(f"\nGPU memory in use before the children (nvidia-smi): {before}\n")
    print("| step | " + " | ".join(f"repeat {i + 1} MB" for i in range(len(runs))) + " |")
    print("|---|" + "---|" * len(runs))
    for k, (step, _) in enumerate(runs[0]["steps"]):
        print(f"| {step} | " + " | ".join(f"{r['steps'][k][1]:.0f}" for r in runs) + " |")
    worst = max(r["steps"][-1][1] for r in runs)
    estimate = context_estimate()
    print(f"\nown_process.CONTEXT_MB = {estimate:.0f}; largest after every step: {worst:.0f} MB "
          f"({'within' if worst <= estimate else 'OVER'} the estimate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
