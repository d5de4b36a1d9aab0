"""The executor on simulated GPUs: just-in-time loading, overlap, the budget, OOM fallbacks, Ctrl-C."""
from __future__ import annotations

import threading
import time

import pytest

from framework import AnalyzerInputs, VideoMeta
from framework.callinfo import AnalyzerCall
from framework.errors import RunInterrupted
from framework.executor import Executor, Job
from framework.scheduler import Demand, Variant, plan
from framework.testing.devices import SimulatedGPUs, StandIn

VIDEO = VideoMeta(path="x.mp4", content_hash="x", size_bytes=1, duration=10.0, has_video=True)


def _demand(a, variants=None, cpu_fallback=True, gpu_seconds=None):
    weights = variants or type(a).weights
    return Demand(a.name, a.device, depends_on=tuple(a.depends_on), cpu_fallback=cpu_fallback,
                  variants=tuple(Variant(p, mb) for p, mb in weights.items()),
                  item_vram_mb=a.item_vram_mb, max_batch=a.max_batch_size(), gpu_seconds=gpu_seconds)


def run_plan(analyzers, gpus, budget, *, estimates=None, cpu_fallback=True, stop=None, progress=None,
             inputs_ready=None, seconds=None):
    """Plan ``analyzers`` on ``gpus`` (the plan sees ``estimates`` instead of true weights if given,
    and ``seconds`` as measured GPU times)."""
    by_name = {a.name: a for a in analyzers}
    demands = [_demand(a, (estimates or {}).get(a.name), cpu_fallback, (seconds or {}).get(a.name))
               for a in analyzers]
    p = plan(demands, budget, list(gpus.capacity))
    tracks = {}

    def start(name, placement):
        a = by_name[name]
        a.placement = placement
        inputs = AnalyzerInputs(video=VIDEO, progress=progress)
        return AnalyzerCall(a, inputs, placement.device)

    jobs = [Job(n, p.placements[n], tuple(by_name[n].depends_on),
                (lambda n: lambda placement: start(n, placement))(n), next(d for d in demands if d.name == n),
                stream_local=by_name[n].cuda_stream_local)
            for n in p.order]
    executor = Executor(p, jobs, lambda n, t: tracks.__setitem__(n, t), memory=gpus, cpu_workers=2, stop=stop,
                        inputs_ready=inputs_ready)
    executor.run()
    run_plan.last = executor  # for the tests of the run's own figures
    return p, tracks


def test_models_load_just_in_time_and_unload_when_done_within_the_budget():
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    a = StandIn.make("a", gpus, {"bf16": 7000}, step_s=0.01)()
    b = StandIn.make("b", gpus, {"bf16": 7000}, step_s=0.01)()  # does not fit beside a in 12 GB
    c = StandIn.make("c", gpus, {"bf16": 3000}, step_s=0.01)()
    p, tracks = run_plan([a, b, c], gpus, 12_000)
    assert all(t.status == "ok" for t in tracks.values()), {n: t.reason for n, t in tracks.items()}
    assert gpus.caps == {"cuda:0": 12_000}  # the allocator was capped to the budget
    assert gpus.peak["cuda:0"] <= 12_000
    loads = gpus.events("+")
    frees = gpus.events("-")
    assert ("cuda:0", "a") in loads and ("cuda:0", "b") in loads
    # b was loaded only after a's weights were freed
    order = [(e, w) for _t, _d, e, w in gpus.log if e in ("+7000", "-7000")]
    assert order.index(("-7000", "a")) < order.index(("+7000", "b"))
    assert gpus.used["cuda:0"] == 0 and len(frees) >= 3
    assert tracks["a"].receipt["device"] == "cuda:0" and tracks["a"].receipt["variant"] == "bf16"
    assert tracks["a"].receipt["step"]["items"] == 8


def test_the_next_model_loads_while_the_current_one_computes():
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    first_running = threading.Event()

    class First(StandIn.make("first", gpus, {"bf16": 4000}, n_items=4, batch_size=1)):
        def forward(self, batch):
            first_running.set()
            time.sleep(0.05)
            return super().forward(batch)

    a = First()
    b = StandIn.make("second", gpus, {"bf16": 4000}, depends_on=("first",))()
    _p, tracks = run_plan([a, b], gpus, 12_000)
    assert all(t.status == "ok" for t in tracks.values())
    a_done = next(t for e, _d, t in a.history if e == "done")
    b_load = next(t for e, _d, t in b.history if e == "load")
    assert b_load < a_done  # loaded during first's forward passes, not after
    a_first_forward = next(t for e, _d, t in a.history if e == "load")
    assert b_load > a_first_forward


def test_an_underestimate_runs_out_of_memory_then_retries_alone():
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    a = StandIn.make("a", gpus, {"bf16": 6000}, step_s=0.05, n_items=4, batch_size=1)()
    b = StandIn.make("b", gpus, {"bf16": 6000})()  # planned as 3000: it does not really fit beside a
    _p, tracks = run_plan([a, b], gpus, 10_000, estimates={"b": {"bf16": 3000}})
    assert tracks["b"].status == "ok", tracks["b"].reason
    assert tracks["b"].receipt["fallbacks"][0].startswith("out of memory in load() on cuda:0 (bf16, beside other models): retrying alone")
    assert gpus.peak["cuda:0"] <= 10_000 and ("cuda:0", "b") in gpus.events("oom")


def test_fallback_chain_smaller_batch_then_smaller_variant_then_cpu():
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    # working memory: 3000 per item; bf16 weights 8000 leave 2000 in a 10 GB budget: even one item fails
    a = StandIn.make("vlm", gpus, {"bf16": 8000, "int8": 5000}, item_mb=3000, n_items=6, batch_size=4)()
    _p, tracks = run_plan([a], gpus, 10_000, estimates={"vlm": {"bf16": 4000, "int8": 2500}})
    t = tracks["vlm"]
    assert t.status == "ok", t.reason
    steps = t.receipt["fallbacks"]
    assert any("retrying as int8" in s for s in steps), steps
    assert t.receipt["variant"] == "int8" and t.receipt["device"] == "cuda:0"
    assert t.receipt["step"]["batch_sizes"] == [1]  # halved on the way
    assert any(s.startswith("out of memory at batch 3") for s in t.receipt["step"]["fallbacks"])  # the plan capped it at 3

    b = StandIn.make("big", gpus, {"bf16": 11000}, n_items=2)()
    _p, tracks = run_plan([b], gpus, 10_000, estimates={"big": {"bf16": 5000}})
    assert tracks["big"].status == "ok" and tracks["big"].receipt["device"] == "cpu"
    assert tracks["big"].receipt["fallbacks"][-1].endswith("retrying on the CPU")

    c = StandIn.make("huge", gpus, {"bf16": 11000}, n_items=2)()
    _p, tracks = run_plan([c], gpus, 10_000, estimates={"huge": {"bf16": 5000}}, cpu_fallback=False)
    assert tracks["huge"].status == "failed" and "no smaller variant and no CPU path" in tracks["huge"].receipt["fallbacks"][-1]


def test_a_smaller_variant_taken_after_out_of_memory_gets_the_batch_its_own_room_allows():
    """The failed variant's batch cap came from the little room its weights left; the smaller one,
    alone on the device, is sized from its own (1 + (10000 - 5000) // 1000 = 6, not 2; 5000 is the
    fp8 weights and one item's working memory): its 12 items in two batches of 6."""
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    a = StandIn.make("vlm", gpus, {"bf16": 12_000, "fp8": 4000}, item_mb=1000, n_items=12, batch_size=8)()
    p, tracks = run_plan([a], gpus, 10_000, estimates={"vlm": {"bf16": 9000, "fp8": 5000}})
    assert p.placements["vlm"].max_batch == 2  # what the plan gave bf16
    t = tracks["vlm"]
    assert t.status == "ok", t.reason
    assert t.receipt["variant"] == "fp8" and any("retrying as fp8" in s for s in t.receipt["fallbacks"])
    assert t.receipt["step"]["batch_sizes"] == [6] and not t.receipt["step"].get("fallbacks")
    assert gpus.peak["cuda:0"] <= 10_000


def test_measured_peak_is_the_analyzers_own_when_alone():
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    a = StandIn.make("a", gpus, {"bf16": 5000}, item_mb=100, n_items=8, batch_size=4)()
    _p, tracks = run_plan([a], gpus, 20_000)
    r = tracks["a"].receipt
    assert r["measured_alone"] is True and r["peak_vram_mb"] == 5000 + 4 * 100
    assert tracks["a"].peak_vram_mb == 5400


def test_cpu_analyzers_run_beside_gpu_ones():
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    both = threading.Barrier(2, timeout=5)

    class Gpu(StandIn.make("gpu_one", gpus, {"bf16": 1000}, n_items=1)):
        def forward(self, batch):
            both.wait()
            return super().forward(batch)

    class Cpu(StandIn.make("cpu_one", gpus, {}, n_items=1)):
        device = "cpu"

        def forward(self, batch):
            both.wait()
            return super().forward(batch)

    _p, tracks = run_plan([Gpu(), Cpu()], gpus, 10_000)
    assert tracks["gpu_one"].receipt["device"] == "cuda:0" and tracks["cpu_one"].receipt["device"] == "cpu"
    assert all(t.status == "ok" for t in tracks.values())


def test_ctrl_c_stops_unloads_and_raises_run_interrupted():
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    stop = threading.Event()
    a = StandIn.make("a", gpus, {"bf16": 3000}, n_items=50, batch_size=1, step_s=0.01)()
    b = StandIn.make("b", gpus, {"bf16": 3000}, depends_on=("a",))()
    calls = []

    def progress(fraction):
        calls.append(fraction)
        if len(calls) == 5:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted):
        run_plan([a, b], gpus, 12_000, stop=stop, progress=progress)
    assert stop.is_set()
    assert gpus.used["cuda:0"] == 0  # everything loaded was unloaded
    assert not any(e == "done" for e, _d, _t in b.history)


def test_a_retry_alone_waits_for_the_gpu_to_empty_and_goes_first():
    """b runs out of memory beside a and c; while it waits to run alone nothing else is loaded,
    and models loaded ahead of time for later analyzers are unloaded to make the GPU empty."""
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    a = StandIn.make("a", gpus, {"bf16": 3000}, n_items=6, batch_size=1, step_s=0.02)()
    b = StandIn.make("b", gpus, {"bf16": 6000})()  # planned as 1000
    c = StandIn.make("c", gpus, {"bf16": 1000}, depends_on=("a",))()  # loads early, waits for a
    d = StandIn.make("d", gpus, {"bf16": 1000})()
    _p, tracks = run_plan([a, b, c, d], gpus, 8_000, estimates={"b": {"bf16": 1000}})
    assert all(t.status == "ok" for t in tracks.values()), {n: t.reason for n, t in tracks.items()}
    assert "retrying alone" in tracks["b"].receipt["fallbacks"][0]
    assert tracks["b"].receipt["measured_alone"] is True
    assert gpus.peak["cuda:0"] <= 8_000 and gpus.used["cuda:0"] == 0
    loads = [w for _t, _d, e, w in gpus.log if e.startswith("+") and e != "+0"]
    assert loads.count("c") <= 2  # evicted at most once, never in a loop


def test_two_gpus_run_their_lanes_side_by_side_each_within_its_budget():
    gpus = SimulatedGPUs({"cuda:0": 80_000, "cuda:1": 80_000})
    running = set()
    both = threading.Event()
    lock = threading.Lock()

    def make(name):
        class Busy(StandIn.make(name, gpus, {"bf16": 7000}, n_items=3, batch_size=1, step_s=0.01)):
            def forward(self, batch):
                with lock:
                    running.add(self.loaded_on)
                    if len(running) == 2:
                        both.set()
                both.wait(timeout=5)
                return super().forward(batch)
        return Busy()

    analyzers = [make(f"m{i}") for i in range(4)]
    p, tracks = run_plan(analyzers, gpus, 10_000)
    assert all(t.status == "ok" for t in tracks.values())
    assert {t.receipt["device"] for t in tracks.values()} == {"cuda:0", "cuda:1"}
    assert both.is_set()  # the two GPUs worked at the same time
    assert gpus.caps == {"cuda:0": 10_000, "cuda:1": 10_000}
    assert max(gpus.peak.values()) <= 10_000


class _AllocatorSettings:
    """Stands in for ``torch._C``'s allocator setter: records what the executor asked for."""

    def __init__(self):
        self.calls: list[str] = []

    def _accelerator_setAllocatorSettings(self, conf: str) -> None:  # noqa: N802 (torch's name)
        self.calls.append(conf)


class _Torch:
    def __init__(self):
        self._C = _AllocatorSettings()


@pytest.mark.parametrize("user_conf", [None, "max_split_size_mb:128"])
def test_a_capped_allocator_uses_expandable_segments(monkeypatch, user_conf):
    from framework.executor import expandable_segments

    monkeypatch.delenv("PYTORCH_ALLOC_CONF", raising=False)
    if user_conf is None:
        monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    else:
        monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", user_conf)
    torch = _Torch()
    assert expandable_segments(torch) is True
    assert torch._C.calls == ["expandable_segments:True"]


@pytest.mark.parametrize("var,conf", [("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:False"),
                                      ("PYTORCH_ALLOC_CONF", "backend:cudaMallocAsync")])
def test_the_users_allocator_settings_are_left_alone(monkeypatch, var, conf):
    from framework.executor import expandable_segments

    monkeypatch.delenv("PYTORCH_ALLOC_CONF", raising=False)
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    monkeypatch.setenv(var, conf)
    torch = _Torch()
    assert expandable_segments(torch) is False
    assert torch._C.calls == []


def test_the_runs_peak_per_gpu_survives_the_resets_that_measure_each_analyzer():
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    big = StandIn.make("big", gpus, {"bf16": 9000}, step_s=0.01)()
    small = StandIn.make("small", gpus, {"bf16": 2000}, step_s=0.01, depends_on=("big",))()
    _p, tracks = run_plan([big, small], gpus, 10_000)  # one after the other, each alone
    assert tracks["big"].receipt["measured_alone"] and tracks["small"].receipt["measured_alone"]
    assert gpus.peak["cuda:0"] < tracks["big"].receipt["peak_vram_mb"]  # the counter was reset for small
    assert run_plan.last.peak_vram_mb == {"cuda:0": tracks["big"].receipt["peak_vram_mb"]}


def test_the_runs_peak_counts_models_that_shared_the_gpu():
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    a = StandIn.make("a", gpus, {"bf16": 3000}, step_s=0.02)()
    b = StandIn.make("b", gpus, {"bf16": 3000}, step_s=0.02)()
    _p, tracks = run_plan([a, b], gpus, 40_000)  # both fit: loaded side by side
    assert not (tracks["a"].receipt["measured_alone"] and tracks["b"].receipt["measured_alone"])
    together = run_plan.last.peak_vram_mb["cuda:0"]
    assert together == gpus.peak["cuda:0"]  # no reset since both were loaded: the counter's own peak
    assert together >= 3000 + 3000  # both models' weights at once


def test_an_analyzer_learns_whether_it_has_the_gpu_to_itself_and_holds_admissions_meanwhile():
    """``Placement.gpu_to_itself`` (for capturing a CUDA graph, which another thread's CUDA calls
    would break): True only when no other analyzer is admitted to the GPU; while it is held,
    nothing else is admitted there."""
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    seen = []

    class Alone(StandIn.make("alone", gpus, {"bf16": 1000}, n_items=2, batch_size=1)):
        def forward(self, batch):
            with self.placement.gpu_to_itself() as alone:
                seen.append(alone)
            return super().forward(batch)

    _p, tracks = run_plan([Alone()], gpus, 12_000)
    assert tracks["alone"].status == "ok" and seen == [True, True]

    a = StandIn.make("a", gpus, {"bf16": 1000})()
    b = StandIn.make("b", gpus, {"bf16": 1000})()
    p = plan([_demand(a), _demand(b)], 12_000, ["cuda:0"])
    jobs = [Job(n, p.placements[n], (), lambda placement: None) for n in p.order]
    ex = Executor(p, jobs, lambda n, t: None, memory=gpus)
    assert ex._admit("cuda:0", {"a"}) == ["a"]
    with ex._to_itself("cuda:0", "a") as alone:
        assert alone
        assert ex._admit("cuda:0", {"b"}) == []  # held: b waits
        with ex._to_itself("cuda:0", "a") as again:
            assert not again  # one holder at a time
    assert ex._admit("cuda:0", {"b"}) == ["b"]  # released: b is admitted beside a
    with ex._to_itself("cuda:0", "a") as alone:
        assert not alone  # b is on the GPU now
    assert ex.holding["cuda:0"] is None


@pytest.mark.parametrize("stream_local,switch,expected", [(True, None, True), (False, None, False),
                                                           (True, "0", False)])
def test_a_capture_may_begin_beside_analyzers_that_wait_only_on_their_own_streams(monkeypatch, stream_local,
                                                                                  switch, expected):
    """Beside another analyzer that is analyzing on its own stream and declares its CUDA calls
    stream-local (``cuda_stream_local``), the GPU counts as the capturer's own; beside one that does
    not, or with ``FRAMEWORK_CAPTURE_BESIDE=0``, it does not. While it is held the other one keeps
    working, but its unload (which frees the CUDA cache) waits until the hold ends."""
    if switch is not None:
        monkeypatch.setenv("FRAMEWORK_CAPTURE_BESIDE", switch)
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    working, events = threading.Event(), {}

    class Beside(StandIn.make("beside", gpus, {"bf16": 1000}, n_items=1, batch_size=1)):
        cuda_stream_local = stream_local

        def forward(self, batch):
            working.set()
            time.sleep(0.6)  # still analyzing when the capturer asks
            events["beside forward ends"] = time.perf_counter()
            return super().forward(batch)

        def unload(self):
            events["beside unloads"] = time.perf_counter()
            super().unload()

    class Capturer(StandIn.make("capturer", gpus, {"bf16": 1000}, n_items=1, batch_size=1)):
        def forward(self, batch):
            assert working.wait(10)
            time.sleep(0.1)
            with self.placement.gpu_to_itself() as held:
                events["held"] = held
                time.sleep(1.5)  # the other one finishes its forward meanwhile
                events["released"] = time.perf_counter()
            return super().forward(batch)

    _p, tracks = run_plan([Beside(), Capturer()], gpus, 12_000)
    assert all(t.status == "ok" for t in tracks.values()), {n: t.reason for n, t in tracks.items()}
    assert events["held"] is expected
    assert events["beside forward ends"] < events["released"]  # it kept working while the GPU was held
    if expected:
        assert events["beside unloads"] > events["released"]  # ... but unloaded only after
    else:
        assert events["beside unloads"] < events["released"]
    assert run_plan.last.holding["cuda:0"] is None and run_plan.last.changing["cuda:0"] == 0


def test_a_gpu_run_keeps_attention_off_cudnn_unless_the_user_asks():
    """cuDNN's attention builds a plan per shape, and generation changes shape at every token: the
    executor turns it off process-wide when it first uses a GPU (TorchMemory), unless
    FRAMEWORK_CUDNN_ATTENTION=1."""
    import torch

    from framework.devices import attention_without_cudnn

    before = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        assert attention_without_cudnn(torch, env={"FRAMEWORK_CUDNN_ATTENTION": "1"}) is False
        assert torch.backends.cuda.cudnn_sdp_enabled()
        assert attention_without_cudnn(torch, env={}) is True
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


def test_models_loaded_ahead_and_idle_leave_the_gpu_to_an_analyzer_and_wait_while_it_is_held():
    """A model loaded ahead, waiting for its upstream, makes no CUDA calls: the analyzer running on the
    GPU still has it to itself (before, fusion or any later analyzer loaded early kept the VLM from
    ever capturing its graphs). While it is held, the idle one does not start, even once its upstream
    is done; it starts after."""
    import threading
    import time as _time

    gpus = SimulatedGPUs({"cuda:0": 80_000})
    holding, events = threading.Event(), []

    class CpuDep(StandIn.make("cpu_dep", gpus, {}, n_items=1, batch_size=1)):
        device = "cpu"

        def forward(self, batch):
            holding.wait(10)  # finishes while the GPU is held
            return super().forward(batch)

    class Capturer(StandIn.make("capturer", gpus, {"bf16": 1000}, n_items=1, batch_size=1)):
        def forward(self, batch):
            _time.sleep(0.5)  # 'late' is loaded and idle by now
            with self.placement.gpu_to_itself() as alone:
                events.append(("alone", alone))
                holding.set()
                _time.sleep(1.0)  # the run loop sees 'late' ready meanwhile
                events.append(("released", _time.perf_counter()))
            return super().forward(batch)

    class Late(StandIn.make("late", gpus, {"bf16": 1000}, n_items=1, batch_size=1, depends_on=("cpu_dep",))):
        def forward(self, batch):
            events.append(("late starts", _time.perf_counter()))
            return super().forward(batch)

    _p, tracks = run_plan([CpuDep(), Capturer(), Late()], gpus, 12_000)
    assert all(t.status == "ok" for t in tracks.values()), {n: t.reason for n, t in tracks.items()}
    got = dict(events)
    assert got["alone"] is True
    assert got["late starts"] > got["released"]


def test_the_receipt_says_when_each_phase_began_so_overlaps_can_be_read():
    """``load_at_s`` and ``analyze_at_s``: seconds from the start of the run, per analyzer; an analyzer
    reading another's track begins after it ended."""
    gpus = SimulatedGPUs({"cuda:0": 24_000})
    first = StandIn.make("first", gpus, {"bf16": 1000}, n_items=2, batch_size=1, step_s=0.1)()
    then = StandIn.make("then", gpus, {"bf16": 1000}, n_items=1, batch_size=1, depends_on=("first",))()
    _p, tracks = run_plan([first, then], gpus, 12_000)
    a, b = tracks["first"].receipt, tracks["then"].receipt
    assert 0 <= a["load_at_s"] <= a["analyze_at_s"] and 0 <= b["load_at_s"] <= b["analyze_at_s"]
    assert b["analyze_at_s"] >= a["analyze_at_s"] + a["analyze_s"] - 0.01


def test_the_switch_interval_is_set_for_the_run_only_when_asked(monkeypatch):
    """FRAMEWORK_GIL_SWITCH_MS (experimental): the interpreter's switch interval during the run, then
    Python's again; unset, the run leaves it alone; a bad value says what to give."""
    import sys

    from framework.executor import gil_switch_interval

    gpus = SimulatedGPUs({"cuda:0": 24_000})
    seen = []

    class Probe(StandIn.make("probe", gpus, {"bf16": 1000}, n_items=1, batch_size=1)):
        def forward(self, batch):
            seen.append(sys.getswitchinterval())
            return super().forward(batch)

    before = sys.getswitchinterval()
    monkeypatch.setenv("FRAMEWORK_GIL_SWITCH_MS", "1")
    run_plan([Probe()], gpus, 12_000)
    monkeypatch.delenv("FRAMEWORK_GIL_SWITCH_MS")
    run_plan([Probe()], gpus, 12_000)
    assert seen == [pytest.approx(0.001), pytest.approx(before)] and sys.getswitchinterval() == before
    with pytest.raises(ValueError, match="milliseconds above 0"):
        with gil_switch_interval({"FRAMEWORK_GIL_SWITCH_MS": "fast"}):
            pass


def test_the_runs_switch_interval_covers_its_plan_and_import_warm_up(tmp_path, sample_video, monkeypatch):
    """The runner sets FRAMEWORK_GIL_SWITCH_MS's interval from the run's start: an analyzer's availability
    check, which the run asks before the executor starts, sees it; Python's is back after the run."""
    import sys

    from framework import Analyzer
    from framework.runner import analyze
    from test_decode_process import _plugin

    seen = []

    class Planned(Analyzer):
        name = "t_planned"
        version = "1.0"

        @classmethod
        def check_available(cls):
            seen.append(sys.getswitchinterval())  # (asked while the run plans, before the executor)
            return None

        def analyze(self, inputs):
            return self.track(data={})

    from framework.plugins import build_plugin_manager
    from framework.registry import load_registry

    (tmp_path / "registry.yaml").write_text("analyzers:\n  t_planned: {}\n")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[_plugin(Planned)])
    before = sys.getswitchinterval()
    monkeypatch.setenv("FRAMEWORK_GIL_SWITCH_MS", "0.5")
    result = analyze(sample_video.path, registry=load_registry(tmp_path / "registry.yaml"), host=host,
                     out_dir=tmp_path / "run", progress=False)
    assert result.timeline.tracks["t_planned"].status == "ok"
    assert seen and all(s == pytest.approx(0.0005) for s in seen) and sys.getswitchinterval() == before


def test_each_gpu_analyzer_works_on_a_stream_of_its_own_in_every_thread_of_its_work():
    """load, the device step's preprocessing and postprocessing threads, forward and unload all run
    on the analyzer's own stream; two analyzers sharing the GPU get two; a CPU analyzer gets none."""
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    a = StandIn.make("a", gpus, {"bf16": 1000}, n_items=6, batch_size=2, step_s=0.01)()
    b = StandIn.make("b", gpus, {"bf16": 1000}, n_items=6, batch_size=2, step_s=0.01)()

    class Cpu(StandIn.make("cpu_one", gpus, {}, n_items=4, batch_size=2)):
        device = "cpu"

    c = Cpu()
    _p, tracks = run_plan([a, b, c], gpus, 10_000)
    assert all(t.status == "ok" for t in tracks.values())
    for stand_in in (a, b):
        phases = {phase for phase, _s in stand_in.streams}
        assert phases == {"load", "preprocess", "forward", "postprocess", "unload"}, stand_in.streams
        used = {s for _phase, s in stand_in.streams}
        assert len(used) == 1 and None not in used, stand_in.streams
    assert {s for _p, s in a.streams} != {s for _p, s in b.streams}
    assert {s for _p, s in c.streams} == {None}
    assert gpus.current_stream() is None  # nothing leaks into the thread that ran the plan


def test_a_stream_is_carried_to_another_thread_only_when_asked():
    from concurrent.futures import ThreadPoolExecutor

    from framework import carry_work_stream
    from framework.work_streams import using

    gpus = SimulatedGPUs({"cuda:0": 1000})
    stream = gpus.new_stream("cuda:0")
    with ThreadPoolExecutor(1) as pool, using(stream):
        mine = gpus.current_stream()
        plain = pool.submit(gpus.current_stream).result()
        carried = pool.submit(carry_work_stream(gpus.current_stream)).result()
        after = pool.submit(gpus.current_stream).result()  # the worker thread is left as it was
    assert mine == "cuda:0/stream1" and carried == mine
    assert plain is None and after is None
    assert carry_work_stream(len) is len  # no work stream here: nothing to carry


def test_work_streams_can_be_turned_off_to_compare(monkeypatch):
    monkeypatch.setenv("FRAMEWORK_WORK_STREAMS", "0")
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    a = StandIn.make("a", gpus, {"bf16": 1000}, n_items=2, batch_size=1)()
    _p, tracks = run_plan([a], gpus, 10_000)
    assert tracks["a"].status == "ok" and {s for _p, s in a.streams} == {None} and gpus.streams_made == 0


def _turn_holder(gpus, loading: threading.Event, until: threading.Event, waited: list):
    """A GPU stand-in whose load sets ``loading`` and then holds the load turn until ``until`` is set
    (``waited`` gets whether it was, within 10 s)."""

    class SlowLoad(StandIn.make("slow_load", gpus, {"bf16": 1000}, n_items=1)):
        def load(self, device, models):
            loading.set()
            waited.append(until.wait(timeout=10))
            super().load(device, models)

    return SlowLoad()


def test_a_cpu_analyzer_with_nothing_to_load_does_not_wait_behind_a_gpu_models_load():
    """Loads take turns (lazy imports are not thread-safe), but an analyzer that keeps
    ``Analyzer.load`` has nothing to load: it analyzes while a GPU model is still loading."""
    from framework import Analyzer

    gpus = SimulatedGPUs({"cuda:0": 80_000})
    gpu_loading, cpu_ran = threading.Event(), threading.Event()
    waited = []
    slow = _turn_holder(gpus, gpu_loading, cpu_ran, waited)  # holds the load turn until the CPU analyzer has run

    class Gate(StandIn.make("gate", gpus, {}, n_items=1)):
        device = "cpu"
        load = Analyzer.load  # nothing to load

        def forward(self, batch):
            gpu_loading.wait(timeout=10)  # so that "quick" becomes ready while the GPU model loads
            return super().forward(batch)

    class Quick(StandIn.make("quick", gpus, {}, n_items=1, depends_on=("gate",))):
        device = "cpu"
        load = Analyzer.load

        def forward(self, batch):
            cpu_ran.set()
            return super().forward(batch)

    _p, tracks = run_plan([slow, Gate(), Quick()], gpus, 10_000)
    assert all(t.status == "ok" for t in tracks.values())
    assert waited == [True]  # the CPU analyzer ran during the GPU model's load, not after it


def test_an_analyzer_whose_load_imports_nothing_lazy_loads_beside_a_gpu_models_load():
    """``Analyzer.load_takes_turns = False`` (voice_activity: torch and silero-vad only): its load
    runs while a GPU model's load holds the turn, where before it waited behind it (9.7-13.3 s on an
    H200, with Whisper downstream of it)."""
    from analyzers.voice_activity import VoiceActivity
    from framework import Analyzer

    assert VoiceActivity.load_takes_turns is False and Analyzer.load_takes_turns is True
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    gpu_loading, cpu_loaded = threading.Event(), threading.Event()
    waited = []
    slow = _turn_holder(gpus, gpu_loading, cpu_loaded, waited)  # holds the turn until the CPU analyzer has loaded

    class Vad(StandIn.make("vad", gpus, {}, n_items=1)):
        device = "cpu"
        load_takes_turns = False

        def load(self, device, models):
            gpu_loading.wait(timeout=10)  # the GPU model holds the turn now
            super().load(device, models)
            cpu_loaded.set()

    _p, tracks = run_plan([slow, Vad()], gpus, 10_000)
    assert all(t.status == "ok" for t in tracks.values())
    assert waited == [True]  # loaded during the GPU model's load, not after it
    assert AnalyzerCall(VoiceActivity(), AnalyzerInputs(video=VIDEO), "cpu").load_takes_turns is False


def test_an_analyzer_in_its_own_process_loads_without_taking_a_turn():
    from framework.own_process import ProcessCall
    from own_process_fixtures import PidReporter

    assert ProcessCall.load_takes_turns is False
    video = VIDEO
    assert AnalyzerCall(PidReporter(), AnalyzerInputs(video=video), "cpu").load_takes_turns is True


def _first_takes_the_first_turn(monkeypatch) -> None:
    """The stand-in named "first" asks for a load turn before the others do (they are admitted together,
    and which thread asks first is otherwise up to the scheduler): the others queue behind it."""
    import contextlib

    from framework.executor import LoadTurns

    holding, real = threading.Event(), LoadTurns.turn

    @contextlib.contextmanager
    def turn(self, name):
        if name != "first" and name != LoadTurns.WARM_UP:
            holding.wait(timeout=10)
        with real(self, name):
            if name == "first":
                holding.set()
            yield

    monkeypatch.setattr(LoadTurns, "turn", turn)


def test_the_next_load_goes_to_an_analyzer_whose_upstream_is_done(monkeypatch):
    """Loads take turns. When one ends, a model whose upstream has finished (it can analyze as soon as
    it is loaded) loads before one still waiting for its upstream, even when that one comes first in
    the lane (on an H200 Whisper, ready after 4 s, had loaded behind such models and analyzed from 38 s)."""
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    started: dict[str, float] = {}

    def recording(name, **kw):
        class Recorded(StandIn.make(name, gpus, {"bf16": 1000}, n_items=1, batch_size=1, **kw)):
            def load(self, device, models):
                started[self.name] = time.perf_counter()
                super().load(device, models)
        return Recorded()

    class SlowCpu(StandIn.make("slow_cpu", gpus, {}, n_items=1, batch_size=1, step_s=2.0)):
        device = "cpu"

    first = recording("first", load_s=0.6)  # holds the first turn while the others queue
    late = recording("late", load_s=0.2, depends_on=("slow_cpu",))  # first in the lane, upstream still running
    ready = recording("ready", load_s=0.2)
    _first_takes_the_first_turn(monkeypatch)
    _p, tracks = run_plan([SlowCpu(), first, late, ready], gpus, 20_000)
    assert all(t.status == "ok" for t in tracks.values()), {n: t.reason for n, t in tracks.items()}
    assert run_plan.last.lanes["cuda:0"].index("late") < run_plan.last.lanes["cuda:0"].index("ready")
    assert started["first"] < started["ready"] < started["late"]


def _decode_beside_run(monkeypatch, sizes: dict[str, float], deps=None) -> list[str]:
    """The order in which GPU stand-ins of ``sizes`` (MB) began loading, after a first one that holds the
    turn, while the inputs are not there yet (a decode beside); ``deps`` maps names to upstreams."""
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    started: dict[str, float] = {}

    def recording(name, mb, **kw):
        class Recorded(StandIn.make(name, gpus, {"bf16": mb}, n_items=1, batch_size=1, **kw)):
            def load(self, device, models):
                started[self.name] = time.perf_counter()
                super().load(device, models)
        return Recorded()

    class Cuts(StandIn.make("cuts", gpus, {}, n_items=1, batch_size=1)):
        device = "cpu"

    decoded = threading.Event()
    timer = threading.Timer(1.5, decoded.set)
    timer.start()
    _first_takes_the_first_turn(monkeypatch)
    analyzers = [Cuts(), recording("first", 500, load_s=0.5)]
    analyzers += [recording(n, mb, load_s=0.1, depends_on=(deps or {}).get(n, ())) for n, mb in sizes.items()]
    _p, tracks = run_plan(analyzers, gpus, 40_000, inputs_ready=decoded)
    timer.cancel()
    assert all(t.status == "ok" for t in tracks.values()), {n: t.reason for n, t in tracks.items()}
    _decode_beside_run.tracks, _decode_beside_run.executor = tracks, run_plan.last
    return [n for _, n in sorted((t, n) for n, t in started.items() if n != "first")]


def test_measured_run_times_order_the_loads_before_model_sizes():
    """With measurements (a later run), the longest measured run loads first, whatever its size."""
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    analyzers = [StandIn.make(n, gpus, {"bf16": mb}, n_items=1)() for n, mb in (("big_quick", 16_000),
                                                                              ("small_long", 1000), ("plain", 500))]
    run_plan(analyzers, gpus, 40_000, seconds={"big_quick": 5.0, "small_long": 90.0})
    executor = run_plan.last  # every load is ready now: the key's next terms decide
    assert sorted(["plain", "big_quick", "small_long"], key=executor._load_turn_key) == ["small_long", "big_quick",
                                                                                         "plain"]


def test_while_the_video_decodes_the_biggest_model_loads_first_and_fusion_last(monkeypatch):
    """Nothing can analyze before the decode ends, so no load is ready: the 16 GB model (long to load,
    long to run) goes before the small ones ahead of it in the lane, and a model that waits for
    another GPU analyzer (fusion) goes last although it is bigger than they are."""
    order = _decode_beside_run(monkeypatch, {"small": 1000, "summary": 3000, "vlm": 16_000},
                               deps={"summary": ("small",), "vlm": ("cuts",)})
    lane = _decode_beside_run.executor.lanes["cuda:0"]
    assert lane.index("small") < lane.index("vlm")  # lane order alone would load the small model first
    assert order == ["vlm", "small", "summary"]
    # the receipt says how long each load waited for its turn: the first none, the next for the first's load
    tracks = _decode_beside_run.tracks
    assert tracks["first"].receipt["load_wait_s"] < 0.3 < tracks["vlm"].receipt["load_wait_s"]


def _cpu_analyzer(name, log, load_s=0.0):
    from framework import Analyzer

    class Cpu(Analyzer):
        def load(self, device, models):
            time.sleep(load_s)
            log.append(("loaded", self.name, time.perf_counter()))

        def analyze(self, inputs):
            log.append(("analyze", self.name, time.perf_counter()))
            return self.track()

    Cpu.name = name
    return Cpu()


def _cpu_run(analyzers, seconds, cpu_workers, inputs_ready=None):
    demands = [Demand(a.name, "cpu", cpu_seconds=seconds.get(a.name)) for a in analyzers]
    p = plan(demands, {}, [])
    by_name = {a.name: a for a in analyzers}
    jobs = [Job(n, p.placements[n], (), (lambda n: lambda placement: AnalyzerCall(
        by_name[n], AnalyzerInputs(video=VIDEO), placement.device))(n)) for n in p.order]
    tracks = {}
    Executor(p, jobs, lambda n, t: tracks.__setitem__(n, t), cpu_workers=cpu_workers, inputs_ready=inputs_ready).run()
    return tracks


def test_cpu_analyzers_start_the_longest_first():
    log = []
    analyzers = [_cpu_analyzer(n, log) for n in ("short", "unknown", "long", "middle")]
    tracks = _cpu_run(analyzers, {"short": 1.0, "long": 30.0, "middle": 5.0}, cpu_workers=1)
    assert all(t.status == "ok" for t in tracks.values())
    assert [n for what, n, _ in log if what == "analyze"] == ["long", "middle", "short", "unknown"]


def test_before_the_inputs_exist_cpu_analyzers_load_and_wait_for_them():
    log, ready = [], threading.Event()
    opened = []
    timer = threading.Timer(0.4, lambda: (opened.append(time.perf_counter()), ready.set()))
    timer.start()
    tracks = _cpu_run([_cpu_analyzer("ocr", log, load_s=0.2), _cpu_analyzer("cuts", log)], {}, cpu_workers=2,
                      inputs_ready=ready)
    assert all(t.status == "ok" for t in tracks.values())
    loaded = {n: t for what, n, t in log if what == "loaded"}
    analyzed = {n: t for what, n, t in log if what == "analyze"}
    assert max(loaded.values()) < opened[0] <= min(analyzed.values())  # loaded during the decode, analyzed after


def test_the_import_warm_up_imports_a_module_per_turn_and_a_waiting_load_goes_first(tmp_path, monkeypatch):
    """The warm-up imports each module in a load turn of its own: a load that asks meanwhile waits for
    that module only, and goes before the warm-up's next module (before, the first load waited for
    the whole warm-up: 10.9 s for the VLM on an H200)."""
    import sys

    from framework.executor import LoadTurns
    from framework.warm_imports import warm_up_imports

    for i in range(3):
        (tmp_path / f"slow_mod_{i}.py").write_text("import time\ntime.sleep(0.3)\n")
        monkeypatch.delitem(sys.modules, f"slow_mod_{i}", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    turns = LoadTurns(lambda name: 0)
    log = []

    @__import__("contextlib").contextmanager
    def logged(name, what=None):
        with turns.turn(name, what):
            log.append(("in", name, time.perf_counter()))
            yield
            log.append(("out", name, time.perf_counter()))

    warm = type("W", (), {"warm_imports": ("slow_mod_0", "slow_mod_1", "slow_mod_2")})
    thread = warm_up_imports([warm], name="t", turn=lambda module: logged(LoadTurns.WARM_UP, module))
    time.sleep(0.1)  # the first module is being imported
    asked = time.perf_counter()
    with logged("vlm"):
        waited = time.perf_counter() - asked
    thread.join(10)
    assert [n for what, n, _ in log if what == "in"] == [LoadTurns.WARM_UP, "vlm", LoadTurns.WARM_UP,
                                                          LoadTurns.WARM_UP]
    assert waited < 0.5  # the rest of one module's import, not the three
    inside = [(t0, t1) for (w0, n0, t0), (w1, n1, t1) in zip(log[::2], log[1::2])]
    assert all(a[1] <= b[0] for a, b in zip(inside, inside[1:]))  # never two turns at once
    assert all(f"slow_mod_{i}" in sys.modules for i in range(3))
    # the turns' own log, in the order they were held: the load's, and each module's under its name
    assert [who for who, *_ in turns.log] == ["slow_mod_0", "vlm", "slow_mod_1", "slow_mod_2"]
    held = turns.held(asked)
    assert held[1][0] == "vlm" and held[1][1] >= 0 and all(a <= b <= c for _who, a, b, c in held)


def test_a_load_first_job_takes_the_first_load_turn_before_ready_and_longer_ones():
    """``Job.load_first`` (a ``frames_first`` analyzer whose streams a first decode pass makes) goes before
    every other waiting load, whatever the other terms of the order say."""
    import dataclasses

    gpus = SimulatedGPUs({"cuda:0": 80_000})
    analyzers = [StandIn.make(n, gpus, {"bf16": mb}, n_items=1)() for n, mb in (("big_quick", 16_000),
                                                                              ("small_long", 1000), ("plain", 500))]
    run_plan(analyzers, gpus, 40_000, seconds={"big_quick": 5.0, "small_long": 90.0})
    executor = run_plan.last
    executor.jobs["plain"] = dataclasses.replace(executor.jobs["plain"], load_first=True)
    assert sorted(["small_long", "big_quick", "plain"], key=executor._load_turn_key) == ["plain", "small_long",
                                                                                         "big_quick"]


def _preparing_early(gpus, decoded, events, ready_early=True, load_fails=False):
    """A GPU stand-in whose load makes preprocessing possible first (as the VLM's processor), then the inputs
    appear (the decode ends) while its model still loads for 0.8 s."""

    class Early(StandIn.make("vlm", gpus, {"bf16": 1000}, n_items=4, batch_size=4)):
        def __init__(self):
            super().__init__()
            self.processor = threading.Event()

        def load(self, device, models):
            self.processor.set()
            decoded.set()
            time.sleep(0.8)
            if load_fails:
                raise RuntimeError("the weights file is damaged")
            events.append(("loaded", time.perf_counter()))
            super().load(device, models)

        def preprocess_ready(self):
            return ready_early and self.processor.is_set()

        def preprocess(self, items):
            events.append(("pre", time.perf_counter()))
            return super().preprocess(items)

    return Early()


@pytest.mark.parametrize("ready_early", [True, False])
def test_a_model_still_loading_has_its_first_batch_prepared_once_its_inputs_exist(ready_early):
    """An analyzer whose preprocessing is ready before its model (``preprocess_ready``) has its first batch
    prepared while the model loads, once its inputs exist; the analysis starts with it (on an H200 the VLM
    prepared its 114 chunks for 2.2-3.1 s after its model had loaded). Without it, nothing runs early."""
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    decoded, events = threading.Event(), []
    a = _preparing_early(gpus, decoded, events, ready_early=ready_early)
    _p, tracks = run_plan([a], gpus, 20_000, inputs_ready=decoded)
    assert tracks["vlm"].status == "ok", tracks["vlm"].reason
    assert tracks["vlm"].data["results"] == [0, 2, 4, 6]
    r = tracks["vlm"].receipt
    if ready_early:
        assert [e for e, _t in events] == ["pre", "loaded"]
        assert r["step"]["prepared_ahead"] == 1 and r["prepared_ahead_at_s"] < r["analyze_at_s"]
    else:
        assert [e for e, _t in events] == ["loaded", "pre"]
        assert r["step"]["prepared_ahead"] == 0 and "prepared_ahead_at_s" not in r


def test_batches_prepared_for_a_load_that_fails_are_dropped():
    gpus = SimulatedGPUs({"cuda:0": 80_000})
    decoded, events = threading.Event(), []
    a = _preparing_early(gpus, decoded, events, load_fails=True)
    _p, tracks = run_plan([a], gpus, 20_000, inputs_ready=decoded, cpu_fallback=False)
    assert tracks["vlm"].status == "failed" and "damaged" in tracks["vlm"].reason
    assert [e for e, _t in events] == ["pre"]
    assert a._prepared is None  # dropped, its threads stopped, when the failed load was unloaded
    assert gpus.allocated_mb("cuda:0") == 0


def test_profile_start_samples_every_thread_of_the_runs_first_seconds(tmp_path, sample_video, monkeypatch):
    """FRAMEWORK_PROFILE_START=S: every thread of the run's process is sampled for its first S seconds (or until the
    run ends), each stack under its thread's name: what held the interpreter while the warm-up imported."""
    from framework.runner import analyze
    from framework.plugins import build_plugin_manager
    from framework.registry import load_registry

    (tmp_path / "registry.yaml").write_text("analyzers:\n  cut_analysis: {}\n")
    monkeypatch.setenv("FRAMEWORK_PROFILE_START", "60")
    result = analyze(sample_video.path, registry=load_registry(tmp_path / "registry.yaml"),
                     host=build_plugin_manager(load_entrypoints=False), out_dir=tmp_path / "run", progress=False)
    report = (result.run_dir / "profiles" / "run_start.txt").read_text()
    folded = (result.run_dir / "profiles" / "run_start.folded").read_text()
    assert report.startswith("# run_start:") and "<thread>:MainThread:0" in folded
    monkeypatch.setenv("FRAMEWORK_PROFILE_START", "soon")
    with pytest.raises(ValueError, match="FRAMEWORK_PROFILE_START"):
        analyze(sample_video.path, registry=load_registry(tmp_path / "registry.yaml"),
                host=build_plugin_manager(load_entrypoints=False), out_dir=tmp_path / "run2", progress=False)
