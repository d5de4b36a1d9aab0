"""Where a decoding step of fusion's summary model goes on a GPU: the transformers backend's graphed
greedy loop on a real-size Qwen2.5-1.5B architecture (random weights, bf16), at several prompt
lengths, then one generation under ``torch.profiler`` with the kernels ranked by GPU time.

First run (sixteenth session, ``bench/results/fusion_step_h200.md``): SDPA's memory-efficient kernel
was most of a step after a long prompt; ``framework.generation.decode_attention`` came of it.
End to end (fifteenth session) the summary's 764 graph-replayed steps took 4.1-4.5 s: 5.4-5.9 ms a
step for 1.5 B parameters, with nothing else on the GPU. Reading the weights once takes about
0.7 ms on an H200, so most of a step is something else; this says what.

Random weights never stop, so every generation makes exactly ``--new`` tokens: this measures speed,
never quality.

    python bench/fusion_step_profile.py --attn framework_decode,sdpa,eager --out $OUT/fusion_step.md
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def timed_generate(backend, prompt: int, new: int) -> tuple[float, dict]:
    """One generation of ``new`` tokens after a random prompt of ``prompt`` tokens: (seconds, graphs' account)."""
    inputs = random_prompt(backend, prompt)
    before = counters(backend)
    sync()
    t = time.perf_counter()
    backend._generate(inputs, new, 0.0)
    sync()
    wall, after = time.perf_counter() - t, counters(backend)
    return wall, {k: round(after[k] - before[k], 3) for k in after}


def random_prompt(backend, prompt: int) -> dict:
    """One row of ``prompt`` random token ids within the model's vocabulary, all attended."""
    import torch

    ids = torch.randint(10, min(30000, backend.model.config.vocab_size), (1, prompt))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def counters(backend) -> dict:
    g = backend.graphs
    return {"replayed_steps": g.replays, "prefill_s": g.prefill_s, "loop_s": g.loop_s} if g is not None else \
        {"replayed_steps": 0, "prefill_s": 0.0, "loop_s": 0.0}


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def kernel_table(backend, prompt: int, new: int, rows: int) -> str:
    """One generation under the profiler: the top kernels by GPU time, as markdown."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    inputs = random_prompt(backend, prompt)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        backend._generate(inputs, new, 0.0)
        sync()
    events = [e for e in prof.key_averages() if getattr(e, "device_time_total", 0) > 0]
    if not events:  # (no GPU: the CPU ops instead, so the table is never empty)
        events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
        for e in events:
            e.device_time_total, e.self_device_time_total = e.cpu_time_total, e.self_cpu_time_total
    events.sort(key=lambda e: e.self_device_time_total, reverse=True)
    total = sum(e.self_device_time_total for e in events) or 1
    lines = ["| kernel / op | calls | GPU time ms (self) | share | per call us |", "|---|---|---|---|---|"]
    for e in events[:rows]:
        lines.append(f"| `{e.key[:90]}` | {e.count} | {e.self_device_time_total / 1e3:.1f} | "
                     f"{100 * e.self_device_time_total / total:.1f}% | {e.self_device_time_total / max(1, e.count):.1f} |")
    lines.append(f"\nself GPU time of all ops: {total / 1e3:.1f} ms for {new} new tokens after {prompt} prompt tokens")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", default="1000,5500", help="prompt lengths to time (comma list)")
    ap.add_argument("--new", type=int, default=256, help="new tokens per generation")
    ap.add_argument("--rows", type=int, default=25, help="kernels listed (0: no profiled generation)")
    ap.add_argument("--attn", default="framework_decode,framework_decode_products,sdpa",
                    help="attention implementations to time (comma list: framework_decode (the backend's "
                         "default on a GPU: generation.decode_attention, its Triton kernel there), "
                         "framework_decode_products (the same without the kernel), sdpa, eager)")
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny chat model on this machine's device "
                    "(checks this script, measures nothing)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch

    from framework.devices import attention_without_cudnn
    from framework.generation import decode_attention
    from framework.llm.transformers_backend import TransformersBackend
    from gpu_summary_llm import build_model

    assert args.tiny or torch.cuda.is_available(), "needs a CUDA device (or --tiny)"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    attention_without_cudnn(torch)  # as a run's executor does when it first uses a GPU
    lines = [f"# Fusion's decoding step on {torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu'}", "",
             f"torch {torch.__version__}; {'the tests tiny chat model' if args.tiny else 'Qwen2.5-1.5B architecture'}, "
             "random weights, bf16; "
             f"`python bench/fusion_step_profile.py --prompts {args.prompts} --new {args.new} --attn {args.attn}`", "",
             "| attention | prompt tokens | new tokens | generate s | prefill s | loop s | replayed steps | ms per step |",
             "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        if args.tiny:
            from framework.testing.llm import make_tiny_chat_model

            make_tiny_chat_model(folder)
        else:
            folder, _ = build_model(folder)
        for attn in args.attn.split(","):
            # framework_decode_products: framework_decode without its Triton kernel (FRAMEWORK_DECODE_KERNEL=0)
            os.environ["FRAMEWORK_DECODE_KERNEL"] = "0" if attn == "framework_decode_products" else "1"
            impl = "framework_decode" if attn.startswith("framework_decode") else attn
            backend = TransformersBackend({"model": str(folder), "device": device, "dtype": "bfloat16"})
            backend.load()
            decode_attention.register()  # (on a GPU the backend did; here for --tiny on a CPU)
            if hasattr(backend.model, "set_attn_implementation"):
                backend.model.set_attn_implementation(impl)
            else:
                backend.model.config._attn_implementation = impl
            timed_generate(backend, 256, 32)  # warm-up: kernels chosen, graph pool made
            for prompt in (int(p) for p in args.prompts.split(",")):
                wall, d = timed_generate(backend, prompt, args.new)
                steps = d.get("replayed_steps", 0)
                per = 1e3 * d.get("loop_s", 0) / max(1, steps)
                lines.append(f"| {attn} | {prompt} | {args.new} | {wall:.2f} | {d.get('prefill_s', 0):.3f} | "
                             f"{d.get('loop_s', 0):.3f} | {steps} | {per:.2f} |")
                print(lines[-1], file=sys.stderr, flush=True)
            if attn == args.attn.split(",")[0] and args.rows:
                last = int(args.prompts.split(",")[-1])
                table = kernel_table(backend, last, args.new, args.rows)
            del backend
            if device == "cuda":
                torch.cuda.empty_cache()
    from framework.generation import decode_kernel

    if decode_kernel._broken:
        lines += ["", f"The Triton kernel failed and was set aside: {decode_kernel._broken[0]}"]
    if args.rows:
        lines += ["", f"## Kernels of one generation ({args.attn.split(',')[0]}, the last prompt length)", "", table]
    report = "\n".join(lines) + "\n"
    if args.out:  # (the rows went to stderr as they came)
        args.out.write_text(report)
        logging.getLogger(__name__).info("wrote %s", args.out)
    else:
        print(report)


if __name__ == "__main__":
    main()
