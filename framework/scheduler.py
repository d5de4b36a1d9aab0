"""Which analyzer runs where and when: ``plan()`` is a pure function; ``execute()`` runs a plan.

A plan is a list of waves in dependency order. GPU analyzers grouped in one wave may be loaded
together because the sum of their VRAM estimates stays within the budget; CPU analyzers run
beside them. An analyzer whose estimate alone exceeds the budget is planned on the CPU (and says
so) when it can run there, otherwise it is left out with a reason.

``execute`` today runs CPU analyzers in parallel threads and GPU analyzers one at a time (a
stricter schedule than any plan allows, so the budget holds); loading a whole wave together,
capping the allocator and recording measured peaks are not implemented yet.
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Demand:
    """What the scheduler needs to know about one analyzer."""

    name: str
    device: str = "cpu"  # "cpu" | "gpu" | "auto"
    vram_mb: float = 0.0
    depends_on: tuple[str, ...] = ()
    cpu_fallback: bool = True
    note: str | None = None  # why ``device`` is what it is, when the user's configuration chose it


@dataclass
class Wave:
    """Analyzers loaded together: GPU ones whose VRAM sums within budget, CPU ones beside them."""

    gpu: list[str] = field(default_factory=list)
    cpu: list[str] = field(default_factory=list)
    vram_mb: float = 0.0


@dataclass
class Plan:
    order: list[str]
    device: dict[str, str]
    waves: list[Wave]
    notes: dict[str, str] = field(default_factory=dict)
    unplanned: dict[str, str] = field(default_factory=dict)


class CycleError(ValueError):
    pass


def resolve_device(preferred: str, configured: str | None, source: str = "registry.yaml") -> tuple[str, str | None]:
    """The device to plan an analyzer for, from its class's preference and the registry's ``device:``.

    ``auto`` in the registry keeps the analyzer's own preference; ``cpu`` always wins (a GPU
    analyzer runs on the CPU); ``gpu`` applies to analyzers that can use a GPU, not to CPU-only ones.

    :param preferred: the analyzer class's ``device`` (``cpu``, ``gpu`` or ``auto``).
    :param configured: the registry's ``device`` for it (``None`` or ``auto``: no preference).
    :returns: the device and, when the configuration changed it, a note saying why.
    """
    if configured in (None, "auto") or configured == preferred:
        return preferred, None
    if configured == "cpu":
        return "cpu", f"device: cpu in {source}: running on the CPU"
    if preferred == "cpu":
        return "cpu", f"device: {configured} in {source} ignored: this analyzer runs only on the CPU"
    return "gpu", f"device: gpu in {source}"


def topological_order(deps: dict[str, Iterable[str]]) -> list[str]:
    """Names ordered so every analyzer follows the ones it depends on (stable by input order)."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise CycleError("analyzer dependency cycle: " + " -> ".join(chain + (name,)))
        state[name] = 1
        for dep in deps.get(name, ()):
            if dep in deps:
                visit(dep, chain + (name,))
        state[name] = 2
        order.append(name)

    for name in deps:
        visit(name, ())
    return order


def plan(demands: list[Demand], vram_budget_mb: float | None, gpus: int) -> Plan:
    """Assign devices and group GPU work into waves under ``vram_budget_mb``.

    :param demands: one per analyzer to run; ``depends_on`` names outside the list are ignored.
    :param vram_budget_mb: the most VRAM the loaded models may sum to (None: the device's size
        is unknown, so GPU analyzers run one per wave).
    :param gpus: number of usable GPUs (0 on a CPU-only machine).
    """
    by_name = {d.name: d for d in demands}
    order = topological_order({d.name: d.depends_on for d in demands})
    device: dict[str, str] = {}
    notes: dict[str, str] = {}
    unplanned: dict[str, str] = {}
    for name in order:
        d = by_name[name]
        wants_gpu = d.device == "gpu" or (d.device == "auto" and d.vram_mb > 0)
        if wants_gpu and gpus == 0:
            if d.device == "gpu" and not d.cpu_fallback:
                unplanned[name] = "needs a GPU and none is available"
                continue
            device[name] = "cpu"
            if d.device == "gpu":
                notes[name] = "no GPU available: running on the CPU (slower)"
                if d.note:
                    notes[name] = f"{d.note}; {notes[name]}"
        elif wants_gpu and vram_budget_mb is not None and d.vram_mb > vram_budget_mb:
            if d.cpu_fallback:
                device[name] = "cpu"
                notes[name] = (f"needs ~{d.vram_mb:.0f} MB VRAM, over the {vram_budget_mb:.0f} MB budget: "
                               "running on the CPU")
            else:
                unplanned[name] = f"needs ~{d.vram_mb:.0f} MB VRAM, over the {vram_budget_mb:.0f} MB budget"
        else:
            device[name] = "gpu" if wants_gpu else "cpu"
            if d.note:
                notes[name] = d.note

    # waves: a GPU analyzer joins the earliest wave after its dependencies with room left
    waves: list[Wave] = []
    used: list[float] = []
    wave_of: dict[str, int] = {}
    for name in order:
        if name not in device:
            continue
        d = by_name[name]
        earliest = max((wave_of[p] + (1 if device.get(p) == "gpu" else 0)
                        for p in d.depends_on if p in wave_of), default=0)
        if device[name] == "cpu":
            earliest = max((wave_of[p] for p in d.depends_on if p in wave_of), default=0)
            while len(waves) <= earliest:
                waves.append(Wave()); used.append(0.0)
            waves[earliest].cpu.append(name)
            wave_of[name] = earliest
            continue
        w = earliest
        while True:
            while len(waves) <= w:
                waves.append(Wave()); used.append(0.0)
            fits = (vram_budget_mb is None and not waves[w].gpu) or (
                vram_budget_mb is not None and used[w] + d.vram_mb <= vram_budget_mb)
            if fits:
                waves[w].gpu.append(name)
                used[w] += d.vram_mb
                waves[w].vram_mb = used[w]
                wave_of[name] = w
                break
            w += 1
    return Plan(order=[n for n in order if n in device], device=device, waves=waves,
                notes=notes, unplanned=unplanned)


def execute(order: list[str], deps: dict[str, tuple[str, ...]], run_one: Callable[[str], bool],
            max_workers: int = 2, serial: Iterable[str] = (), stop: threading.Event | None = None) -> None:
    """Run ``run_one(name)`` for each name once all its dependencies have finished.

    Independent analyzers run in parallel threads (numpy, OpenCV and PyAV release the GIL).
    ``run_one`` must not raise; it returns False when the analyzer did not produce a usable
    track (its dependents still run and decide what to do with a missing upstream).
    Names in ``serial`` (e.g. GPU analyzers, which the plan has placed in waves) run one at a time.

    Ctrl-C (``KeyboardInterrupt`` in the calling thread, where Python delivers SIGINT, or raised by
    ``run_one`` in a worker) sets ``stop``: no further analyzer starts, the running ones are asked
    to stop (``run_one`` checks ``stop`` at its progress reports) and are waited for, so whatever
    they finish is saved whole; then ``RunInterrupted`` is raised. A second Ctrl-C stops waiting:
    ``RunInterrupted.abandoned`` names the analyzers still running in their threads.
    """
    from .errors import RunInterrupted

    serial = set(serial)
    stop = stop if stop is not None else threading.Event()
    gpu_lock = threading.Lock()
    pending = {n: {d for d in deps.get(n, ()) if d in order} for n in order}
    done: set[str] = set()

    def task(name: str) -> str:
        if stop.is_set():
            return name
        if name in serial:
            with gpu_lock:
                if not stop.is_set():
                    run_one(name)
        else:
            run_one(name)
        return name

    pool = cf.ThreadPoolExecutor(max_workers=max(1, max_workers))
    running: dict[cf.Future, str] = {}
    try:
        while pending or running:
            ready = [n for n in order if n in pending and pending[n] <= done]
            for name in ready:
                del pending[name]
                running[pool.submit(task, name)] = name
            if not running:
                raise CycleError(f"cannot schedule {sorted(pending)}: unmet dependencies")
            # a timeout, so a SIGINT that lands just before the wait blocks is acted on within
            # a quarter second (Python runs signal handlers only between bytecodes)
            finished, _ = cf.wait(running, timeout=0.25, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                name = running.pop(fut)
                fut.result()
                done.add(name)
    except BaseException as exc:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        busy = [n for f, n in running.items() if f.running()]
        if busy:
            logger.warning("stopping: waiting for %s to stop (Ctrl-C again to quit at once)", ", ".join(busy))
        try:
            while not all(f.done() for f in running):
                cf.wait(running, timeout=0.25)
        except KeyboardInterrupt:
            raise RunInterrupted(abandoned=[n for f, n in running.items() if not f.done()]) from None
        if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunInterrupted):
            raise RunInterrupted() from None
        raise
    pool.shutdown(wait=True)
