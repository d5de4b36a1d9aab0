"""Where the time of one `framework run FILE --only cut_analysis` goes, phase by phase, in-process.

Each repeat is a fresh child process (bytecode cached, as on a user's machine) that times its own
imports, then wraps the runner's phases (plugin discovery, probe, decode, the analyzers, results.json,
thumbnails, the other outputs) with a timer and runs the ``framework run`` command in-process once
(``cli.main``: the CLI's own start-up settings apply). This script also times, from outside, the
interpreter's start before the child's first line and its exit after the command returned, and
reads the child's CPU seconds (all threads) from ``wait4``. A second child measures importing only
the libraries the work needs (numpy, PyAV, OpenCV, pydantic, PyYAML, click), the floor any tool
built on them pays.

    .venv/bin/python bench/bench_phases.py ../shared/media/pyscenedetect/testvideo.mp4 --repeat 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model, load_text  # bench/machine.py (scripts run from bench/)

CHILD = r'''
import json, sys, time
w0 = time.time()
t0 = time.perf_counter()
import cli, framework.runner as R
from framework import media
import framework.timeline as T
t1 = time.perf_counter()
timers = {}
def wrap(owner, name, label):
    f = getattr(owner, name, None)
    if f is None:  # renamed since: leave that phase out
        return
    def timed(*a, **k):
        s = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            timers[label] = timers.get(label, 0.0) + time.perf_counter() - s
    setattr(owner, name, timed)
wrap(R, "build_plugin_manager", "plugin discovery")
wrap(media, "probe", "probe")
wrap(media, "decode", "decode")
wrap(R, "execute", "analyzers")
wrap(T.Timeline, "write", "results.json")
wrap(R, "thumbnails_from_stream", "thumbnails")
wrap(R, "write_outputs", "other outputs")
s = time.perf_counter()
video, out = sys.argv[1], sys.argv[2]
sys.argv = ["framework", "run", video, "--only", "cut_analysis", "--no-progress", "--no-resume", "--out", out]
try:
    cli.main()
except SystemExit as exc:
    if exc.code:
        raise
timers["the command (all of the above and the rest)"] = time.perf_counter() - s
timers["imports"] = t1 - t0
print(json.dumps(timers))
print(json.dumps({"w0": w0, "w1": time.time()}))
'''
FLOOR = "import time; t = time.perf_counter(); import numpy, av, cv2, pydantic, yaml, click; print(time.perf_counter() - t)"


def child(cmd: list[str], env: dict[str, str]) -> tuple[dict, dict, float]:
    """Run the timing child: (its phase timers, its first/last wall stamps, its CPU seconds)."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"the timing child exited {proc.returncode}")
        out.seek(0)
        lines = out.read().strip().splitlines()
    return json.loads(lines[-2]), json.loads(lines[-1]), usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, help="also write the table to this file")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "bench_phases_pycache")
    load_before = os.getloadavg()
    runs, floors = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat + 1):  # the first run warms the bytecode cache and is not counted
            started = time.time()
            timers, stamps, cpu = child([sys.executable, "-c", CHILD, str(args.video), str(Path(tmp) / f"run{i}")], env)
            ended = time.time()
            timers["interpreter start, before the first line (outside)"] = stamps["w0"] - started
            timers["exit, after the command returned (outside)"] = ended - stamps["w1"]
            timers["whole process, wall (outside)"] = ended - started
            timers["whole process, CPU s of all threads (wait4)"] = cpu
            floor = subprocess.run([sys.executable, "-c", FLOOR], env=env, capture_output=True, text=True,
                                   check=True).stdout
            if i:
                runs.append(timers)
                floors.append(float(floor))
    lines = [f"# Phases of `framework run {args.video.name} --only cut_analysis`, in-process", "",
             f"Command: `python bench/bench_phases.py {' '.join(sys.argv[1:])}`", "",
             f"- machine: {os.cpu_count()} cores, {cpu_model()}, Python {sys.version.split()[0]}",
             f"- load average before: {load_text(load_before)}; after: {load_text()}",
             f"- {args.repeat} fresh processes after one warm-up; seconds: median (fastest-slowest)", "",
             "| phase | seconds |", "|---|---|"]
    for key in runs[0]:
        vals = [r.get(key, 0.0) for r in runs]
        lines.append(f"| {key} | {statistics.median(vals):.3f} ({min(vals):.3f}-{max(vals):.3f}) |")
    lines.append(f"| importing numpy, PyAV, OpenCV, pydantic, PyYAML, click alone (another process) | "
                 f"{statistics.median(floors):.3f} ({min(floors):.3f}-{max(floors):.3f}) |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
