"""How long the import warm-up's first module takes beside the run's other work, by switch interval.

On an H200 machine the run's first load turn was the import warm-up's ``import transformers.modeling_utils``,
7.9 s long (``bench/results/end_to_end_h200_ab29.md``, machine BL), where it takes 2-3 s in an idle process: no
model of the run's process loads before it. An import gives up the interpreter's lock at each file it looks for
and reads (thousands, for transformers' model utilities and the torch modules they pull in) and waits to get it
back; a thread beside it that runs Python holds the lock up to the switch interval each time
(``sys.setswitchinterval``, 5 ms by default). This probe imports the module on a thread of a fresh process
(torch imported before, as the run has it), alone, beside one Python-bound thread (``gil``), beside processes that
keep the CPUs busy (``cpus``: one per CPU), or both, at each switch interval, and prints a table.

It shows the mechanism, not what a run gains: that needs the end-to-end benchmark on a GPU machine.

    .venv/bin/python bench/import_convoy.py --out bench/results/import_convoy_cpu.md
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from machine import cpu_model, load_text, markdown_table, write_report  # bench/machine.py (scripts run from bench/)

CHILD = r"""
import os, subprocess, sys, threading, time
module, beside, switch_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
if switch_ms > 0:
    sys.setswitchinterval(switch_ms / 1000)
import torch  # noqa: F401  (the run's process has it before the warm-up's first import)
burners = [subprocess.Popen([sys.executable, "-c", "while True: sum(range(10000))"])
           for _ in range(os.cpu_count() or 1)] if "cpus" in beside else []
stop = threading.Event()
def busy():
    while not stop.is_set():
        sum(range(1000))
if "gil" in beside:
    threading.Thread(target=busy, daemon=True).start()
took = {}
def imported():
    t0 = time.perf_counter()
    __import__(module)
    took["s"] = time.perf_counter() - t0
thread = threading.Thread(target=imported)
thread.start()
thread.join()
stop.set()
for b in burners:
    b.kill()
print("RESULT", took["s"], len([m for m in sys.modules]))
"""


def one(module: str, beside: str, switch_ms: float) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, module, beside, str(switch_ms)], capture_output=True, text=True,
                         timeout=600)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")), None)
    if line is None:
        raise RuntimeError(out.stderr[-2000:])
    _, seconds, modules = line.split()
    return float(seconds), int(modules)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: .venv/bin/python bench/import_convoy.py --rounds 2")
    ap.add_argument("--module", default="transformers.modeling_utils", help="the module to import")
    ap.add_argument("--beside", default="none,gil,cpus,gil+cpus", help="what runs beside (comma-separated)")
    ap.add_argument("--switch-ms", default="0,1,0.2", help="switch intervals in ms (0: Python's 5 ms)")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each setting (each a fresh process)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    load_before = load_text()
    rows = []
    for switch in (float(x) for x in args.switch_ms.split(",")):
        for beside in args.beside.split(","):
            runs = [one(args.module, beside, switch) for _ in range(args.rounds)]
            rows.append([f"{switch:g} ms" if switch > 0 else "5 ms (Python's)", beside,
                         ", ".join(f"{s:.2f}" for s, _ in runs), runs[0][1]])
    lines = [f"# `import {args.module}` on a thread, beside the run's kind of work", "",
             f"- command: `.venv/bin/python bench/import_convoy.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
             f"- machine: {os.cpu_count()} CPUs, {cpu_model()}; load before {load_before}, after {load_text()}",
             "- beside: `gil` one thread of the same process running Python; `cpus` one busy process per CPU", "",
             markdown_table(["switch interval", "beside", "import s (each run a fresh process)", "modules loaded"], rows)]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
