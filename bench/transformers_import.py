"""How long a fresh process takes to import transformers, with its model table read from a file
(``framework.transformers_index``) and without.

Each run is a new interpreter (``python -c``) that installs the hook (or not) and imports one module;
the table gives the wall time of the whole process, measured from outside it, and the import's own
time, measured inside it. With ``--beside N`` the import runs on a thread beside N threads that run Python
(string and dict work, holding the interpreter's lock in turns), as the run's import warm-up does beside
the run's other threads. The modes alternate (off, on, off, on...) so that drift on a shared machine
falls on both. The first "on" run of a fresh home computes and saves the table ("saved"); the rest read it.

    .venv/bin/python bench/transformers_import.py --runs 7
    .venv/bin/python bench/transformers_import.py --module transformers --runs 7
    .venv/bin/python bench/transformers_import.py --runs 5 --beside 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, threading, time
t0 = time.perf_counter()
outcome = "off"
if sys.argv[1] == "on":
    from framework import transformers_index
    transformers_index.install(home=sys.argv[2])
done = threading.Event()

def busy():
    n = 0
    while not done.is_set():
        n += len({str(i): i for i in range(200)})

others = [threading.Thread(target=busy, daemon=True) for _ in range(int(sys.argv[4]))]
for t in others:
    t.start()
import importlib
importlib.import_module(sys.argv[3])
took = time.perf_counter() - t0
done.set()
if sys.argv[1] == "on":
    outcome = ",".join(sorted(set(transformers_index.outcomes.values()))) or "none"
print(json.dumps({"import_s": took, "table": outcome}))
"""


def one(mode: str, home: Path, module: str, beside: int = 0) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(home), module, str(beside)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    return {"mode": mode, "wall_s": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="runs of each mode (after one untimed warm-up of each)")
    ap.add_argument("--module", default="transformers.modeling_utils", help="the module each process imports")
    ap.add_argument("--beside", type=int, default=0, help="threads running Python beside the import (default 0)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home_dir:
        home = Path(home_dir)
        first = one("on", home, args.module, args.beside)  # computes and saves the table: not in the medians
        one("off", home, args.module, args.beside)  # (the page cache warm for both modes)
        runs = [one(mode, home, args.module, args.beside) for _ in range(args.runs) for mode in ("off", "on")]
    beside = f", beside {args.beside} threads running Python" if args.beside else ""
    print(f"`{args.module}` in a fresh interpreter{beside}, {args.runs} runs of each mode alternating; "
          f"Python {sys.version.split()[0]}")
    print()
    print("| mode | table | runs | process wall s (median, min-max) | import s inside (median) |")
    print("|---|---|---|---|---|")
    print(f"| on, first run (fresh home) | {first['table']} | 1 | {first['wall_s']:.2f} | {first['import_s']:.2f} |")
    for mode in ("off", "on"):
        rows = [r for r in runs if r["mode"] == mode]
        walls = [r["wall_s"] for r in rows]
        tables = ",".join(sorted({r["table"] for r in rows}))
        print(f"| {mode} | {tables} | {len(rows)} | {statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f}) | "
              f"{statistics.median(r['import_s'] for r in rows):.2f} |")


if __name__ == "__main__":
    main()
