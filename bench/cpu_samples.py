"""Where the CPUs went during a timed command, read from outside it (imported by ``bench/end_to_end_gpu.py``).

``CpuTimes.sample`` is called by the bench's psutil poll of the command's process tree (every 0.2 s): it keeps,
per process, its command line and its cumulative CPU time (user + system) at each sample. ``report_lines`` turns
that into CPU seconds per process in each phase of the run (``gpu_samples.run_windows``: the plan, the decode
after it, the VLM's stretch, fusion), beside what the machine had (its CPUs times the phase's length), so a
claim such as "the decode is slowed by the CPU work beside it" names the processes that did that work.

What a poll cannot see, and the table says so: a process's CPU time after its last sample (up to 0.2 s of it),
and processes that start and end between two samples. Threads are not told apart (Python 3.12 does not name its
threads for the OS).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from gpu_samples import own_processes, run_windows


@dataclass
class ProcessCpu:
    pid: int
    ppid: int
    command: str
    points: list[tuple[float, float]] = field(default_factory=list)  # (seconds since the epoch, CPU seconds)

    def between(self, start: float, end: float) -> float:
        """CPU seconds spent in ``[start, end)``, interpolated linearly between the samples around each end
        (0 before the first sample: the process's CPU time before it is counted at its first sample)."""
        return max(0.0, self._at(end) - self._at(start))

    def _at(self, t: float) -> float:
        pts = self.points
        if not pts or t <= pts[0][0]:
            return 0.0 if not pts or t < pts[0][0] else pts[0][1]
        for (t0, c0), (t1, c1) in zip(pts, pts[1:]):
            if t0 <= t < t1:
                return c0 + (c1 - c0) * (t - t0) / (t1 - t0)
        return pts[-1][1]


class CpuTimes:
    """Cumulative CPU time per process of a tree, one call of ``sample`` per poll."""

    def __init__(self) -> None:
        self.procs: dict[int, ProcessCpu] = {}

    def sample(self, procs: list[Any], now: float) -> None:
        """Record each psutil ``Process`` in ``procs`` at ``now`` (seconds since the epoch)."""
        for p in procs:
            try:
                times = p.cpu_times()
                rec = self.procs.get(p.pid)
                if rec is None:
                    # its CPU time before this first sample is counted here: placed at its start
                    rec = self.procs[p.pid] = ProcessCpu(p.pid, p.ppid(), _short(p.cmdline()))
                    rec.points.append((max(p.create_time(), now - 0.2), 0.0))
                rec.points.append((now, times.user + times.system))
            except Exception:  # noqa: BLE001 - psutil.Error and its kin: the process ended between listing and reading
                continue


def _short(cmdline: list[str]) -> str:
    """A process's command line as a short label: ``python -m X`` as ``X``, the rest by its program's name."""
    if "-m" in cmdline[:-1]:
        return cmdline[cmdline.index("-m") + 1]
    if "-c" in cmdline[:-1]:
        return "python -c"
    return os.path.basename(cmdline[0]) if cmdline else "?"


def report_lines(cpu: CpuTimes, results: dict[str, Any], main_pid: int | None, cpus: int | None) -> list[str]:
    """The report's section: CPU seconds per process (or kind of process) in each phase of the run."""
    lines = ["## The CPUs' load (psutil, sampled from outside the command every 0.2 s)", ""]
    windows = run_windows(results)
    if not cpu.procs or not windows:
        return lines + ["No samples, or results.json does not place the run's phases."]
    started = (results.get("run") or {}).get("started_at") or windows[0][1]
    wall = ((results.get("run") or {}).get("receipt") or {}).get("wall_s")
    if wall:
        windows = windows + [("the whole run", started, started + wall)]
    children = own_processes(results)

    def label(rec: ProcessCpu) -> str:
        if rec.pid == main_pid:
            return "the run's process"
        if rec.pid in children:
            return children[rec.pid] + " (own process)"
        parent = cpu.procs.get(rec.ppid)
        if parent is not None and parent.pid in children:
            return f"{rec.command} (under {children[parent.pid]})"
        return rec.command

    rows: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for rec in cpu.procs.values():
        if rec.command in ("time", "nvidia-smi"):
            continue
        key = label(rec)
        spent = rows.setdefault(key, [0.0] * len(windows))
        counts[key] = counts.get(key, 0) + 1
        for k, (_label, a, b) in enumerate(windows):
            spent[k] += rec.between(a, b)
    heads = [f"{name} ({a - started:.1f}-{b - started:.1f} s)" for name, a, b in windows]
    lines += ["CPU seconds (user + system) each process spent in each phase of the run; processes of the same "
              "command are summed (how many in brackets). Times are seconds after the runner started. A poll "
              "misses up to 0.2 s of a process's CPU time after its last sample and processes that lived between two "
              "samples.", "",
              "| process | " + " | ".join(heads) + " |", "|---|" + "---|" * len(windows)]
    for key, spent in sorted(rows.items(), key=lambda kv: -sum(kv[1])):
        if sum(spent) < 0.05:
            continue
        many = f" ({counts[key]})" if counts[key] > 1 else ""
        lines.append(f"| {key}{many} | " + " | ".join(f"{s:.1f}" for s in spent) + " |")
    total = [sum(spent[k] for spent in rows.values()) for k in range(len(windows))]
    lines.append("| **all** | " + " | ".join(f"**{s:.1f}**" for s in total) + " |")
    if cpus:
        lines.append(f"| the machine's {cpus} CPUs | " + " | ".join(f"{cpus * (b - a):.1f}" for _n, a, b in windows)
                     + " |")
    return lines
