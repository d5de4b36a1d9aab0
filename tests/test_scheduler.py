from __future__ import annotations

import threading
import time

import pytest

from framework.errors import RunInterrupted
from framework.scheduler import CycleError, Demand, execute, plan, resolve_device, topological_order


def test_topological_order_respects_dependencies_and_input_order():
    order = topological_order({"fusion": ("a", "b"), "b": ("a",), "a": (), "c": ()})
    assert order.index("a") < order.index("b") < order.index("fusion")
    assert set(order) == {"a", "b", "c", "fusion"}


def test_cycle_is_reported_with_the_chain():
    with pytest.raises(CycleError, match="x -> y -> x"):
        topological_order({"x": ("y",), "y": ("x",)})


def test_gpu_waves_never_exceed_the_budget():
    demands = [Demand("vlm", "gpu", 9000), Demand("yolo", "gpu", 1500), Demand("whisper", "gpu", 2500),
               Demand("ocr", "gpu", 1200), Demand("cuts", "cpu")]
    p = plan(demands, vram_budget_mb=11000, gpus=1)
    for wave in p.waves:
        assert wave.vram_mb <= 11000
        assert sum(d.vram_mb for d in demands if d.name in wave.gpu) == wave.vram_mb
    placed = [n for w in p.waves for n in w.gpu + w.cpu]
    assert sorted(placed) == sorted(d.name for d in demands)


def test_over_budget_model_falls_back_to_cpu_and_says_so():
    p = plan([Demand("vlm", "gpu", 16000)], vram_budget_mb=12000, gpus=1)
    assert p.device["vlm"] == "cpu" and "over the 12000 MB budget" in p.notes["vlm"]
    p = plan([Demand("vlm", "gpu", 16000, cpu_fallback=False)], vram_budget_mb=12000, gpus=1)
    assert "vlm" in p.unplanned and "vlm" not in p.device


def test_no_gpu_runs_everything_on_cpu():
    p = plan([Demand("vlm", "gpu", 5000), Demand("cuts", "cpu")], vram_budget_mb=None, gpus=0)
    assert p.device == {"vlm": "cpu", "cuts": "cpu"}
    assert "no GPU" in p.notes["vlm"]


def test_dependent_gpu_analyzer_goes_in_a_later_wave():
    p = plan([Demand("a", "gpu", 100), Demand("b", "gpu", 100, ("a",))], vram_budget_mb=10000, gpus=1)
    wave_of = {n: i for i, w in enumerate(p.waves) for n in w.gpu}
    assert wave_of["b"] > wave_of["a"]


def test_execute_runs_after_dependencies_and_in_parallel():
    log: list[tuple[str, str]] = []
    lock = threading.Lock()
    both_running = threading.Event()
    running: set[str] = set()

    def run_one(name: str) -> bool:
        with lock:
            log.append(("start", name))
            running.add(name)
            if {"a", "b"} <= running:
                both_running.set()
        if name in ("a", "b"):
            both_running.wait(timeout=5)  # a and b are independent: they must overlap
        with lock:
            running.discard(name)
            log.append(("end", name))
        return True

    execute(["a", "b", "c"], {"c": ("a", "b")}, run_one, max_workers=2)
    assert both_running.is_set()
    assert log.index(("start", "c")) > log.index(("end", "a"))
    assert log.index(("start", "c")) > log.index(("end", "b"))


def test_execute_serializes_gpu_analyzers():
    active = []
    peak = [0]
    lock = threading.Lock()

    def run_one(name):
        with lock:
            active.append(name)
            peak[0] = max(peak[0], len(active))
        time.sleep(0.05)
        with lock:
            active.remove(name)
        return True

    execute(["g1", "g2", "g3"], {}, run_one, max_workers=3, serial=["g1", "g2", "g3"])
    assert peak[0] == 1


@pytest.mark.parametrize("preferred, configured, device, says", [
    ("gpu", None, "gpu", None), ("gpu", "auto", "gpu", None), ("gpu", "gpu", "gpu", None),
    ("gpu", "cpu", "cpu", "device: cpu in registry.yaml"), ("auto", "cpu", "cpu", "device: cpu"),
    ("auto", "gpu", "gpu", "device: gpu"), ("cpu", "gpu", "cpu", "runs only on the CPU"),
    ("cpu", "auto", "cpu", None)])
def test_resolve_device_lets_the_registry_override_the_class(preferred, configured, device, says):
    got, note = resolve_device(preferred, configured)
    assert got == device
    assert (note is None) if says is None else (says in note)


def test_the_configured_device_note_is_in_the_plan():
    p = plan([Demand("vlm", "cpu", 4000, note="device: cpu in registry.yaml: running on the CPU")],
             vram_budget_mb=8000, gpus=1)
    assert p.device == {"vlm": "cpu"} and "registry.yaml" in p.notes["vlm"]
    p = plan([Demand("vlm", "gpu", 4000, note="device: gpu in registry.yaml")], vram_budget_mb=8000, gpus=0)
    assert p.device == {"vlm": "cpu"} and p.notes["vlm"].startswith("device: gpu in registry.yaml; no GPU")


def test_ctrl_c_in_a_worker_stops_scheduling_waits_for_running_ones_and_raises_run_interrupted():
    started: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()
    slow_running = threading.Event()

    def run_one(name: str) -> bool:
        with lock:
            started.append(name)
        if name == "slow":  # runs until asked to stop, as an analyzer reporting progress does
            slow_running.set()
            assert stop.wait(timeout=30), "stop was never set"
            return True
        if name == "ctrl_c":
            assert slow_running.wait(timeout=30)
            raise KeyboardInterrupt
        return True

    with pytest.raises(RunInterrupted) as info:
        execute(["slow", "ctrl_c", "after"], {"after": ("ctrl_c",)}, run_one, max_workers=2, stop=stop)
    assert stop.is_set() and info.value.abandoned == []
    assert sorted(started) == ["ctrl_c", "slow"]  # "after" never started
