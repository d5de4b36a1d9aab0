"""Benchmark the fusion step on synthetic timelines of 10 minutes, 1 hour and 2 hours.

Each (length, backend) runs in a fresh subprocess, which builds a synthetic timeline with
realistic densities (``analyzers.fusion.synthetic``: a shot every ~4 s, scenes, speech over
~60% of the time, objects, on-screen text, VLM descriptions, emotions, a third-party track,
10 Hz loudness and 8 Hz motion series), then runs the fusion analyzer once while a thread samples
the process RSS every 2 ms, and once more under ``tracemalloc`` for the Python heap alone.

Reported per run: units and events in the timeline; digest tokens (all scenes, uncut) against the
token budget; the largest prompt (or, extractive, the summary material) in tokens; the summary's
own size in tokens; LLM calls; wall time; RSS before fusion (interpreter + timeline); the RSS
increase during fusion; the tracemalloc peak of fusion; the process peak RSS. The last lines
give the 2 h / 10 min ratios measured in this one invocation.

Usage::

    python bench/bench_fusion.py                    # extractive backend
    python bench/bench_fusion.py --llm tiny         # also a tiny random transformers model (slow on CPU)
    python bench/bench_fusion.py --lengths 600,3600 --budget 4000
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mb() -> float:
    """VmHWM of this process (reset by exec, unlike ru_maxrss, which a forked child inherits)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(duration: float, backend: str, budget: int, model_dir: str | None) -> dict:
    """Runs in the subprocess: build the timeline, run fusion twice, return the measurements."""
    import tracemalloc

    from analyzers.fusion import Fusion
    from analyzers.fusion.synthetic import synthetic_timeline
    from framework import AnalyzerInputs
    from framework.llm import estimate_tokens
    from framework.plugins import build_plugin_manager
    from framework.summary import Summary

    host = build_plugin_manager(load_entrypoints=False)
    params: dict = {"token_budget": budget}
    if backend == "tiny":
        params.update(backend="transformers", model=model_dir, max_new_tokens=48, chunk_new_tokens=32,
                      backend_options={"device": "cpu"})
    timeline = synthetic_timeline(duration)
    n_events = sum(len(t.events) for t in timeline.tracks.values())
    n_samples = sum(len(s.times) for t in timeline.tracks.values() for s in t.series)

    def run_once():
        fusion = Fusion(params)
        try:
            fusion.load("cpu", {})
            return fusion.analyze(AnalyzerInputs(video=timeline.video, upstream=dict(timeline.tracks), host=host))
        finally:
            fusion.unload()

    if backend == "tiny":  # load torch/transformers before the baseline, so the increase is fusion's
        import torch  # noqa: F401
        import transformers  # noqa: F401
    gc.collect()
    before = _rss_mb()
    peak = [before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    track = run_once()
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_mb())

    summary = Summary.from_track(track)
    stats = track.data["fusion"]
    del track
    gc.collect()
    tracemalloc.start()
    run_once()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    text = "\n".join([summary.title, summary.paragraph, summary.detailed]
                     + [f"{c.start:.1f}-{c.end:.1f} {c.title} {c.summary}" for c in summary.chapters]
                     + [f"{m.time:.1f} {m.text}" for m in summary.key_moments])
    return {
        "duration": duration, "backend": backend, "events": n_events, "series_samples": n_samples,
        "units": stats["units"], "digest_tokens": stats["digest_tokens"], "calls": stats.get("calls", 0),
        "budget": summary.token_budget, "tokens_used": summary.tokens_used, "summary_tokens_est": estimate_tokens(text),
        "wall_s": wall, "rss_before_mb": before, "fusion_rss_increase_mb": peak[0] - before,
        "tracemalloc_peak_mb": traced_peak / 2**20,
        "process_peak_rss_mb": _peak_rss_mb(),
        "extractive": summary.extractive, "chapters": len(summary.chapters), "key_moments": len(summary.key_moments),
    }


def run_child(duration: float, backend: str, budget: int, model_dir: str | None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(duration), "--backend", backend, "--budget", str(budget)]
    if model_dir:
        cmd += ["--model-dir", model_dir]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"child {duration} s / {backend} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="600,3600,7200", help="video lengths in seconds, comma-separated")
    ap.add_argument("--budget", type=int, default=6000, help="fusion token_budget")
    ap.add_argument("--llm", choices=["none", "tiny"], default="none",
                    help="also run a tiny random transformers chat model (map-reduce; slow on CPU)")
    ap.add_argument("--tiny-budget", type=int, default=3000, help="token_budget for the tiny model runs")
    ap.add_argument("--child", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--backend", default="extractive", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.backend, args.budget, args.model_dir)))
        return

    lengths = [float(x) for x in args.lengths.split(",")]
    runs = [("extractive", args.budget, None)]
    tmp = None
    if args.llm == "tiny":
        from framework.testing.llm import make_tiny_chat_model

        tmp = tempfile.TemporaryDirectory()
        model_dir = str(make_tiny_chat_model(Path(tmp.name) / "tiny-chat"))
        runs.append(("tiny", args.tiny_budget, model_dir))
    rows = []
    for backend, budget, model_dir in runs:
        for d in lengths:
            rows.append(run_child(d, backend, budget, model_dir))
    print(f"nproc: {os.cpu_count()}; python {sys.version.split()[0]}; budget {args.budget} tokens "
          f"(tiny model: {args.tiny_budget})\n")
    print("| video | backend | events | series samples | scenes | digest tokens | budget | tokens used "
          "| summary tokens | LLM calls | chapters | moments | wall s | RSS before MB | fusion RSS increase MB "
          "| tracemalloc peak MB | process peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['duration'] / 60:.0f} min | {r['backend']} | {r['events']} | {r['series_samples']} | {r['units']} "
              f"| {r['digest_tokens']} | {r['budget']} | {r['tokens_used']} | {r['summary_tokens_est']} | {r['calls']} "
              f"| {r['chapters']} | {r['key_moments']} "
              f"| {r['wall_s']:.2f} | {r['rss_before_mb']:.0f} | {r['fusion_rss_increase_mb']:.1f} "
              f"| {r['tracemalloc_peak_mb']:.1f} | {r['process_peak_rss_mb']:.0f} |")
    print()
    for backend, _, _ in runs:
        sel = [r for r in rows if r["backend"] == backend]
        if len(sel) >= 2:
            a, b = sel[0], sel[-1]
            print(f"- {backend}: {b['duration'] / 60:.0f} min vs {a['duration'] / 60:.0f} min: video x"
                  f"{b['duration'] / a['duration']:.0f}, events x{b['events'] / a['events']:.1f}; "
                  f"fusion RSS increase x{b['fusion_rss_increase_mb'] / max(a['fusion_rss_increase_mb'], 0.1):.2f}, "
                  f"tracemalloc peak x{b['tracemalloc_peak_mb'] / max(a['tracemalloc_peak_mb'], 0.01):.2f}, "
                  f"process peak RSS x{b['process_peak_rss_mb'] / a['process_peak_rss_mb']:.2f}, "
                  f"wall x{b['wall_s'] / a['wall_s']:.1f}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
