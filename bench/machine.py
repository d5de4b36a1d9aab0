"""What every benchmark prints about the machine it ran on, and how it hands over its report
(imported by the bench scripts)."""
from __future__ import annotations

import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "?"


#: what ``cpu_probe_ms`` compiles: fixed source text, so that the probe's time compares machines and moments
PROBE_SOURCE = "\n".join(f"def f{i}(a, b):\n    return [x * {i} + len(str(a)) for x in range(a) if x % b]\n"
                         for i in range(300))


def cpu_probe_ms(repeats: int = 7) -> float:
    """One core's speed for pure Python, now: the median milliseconds of compiling ``PROBE_SOURCE`` (lower is
    faster; 30 ms on this project's 2-CPU machine). The lent GPU machines of one kind differ by 10-15 % in
    what the same run's CPU work takes; the probe, taken before a timed command, says which machine (and
    which moment of it) a run had."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        compile(PROBE_SOURCE, "<probe>", "exec")
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def load_text(load: tuple[float, ...] | None = None) -> str:
    """The 1/5/15-minute load averages, e.g. ``0.81 / 2.36 / 4.57``."""
    return " / ".join(f"{v:.2f}" for v in (load if load is not None else os.getloadavg()))


def cli_device(device: str) -> str:
    """``--device``'s value as torch takes it: ``cuda`` and ``gpu`` mean ``cuda:0``."""
    return "cuda:0" if device in ("cuda", "gpu") else device


def host_lines(load_before: str, cuda: bool) -> list[str]:
    """The report's ``- machine:`` line (load before and now) and, with ``cuda``, its ``- GPU:`` line."""
    lines = [f"- machine: {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs, load before {load_before}, "
             f"after {load_text()}"]
    if cuda:
        import torch

        lines.append(f"- GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    return lines


def offline_work_dir(work: Path | None, prefix: str) -> Path:
    """The work folder for snapshots and clips (``work``, else a new one under /dev/shm when it has
    40 GB free, else under tmp), with FRAMEWORK_HOME and HF_HOME inside it, the hub offline and no
    plugins loaded from the environment."""
    shm = Path("/dev/shm")
    work = work or Path(tempfile.mkdtemp(prefix=prefix, dir=shm if shm.is_dir() and
                                         shutil.disk_usage(shm).free > 40e9 else None))
    work.mkdir(parents=True, exist_ok=True)
    for var, sub in (("FRAMEWORK_HOME", "home"), ("HF_HOME", "hf")):
        os.environ[var] = str(work / sub)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["FRAMEWORK_LOAD_PLUGINS"] = ""
    return work


def torch_machine(cuda: bool) -> str:
    """Host, CPU count, torch and transformers versions (and the GPU's name with ``cuda``)."""
    import torch
    import transformers

    machine = f"{platform.node()}: {os.cpu_count()} CPUs, torch {torch.__version__}, transformers {transformers.__version__}"
    if cuda:
        machine += f", {torch.cuda.get_device_name(0)}"
    return machine


def write_report(lines: list[str], out: Path | None) -> None:
    """Print the markdown report (``lines`` joined) and, with ``out``, also write it there."""
    report = "\n".join(lines) + "\n"
    print(report)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table of ``rows`` (cells formatted as given) under ``header``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])

