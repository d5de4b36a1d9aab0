"""Where the time of one batched ``generate`` goes: the description family's path against a bare
``model.generate`` on the same inputs, prefill alone, and a short profile.

Builds Qwen2-VL-7B at real size with random weights (as ``bench/vlm_throughput.py`` does), makes
chunks of random frames (20 frames at 448x252, the analyzer's defaults for a 10 s chunk) with the
analyzer's own prompt, prepares them with the ``qwen2_vl`` family (``prepare`` on the CPU, as the
device step does) and times, per batch size:

- ``family``: ``Qwen2VL.generate`` (the analyzer's call: ``min_new_tokens`` forced, greedy);
- ``bare``: ``model.generate(**inputs, max_new_tokens=N, min_new_tokens=N, do_sample=False)``;
- ``prefill``: the same with one new token; ``per step``: (family - prefill) / (N - 1).

Then profiles a ``generate`` of 4 tokens at the largest batch and prints the operators with the
most CUDA and CPU time. Random weights: speed only.

    python bench/vlm_generate_probe.py --batches 1,8,60 --out bench/results/vlm_generate_probe_h200.md
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2-vl-7b-instruct")
    ap.add_argument("--batches", default="1,8,60")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--work", type=Path, default=Path("/dev/shm/vlm_probe"))
    ap.add_argument("--attention", default="sdpa", help="sdpa or eager")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--static-repeats", type=int, default=0,
                    help="also time the family's generate with a static KV cache (transformers compiles its "
                         "decoding step on CUDA) this many times on the same inputs at the largest batch")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    import torch

    from analyzers.vlm.families.base import GenerationOptions, Request
    from analyzers.vlm.families.qwen import Qwen2VL
    from analyzers.vlm.prompts import DEFAULT_PROMPT
    from bench.vlm_throughput import build_snapshot

    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    snap = a.work / a.model
    if not (snap / "config.json").is_file():
        t0 = time.perf_counter()
        build_snapshot(a.model, snap, "cuda", "bfloat16")
        say(f"<!-- snapshot built in {time.perf_counter() - t0:.0f} s -->")
    N = a.new_tokens
    family = Qwen2VL(GenerationOptions(max_new_tokens=N, min_new_tokens=N))
    family.attention = a.attention
    family.load(snap, "cuda", "bf16")
    model = family.model
    rng = np.random.default_rng(0)
    batches = [int(b) for b in a.batches.split(",")]
    reqs = []
    for i in range(max(batches)):
        times = [i * 10.0 + k * 0.5 for k in range(a.frames)]
        frames = rng.integers(0, 255, size=(a.frames, 252, 448, 3), dtype=np.uint8)
        reqs.append(Request(index=i, start=i * 10.0, end=i * 10.0 + 10.0, times=times, frames=frames,
                            instruction=DEFAULT_PROMPT))

    def timed(fn) -> float:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    say(f"# generate probe: {a.model}, {a.attention}, {N} new tokens, {a.frames} frames of 448x252 per chunk")
    say(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    say("")
    say("| batch | prompt tokens | prepare s | family s | bare s | prefill s | per step ms | video s/s (family) | peak GB |")
    say("|---|---|---|---|---|---|---|---|---|")
    warm = family.prepare(reqs[:1])
    family.generate(warm)
    for b in batches:
        t0 = time.perf_counter()
        prepared = family.prepare(reqs[:b])
        prep = time.perf_counter() - t0
        inputs = {k: (v.to("cuda") if hasattr(v, "to") else v) for k, v in prepared["inputs"].items()}
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(torch.bfloat16)
        torch.cuda.reset_peak_memory_stats()
        fam = timed(lambda: family.generate(prepared))
        with torch.inference_mode():
            bare = timed(lambda: model.generate(**inputs, max_new_tokens=N, min_new_tokens=N, do_sample=False,
                                                pad_token_id=family.tokenizer.pad_token_id))
            pre = timed(lambda: model.generate(**inputs, max_new_tokens=1, do_sample=False,
                                               pad_token_id=family.tokenizer.pad_token_id))
        step = (fam - pre) / max(1, N - 1) * 1000
        peak = torch.cuda.max_memory_allocated() / 2**30
        say(f"| {b} | {inputs['input_ids'].shape[1]} | {prep:.2f} | {fam:.2f} | {bare:.2f} | {pre:.2f} | {step:.1f} | "
            f"{b * 10.0 / fam:.1f} | {peak:.1f} |")
    if a.static_repeats:
        b = max(batches)
        static = Qwen2VL(GenerationOptions(max_new_tokens=N, min_new_tokens=N, static_cache=True))
        static.attention = a.attention
        static.load(snap, "cuda", "bf16")
        prepared = static.prepare(reqs[:b])
        say("")
        say(f"## static KV cache at batch {b}: the same inputs {a.static_repeats} times (the first compiles)")
        say("| call | family s | video s/s | notes |")
        say("|---|---|---|---|")
        for i in range(a.static_repeats):
            took = timed(lambda: static.generate(prepared))
            say(f"| {i + 1} | {took:.2f} | {b * 10.0 / took:.1f} | {'; '.join(static.notes) or '-'} |")
    if not a.no_profile:
        from torch.profiler import ProfilerActivity, profile

        b = max(batches)
        prepared = family.prepare(reqs[:b])
        inputs = {k: (v.to("cuda") if hasattr(v, "to") else v) for k, v in prepared["inputs"].items()}
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(torch.bfloat16)
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                           pad_token_id=family.tokenizer.pad_token_id)
            torch.cuda.synchronize()
        say("")
        say(f"## profile: generate of 4 tokens at batch {b}")
        say("```")
        say(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=50))
        say(prof.key_averages().table(sort_by="cpu_time_total", row_limit=12, max_name_column_width=50))
        say("```")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
