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
