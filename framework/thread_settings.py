"""The process's CPU thread settings, put back after a library changed them on import.

Some libraries set the whole process's threads when they are imported:

- silero-vad's model module calls ``torch.set_num_threads(1)``: every thread started afterwards did its
  torch work on one CPU thread (``bench/results/torch_threads_cpu.md``);
- ultralytics calls ``cv2.setNumThreads(0)`` (OpenCV on the calling thread only) and sets
  ``OMP_NUM_THREADS=1`` in the environment when it is unset, which every process started afterwards
  reads (the run's worker processes), and torch too when imported after it.

An analyzer's ``load`` or the run's import warm-up would leave the whole run so. ``kept()`` wraps such
work (the executor wraps every ``load``; ``warm_imports.import_each`` every import; an analyzer's own
process both) and then puts back what changed since ``remember()`` (called by each run as it starts and by
each analyzer's process; else by the first ``kept``): the thread variables of the environment, torch's
intra-op threads and OpenCV's threads. A module imported only inside the block is set to the count it
would have had: the remembered environment's ``OMP_NUM_THREADS``, else the CPUs this process may use
(torch), or OpenCV's own default. ``FRAMEWORK_KEEP_THREADS=0`` leaves the libraries' settings (to compare).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import Any, Iterator

from .work_streams import switched_on

logger = logging.getLogger(__name__)

#: environment variables that set a library's threads when it starts (OpenMP, MKL, OpenBLAS)
ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

_lock = threading.Lock()
_remembered: dict[str, Any] | None = None
_inside = 0  # ``kept`` blocks in progress (in any thread): settings may be a library's meanwhile


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def remember(fresh: bool = False) -> dict[str, Any]:
    """Take the settings to keep: the first call, or with ``fresh`` (a run's start: the program may have
    changed them since the last run) unless a ``kept`` block is in progress (another run's load, whose
    library's settings are not to be taken); else the ones taken before."""
    global _remembered
    with _lock:
        if _remembered is None or (fresh and _inside == 0):
            torch, cv2 = sys.modules.get("torch"), sys.modules.get("cv2")
            _remembered = {
                "env": {k: os.environ.get(k) for k in ENV},
                "torch": torch.get_num_threads() if torch is not None and hasattr(torch, "get_num_threads") else None,
                "cv2": cv2.getNumThreads() if cv2 is not None and hasattr(cv2, "getNumThreads") else None,
            }
        return _remembered


def restore() -> list[str]:
    """Put back what changed since ``remember()``; what was put back, in words (for the log)."""
    if not switched_on("FRAMEWORK_KEEP_THREADS"):
        return []
    kept = remember()
    changed: list[str] = []
    for name, value in kept["env"].items():
        if os.environ.get(name) != value:
            changed.append(f"{name}={os.environ.get(name)} -> {value}")
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        want = kept["torch"]
        if want is None:  # imported since: as many as it would have started with
            omp = kept["env"].get("OMP_NUM_THREADS")
            want = int(omp) if omp and omp.isdigit() and int(omp) > 0 else _cpus()
        if torch.get_num_threads() != want:
            changed.append(f"torch threads {torch.get_num_threads()} -> {want}")
            torch.set_num_threads(want)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and hasattr(cv2, "setNumThreads"):
        want = kept["cv2"]
        now = cv2.getNumThreads()
        if want is None:
            cv2.setNumThreads(-1)  # (OpenCV's own default)
            if cv2.getNumThreads() != now:
                changed.append(f"OpenCV threads {now} -> {cv2.getNumThreads()}")
        elif now != want:
            changed.append(f"OpenCV threads {now} -> {want}")
            cv2.setNumThreads(want)
    return changed


@contextlib.contextmanager
def kept(what: str = "") -> Iterator[None]:
    """Run the block, then ``restore()`` (``what``: who, for the log)."""
    global _inside
    remember()
    with _lock:
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
        changed = restore()
        if changed:
            logger.debug("%s changed the process's threads; put back: %s", what or "an import", "; ".join(changed))


__all__ = ["ENV", "kept", "remember", "restore"]
