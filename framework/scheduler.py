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
        elif wants_gpu and vram_budget_mb is not None and d.vram_mb > vram_budget_mb:
            if d.cpu_fallback:
                device[name] = "cpu"
                notes[name] = (f"needs ~{d.vram_mb:.0f} MB VRAM, over the {vram_budget_mb:.0f} MB budget: "
                               "running on the CPU")
            else:
                unplanned[name] = f"needs ~{d.vram_mb:.0f} MB VRAM, over the {vram_budget_mb:.0f} MB budget"
        else:
            device[name] = "gpu" if wants_gpu else "cpu"

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
            max_workers: int = 2, serial: Iterable[str] = ()) -> None:
    """Run ``run_one(name)`` for each name once all its dependencies have finished.

    Independent analyzers run in parallel threads (numpy, OpenCV and PyAV release the GIL).
    ``run_one`` must not raise; it returns False when the analyzer did not produce a usable
    track (its dependents still run and decide what to do with a missing upstream).
    Names in ``serial`` (e.g. GPU analyzers, which the plan has placed in waves) run one at a time.
    """
    serial = set(serial)
    gpu_lock = threading.Lock()
    pending = {n: {d for d in deps.get(n, ()) if d in order} for n in order}
    done: set[str] = set()

    def task(name: str) -> str:
        if name in serial:
            with gpu_lock:
                run_one(name)
        else:
            run_one(name)
        return name

    with cf.ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        running: dict[cf.Future, str] = {}
        while pending or running:
            ready = [n for n in order if n in pending and pending[n] <= done]
            for name in ready:
                del pending[name]
                running[pool.submit(task, name)] = name
            if not running:
                raise CycleError(f"cannot schedule {sorted(pending)}: unmet dependencies")
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                name = running.pop(fut)
                fut.result()
                done.add(name)
