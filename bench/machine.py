"""What every benchmark prints about the machine it ran on, and how it hands over its report
(imported by the bench scripts)."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "?"


def load_text(load: tuple[float, ...] | None = None) -> str:
    """The 1/5/15-minute load averages, e.g. ``0.81 / 2.36 / 4.57``."""
    return " / ".join(f"{v:.2f}" for v in (load if load is not None else os.getloadavg()))


def write_report(lines: list[str], out: Path | None) -> None:
    """Print the markdown report (``lines`` joined) and, with ``out``, also write it there."""
    report = "\n".join(lines) + "\n"
    print(report)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")
