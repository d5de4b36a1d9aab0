"""Per-GPU peak VRAM: the executor keeps the allocator's peak across the resets that measure each
analyzer alone, so the run receipt (and Ray's cluster receipt, read from it) has the GPU's peak, not
the last analyzer's. No Ray cluster here: ``analyze_task`` is what a worker runs, called in this
process on one simulated GPU.
"""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from framework.devices import GPUs
from framework.executors import ray_executor as rx
from framework.executors.resources import TaskResources
from framework.testing.devices import SimulatedGPUs, StandIn
from framework.testing.plugins import analyzers_plugin

MB = 2**20


@pytest.fixture
def one_simulated_gpu(monkeypatch):
    """One simulated 24 GB GPU (13 GB budget) for the runner, and torch's CUDA peak counters reading it.

    The counters stand in for what a worker on a real GPU reads: the executor's ``reset_peak`` is
    ``torch.cuda.reset_peak_memory_stats``, so both see the same resets.
    """
    import torch

    gpus = SimulatedGPUs({"cuda:0": 24_000.0})
    monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True: GPUs(
        ["cuda:0"], {"cuda:0": 13_000.0}, {"cuda:0": 24_000.0}, {"cuda:0": "simulated"}))
    monkeypatch.setattr("framework.executor.TorchMemory", lambda: gpus)
    for name, value in {"is_available": lambda: True, "is_initialized": lambda: True, "device_count": lambda: 1,
                        "synchronize": lambda device=None: None,
                        # the device step waits for the analyzer's own stream (framework.work_streams)
                        "current_stream": lambda device=None: SimpleNamespace(synchronize=lambda: None),
                        "reset_peak_memory_stats": lambda device=None: gpus.reset_peak("cuda:0"),
                        "max_memory_reserved": lambda device=None: gpus.peak_mb("cuda:0") * MB,
                        "max_memory_allocated": lambda device=None: gpus.peak_mb("cuda:0") * MB}.items():
        monkeypatch.setattr(torch.cuda, name, value)
    return gpus


def test_a_worker_reports_the_largest_analyzers_peak_not_the_last_ones(tmp_path, monkeypatch, sample_video,
                                                                        one_simulated_gpu):
    gpus = one_simulated_gpu
    # the plan's estimates (batch items beyond the first: 9000 + 4500 MB) do not fit the 13 GB budget together: one
    # after the other, each alone on the GPU; the small one runs last (it depends on the big one). Their real peaks:
    # 1000 MB of weights + 4 items of 3000 MB, and 2 items of 4500 MB
    Big = StandIn.make("t_big", gpus, {"fp16": 1000.0}, item_mb=3000.0, n_items=4, batch_size=4)
    Small = StandIn.make("t_small", gpus, {"fp16": 0.0}, item_mb=4500.0, n_items=2, batch_size=2,
                         depends_on=("t_big",))

    Plugin = analyzers_plugin(Big, Small)

    from framework import plugins

    real = plugins.build_plugin_manager
    monkeypatch.setattr(plugins, "build_plugin_manager",
                        lambda dirs=(), load_entrypoints=True: real(dirs, load_entrypoints=False, extra_plugins=[Plugin]))
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text("analyzers:\n  t_big: {}\n  t_small: {}\n")
    level = logging.getLogger("framework").level  # the task quiets the worker's logging
    try:
        got = rx.analyze_task(str(sample_video.path), str(tmp_path / "run"),
                              {"registry_path": str(registry_file), "load_entrypoints": False, "offline": True})
    finally:
        logging.getLogger("framework").setLevel(level)
    result = got["outcome"].result
    assert got["outcome"].error is None and result is not None
    big, small = result.timeline.tracks["t_big"].receipt, result.timeline.tracks["t_small"].receipt
    assert big["measured_alone"] and small["measured_alone"], "the stand-ins must run one after the other"
    assert big["peak_vram_mb"] == 1000 + 4 * 3000 and small["peak_vram_mb"] == 2 * 4500
    # the finding: the device's peak counter at the end holds the last analyzer's peak only
    assert gpus.peak_mb("cuda:0") == 9000
    assert got["info"]["peak_vram_mb"] == {"cuda:0": 13_000.0}
    assert result.timeline.run["receipt"]["peak_vram_mb"] == {"cuda:0": 13_000.0}  # results.json's own

    # a retry (or a rerun) that reuses both tracks measured nothing on its GPU
    again = rx.analyze_task(str(sample_video.path), str(tmp_path / "run"),
                            {"registry_path": str(registry_file), "load_entrypoints": False, "offline": True})
    logging.getLogger("framework").setLevel(level)
    assert set(again["outcome"].result.reused) == {"t_big", "t_small"}
    assert again["info"]["peak_vram_mb"] == {}


def test_the_cluster_receipt_carries_each_tasks_per_gpu_peak():
    report = rx.TaskReport("a.mp4", "runs/a", TaskResources(2, 1.0, 20_000.0, 13_000.0, ("t_big",)), node="n1",
                           gpu_ids=["1"], peak_vram_mb={"cuda:0": 13_000.0}, wall_s=10.0, video_s=60.0)
    receipt = rx.cluster_receipt([report], 12.0, rx.ClusterShape(8, 1, 20_000.0))
    task = receipt["tasks"][0]
    assert task["peak_vram_mb"] == {"cuda:0": 13_000.0} and task["planned_peak_vram_mb"] == 13_000.0
