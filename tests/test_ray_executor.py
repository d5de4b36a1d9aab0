"""`framework run --executor ray`: task resources from the plan, error reporting, and (slow) real
local Ray runs: the same tracks as the local executor, and a killed worker whose video resumes."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cli import main
from framework.errors import EXIT_INPUT
from framework.executors.resources import GPU_FRACTION_GRID, MAX_CPUS_PER_TASK, TaskResources, gpu_minutes, task_resources
from framework.executors import ray_executor as rx
from framework.scheduler import Demand, plan
from framework.testing.synth import ShotSpec, make_video


# --- resources from the plan (no Ray) ------------------------------------------------------
def test_a_cpu_only_plan_asks_for_no_gpu_and_one_cpu_per_cpu_analyzer():
    p = plan([Demand("a"), Demand("b"), Demand("c", depends_on=("a",))], 24_000, ["cuda:0"])
    r = task_resources(p, gpu_budget_mb=24_000, max_node_cpus=16)
    assert r.num_gpus == 0 and r.num_cpus == 3 and r.vram_budget_mb is None
    many = plan([Demand(f"x{i}") for i in range(9)], None, [])
    assert task_resources(many, gpu_budget_mb=None, max_node_cpus=16).num_cpus == MAX_CPUS_PER_TASK
    assert task_resources(many, gpu_budget_mb=None, max_node_cpus=2).num_cpus == 2  # no node has more
    assert task_resources(many, gpu_budget_mb=None, max_node_cpus=16, jobs=6).num_cpus == 6  # --jobs


def test_a_small_gpu_plan_takes_a_fraction_of_a_card_with_that_share_as_its_budget():
    p = plan([Demand("vlm", device="gpu", vram_mb=3000), Demand("cuts")], 24_000, ["cuda:0"])
    r = task_resources(p, gpu_budget_mb=24_000, max_node_cpus=8)
    assert r.num_gpus == pytest.approx(1 / 8) and r.vram_budget_mb == pytest.approx(3000)
    assert r.gpu_analyzers == ("vlm",) and r.peak_vram_mb == pytest.approx(3000)
    p = plan([Demand("vlm", device="gpu", vram_mb=10_000)], 24_000, ["cuda:0"])
    r = task_resources(p, gpu_budget_mb=24_000, max_node_cpus=8)
    assert r.num_gpus == 0.5 and r.vram_budget_mb == pytest.approx(12_000)
    assert "0.5 GPU" in r.describe() and "11.7 GB budget" in r.describe()


def test_a_plan_over_two_gpus_takes_two_whole_gpus_and_an_unknown_budget_a_whole_one():
    p = plan([Demand("a", device="gpu", vram_mb=20_000), Demand("b", device="gpu", vram_mb=20_000)],
             24_000, ["cuda:0", "cuda:1"])
    assert {pl.device for pl in p.placements.values()} == {"cuda:0", "cuda:1"}
    r = task_resources(p, gpu_budget_mb=24_000, max_node_cpus=8)
    assert r.num_gpus == 2 and r.vram_budget_mb is None
    one = plan([Demand("a", device="gpu", vram_mb=2000)], None, ["cuda:0"])
    assert task_resources(one, gpu_budget_mb=None, max_node_cpus=8).num_gpus == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1, max_value=30_000), min_size=1, max_size=5),
       st.floats(min_value=2_000, max_value=140_000))
def test_a_fractional_share_always_holds_the_planned_peak(sizes, budget):
    p = plan([Demand(f"g{i}", device="gpu", vram_mb=v) for i, v in enumerate(sizes)], budget, ["cuda:0"])
    r = task_resources(p, gpu_budget_mb=budget, max_node_cpus=4)
    if not p.placements or not any(pl.is_gpu for pl in p.placements.values()):
        assert r.num_gpus == 0
        return
    assert 0 < r.num_gpus <= 1
    assert abs(r.num_gpus * GPU_FRACTION_GRID - round(r.num_gpus * GPU_FRACTION_GRID)) < 1e-9
    assert r.num_gpus * budget >= r.peak_vram_mb - 1e-6  # the share holds the largest wave
    if r.num_gpus < 1:
        assert r.vram_budget_mb == pytest.approx(r.num_gpus * budget)


def test_the_receipt_sums_video_minutes_per_gpu_minute_over_workers():
    shape = rx.ClusterShape(max_node_cpus=16, gpus_per_node=2, gpu_budget_mb=100_000)
    reports = [rx.TaskReport("a.mp4", "runs/a", TaskResources(2, 1.0), wall_s=60.0, video_s=600.0),
               rx.TaskReport("b.mp4", "runs/b", TaskResources(2, 0.5), wall_s=120.0, video_s=600.0),
               rx.TaskReport("c.mp4", "runs/c", TaskResources(2, 0.0), error="c.mp4: not found")]
    receipt = rx.cluster_receipt(reports, wall_s=130.0, shape=shape)
    assert gpu_minutes([t for t in receipt["tasks"] if t["wall_s"]]) == pytest.approx(2.0)  # 1 + 0.5 * 2
    assert receipt["video_min_per_gpu_min"] == pytest.approx(20.0 / 2.0)
    assert receipt["analyzed"] == 2 and receipt["failed"] == 1 and receipt["video_s"] == 1200.0
    receipt["address"] = "local"
    assert "10.0 video-min per GPU-min" in rx.receipt_line(receipt)


# --- error reporting (no Ray) ---------------------------------------------------------------
class _FakeRay:
    """Just enough of Ray to see what the driver submits and how it takes results (no Ray started)."""

    def __init__(self, results):
        self.results, self.submitted = results, []

    def remote(self, fn=None, **_):
        fake = self

        class Remote:
            def options(self, **opts):
                return types.SimpleNamespace(remote=lambda *args: fake._submit(opts, args))

        return Remote() if fn is not None else (lambda f: Remote())

    def _submit(self, opts, args):
        self.submitted.append((opts, args))
        return len(self.submitted) - 1

    def wait(self, refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref, timeout=None):
        result = self.results[ref]
        if isinstance(result, BaseException):
            raise result
        return result


def test_each_task_is_submitted_with_its_plans_resources_and_a_failure_does_not_stop_the_others(tmp_path, monkeypatch):
    from framework.runner import VideoOutcome

    class WorkerCrashedError(Exception):
        pass

    videos = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    plans = {videos[0]: TaskResources(2, 0.25, 6000.0, 5500.0, ("vlm",)), videos[1]: TaskResources(1, 0.0)}
    monkeypatch.setattr(rx, "plan_resources", lambda video, **kw: plans[video])
    fake = _FakeRay([{"outcome": VideoOutcome(videos[0], error=None, exit_code=0),
                      "info": {"node": "n1", "pid": 7, "gpu_ids": ["1"], "wall_s": 30.0, "video_s": 600.0,
                               "peak_vram_mb": {"cuda:0": 5123.0}}},
                     WorkerCrashedError("The worker died unexpectedly while executing this task")])
    outcomes: list = [None, None]
    shape = rx.ClusterShape(max_node_cpus=8, gpus_per_node=1, gpu_budget_mb=24_000)
    reports = rx._run_tasks(fake, [(0, videos[0], tmp_path / "r" / "a"), (1, videos[1], tmp_path / "r" / "b")],
                            outcomes, shape=shape, registry=None, host=None, registry_file=None, only=["vlm"],
                            skip=None, jobs=None, devices=None, progress=False, load_entrypoints=False,
                            vram_budget=None, kwargs={"resume": True})
    (opts_a, args_a), (opts_b, args_b) = fake.submitted
    assert opts_a["num_gpus"] == 0.25 and opts_a["num_cpus"] == 2 and opts_b["num_gpus"] == 0.0
    assert opts_a["max_retries"] == 1 and opts_a["retry_exceptions"] is True
    assert args_a[0] == str(videos[0]) and args_a[1] == str(tmp_path / "r" / "a")
    worker_options = args_a[2]
    assert worker_options["vram_budget"] == "6000MB" and worker_options["jobs"] == 2  # its share of the card
    assert worker_options["only"] == ["vlm"] and worker_options["resume"] is True
    assert args_b[2]["vram_budget"] is None and args_b[2]["jobs"] == 1
    assert outcomes[0].exit_code == 0 and reports[0].gpu_ids == ["1"] and reports[0].peak_vram_mb == {"cuda:0": 5123.0}
    assert outcomes[1].result is None and outcomes[1].exit_code == 1
    assert outcomes[1].error.startswith(f"{videos[1]}: analysis failed on 2 attempts: its Ray worker died")
    receipt = rx.cluster_receipt(reports, 40.0, shape)
    assert receipt["video_min_per_gpu_min"] == pytest.approx(10.0 / (30.0 * 0.25 / 60.0))


def test_a_video_the_worker_cannot_read_names_the_node_and_shared_storage(tmp_path):
    got = rx.analyze_task(str(tmp_path / "on-another-disk.mp4"), str(tmp_path / "run"), {})
    outcome = got["outcome"]
    assert outcome.result is None and outcome.exit_code == EXIT_INPUT
    assert "on-another-disk.mp4" in outcome.error and "not found on Ray worker node" in outcome.error
    assert got["info"]["node"] in outcome.error and "shared storage" in outcome.error
    assert not (tmp_path / "run").exists()


def test_a_task_that_failed_twice_is_one_line_saying_why_and_how_to_resume():
    class WorkerCrashedError(Exception):
        pass

    msg = rx.task_error_message("a.mp4", WorkerCrashedError("The worker died unexpectedly"))
    assert msg.startswith("a.mp4: analysis failed on 2 attempts: its Ray worker died")
    assert "same command resumes" in msg

    class RayTaskError(Exception):
        cause = MemoryError("frame buffer")

    assert "MemoryError: frame buffer" in rx.task_error_message("b.mp4", RayTaskError("long\ntraceback"))


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(rx.RayUnavailable, match="pip install 'ray"):
        rx.start_ray(None, 2)


def test_a_local_ray_that_never_starts_is_tried_again_then_reported_with_where_to_look(monkeypatch):
    calls = []

    def init(**kw):
        calls.append(kw)
        raise Exception("The current node timed out during startup. This could happen because ...")

    fake = types.SimpleNamespace(is_initialized=lambda: False, init=init, shutdown=lambda: None)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.delenv("RAY_worker_register_timeout_seconds", raising=False)
    with pytest.raises(rx.RayUnavailable) as info:
        rx.start_ray(None, 3)
    assert len(calls) == rx.LOCAL_START_ATTEMPTS
    assert calls[0] == {"num_cpus": 3, "include_dashboard": False, "log_to_driver": True}
    msg = str(info.value)
    assert "cannot start a local Ray" in msg and "timed out during startup" in msg and "raylet.out" in msg


def test_ray_options_need_the_ray_executor_and_devices_other_than_cpu_are_refused(tmp_path, video_factory):
    video = video_factory("a.mp4", shots=[ShotSpec(1.0)], audio=False, text=None, width=64, height=48)
    r = CliRunner().invoke(main, ["run", str(video.path), "--address", "10.0.0.5:6379", "--no-progress"])
    assert r.exit_code == 2 and "--executor ray" in r.output
    r = CliRunner().invoke(main, ["run", str(video.path), "--executor", "ray", "--devices", "cuda:1",
                                  "--no-progress", "--out", str(tmp_path / "o"), "--no-library"])
    assert r.exit_code == 4 and "CUDA_VISIBLE_DEVICES" in r.output
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()  # refused before Ray starts


def test_help_and_plugin_discovery_do_not_import_ray():
    code = ("import sys\nfrom click.testing import CliRunner\nimport cli\n"
            "r = CliRunner().invoke(cli.main, ['run', '--help'])\nassert r.exit_code == 0 and '--executor' in r.output\n"
            "from framework.plugins import build_plugin_manager\nbuild_plugin_manager(load_entrypoints=False)\n"
            "import framework.executors\nprint('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


# --- real local Ray (slow) ------------------------------------------------------------------
CRASH_PLUGIN = '''
import os
from pathlib import Path
from framework import Analyzer, Track, hookimpl


class CrashProbe(Analyzer):
    """Counts the shots; its worker process exits mid-video when the flag file names this video."""

    name = "crash_probe"
    version = "1"
    depends_on = ["cut_analysis"]

    class Params(Analyzer.Params):
        flag: str = ""

    def analyze(self, inputs):
        flag = Path(self.params.flag)
        if flag.is_file():
            video, how = flag.read_text().split()
            if Path(inputs.video.path).name == video:
                if how == "once":
                    flag.unlink()
                os._exit(17)  # the whole worker process dies, as when a node is lost
        shots = [e for e in inputs.upstream["cut_analysis"].events if e.label == "shot"]
        return self.track(data={"shots": len(shots)})


@hookimpl
def register_analyzers(register):
    register(CrashProbe)
'''


@pytest.fixture(scope="module")
def local_ray():
    import os

    ray = pytest.importorskip("ray")
    # Ray's processes inherit this environment: where no bytecode is written (PYTHONDONTWRITEBYTECODE, no
    # .pyc in the venv) each one compiles Ray from source, and on a busy machine the raylet aborts at start-up
    # (docs/scale-out.md); bytecode goes to a cache of its own for this session's Ray instead
    changed = {**rx.LOCAL_START_ENV, "PYTHONDONTWRITEBYTECODE": None,
               "PYTHONPYCACHEPREFIX": os.environ.get("PYTHONPYCACHEPREFIX")
               or str(Path(tempfile.gettempdir()) / "framework-tests-pycache")}
    before = {k: os.environ.get(k) for k in changed}
    for k, v in changed.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        rx._start_local(ray, 2)  # started here, so the runs below leave it running (and it starts once)
    finally:
        for k, v in before.items():  # Ray's processes keep what they were started with
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def three_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray_media")
    return [make_video(folder / f"v{i}.mp4", [ShotSpec(1.0, "pan", look=i), ShotSpec(1.0, look=i + 3),
                                               ShotSpec(1.0, "zoom", look=i + 6)],
                       fps=15, width=160, height=90, audio=False, text=None).path for i in range(3)]


def _comparable(result) -> dict:
    return {n: (t.status, [e.model_dump() for e in t.events], t.data) for n, t in result.timeline.tracks.items()}


@pytest.mark.slow
def test_three_videos_through_local_ray_give_the_local_executors_tracks(tmp_path, local_ray, three_videos):
    from framework.runner import run_many

    reg = tmp_path / "registry.yaml"
    reg.write_text("analyzers:\n  cut_analysis: {}\n  scene_segmentation: {}\n  color_analysis: {}\n"
                   "  camera_analysis: {}\n")
    common = dict(registry_path=reg, load_entrypoints=False, progress=False)
    local, code = run_many(three_videos, out_dir=tmp_path / "local", **common)
    assert code == 0
    remote, code, receipt = rx.run_many_ray(three_videos, out_dir=tmp_path / "ray", **common)
    assert code == 0 and [o.video for o in remote] == [Path(v).absolute() for v in three_videos]
    for a, b in zip(local, remote):
        assert b.result.run_dir == (tmp_path / "ray" / Path(a.video).stem).absolute()
        assert (b.result.run_dir / "results.json").is_file() and (b.result.run_dir / "report.html").is_file()
        assert _comparable(a.result) == _comparable(b.result)
        assert set(b.result.timeline.tracks) == {"cut_analysis", "scene_segmentation", "color_analysis",
                                                 "camera_analysis"}
    saved = json.loads((tmp_path / "ray" / rx.RECEIPT_NAME).read_text())
    assert saved["analyzed"] == 3 and saved["video_s"] == pytest.approx(9.0, abs=0.2)
    assert all(t["num_gpus"] == 0 and 1 <= t["num_cpus"] <= 2 and t["node"] for t in saved["tasks"])
    assert saved["video_min_per_gpu_min"] is None  # no GPU held: no GPU-minutes to divide by
    assert local_ray.is_initialized()  # a Ray the caller started is left running


@pytest.mark.slow
def test_a_killed_worker_is_retried_reusing_what_finished_and_a_rerun_resumes(tmp_path, local_ray, three_videos):
    from framework.library.batch import FinishedRuns

    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "crash_probe.py").write_text(CRASH_PLUGIN)
    flag = tmp_path / "crash.flag"
    reg = tmp_path / "registry.yaml"
    reg.write_text(f"plugin_dirs: [plugins]\nanalyzers:\n  cut_analysis: {{}}\n"
                   f"  crash_probe: {{params: {{flag: '{flag}'}}}}\n")
    common = dict(registry_path=reg, load_entrypoints=False, progress=True)

    # 1. v1's worker dies once mid-video: Ray retries it; the retry reuses its cut_analysis track
    flag.write_text("v1.mp4 once")
    outcomes, code, receipt = rx.run_many_ray(three_videos, out_dir=tmp_path / "once", **common)
    assert code == 0 and not flag.exists()
    v1 = outcomes[1].result
    assert v1.reused == ["cut_analysis"] and v1.timeline.tracks["crash_probe"].status == "ok"
    assert outcomes[0].result.reused == [] and outcomes[2].result.reused == []
    assert [t["attempts"] for t in receipt["tasks"]] == [1, 2, 1]

    # 2. v2's worker dies on every attempt: reported after the retry; the others finish
    flag.write_text("v2.mp4 always")
    done = FinishedRuns(reg, load_entrypoints=False)
    outcomes, code, receipt = rx.run_many_ray(three_videos, out_dir=tmp_path / "always", finished=done.check,
                                              **common)
    assert code == 1 and outcomes[0].result is not None and outcomes[1].result is not None
    assert outcomes[2].result is None and "v2.mp4: analysis failed on 2 attempts" in outcomes[2].error
    assert "worker died" in outcomes[2].error
    assert (tmp_path / "always" / "v2" / "tracks" / "cut_analysis.json").is_file()  # kept from the attempts
    for o in outcomes[:2]:
        done.mark(o.result)

    # 3. the same command again: finished videos are not submitted; v2 reuses its cut_analysis
    flag.unlink()
    outcomes, code, receipt = rx.run_many_ray(three_videos, out_dir=tmp_path / "always", finished=done.check,
                                              **common)
    assert code == 0 and [o.already_done for o in outcomes] == [True, True, False]
    assert outcomes[2].result.reused == ["cut_analysis"]
    assert outcomes[2].result.timeline.tracks["crash_probe"].data == {"shots": 3}
    assert [t["video"] for t in receipt["tasks"]] == [str(Path(three_videos[2]).absolute())]
