"""``framework.thread_settings``: threads a library sets for the whole process when imported (silero-vad: torch's;
ultralytics: OpenCV's and ``OMP_NUM_THREADS``) are put back after an import warm-up and after an analyzer's load."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from framework import thread_settings
from framework.warm_imports import import_each

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")
ROOT = Path(__file__).resolve().parents[1]

RUDE = """
import os, cv2, torch
os.environ.setdefault("OMP_NUM_THREADS", "1")  # as ultralytics does
cv2.setNumThreads(0)                            # as ultralytics does
torch.set_num_threads(1)                        # as silero-vad does
"""


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """This process's settings remembered anew (other tests may have taken them), a rude module to import."""
    monkeypatch.setattr(thread_settings, "_remembered", None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("FRAMEWORK_KEEP_THREADS", raising=False)
    monkeypatch.delenv("FRAMEWORK_TORCH_THREADS", raising=False)
    name = f"rude_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(RUDE)
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    yield name
    torch.set_num_threads(2)
    cv2.setNumThreads(-1)


def test_an_import_warm_up_puts_the_processs_threads_back(fresh):
    thread_settings.remember()
    import_each([fresh])
    assert fresh in sys.modules  # (it was imported)
    assert "OMP_NUM_THREADS" not in os.environ and torch.get_num_threads() == 2 and cv2.getNumThreads() == 2


def test_switched_off_the_libraries_settings_stay(fresh, monkeypatch):
    monkeypatch.setenv("FRAMEWORK_KEEP_THREADS", "0")
    thread_settings.remember()
    import_each([fresh])
    assert os.environ.get("OMP_NUM_THREADS") == "1" and torch.get_num_threads() == 1 and cv2.getNumThreads() == 1


def test_the_executor_puts_them_back_after_an_analyzers_load(fresh):
    """An analyzer whose load imports the rude module: after the run, as before it."""
    import importlib

    from framework.testing.devices import SimulatedGPUs, StandIn
    from test_executor import run_plan

    gpus = SimulatedGPUs({"cuda:0": 80_000})
    cls = StandIn.make("a", gpus, {"bf16": 1000}, step_s=0.01)
    real_load = cls.load

    def load(self, device, models):
        importlib.import_module(fresh)
        return real_load(self, device, models)

    cls.load = load
    thread_settings.remember()
    _, tracks = run_plan([cls()], gpus, 12_000)
    assert tracks["a"].status == "ok" and fresh in sys.modules
    assert "OMP_NUM_THREADS" not in os.environ and torch.get_num_threads() == 2 and cv2.getNumThreads() == 2


def test_torch_imported_after_a_library_set_omp_num_threads_gets_the_cpus_back(tmp_path):
    """In a fresh interpreter: ultralytics sets OMP_NUM_THREADS=1 before torch is first imported, so torch starts
    with one thread; the warm-up's import leaves torch with the CPUs this process may use, the variable unset."""
    code = textwrap.dedent("""
        import os, sys
        sys.modules.pop("torch", None)
        from framework import thread_settings
        from framework.warm_imports import import_each
        thread_settings.remember()
        import_each(["rude_late"])
        import torch
        print(os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads(), len(os.sched_getaffinity(0)))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "FRAMEWORK_KEEP_THREADS")}
    folder = tmp_path
    (folder / "rude_late.py").write_text('import os\nos.environ.setdefault("OMP_NUM_THREADS", "1")\nimport torch\n')
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{folder}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    omp, threads, cpus = done.stdout.split()
    assert omp == "None" and threads == cpus


def test_a_runs_start_takes_the_programs_settings_afresh_unless_a_load_is_in_progress(fresh):
    thread_settings.remember()
    torch.set_num_threads(1)  # the program's own choice between two runs
    assert thread_settings.remember(fresh=True)["torch"] == 1
    with thread_settings.kept("another run's load"):
        torch.set_num_threads(3)  # (a library's, meanwhile)
        assert thread_settings.remember(fresh=True)["torch"] == 1  # not taken: the earlier ones stand
    assert torch.get_num_threads() == 1  # put back to what the program chose


@pytest.mark.parametrize("env, gpu, want", [
    ({}, False, min(len(os.sched_getaffinity(0)), thread_settings.CPU_RUN_TORCH_THREADS)),
    ({}, True, thread_settings.GPU_RUN_TORCH_THREADS),
    ({"OMP_NUM_THREADS": "3"}, True, 3),                                   # the user's choice
    ({"OMP_NUM_THREADS": "3", "FRAMEWORK_TORCH_THREADS": "6"}, True, 6),   # the framework's own variable first
    ({"FRAMEWORK_TORCH_THREADS": "keep"}, False, None),
    ({"FRAMEWORK_KEEP_THREADS": "0", "FRAMEWORK_TORCH_THREADS": "6"}, True, None),  # the old behaviour, entirely
])
def test_a_runs_torch_threads(env, gpu, want):
    assert thread_settings.run_torch_threads(gpu, env) == want


def test_a_bad_torch_threads_setting_says_what_to_give():
    with pytest.raises(ValueError, match="FRAMEWORK_TORCH_THREADS='many'.*e.g. 4.*'keep'"):
        thread_settings.run_torch_threads(env={"FRAMEWORK_TORCH_THREADS": "many"})


def test_a_runs_torch_threads_are_set_and_kept_after_a_rude_import(fresh):
    """The run's number, not the program's (2 here) nor silero-vad's 1 after its import."""
    thread_settings.remember(fresh=True, torch_threads=3)
    assert torch.get_num_threads() == 3
    import_each([fresh])
    assert torch.get_num_threads() == 3 and cv2.getNumThreads() == 2 and "OMP_NUM_THREADS" not in os.environ
    thread_settings.use_torch_threads(1)  # (the plan put an analyzer on a GPU)
    assert torch.get_num_threads() == 1
    with thread_settings.kept("a library's load"):
        torch.set_num_threads(5)
    assert torch.get_num_threads() == 1


def test_a_run_with_a_bad_torch_threads_setting_stops_before_decoding(tmp_path, monkeypatch):
    from framework.runner import analyze
    from framework.errors import ConfigError

    monkeypatch.setenv("FRAMEWORK_TORCH_THREADS", "0")
    with pytest.raises(ConfigError, match="FRAMEWORK_TORCH_THREADS='0'"):
        analyze(tmp_path / "never_read.mp4", out_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("on_gpu", [True, False])
def test_a_run_that_uses_a_gpu_does_its_torch_work_on_one_thread(on_gpu, tmp_path, monkeypatch, sample_video):
    """The run's process: one torch thread once its plan puts an analyzer on a GPU (its CPUs feed the GPU and the
    run's other processes), else up to four; what a load sets is put back to that; after the run, the program's."""
    from framework.devices import GPUs
    from framework.runner import analyze
    from framework.testing.devices import SimulatedGPUs, StandIn
    from test_measurements import _one_simulated_gpu
    from test_own_process import registered

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("FRAMEWORK_TORCH_THREADS", raising=False)
    monkeypatch.delenv("FRAMEWORK_KEEP_THREADS", raising=False)
    gpus = SimulatedGPUs({"cuda:0": 24_000.0})
    if on_gpu:
        _one_simulated_gpu(monkeypatch, gpus)
    else:
        monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True: GPUs())
    seen: list[int] = []
    base = StandIn.make("t_threads", gpus, {"fp16": 1000.0, "fp32": 1000.0}, n_items=2)

    class Rude(base):  # type: ignore[misc, valid-type]
        device = "gpu" if on_gpu else "cpu"

        def load(self, device, models):
            torch.set_num_threads(7)  # as a library may
            super().load(device, models)

        def preprocess(self, items):
            seen.append(torch.get_num_threads())
            return super().preprocess(items)

    registry, host = registered(tmp_path, [Rude])
    torch.set_num_threads(3)  # the program's own
    try:
        result = analyze(sample_video.path, registry=registry, host=host, out_dir=tmp_path / "run", progress=False,
                         offline=True)
        track = result.timeline.tracks["t_threads"]
        assert track.status == "ok", track.reason
        assert track.device == ("cuda:0" if on_gpu else "cpu")
        want = 1 if on_gpu else min(len(os.sched_getaffinity(0)), 4)
        assert seen and set(seen) == {want}
        assert torch.get_num_threads() == 3  # the program's own again
    finally:
        torch.set_num_threads(2)


def test_in_a_process_of_one_analyzer_its_libraries_settings_stay(tmp_path):
    """An analyzer's own process (``framework.own_process`` calls ``alone_in_this_process``): no other analyzer
    there to protect, so what its library set (ultralytics: OpenCV on the calling thread) is left as it is."""
    code = textwrap.dedent("""
        import os
        import cv2, torch
        from framework import thread_settings
        from framework.warm_imports import import_each
        torch.set_num_threads(2); cv2.setNumThreads(2)
        thread_settings.alone_in_this_process()
        import_each(["rude_alone"])
        with thread_settings.kept("its load"):
            torch.set_num_threads(1)
        print(os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads(), cv2.getNumThreads())
    """)
    (tmp_path / "rude_alone.py").write_text(RUDE)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "FRAMEWORK_KEEP_THREADS")}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{tmp_path}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "1", "1"]


def test_an_analyzers_own_process_keeps_what_its_library_set(tmp_path, sample_video, monkeypatch):
    """Beside a GPU analyzer it runs in a process of its own: its load's settings stay there; as a thread of the
    run's process (no GPU in the run) the run puts them back for the others."""
    from own_process_fixtures import ThreadsSetByItsLibrary
    from test_own_process import run

    monkeypatch.delenv("FRAMEWORK_KEEP_THREADS", raising=False)
    monkeypatch.delenv("FRAMEWORK_TORCH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    child = run(tmp_path, sample_video, monkeypatch, ThreadsSetByItsLibrary)["t_own_threads"]
    assert child.status == "ok", child.reason
    assert child.data["pid"] != os.getpid() and (child.data["torch"], child.data["cv2"]) == (1, 1)
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    try:
        thread = run(tmp_path / "thread", sample_video, monkeypatch, ThreadsSetByItsLibrary, gpu=False)["t_own_threads"]
        assert thread.status == "ok" and thread.data["pid"] == os.getpid()
        # put back after its load: the run's torch threads (CPUs only: up to four), OpenCV as the program had it
        assert thread.data["torch"] == min(len(os.sched_getaffinity(0)), 4) and thread.data["cv2"] == 2
    finally:
        torch.set_num_threads(2)
        cv2.setNumThreads(-1)
