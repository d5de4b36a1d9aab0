"""The GPU's load during a timed command, read from outside it by ``nvidia-smi`` (imported by
``bench/end_to_end_gpu.py --gpu-samples``).

Two samplers run beside the command:

- ``nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used -lms 100``: NVML's utilization, the share of
  each sample period in which at least one kernel ran. It says when the GPU had nothing to do; it does not
  say how much of the chip a kernel filled (a small kernel counts as 100 %).
- ``nvidia-smi pmon -s u -d 1 -o DT``: each process's share of that second (``sm``), so which process had
  work on the GPU when.

``run_windows`` and ``mean_util`` average the first over the phases of the run (the receipt gives them), so a claim
such as "after the decode the run is bound by the GPU's work" can be read off a measurement instead of
inferred from which changes did not help.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UTIL_QUERY = "timestamp,utilization.gpu,memory.used"


@dataclass
class Sample:
    t: float  # seconds since the epoch
    util: float  # percent of the period with a kernel running
    memory_mb: float


class GpuSampler:
    """Starts both samplers (where ``nvidia-smi`` exists); ``stop`` ends them and parses what they wrote."""

    def __init__(self, folder: Path, period_ms: int = 100, gpu: int = 0):
        self.util_path, self.pmon_path = folder / "gpu_util.csv", folder / "gpu_pmon.txt"
        self.procs: list[subprocess.Popen] = []
        self.files: list[Any] = []
        smi = shutil.which("nvidia-smi")
        self.missing = None if smi else "nvidia-smi is not on PATH"
        if smi is None:
            return
        for path, cmd in (
                (self.util_path, [smi, "-i", str(gpu), f"--query-gpu={UTIL_QUERY}", "--format=csv,noheader,nounits",
                                  f"-lms={period_ms}"]),
                (self.pmon_path, [smi, "pmon", "-i", str(gpu), "-s", "u", "-d", "1", "-o", "DT"])):
            f = open(path, "w")  # noqa: SIM115 - closed in stop()
            self.files.append(f)
            self.procs.append(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT))

    def stop(self) -> tuple[list[Sample], list[dict[str, Any]]]:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self.files:
            f.close()
        util = parse_util(self.util_path.read_text(errors="replace")) if self.util_path.is_file() else []
        pmon = parse_pmon(self.pmon_path.read_text(errors="replace")) if self.pmon_path.is_file() else []
        return util, pmon


def _number(text: str) -> float | None:
    try:
        return float(text.strip().split()[0])
    except (ValueError, IndexError):
        return None


def parse_util(text: str) -> list[Sample]:
    """``nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits`` lines
    (``2026/12/01 07:10:11.123, 87, 41234``); anything else is skipped."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3:
            continue
        stamp, util, mem = parts[0], _number(parts[1]), _number(parts[2])
        if util is None or mem is None:
            continue
        try:
            whole, _, frac = stamp.partition(".")
            t = time.mktime(time.strptime(whole, "%Y/%m/%d %H:%M:%S")) + (float("0." + frac) if frac else 0.0)
        except ValueError:
            continue
        out.append(Sample(t, util, mem))
    return out


def parse_pmon(text: str) -> list[dict[str, Any]]:
    """``nvidia-smi pmon -s u -o DT`` rows as dicts (``t``, ``pid``, ``sm``, ``command``), by the header's
    column names; a process with no work that second (``-``) has ``sm`` 0."""
    names: list[str] = []
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            cols = line.lstrip("#").split()
            if "pid" in cols and not names:
                names = cols
            continue
        cells = line.split()
        if not names or len(cells) < len(names) or "pid" not in names:
            continue
        row = dict(zip(names, cells))
        pid = _number(row.get("pid", ""))
        if pid is None:
            continue
        try:
            t = time.mktime(time.strptime(f"{row.get('Date', '')} {row.get('Time', '')}", "%Y%m%d %H:%M:%S"))
        except ValueError:
            continue
        out.append({"t": t, "pid": int(pid), "sm": _number(row.get("sm", "")) or 0.0,
                    "command": " ".join(cells[len(names) - 1:]) if names[-1] == "command" else ""})
    return out


def mean_util(samples: list[Sample], start: float, end: float) -> tuple[float | None, float | None, int]:
    """Mean utilization (percent) over ``[start, end)``, the share of its samples at 0 %, and their count."""
    inside = [s.util for s in samples if start <= s.t < end]
    if not inside:
        return None, None, 0
    return sum(inside) / len(inside), sum(1 for u in inside if u == 0) / len(inside), len(inside)


def run_windows(results: dict[str, Any], vlm: str = "qwen2_vl_temporal", last: str = "fusion") -> list[tuple[str, float, float]]:
    """The run's phases as (label, start, end) in seconds since the epoch, from ``results.json``: the plan, the
    decode after it, the wait for ``vlm``, ``vlm`` beside the other GPU analyzers, ``vlm`` after the last of
    them, then ``last``. Phases the results cannot place are left out."""
    run = results.get("run") or {}
    receipt = run.get("receipt") or {}
    phases = receipt.get("phases_s") or {}
    started = run.get("started_at")
    if started is None or "plan" not in phases:
        return []
    t0 = started + phases["plan"]  # the tracks' times count from the plan's end
    tracks = results.get("tracks") or {}

    def span(name: str) -> tuple[float, float] | None:
        r = (tracks.get(name) or {}).get("receipt") or {}
        if r.get("analyze_at_s") is None or r.get("analyze_s") is None:
            return None
        return t0 + r["analyze_at_s"], t0 + r["analyze_at_s"] + r["analyze_s"]

    decode_end = started + phases.get("decode", 0.0)
    out = [("the plan (the early decode, imports, loads)", started, t0)]
    if decode_end > t0:
        out.append(("the decode after the plan", t0, decode_end))
    v = span(vlm)
    others = [span(n) for n, t in tracks.items() if n not in (vlm, last)
              and str(((t or {}).get("receipt") or {}).get("device") or "").startswith("cuda")]
    others_end = max((s[1] for s in others if s is not None), default=None)
    if v is not None:
        if v[0] > decode_end:
            out.append((f"the decode's end to {vlm}'s start", decode_end, v[0]))
        if others_end is not None and others_end > v[0]:
            out.append((f"{vlm} beside the other GPU analyzers", v[0], min(others_end, v[1])))
            if v[1] > others_end:
                out.append((f"{vlm} after the others' end", others_end, v[1]))
        else:
            out.append((vlm, v[0], v[1]))
    f = span(last)
    if f is not None:
        out.append((last, f[0], f[1]))
    return out


def own_processes(results: dict[str, Any]) -> dict[int, str]:
    """Process id -> the analyzers that ran in it, from the tracks' receipts (``pid``, for analyzers in
    processes of their own)."""
    out: dict[int, list[str]] = {}
    for name, track in (results.get("tracks") or {}).items():
        pid = ((track or {}).get("receipt") or {}).get("pid")
        if pid is not None:
            out.setdefault(int(pid), []).append(name)
    return {pid: ", ".join(names) for pid, names in out.items()}


def report_lines(samples: list[Sample], pmon: list[dict[str, Any]], results: dict[str, Any],
                 main_pid: int | None = None, missing: str | None = None) -> list[str]:
    """The report's section: utilization per phase, per second, and per process."""
    lines = ["## The GPU's load (nvidia-smi, sampled from outside the command)", ""]
    if missing or not samples:
        return lines + [f"No samples: {missing or 'nvidia-smi wrote none'}."]
    run = results.get("run") or {}
    started = run.get("started_at") or samples[0].t
    lines += ["`utilization` is NVML's: the share of each 100 ms sample in which some kernel ran (it does not say how "
              "much of the chip the kernels filled). Times are seconds after the runner started.", "",
              "| phase | from s | to s | mean utilization % | samples at 0 % | samples |", "|---|---|---|---|---|---|"]
    for label, a, b in run_windows(results):
        mean, idle, n = mean_util(samples, a, b)
        lines.append(f"| {label} | {a - started:.1f} | {b - started:.1f} | "
                     f"{'-' if mean is None else f'{mean:.0f}'} | {'-' if idle is None else f'{idle * 100:.0f}%'} | {n} |")
    end = max(s.t for s in samples)
    per_s = []
    for k in range(int(max(0.0, end - started)) + 1):
        mean, _idle, n = mean_util(samples, started + k, started + k + 1)
        per_s.append("." if mean is None else str(min(9, int(mean // 10))))
    lines += ["", "Per second from the runner's start (each digit the second's mean utilization in tens of percent, "
              "9 for 90-100 %; `.` no sample):", "", "```"]
    lines += [f"{k:4d}s {''.join(per_s[k:k + 10])}" for k in range(0, len(per_s), 10)]
    lines += ["```"]
    if pmon:
        children = own_processes(results)
        by_pid: dict[int, list[dict[str, Any]]] = {}
        for row in pmon:
            by_pid.setdefault(row["pid"], []).append(row)
        beside = next(((a, b) for label, a, b in run_windows(results) if "beside" in label), None)
        lines += ["", "Per process (`nvidia-smi pmon`, one row a second: the second's SM share of that process; "
                  "the last column only the seconds of the VLM's stretch beside the other GPU analyzers):", "",
                  "| pid | command | seconds with work | first s | last s | summed SM share (%·s) | of it beside the VLM |",
                  "|---|---|---|---|---|---|---|"]
        for pid, rows in sorted(by_pid.items(), key=lambda kv: -sum(r["sm"] for r in kv[1])):
            busy = [r for r in rows if r["sm"] > 0]
            if not busy:
                continue
            who = "the run's process" if pid == main_pid else children.get(pid, rows[0]["command"] or "?")
            inside = "-" if beside is None else f"{sum(r['sm'] for r in busy if beside[0] <= r['t'] < beside[1]):.0f}"
            lines.append(f"| {pid} | {who} | {len(busy)} | {min(r['t'] for r in busy) - started:.0f} | "
                         f"{max(r['t'] for r in busy) - started:.0f} | {sum(r['sm'] for r in busy):.0f} | {inside} |")
    else:
        lines += ["", "`nvidia-smi pmon` gave no rows here."]
    return lines
