"""scipy's first import from several analyzers' threads at once failed one of them (``KeyError: 'scipy'``
on the H200 machine: speech_rate, one run in 24); a run imports such packages before it starts threads
(``framework.warm_imports.import_before_threads``)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from framework import warm_imports
from framework.testing.devices import SimulatedGPUs, StandIn
from test_executor import run_plan

# eight threads released at once, each importing a part of scipy (or a package built on it) for the first time
RACE = textwrap.dedent("""
    import sys, threading, traceback
    from framework.warm_imports import import_before_threads
    print("imported first:", import_before_threads())
    parts = ["scipy.signal", "scipy.ndimage", "scipy.stats", "scipy.sparse", "scipy.spatial",
             "scipy.optimize", "scipy.interpolate", "scipy.fft"]
    start = threading.Barrier(len(parts))
    failed = []
    def take(part):
        start.wait()
        try:
            __import__(part)
        except BaseException:
            failed.append(traceback.format_exc())
    threads = [threading.Thread(target=take, args=(p,)) for p in parts]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print("failed:", len(failed)); print("".join(failed))
""")


def test_scipys_parts_import_from_eight_threads_at_once_after_import_before_threads():
    """Without the import up front this very race failed in 16 fresh processes of 20 here, so three clean
    processes in a row would be a chance under 1 in 100 if the function did nothing."""
    pytest.importorskip("scipy")
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "imported first: ['scipy']" in done.stdout, done.stdout
        assert "failed: 0" in done.stdout, done.stdout


def test_a_package_already_imported_or_not_installed_is_left_alone():
    assert warm_imports.import_before_threads(["sys", "no_such_package_here"]) == []


def test_the_executor_imports_them_before_its_analyzers_threads_start(monkeypatch):
    seen = []
    monkeypatch.setattr("framework.executor.import_before_threads",
                        lambda: seen.append(("imported", threading.active_count())))
    gpus = SimulatedGPUs({"cuda:0": 80_000})

    class Cpu(StandIn.make("cpu_one", gpus, {}, n_items=1)):
        device = "cpu"

        def forward(self, batch):
            seen.append(("analyzed", threading.current_thread().name))
            return super().forward(batch)

    threads_before = threading.active_count()
    _p, tracks = run_plan([Cpu()], gpus, 10_000)
    assert tracks["cpu_one"].status == "ok"
    assert seen[0] == ("imported", threads_before)  # first, and before the executor's pools had a thread
    assert seen[1][0] == "analyzed" and seen[1][1].startswith("cpu-analyzer")


def test_a_run_imports_them_before_its_first_thread(tmp_path, sample_video, monkeypatch):
    from framework.plugins import build_plugin_manager
    from framework.registry import load_registry
    from framework.runner import analyze

    calls = []
    monkeypatch.setattr("framework.runner.import_before_threads",
                        lambda: calls.append(("imported", threading.active_count())))
    real_warm_up = warm_imports.warm_up_imports
    monkeypatch.setattr("framework.runner.warm_up_imports",
                        lambda *a, **k: (calls.append(("warm-up thread", None)), real_warm_up(*a, **k))[1])
    threads_before = threading.active_count()
    (tmp_path / "registry.yaml").write_text("analyzers:\n  color_analysis: {}\n")
    analyze(sample_video.path, registry=load_registry(tmp_path / "registry.yaml"),
            host=build_plugin_manager(load_entrypoints=False), out_dir=tmp_path / "run", progress=False)
    assert calls[0] == ("imported", threads_before), calls
    assert ("warm-up thread", None) in calls[1:]
