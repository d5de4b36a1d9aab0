"""How much Python-bound threads slow a thread that feeds a device from a Python loop, by switch interval.

Analyzers run as threads of one process. A GPU analyzer's decoding loop (a forward, a token, a read-back,
again) gives up the interpreter at each blocking call and waits for it back; Python-bound CPU analyzers
beside it hold the interpreter for up to the switch interval each time (``sys.setswitchinterval``, 5 ms by
default). This probe stands in for both on the CPU: the *feeder* runs ``--steps`` steps of 30 small torch
ops and one read-back each; each *hog* runs pure-Python arithmetic. It times the feeder alone and beside
``--hogs`` hogs, at each switch interval, in one process, and prints a table.

It shows the mechanism behind ``FRAMEWORK_GIL_SWITCH_MS`` (``framework.executor.gil_switch_interval``), not
what a whole run gains: that needs the end-to-end benchmark on a GPU machine.

    .venv/bin/python bench/gil_switch_probe.py --out bench/results/gil_switch_probe.md
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

from machine import cpu_model, load_text, write_report  # bench/machine.py (scripts run from bench/)


def feeder(steps: int) -> float:
    """A decoding-loop stand-in: many tiny torch ops, one blocking read-back per step; seconds taken."""
    import torch

    x = torch.zeros(64)
    t0 = time.perf_counter()
    for _ in range(steps):
        for _ in range(30):
            x = x + 1.0
        float(x[0])
    return time.perf_counter() - t0


def hog(stop: threading.Event) -> None:
    """A Python-bound analyzer stand-in."""
    a = 0
    while not stop.is_set():
        for i in range(1000):
            a += i * i


def measure(interval_s: float, hogs: int, steps: int) -> float:
    sys.setswitchinterval(interval_s)
    stop = threading.Event()
    threads = [threading.Thread(target=hog, args=(stop,), daemon=True) for _ in range(hogs)]
    for t in threads:
        t.start()
    out: list[float] = []
    f = threading.Thread(target=lambda: out.append(feeder(steps)))
    f.start()
    f.join()
    stop.set()
    for t in threads:
        t.join()
    return out[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="feeder steps per measurement")
    ap.add_argument("--hogs", type=int, default=3, help="Python-bound threads beside the feeder")
    ap.add_argument("--intervals-ms", default="5,1,0.2", help="switch intervals to try, in ms (comma list)")
    ap.add_argument("--repeat", type=int, default=5, help="measurements per cell (the median is shown)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    default = sys.getswitchinterval()
    before = load_text()
    rows = []
    for ms in [float(x) for x in args.intervals_ms.split(",")]:
        alone = statistics.median(measure(ms / 1000, 0, args.steps) for _ in range(args.repeat))
        beside = statistics.median(measure(ms / 1000, args.hogs, args.steps) for _ in range(args.repeat))
        rows.append((ms, alone, beside))
    sys.setswitchinterval(default)
    lines = ["# Switch interval: a device-feeding loop beside Python-bound threads", "",
             f"- command: `python bench/gil_switch_probe.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
             f"- machine: {cpu_model()}; Python {platform.python_version()}, torch {torch.__version__} (1 thread); "
             f"load before {before}, after {load_text()}",
             f"- feeder: {args.steps} steps of 30 small torch ops and one read-back; {args.hogs} Python-bound threads "
             f"beside it; median of {args.repeat}", "",
             "| switch interval ms | feeder alone s | feeder beside the others s | slowdown |", "|---|---|---|---|"]
    lines += [f"| {ms:g} | {a:.2f} | {b:.2f} | {b / a:.1f}x |" for ms, a, b in rows]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
