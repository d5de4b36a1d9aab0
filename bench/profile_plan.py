"""Where the run's plan phase goes: ``framework plan`` on the end-to-end work folder, under cProfile and
``python -X importtime``, in the environment the timed run gets (``end_to_end_gpu.child_env``).

The end-to-end run's receipt gives the plan phase 4-5.6 s on the H200 machine (``phases_s.plan``); this
prints the functions that took the most of it (cumulative) and the slowest imports.

    python bench/profile_plan.py --work /dev/shm/e2e --out $OUT/plan_profile.md
"""
from __future__ import annotations

import argparse
import io
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end_gpu import child_env  # noqa: E402 - bench/end_to_end_gpu.py
from machine import load_text, write_report  # noqa: E402 - bench/machine.py

ROOT = Path(__file__).resolve().parents[1]


def slowest_imports(text: str, top: int) -> list[str]:
    """The ``-X importtime`` lines with the largest cumulative microseconds."""
    rows = []
    for line in text.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
            if cumulative.isdigit():
                rows.append((int(cumulative), name))
    return [f"| {us / 1e6:.2f} | `{name}` |" for us, name in sorted(rows, reverse=True)[:top]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/profile_plan.py --work /dev/shm/e2e")
    ap.add_argument("--work", type=Path, required=True, help="the end-to-end work folder (its clip and registry)")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    clip = next(args.work.glob("clip_*.mp4"))
    env = child_env(args.work)
    with tempfile.TemporaryDirectory() as tmp:
        prof = Path(tmp) / "plan.prof"
        cmd = [sys.executable, "-X", "importtime", "-m", "cProfile", "-o", str(prof), "-m", "cli", "plan", str(clip),
               "--registry", str(args.work / "registry.yaml"), "--vram-budget", "auto"]
        load_before, t0 = load_text(), time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        stats = io.StringIO()
        if prof.is_file():
            pstats.Stats(str(prof), stream=stats).sort_stats("cumulative").print_stats(args.top)
    lines = ["# framework plan under cProfile and -X importtime", "",
             f"- command: `{' '.join(cmd[:1] + ['...'] + cmd[cmd.index('cli'):])}` (cwd: the repository)",
             f"- exit {proc.returncode}, {wall:.1f} s wall with both profilers on; load before {load_before}, "
             f"after {load_text()}", "", "## Slowest imports (cumulative s)", "", "| s | module |", "|---|---|",
             *slowest_imports(proc.stderr, 30), "", "## cProfile (cumulative)", "", "```", stats.getvalue().strip(),
             "```", "", "## stdout (tail)", "", "```", proc.stdout[-3000:], "```"]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
