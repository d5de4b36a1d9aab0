"""Analyzers with ``own_process = True`` run in a child process when the run uses a GPU
(``framework.own_process``): the same inputs, progress, failures and track as in a thread; a GPU
analyzer there keeps the budget's cap, the busy spans, its peak and the out-of-memory fallbacks."""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from framework import Analyzer, AnalyzerInputs, VideoMeta, hookimpl
from framework.errors import RunInterrupted
from framework.own_process import ProcessCall, importable, wait_for_exits
from framework.plugins import build_plugin_manager
from framework.registry import load_registry
from framework.runner import analyze
from framework.testing.plugins import analyzers_plugin
from own_process_fixtures import (CudaAllocator, Dies, Exits, Failing, OnGpu, OutOfMemoryUnlessAlone, PidReporter,
                                  ScipyBeforeLoad, Sleeper, SlowToExit, Unavailable)


class Gpu(Analyzer):
    name = "t_own_gpu"
    version = "1.0"
    device = "gpu"

    def analyze(self, inputs):
        return self.track()


def one_simulated_gpu(monkeypatch):
    from framework.devices import GPUs
    from framework.testing.devices import SimulatedGPUs

    monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True: GPUs(
        ["cuda:0"], {"cuda:0": 8000.0}, {"cuda:0": 8192.0}, {"cuda:0": "simulated"}))
    monkeypatch.setattr("framework.executor.TorchMemory", lambda: SimulatedGPUs({"cuda:0": 8192.0}))


def run(tmp_path, video, monkeypatch, *classes, gpu=True, env=None, simulated=True, budget=None, params=None):
    """``framework run`` of ``classes`` (and a GPU analyzer unless ``gpu`` is False) on a simulated GPU
    (or the real ones); ``params``: registry.yaml blocks by analyzer name."""
    if simulated:
        one_simulated_gpu(monkeypatch)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    reg, host = registered(tmp_path, [*classes, Gpu] if gpu else list(classes), params)
    return analyze(video.path, registry=reg, host=host, out_dir=tmp_path / "run", progress=False,
                   vram_budget=budget).timeline.tracks


def registered(tmp_path, classes, params=None):
    """(registry, plugin host) of ``classes``, each enabled in ``tmp_path/registry.yaml`` (``params``:
    their blocks by analyzer name)."""

    class Plugin:
        @hookimpl
        def register_analyzers(self, register):
            for cls in classes:
                register(cls)

    tmp_path.mkdir(parents=True, exist_ok=True)
    names = "".join(f"  {c.name}: {json.dumps((params or {}).get(c.name, {}))}\n" for c in classes)
    (tmp_path / "registry.yaml").write_text(f"analyzers:\n{names}")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Plugin()])
    return load_registry(tmp_path / "registry.yaml"), host


def test_beside_a_gpu_analyzer_it_runs_in_a_process_of_its_own_and_reads_what_a_thread_reads(
        tmp_path, sample_video, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    tracks = run(tmp_path, sample_video, monkeypatch, PidReporter)
    t = tracks["t_own_pid"]
    # its log records reach this process's logging, under their logger's name, at the run's level
    relayed = [r for r in caplog.records if r.name == "own_process_fixtures"]
    assert [(r.levelno, r.getMessage()) for r in relayed] == [
        (logging.WARNING, f"t_own_pid: read {t.data['frames_declared']} frames")]
    assert t.status == "ok", t.reason
    assert t.data["pid"] != os.getpid() and t.data["loaded_in"] == t.data["pid"]  # load and analyze there
    assert t.data["frames"] == t.data["frames_declared"] > 0  # its frame stream, read from the run cache
    assert t.data["audio_s"] == pytest.approx(sample_video.duration, abs=0.2)
    assert t.device == "cpu" and tracks["t_own_gpu"].status == "ok"
    # the same analyzer as a thread (no GPU analyzer in the run) reads exactly the same
    alone = run(tmp_path / "alone", sample_video, monkeypatch, PidReporter, gpu=False)["t_own_pid"]
    assert alone.data["pid"] == os.getpid()
    assert {k: alone.data[k] for k in ("frames", "audio_s")} == {k: t.data[k] for k in ("frames", "audio_s")}


def test_on_a_gpu_machine_its_process_starts_with_the_run_and_unused_ones_end(tmp_path, sample_video, monkeypatch):
    """With the early decode (a GPU driver present, a fresh run) the processes of the analyzers that
    will run in their own start before the plan (``EarlyChildren``); an analyzer's load takes its
    own, and each ends with the run."""
    from framework import own_process

    monkeypatch.setattr("framework.runner.gpu_driver_present", lambda: True)
    early = []
    real_init = own_process.EarlyChildren.__init__

    def init(self, classes, **kwargs):
        real_init(self, classes, **kwargs)
        early.append({name: child.proc for name, child in self._children.items()})

    monkeypatch.setattr(own_process.EarlyChildren, "__init__", init)
    tracks = run(tmp_path, sample_video, monkeypatch, PidReporter, Failing)
    assert len(early) == 1 and set(early[0]) == {"t_own_pid", "t_own_failing"}
    assert tracks["t_own_pid"].data["pid"] == early[0]["t_own_pid"].pid  # loaded and analyzed in the early one
    assert all(proc.poll() is not None for proc in early[0].values())  # every one ended with the run
    # a run that reuses its tracks starts none
    again = run(tmp_path, sample_video, monkeypatch, PidReporter, Failing)
    assert len(early) == 1 and again["t_own_pid"].reused


def test_early_processes_nobody_takes_end_when_closed():
    from framework.own_process import EarlyChildren

    early = EarlyChildren({"t_own_pid": PidReporter, "t_own_sleeper": Sleeper})
    procs = [c.proc for c in early._children.values()]
    assert early.names == ["t_own_pid", "t_own_sleeper"] and all(p.poll() is None for p in procs)
    child = early.take("t_own_pid")
    assert child is not None and early.take("t_own_pid") is None and early.names == ["t_own_sleeper"]
    early.close()
    call = _call(PidReporter(), lambda fraction: None)
    call.child = child  # (as ProcessCall._load would have: here only to end it)
    call.unload()
    wait_for_exits()
    assert all(p.poll() is not None for p in procs)


def test_it_stays_a_thread_when_turned_off(tmp_path, sample_video, monkeypatch):
    tracks = run(tmp_path, sample_video, monkeypatch, PidReporter, env={"FRAMEWORK_OWN_PROCESS": "0"})
    assert tracks["t_own_pid"].data["pid"] == os.getpid()


def test_a_failure_in_the_child_reads_as_in_a_thread_with_the_childs_traceback(tmp_path, sample_video, monkeypatch):
    tracks = run(tmp_path, sample_video, monkeypatch, Failing, Unavailable, Dies, Exits)
    failed = tracks["t_own_failing"]
    assert failed.status == "failed" and failed.reason.startswith("ValueError: no frame at 1.5 s (plugin ")
    assert failed.failed_phase == "analyze"
    text = (tmp_path / "run" / failed.traceback_file).read_text()
    assert "read_frame" in text and "own_process_fixtures.py" in text  # where it raised, in the child
    skipped = tracks["t_own_unavailable"]
    assert skipped.status == "skipped" and skipped.reason == "needs the thing: pip install thing"
    exited = tracks["t_own_exits"]
    assert exited.status == "failed" and exited.reason.startswith("SystemExit(3) (the analyzer called sys.exit)")
    died = tracks["t_own_dies"]
    assert died.status == "failed" and "own process died (exit code 3)" in died.reason


def _call(analyzer: Analyzer, progress) -> ProcessCall:
    video = VideoMeta(path="x.mp4", content_hash="x", size_bytes=1, duration=10.0, has_video=True)
    return ProcessCall(analyzer, AnalyzerInputs(video=video, progress=progress), "cpu")


def test_progress_comes_back_and_a_stop_ends_the_child_at_once():
    seen = []

    def progress(fraction):
        seen.append(fraction)
        if len(seen) >= 3:
            raise RunInterrupted()

    call = _call(Sleeper(), progress)
    assert not call.load().failed
    child = call.child
    with pytest.raises(KeyboardInterrupt):
        call.analyze()
    assert seen[-1] > 0.0 and seen == sorted(seen)
    assert call.child is None and child.proc.poll() is not None  # killed, not left to finish its 30 s
    assert not call.unload().failed  # nothing left to unload


def test_the_track_is_handed_over_without_waiting_for_the_child_to_exit():
    """unload() returns once the child has unloaded; its exit (slow here: 30 s) goes on in the
    background, and the end of the run collects it (killed after 5 s, as any child that will not end)."""
    call = _call(SlowToExit(), lambda fraction: None)
    assert not call.load().failed
    child = call.child
    assert not call.analyze().failed
    assert not call.unload().failed
    assert call.child is None and child.proc.poll() is None  # still exiting: nobody waited for it
    wait_for_exits()
    assert child.proc.poll() is not None


def test_its_process_imports_scipy_before_its_analyzers_threads_can(tmp_path, sample_video, monkeypatch):
    """As the run's process does (``import_before_threads``): two of its threads' first imports of parts of
    scipy at once failed one of them in the run's process (``tests/test_import_before_threads.py``)."""
    pytest.importorskip("scipy")
    track = run(tmp_path, sample_video, monkeypatch, ScipyBeforeLoad)["t_own_scipy"]
    assert track.status == "ok", track.reason
    assert track.data["pid"] != os.getpid() and track.data["scipy_before_load"] is True


def test_only_classes_a_fresh_interpreter_can_import_go_to_a_process():
    class Local(PidReporter):
        name = "t_local"

    assert importable(PidReporter) == "own_process_fixtures:PidReporter"
    assert importable(Local) is None
    with pytest.raises(ValueError, match="cannot be imported by name"):
        _call(Local(), None)
    assert Path(__file__).with_name("own_process_fixtures.py").is_file()


BUILT_INS = ("cut_analysis", "camera_analysis", "color_analysis", "visual_effects", "temporal_flow", "speech_flow",
             "text_overlay")


def in_a_process_and_in_a_thread(tmp_path, video, registry, monkeypatch, **analyze_kwargs):
    """Two runs of ``registry`` beside a simulated GPU analyzer: with the analyzers that ask for it in processes of
    their own, and with every analyzer a thread. Returns ((name, cpu_priority) of each analyzer loaded in a
    process, {"process": tracks, "thread": tracks})."""
    one_simulated_gpu(monkeypatch)
    in_process = []

    class Counted(ProcessCall):
        def _load(self):
            in_process.append((self.analyzer.name, self.analyzer.cpu_priority))
            super()._load()

    monkeypatch.setattr("framework.runner.ProcessCall", Counted)
    runs = {}
    for way in ("process", "thread"):
        monkeypatch.setenv("FRAMEWORK_OWN_PROCESS", "1" if way == "process" else "0")
        host = build_plugin_manager(load_entrypoints=False, extra_plugins=[analyzers_plugin(Gpu)])
        runs[way] = analyze(video, registry=registry, host=host, out_dir=tmp_path / way, progress=False,
                            **analyze_kwargs).timeline.tracks
    return in_process, runs


def test_the_built_ins_that_ask_for_a_process_give_the_tracks_they_give_in_a_thread(tmp_path, sample_video, monkeypatch):
    names = ["audio_analysis", "voice_activity", *BUILT_INS, "t_own_gpu"]
    # text_overlay on the CPU: on the simulated GPU it would detect text with torch on a CUDA device that is not there
    (tmp_path / "registry.yaml").write_text("analyzers:\n" + "".join(
        f"  {n}: {{{'device: cpu' if n == 'text_overlay' else ''}}}\n" for n in names))
    in_process, runs = in_a_process_and_in_a_thread(tmp_path, sample_video.path, load_registry(tmp_path / "registry.yaml"),
                                                    monkeypatch)
    assert sorted(n for n, _ in in_process) == sorted(BUILT_INS)  # these, and only in the first run
    for name in BUILT_INS:
        a, b = runs["process"][name], runs["thread"][name]
        assert a.status == b.status == "ok", (name, a.reason, b.reason)
        assert [e.model_dump() for e in a.events] == [e.model_dump() for e in b.events], name
        assert a.model_dump(include={"data", "series"}) == b.model_dump(include={"data", "series"}), name
    assert runs["process"]["text_overlay"].events  # it read the burned-in caption (rapidocr's real weights)


def test_a_gpu_analyzer_in_its_own_process_gets_its_share_of_the_budget_and_its_busy_spans_count(
        tmp_path, sample_video, monkeypatch):
    tracks = run(tmp_path, sample_video, monkeypatch, OnGpu)
    t = tracks["t_own_on_gpu"]
    assert t.status == "ok", t.reason
    assert t.data["pid"] != os.getpid() and t.data["loaded_in"] == t.data["pid"]
    assert t.device == t.data["device"] == "cuda:0" and t.receipt["own_process"] is True
    assert t.data["memory_cap_mb"] == 8000.0  # the simulated budget; the other analyzer reserved nothing
    assert t.data["shared_set"] is False  # what calls back into the run process stays there
    receipt = json.loads((tmp_path / "run" / "results.json").read_text())["run"]["receipt"]
    assert receipt["gpu_busy_fraction"]["cuda:0"] > 0  # its 0.2 s inside "forward", relayed
    with_cpu_only = run(tmp_path / "cpu", sample_video, monkeypatch, OnGpu, env={"FRAMEWORK_OWN_PROCESS": "cpu"})
    assert with_cpu_only["t_own_on_gpu"].data["pid"] == os.getpid()


def test_out_of_memory_in_its_own_process_takes_the_executors_fallbacks(tmp_path, sample_video, monkeypatch):
    t = run(tmp_path, sample_video, monkeypatch, OutOfMemoryUnlessAlone)["t_own_oom"]
    assert t.status == "ok", t.reason
    assert t.data["exclusive"] is True and t.data["pid"] != os.getpid()
    assert t.receipt["fallbacks"] == ["out of memory in analyze() on cuda:0 (default, beside other models): "
                                      "retrying alone"]


@pytest.mark.gpu
def test_on_a_real_gpu_its_allocator_is_capped_and_its_peak_comes_back(tmp_path, sample_video, monkeypatch):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    fits = run(tmp_path / "fits", sample_video, monkeypatch, CudaAllocator, simulated=False, budget="2GB",
               params={"t_own_cuda": {"params": {"mb": 256}}})["t_own_cuda"]
    assert fits.status == "ok", fits.reason
    assert fits.data["pid"] != os.getpid() and fits.data["sum"] == 256 * 2**20 / 4
    assert 320 <= fits.data["peak_mb"] < 400  # 64 MB loaded, 256 MB of work
    assert fits.peak_vram_mb == pytest.approx(fits.data["peak_mb"], abs=1)  # the child's peak, come back
    # 4 GB under a 2 GB budget: out of memory in the child (its allocator is capped to the budget, though
    # the GPU has 140 GB free), then alone, then the CPU, where it fits
    over = run(tmp_path / "over", sample_video, monkeypatch, CudaAllocator, simulated=False, budget="2GB",
               params={"t_own_cuda": {"params": {"mb": 4096}}})["t_own_cuda"]
    assert over.receipt["fallbacks"] == [
        "out of memory in analyze() on cuda:0 (default, beside other models): retrying alone",
        "out of memory in analyze() on cuda:0 (default, alone): retrying on the CPU"], over.receipt
    assert over.status == "ok" and over.data["device"] == "cpu" and over.data["pid"] != os.getpid(), over.reason


def test_registry_yaml_can_keep_an_analyzer_in_the_runs_process_or_send_it_to_its_own(tmp_path, sample_video, monkeypatch):
    tracks = run(tmp_path, sample_video, monkeypatch, OnGpu, params={"t_own_on_gpu": {"own_process": False}})
    assert tracks["t_own_on_gpu"].status == "ok" and tracks["t_own_on_gpu"].data["pid"] == os.getpid()
    gpu = run(tmp_path / "own", sample_video, monkeypatch, params={"t_own_gpu": {"own_process": True}})
    assert gpu["t_own_gpu"].status == "ok" and gpu["t_own_gpu"].receipt["own_process"] is True


@pytest.mark.skipif(not hasattr(os, "nice"), reason="process priorities: os.nice")
def test_registry_yaml_can_lower_the_cpu_priority_of_an_analyzer_in_its_own_process(tmp_path, sample_video, monkeypatch):
    from framework.own_process import LOW_PRIORITY_NICE

    tracks = run(tmp_path, sample_video, monkeypatch, PidReporter, params={"t_own_pid": {"cpu_priority": "low"}})
    low = tracks["t_own_pid"]
    assert low.status == "ok" and low.data["pid"] != os.getpid(), low.reason
    assert low.data["nice"] == min(19, os.nice(0) + LOW_PRIORITY_NICE)
    normal = run(tmp_path / "normal", sample_video, monkeypatch, PidReporter)["t_own_pid"]
    assert normal.status == "ok" and normal.data["nice"] == os.nice(0)


def test_registry_yaml_can_make_an_analyzers_own_process_a_low_priority_mps_client(tmp_path, sample_video, monkeypatch):
    """``gpu_stream_priority: low``: its own process has CUDA_MPS_CLIENT_PRIORITY=1 (below normal under an MPS server),
    set there before CUDA starts; the run's process and the other analyzers' are left as they are."""
    monkeypatch.delenv("CUDA_MPS_CLIENT_PRIORITY", raising=False)
    tracks = run(tmp_path, sample_video, monkeypatch, PidReporter, params={"t_own_pid": {"gpu_stream_priority": "low"}})
    low = tracks["t_own_pid"]
    assert low.status == "ok" and low.data["pid"] != os.getpid(), low.reason
    assert low.data["mps_client_priority"] == "1" and "CUDA_MPS_CLIENT_PRIORITY" not in os.environ
    normal = run(tmp_path / "normal", sample_video, monkeypatch, PidReporter)["t_own_pid"]
    assert normal.status == "ok" and normal.data["mps_client_priority"] is None


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads a process's priority in /proc")
def test_an_early_child_of_a_low_priority_analyzer_imports_at_the_lower_priority_already():
    from framework import own_process

    def nice_of(pid):  # (the 19th field of /proc/PID/stat, after the command in parentheses)
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])

    early = own_process.EarlyChildren({"t_own_pid": PidReporter, "t_own_failing": Failing}, low_priority=["t_own_pid"])
    try:
        low, normal = early._children["t_own_pid"].proc, early._children["t_own_failing"].proc
        want = min(19, os.nice(0) + own_process.LOW_PRIORITY_NICE)
        deadline = time.monotonic() + 20
        while nice_of(low.pid) != want and time.monotonic() < deadline:
            time.sleep(0.05)
        assert nice_of(low.pid) == want and nice_of(normal.pid) == os.nice(0)
    finally:
        early.close()
        own_process.wait_for_exits()


def test_the_plan_says_which_analyzers_will_run_in_processes_of_their_own(tmp_path, sample_video, monkeypatch):
    from framework.runner import plan_video

    one_simulated_gpu(monkeypatch)

    reg, host = registered(tmp_path, [OnGpu, PidReporter, Gpu])
    report = plan_video(sample_video.path, registry=reg, host=host)
    assert sorted(report.own_process) == ["t_own_on_gpu", "t_own_pid"]  # Gpu does not ask for one
    assert sorted(report.as_dict()["own_process"]) == ["t_own_on_gpu", "t_own_pid"]
    monkeypatch.setenv("FRAMEWORK_OWN_PROCESS", "cpu")
    assert plan_video(sample_video.path, registry=load_registry(tmp_path / "registry.yaml"),
                      host=host).own_process == ["t_own_pid"]


def test_the_plan_counts_the_cuda_context_of_a_gpu_analyzers_own_process(tmp_path, sample_video, monkeypatch):
    """A child's CUDA context takes device memory outside its allocator: its analyzer's estimate in the
    plan carries it (``own_process.CONTEXT_MB``), and the child's allocator is capped to its room less it."""
    from framework.own_process import CONTEXT_MB, MIN_ALLOCATOR_MB, allocator_cap_mb
    from framework.runner import plan_video

    one_simulated_gpu(monkeypatch)

    reg, host = registered(tmp_path, [OnGpu, Gpu])
    placements = plan_video(sample_video.path, registry=reg, host=host).plan.placements
    assert placements["t_own_on_gpu"].vram_mb == CONTEXT_MB  # no model, but a context of its own
    assert placements["t_own_gpu"].vram_mb == 0.0  # in the run's process: its context is the run's
    monkeypatch.setenv("FRAMEWORK_OWN_PROCESS", "cpu")  # the GPU analyzers stay threads
    placements = plan_video(sample_video.path, registry=reg, host=host).plan.placements
    assert placements["t_own_on_gpu"].vram_mb == 0.0
    # a built-in with a model: the manifest's estimate, and the context when in a process of its own
    (tmp_path / "builtin.yaml").write_text("analyzers:\n  object_detection: {device: gpu}\n")
    built_in = build_plugin_manager(load_entrypoints=False)
    alone = plan_video(sample_video.path, registry=load_registry(tmp_path / "builtin.yaml"), host=built_in)
    monkeypatch.delenv("FRAMEWORK_OWN_PROCESS")
    own = plan_video(sample_video.path, registry=load_registry(tmp_path / "builtin.yaml"), host=built_in)
    assert "object_detection" in own.own_process and "object_detection" not in alone.own_process
    assert own.plan.placements["object_detection"].vram_mb == alone.plan.placements["object_detection"].vram_mb + CONTEXT_MB
    assert allocator_cap_mb(8000.0) == 8000.0 - CONTEXT_MB and allocator_cap_mb(100.0) == MIN_ALLOCATOR_MB


def test_a_profiled_analyzer_still_runs_in_its_own_process_and_is_sampled_there(tmp_path, sample_video, monkeypatch):
    """``--profile NAME`` profiles the analyzer as it runs: in its child, which samples its own threads
    and writes the report where a thread's would go (the run's ``profiles/``)."""
    one_simulated_gpu(monkeypatch)

    reg, host = registered(tmp_path, [OnGpu, Gpu])
    tracks = analyze(sample_video.path, registry=reg, host=host,
                     out_dir=tmp_path / "run", progress=False, profile=["t_own_on_gpu"]).timeline.tracks
    t = tracks["t_own_on_gpu"]
    assert t.status == "ok", t.reason
    assert t.data["pid"] != os.getpid() and t.receipt["own_process"] is True
    assert t.receipt["pid"] == t.data["pid"]  # (the receipt names the child's process)
    report = (tmp_path / "run" / "profiles" / "t_own_on_gpu.txt").read_text()
    assert report.startswith("# t_own_on_gpu:")
    assert "own_process_fixtures.py:analyze" in report  # its 0.2 s in analyze(), seen in the child
    assert "_answer" not in report  # not the run's thread waiting for the child's answer
    assert (tmp_path / "run" / "profiles" / "t_own_on_gpu.folded").is_file()
