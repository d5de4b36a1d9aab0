"""The process's CPU thread settings, put back after a library changed them on import.

Some libraries set the whole process's threads when they are imported:

- silero-vad's model module calls ``torch.set_num_threads(1)``: every thread started afterwards did its
  torch work on one CPU thread (``bench/results/torch_threads_cpu.md``);
- ultralytics calls ``cv2.setNumThreads(0)`` (OpenCV on the calling thread only) and sets
  ``OMP_NUM_THREADS=1`` in the environment when it is unset, which every process started afterwards
  reads (the run's worker processes), and torch too when imported after it.

An analyzer's ``load`` or the run's import warm-up would leave the whole run so. ``kept()`` wraps such
work (the executor wraps every ``load``; ``warm_imports.import_each`` every import) and then puts back what
changed since ``remember()`` (called by each run as it starts; else by the first ``kept``): the thread
variables of the environment, torch's intra-op threads and OpenCV's threads. An analyzer's own process
(``framework.own_process``) holds that analyzer alone: there its libraries' settings are its own and stay
(``alone_in_this_process``; ultralytics' OpenCV on the calling thread in the YOLOs' processes, as before the
twentieth session). A module imported only inside the block is set to the count it
would have had: the remembered environment's ``OMP_NUM_THREADS``, else the CPUs this process may use
(torch), or OpenCV's own default. ``FRAMEWORK_KEEP_THREADS=0`` leaves the libraries' settings (to compare).

A run also gives its own process a deliberate number of torch threads (``run_torch_threads``): that process
does the CPU torch work of several analyzers at once (voice activity, feature extraction, image processors),
each analyzer's thread with an OpenMP team of its own, beside the decode and the worker processes. On the
H200 machine (16 CPUs) with 16 threads, silero-vad's 10 minutes took 15 s instead of 2-3 s, the VLM's prefill
13 s instead of 9 and the whole run 43 s instead of 35-40; with 4, the prefill 11 s and the run's median 36.8 s
against 35.0 s with one (``bench/results/end_to_end_h200_ab21.md``). So: one thread in a run that uses a GPU
(``use_torch_threads`` once its plan is made), and up to four in one on CPUs only, where these analyzers'
models run in this process on the CPUs. After the run (``for_a_run``) the program has its own setting back.
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

#: torch threads a run gives its own process unless told (``run_torch_threads``): one that uses a GPU; the
#: most for one on CPUs only
GPU_RUN_TORCH_THREADS = 1
CPU_RUN_TORCH_THREADS = 4

_lock = threading.Lock()
_remembered: dict[str, Any] | None = None
_inside = 0  # ``kept`` blocks in progress (in any thread): settings may be a library's meanwhile
_runs = 0  # runs in progress in this process (``for_a_run``)
_alone = False  # this process holds one analyzer (``alone_in_this_process``): nothing is put back


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _count(text: str | None) -> int | None:
    """A thread count as an environment variable gives it (a whole number above 0), else None."""
    text = (text or "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def _torch_default(omp: str | None) -> int:
    """The threads torch starts with: ``OMP_NUM_THREADS`` (``omp``) when set, else the CPUs this process may use."""
    return _count(omp) or _cpus()


def run_torch_threads(gpu: bool = False, env: Any = None) -> int | None:
    """The torch intra-op threads a run gives its own process: ``FRAMEWORK_TORCH_THREADS`` (a number, or
    ``keep``: the program's own), else ``OMP_NUM_THREADS`` when set (the user's choice), else
    ``GPU_RUN_TORCH_THREADS`` for a run that uses a GPU (``gpu``), or the CPUs this process may use up to
    ``CPU_RUN_TORCH_THREADS``. None: leave them (``keep``, or ``FRAMEWORK_KEEP_THREADS=0``).

    :raises ValueError: ``FRAMEWORK_TORCH_THREADS`` is neither a whole number above 0 nor ``keep``.
    """
    env = os.environ if env is None else env
    if not switched_on("FRAMEWORK_KEEP_THREADS", env):
        return None
    text = env.get("FRAMEWORK_TORCH_THREADS", "").strip().lower()
    if text == "keep":
        return None
    if text:
        if _count(text) is None:
            raise ValueError(f"FRAMEWORK_TORCH_THREADS={text!r}: give the number of CPU threads for the run's torch "
                             f"work (e.g. 4), or 'keep' to leave this process's own setting")
        return int(text)
    return _count(env.get("OMP_NUM_THREADS")) or (GPU_RUN_TORCH_THREADS if gpu else min(_cpus(), CPU_RUN_TORCH_THREADS))


def _keep_torch_threads(threads: int) -> None:
    """(With the lock held) keep ``threads`` for torch; set now when torch is imported."""
    assert _remembered is not None
    _remembered["torch"] = threads
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads") and torch.get_num_threads() != threads:
        logger.debug("torch threads %d -> %d for this run", torch.get_num_threads(), threads)
        torch.set_num_threads(threads)


def alone_in_this_process() -> None:
    """This process holds one analyzer (its own process): what its libraries set for the process is its own
    business, and ``restore`` leaves it (no other analyzer here to protect)."""
    global _alone
    _alone = True


@contextlib.contextmanager
def for_a_run(torch_threads: int | None) -> Iterator[None]:
    """A run's block: the settings remembered afresh with ``torch_threads`` (``remember``); after it, when no
    other run is in progress, torch's threads as the program had them before (a program that runs videos
    between its own torch work keeps its own setting)."""
    global _runs
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None and hasattr(torch, "get_num_threads") else None
    with _lock:
        _runs += 1
    try:
        remember(fresh=True, torch_threads=torch_threads)
        yield
    finally:
        with _lock:
            _runs -= 1
            last = _runs == 0
        if last and torch_threads is not None and hasattr(sys.modules.get("torch"), "set_num_threads"):
            if before is None:  # imported during the run: as many as it would have started with
                before = _torch_default(os.environ.get("OMP_NUM_THREADS"))
            with _lock:
                if _remembered is not None:
                    _keep_torch_threads(before)


def use_torch_threads(threads: int | None) -> None:
    """From now on keep ``threads`` torch threads (a run's, once its plan says whether it uses a GPU);
    None: leave the remembered ones."""
    remember()
    if threads is not None:
        with _lock:
            _keep_torch_threads(threads)


def remember(fresh: bool = False, torch_threads: int | None = None) -> dict[str, Any]:
    """Take the settings to keep: the first call, or with ``fresh`` (a run's start: the program may have
    changed them since the last run) unless a ``kept`` block is in progress (another run's load, whose
    library's settings are not to be taken); else the ones taken before. ``torch_threads`` (with ``fresh``):
    torch's threads to keep instead of the current ones, set now when torch is imported (else after the
    load that imports it)."""
    global _remembered
    with _lock:
        if _remembered is None or (fresh and _inside == 0):
            torch, cv2 = sys.modules.get("torch"), sys.modules.get("cv2")
            _remembered = {
                "env": {k: os.environ.get(k) for k in ENV},
                "torch": torch.get_num_threads() if torch is not None and hasattr(torch, "get_num_threads") else None,
                "cv2": cv2.getNumThreads() if cv2 is not None and hasattr(cv2, "getNumThreads") else None,
            }
            if torch_threads is not None:
                _keep_torch_threads(torch_threads)
        return _remembered


def restore() -> list[str]:
    """Put back what changed since ``remember()``; what was put back, in words (for the log). Nothing in a
    process of one analyzer (``alone_in_this_process``) or with ``FRAMEWORK_KEEP_THREADS=0``."""
    if _alone or not switched_on("FRAMEWORK_KEEP_THREADS"):
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
            want = _torch_default(kept["env"].get("OMP_NUM_THREADS"))
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


__all__ = ["CPU_RUN_TORCH_THREADS", "ENV", "GPU_RUN_TORCH_THREADS", "alone_in_this_process", "for_a_run", "kept",
           "remember", "restore", "run_torch_threads", "use_torch_threads"]
