"""In a run that uses a GPU the analyzers' slow imports (``Analyzer.warm_imports``) happen on a thread
while the video decodes in its own process, and the loads begin after them (``framework.warm_imports``,
``executor.LoadTurns``)."""
from __future__ import annotations

import sys
import threading
import time

from framework import Analyzer, FrameSpec
from framework.plugins import build_plugin_manager
from framework.registry import load_registry
from framework.runner import analyze
from framework.testing.plugins import analyzers_plugin
from test_own_process import one_simulated_gpu

SLOW_MODULE = """
import threading, time
IMPORTED_ON = threading.current_thread().name
STARTED_AT = time.perf_counter()
time.sleep(1.5)
DONE = True
"""


class WarmsUp(Analyzer):
    name = "t_warms_up"
    version = "1.0"
    device = "gpu"
    warm_imports = ("t_slow_module",)

    def frame_specs(self):
        return [FrameSpec(fps=1.0, width=32, height=18)]

    def load(self, device, models):
        module = sys.modules.get("t_slow_module")  # looked at, not imported: an import would wait for it
        self.seen = {"imported_on": getattr(module, "IMPORTED_ON", None), "done": getattr(module, "DONE", False),
                     "load_on": threading.current_thread().name}

    def analyze(self, inputs):
        return self.track(data=self.seen)


def run_warms_up(tmp_path, video, monkeypatch):
    one_simulated_gpu(monkeypatch)
    (tmp_path / "t_slow_module.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "t_slow_module", raising=False)

    Plugin = analyzers_plugin(WarmsUp)

    (tmp_path / "registry.yaml").write_text("analyzers:\n  t_warms_up: {}\n")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Plugin])
    return analyze(video.path, registry=load_registry(tmp_path / "registry.yaml"), host=host,
                   out_dir=tmp_path / "run", progress=False)


def test_the_slow_imports_run_on_their_thread_and_the_load_waits_for_them(tmp_path, sample_video, monkeypatch):
    result = run_warms_up(tmp_path, sample_video, monkeypatch)
    track = result.timeline.tracks["t_warms_up"]
    assert track.status == "ok", track.reason
    assert track.data == {"imported_on": "analyzer-imports", "done": True, "load_on": track.data["load_on"]}
    assert track.data["load_on"] != "analyzer-imports"
    phases = result.timeline.run["receipt"]["phases_s"]
    assert set(phases) == {"plan", "decode", "analyzers"} and all(v >= 0 for v in phases.values())


def test_on_a_gpu_machine_the_slow_imports_start_before_the_plan(tmp_path, sample_video, monkeypatch):
    """With the early decode (a GPU driver present, a fresh run) the warm-up starts when the run does,
    not after the plan; the load still waits for it, in the same load turns."""
    from framework import runner

    monkeypatch.setattr("framework.runner.gpu_driver_present", lambda: True)
    real_plan, planned = runner._Run._plan, []

    def slow_plan(self):
        planned.append(time.perf_counter())
        time.sleep(0.5)  # as importing torch and finding the GPUs takes
        return real_plan(self)

    monkeypatch.setattr(runner._Run, "_plan", slow_plan)
    result = run_warms_up(tmp_path, sample_video, monkeypatch)
    track = result.timeline.tracks["t_warms_up"]
    assert track.status == "ok", track.reason
    assert track.data["imported_on"] == "analyzer-imports" and track.data["done"]
    assert sys.modules["t_slow_module"].STARTED_AT < planned[0] + 0.4  # begun while the plan had just begun
