"""What one video's Ray task asks the cluster for, computed from the scheduler's plan (pure arithmetic).

``task_resources(plan, ...)`` turns a ``framework.scheduler.Plan`` into ``num_cpus`` and ``num_gpus``:

- no GPU placement: ``num_gpus = 0``;
- GPU analyzers on one device: the fraction of a GPU that the plan's largest wave needs (its VRAM
  sum over the per-GPU budget), rounded up to ``1/GPU_FRACTION_GRID``; the task then runs with a
  VRAM budget of exactly that share, so tasks that share a card never plan past it;
- GPU analyzers spread over several devices: that many whole GPUs;
- ``num_cpus``: ``--jobs`` if given, else one per CPU analyzer that may run at once (at most
  ``MAX_CPUS_PER_TASK``, as a local run's default), never more than the largest node has (Ray
  would otherwise wait for ever for a node that does not exist).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..scheduler import Plan

#: fractional GPUs are multiples of 1/8 of a card
GPU_FRACTION_GRID = 8
#: a video's task asks for at most this many CPUs unless --jobs says otherwise (a local run's default)
MAX_CPUS_PER_TASK = 4


@dataclass(frozen=True)
class TaskResources:
    """The Ray resources of one video's task, and the VRAM budget its run plans under.

    :ivar num_cpus: CPUs reserved for the task (the run's ``--jobs``).
    :ivar num_gpus: GPUs: 0, a fraction of one card (a multiple of 1/8), or a whole number.
    :ivar vram_budget_mb: the per-GPU budget the task's run uses (its share of a card when
        ``num_gpus`` is a fraction); None: the run's own ``--vram-budget``/auto.
    :ivar peak_vram_mb: the plan's largest wave on one GPU (MB), what the fraction was sized for.
    :ivar gpu_analyzers: analyzers the plan put on a GPU.
    """

    num_cpus: int
    num_gpus: float
    vram_budget_mb: float | None = None
    peak_vram_mb: float = 0.0
    gpu_analyzers: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """``2 CPU, 0.25 GPU (3 GB budget)``."""
        parts = [f"{self.num_cpus} CPU"]
        if self.num_gpus:
            parts.append(f"{self.num_gpus:g} GPU")
            if self.vram_budget_mb is not None:
                parts[-1] += f" ({self.vram_budget_mb / 1024:.1f} GB budget)"
        return ", ".join(parts)


def task_resources(plan: Plan, *, gpu_budget_mb: float | None, max_node_cpus: int | None,
                   jobs: int | None = None, grid: int = GPU_FRACTION_GRID) -> TaskResources:
    """The resources of one video's task.

    :param plan: the scheduler's plan for the video, made for one node's GPUs.
    :param gpu_budget_mb: the per-GPU VRAM budget the plan was made under (None: unknown, so a
        GPU task takes whole cards).
    :param max_node_cpus: the most CPUs any node of the cluster has (None: no cap).
    :param jobs: ``--jobs`` (analyzers run in parallel on the CPU), if the user gave it.
    """
    gpu_names = tuple(n for n, p in plan.placements.items() if p.is_gpu)
    used = sorted({plan.placements[n].device for n in gpu_names})
    cpu_analyzers = sum(1 for p in plan.placements.values() if not p.is_gpu)
    cpus = jobs if jobs else min(MAX_CPUS_PER_TASK, max(1, cpu_analyzers))
    if max_node_cpus is not None:
        cpus = min(cpus, max(1, int(max_node_cpus)))
    cpus = max(1, int(cpus))
    if not used:
        return TaskResources(cpus, 0.0)
    peak = max((w.vram_mb for w in plan.waves if w.gpu), default=0.0)
    if len(used) > 1:
        return TaskResources(cpus, float(len(used)), None, peak, gpu_names)
    if not gpu_budget_mb or gpu_budget_mb <= 0 or peak <= 0:
        return TaskResources(cpus, 1.0, None, peak, gpu_names)
    share = math.ceil(peak / gpu_budget_mb * grid - 1e-9) / grid
    share = min(1.0, max(1.0 / grid, share))
    return TaskResources(cpus, share, share * gpu_budget_mb if share < 1.0 else None, peak, gpu_names)


def gpu_minutes(tasks: list[dict]) -> float:
    """GPU-minutes the tasks held: each task's wall time times the GPUs (or share of one) it had."""
    return sum(float(t.get("wall_s") or 0.0) * float(t.get("num_gpus") or 0.0) for t in tasks) / 60.0
