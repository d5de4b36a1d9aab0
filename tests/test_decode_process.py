"""In a run that uses a GPU the decode pass runs in a process of its own while the models load
(``framework.decode_process``): the analyses start when it is done, read the same streams, and its
warnings, truncation and errors reach the run as they do from a decode in the run's process."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from framework import Analyzer, FrameSpec, hookimpl, media
from framework.decode_process import BackgroundDecode
from framework.plugins import build_plugin_manager
from framework.registry import load_registry
from framework.runner import analyze
from framework.timeline import VideoMeta
from test_own_process import one_simulated_gpu


class SlowLoad(Analyzer):
    """A GPU analyzer whose load takes a while: it is admitted and loaded while the video decodes."""

    name = "t_slow_load"
    version = "1.0"
    device = "gpu"

    def frame_specs(self):
        return [FrameSpec(fps=2.0, width=64, height=36)]

    def load(self, device, models):
        time.sleep(0.3)

    def analyze(self, inputs):
        frames = inputs.frames(self.frame_specs()[0])
        return self.track(data={"frames": len(frames), "pid": os.getpid()})


def _plugin(*classes):
    """A plugin that registers ``classes``."""
    class Plugin:
        @hookimpl
        def register_analyzers(self, register):
            for cls in classes:
                register(cls)
    return Plugin()


def _in_the_child(tmp_path, monkeypatch, code):
    """Code the decoding child (a fresh interpreter) runs first: a sitecustomize on its PYTHONPATH, which is
    this process's sys.path."""
    (tmp_path / "sitecustomize.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))


def _run(tmp_path, video, monkeypatch, names, gpu=True, env=None):
    if gpu:
        one_simulated_gpu(monkeypatch)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "registry.yaml").write_text("analyzers:\n" + "".join(f"  {n}: {{}}\n" for n in names))
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[_plugin(SlowLoad)])
    return analyze(video, registry=load_registry(tmp_path / "registry.yaml"), host=host, out_dir=tmp_path / "run",
                   progress=False)


def test_models_load_while_the_video_decodes_and_the_analyses_read_the_same_streams(tmp_path, sample_video, monkeypatch):
    beside = _run(tmp_path / "beside", sample_video.path, monkeypatch, ["t_slow_load", "cut_analysis"])
    receipt = beside.timeline.run["receipt"]
    decode_s = receipt["phases_s"]["decode"]
    slow = beside.timeline.tracks["t_slow_load"]
    assert slow.status == "ok", slow.reason
    assert slow.receipt["load_at_s"] < decode_s  # loading began before the decode had ended
    assert slow.receipt["analyze_at_s"] >= decode_s - 0.2  # its analysis waited for the streams
    assert slow.data["frames"] == int(sample_video.duration * 2)
    # the receipt lists the load turns: who held them, asked, began and ended (seconds from the plan's end)
    turns = [t for t in receipt["load_turns"] if t[0] == "t_slow_load"]
    assert len(turns) == 1 and turns[0][1] <= turns[0][2] < turns[0][3]
    assert turns[0][3] - turns[0][2] >= 0.3  # its load (a 0.3 s sleep) ran inside its turn
    # the same analyzers with the decode in the run's process read exactly the same
    here = _run(tmp_path / "here", sample_video.path, monkeypatch, ["t_slow_load", "cut_analysis"],
                env={"FRAMEWORK_DECODE_PROCESS": "0"})
    a, b = beside.timeline.tracks["cut_analysis"], here.timeline.tracks["cut_analysis"]
    assert a.status == b.status == "ok"
    assert [e.model_dump() for e in a.events] == [e.model_dump() for e in b.events]
    assert beside.timeline.run["decode"]["video_frames_decoded"] == here.timeline.run["decode"]["video_frames_decoded"]


def test_a_truncated_file_decoded_beside_gives_the_partial_results_and_says_so(tmp_path, sample_video, monkeypatch):
    from framework.testing.synth import make_faststart_copy

    fast = make_faststart_copy(sample_video.path, tmp_path / "fast.mp4")
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    result = _run(tmp_path / "cut", cut, monkeypatch, ["t_slow_load", "cut_analysis"])
    results = json.loads((tmp_path / "cut" / "run" / "results.json").read_text())
    truncated_at = results["run"]["decode"]["truncated_at"]
    assert 2.0 < truncated_at < sample_video.duration - 2.0
    assert any("truncated.mp4" in w and "truncated" in w for w in results["run"]["warnings"])
    assert results["video"]["duration"] == pytest.approx(truncated_at, abs=0.01)
    assert result.timeline.tracks["t_slow_load"].data["frames"] == pytest.approx(truncated_at * 2, abs=1)


def test_its_error_comes_back_as_the_same_exception_and_a_stop_ends_it(tmp_path, sample_video):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 1000)
    meta = VideoMeta(path=str(junk), content_hash="x", size_bytes=junk.stat().st_size, duration=10.0,
                     has_video=True, fps=30.0, width=64, height=36)
    failures = []
    bad = BackgroundDecode(junk, meta, [FrameSpec(fps=2.0, width=64, height=36)], False, tmp_path / "cache",
                           on_failure=lambda: failures.append(1))
    with pytest.raises(media.MediaError, match="junk.mp4"):
        bad.result()
    assert bad.ready.is_set() and isinstance(bad.error, media.MediaError) and failures == [1]
    # a stop ends the child at once: no error of its own, nothing left running
    meta = media.probe(sample_video.path)
    stopped = BackgroundDecode(sample_video.path, meta, [FrameSpec(fps=None, width=64, height=36)], True,
                               tmp_path / "cache2")
    stopped.close()
    assert stopped.ready.is_set() and stopped.error is None


def _garbage_after_the_index(video, folder):
    """A file whose index (moov) is intact, so it probes, and whose media data is noise: no frame decodes."""
    import numpy as np

    from framework.testing.synth import make_faststart_copy

    data = bytearray(make_faststart_copy(video.path, folder / "fast.mp4").read_bytes())
    start = data.find(b"mdat") + 8
    data[start:] = np.random.default_rng(0).integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    bad = folder / "garbage.mp4"
    bad.write_bytes(bytes(data))
    return bad


def test_a_decode_that_fails_beside_the_loads_stops_the_run_with_the_decodes_own_error(tmp_path, sample_video,
                                                                                        monkeypatch):
    bad = _garbage_after_the_index(sample_video, tmp_path)
    with pytest.raises(media.MediaError, match="garbage.mp4: no frame could be decoded") as beside:
        _run(tmp_path / "beside", bad, monkeypatch, ["t_slow_load", "cut_analysis"])
    with pytest.raises(media.MediaError) as here:
        _run(tmp_path / "here", bad, monkeypatch, ["t_slow_load", "cut_analysis"], env={"FRAMEWORK_DECODE_PROCESS": "0"})
    assert str(beside.value) == str(here.value)  # the same message, whichever process decoded


def test_the_report_says_where_the_time_went_and_which_analyzers_had_a_process_of_their_own(tmp_path, sample_video,
                                                                                             monkeypatch):
    from framework.outputs.receipt import receipt_rows, run_line

    result = _run(tmp_path, sample_video.path, monkeypatch, ["t_slow_load", "cut_analysis"])
    phases = result.timeline.run["receipt"]["phases_s"]
    assert f"plan {phases['plan']:.1f} s, decode {phases['decode']:.1f} s" in run_line(result.timeline)
    decode = result.timeline.run["decode"]
    assert decode["segments"] == 0 and "segments" not in run_line(result.timeline)  # (small pictures: one pass)
    decode.update(segments=16, segment_processes=8)
    assert run_line(result.timeline).endswith("; decoded in 16 segments by 8 worker processes")
    decode.update(segment_processes=0)
    assert run_line(result.timeline).endswith("; decoded in 16 segments on threads")
    rows = {row[0]: row for row in receipt_rows(result.timeline)}
    assert rows["t_slow_load"][1] == "cuda:0" and rows["cut_analysis"][1] == "cpu (own process)"
    monkeypatch.setattr(SlowLoad, "own_process", True)
    own = _run(tmp_path / "own", sample_video.path, monkeypatch, ["t_slow_load"])
    assert {row[0]: row for row in receipt_rows(own.timeline)}["t_slow_load"][1] == "cuda:0 (own process)"
    assert (tmp_path / "own" / "run" / "summary.md").read_text().count("(own process)") == 1


def test_where_children_cannot_start_the_work_stays_in_the_runs_process(monkeypatch):
    from framework import decode_process, own_process, process_workers

    assert decode_process.wanted({}) and own_process.wanted({}, gpu=True)  # (POSIX here)
    monkeypatch.setattr(process_workers.os, "name", "nt")
    assert not decode_process.wanted({}) and not own_process.wanted({}) and not own_process.wanted({}, gpu=True)
    assert process_workers.default_worker_count(16) == 1


@pytest.fixture
def gpu_machine(monkeypatch):
    """A simulated GPU on a machine whose GPU driver is present: the run decodes early, while it plans."""
    monkeypatch.setattr("framework.runner.gpu_driver_present", lambda: True)
    from framework import decode_process, runner

    made, plans = [], []
    real_init, real_plan = decode_process.BackgroundDecode.__init__, runner._Run._plan

    def init(self, *args, **kwargs):
        made.append(self)
        real_init(self, *args, **kwargs)

    def slow_plan(self):
        time.sleep(0.5)  # as importing torch and finding the GPUs takes
        order = real_plan(self)
        plans.append((self, time.perf_counter()))
        return order

    monkeypatch.setattr(decode_process.BackgroundDecode, "__init__", init)
    monkeypatch.setattr(runner._Run, "_plan", slow_plan)
    return made, plans


def test_on_a_gpu_machine_a_fresh_run_decodes_while_it_plans(tmp_path, sample_video, monkeypatch, gpu_machine):
    made, plans = gpu_machine
    result = _run(tmp_path, sample_video.path, monkeypatch, ["t_slow_load", "cut_analysis"])
    run, planned_at = plans[0]
    assert len(made) == 1 and run.decode_t0 < planned_at - 0.4  # one decode, started before the plan began
    assert result.timeline.tracks["cut_analysis"].status == "ok"
    assert result.timeline.tracks["t_slow_load"].data["frames"] == int(sample_video.duration * 2)
    # the next run reuses the finished tracks: nothing is decoded early (nor at all)
    again = _run(tmp_path, sample_video.path, monkeypatch, ["t_slow_load", "cut_analysis"])
    assert sorted(again.reused) == ["cut_analysis", "t_slow_load"] and len(made) == 1


def test_an_early_decode_ends_when_the_plan_fails(tmp_path, sample_video, monkeypatch, gpu_machine):
    from framework import runner
    from framework.errors import ConfigError

    made, _ = gpu_machine

    def failing_plan(self):
        raise ConfigError("a cycle, say")

    monkeypatch.setattr(runner._Run, "_plan", failing_plan)
    with pytest.raises(ConfigError):
        _run(tmp_path, sample_video.path, monkeypatch, ["t_slow_load", "cut_analysis"])
    assert len(made) == 1 and made[0].ready.is_set()  # its process ended with the run


# --- the audio handed over as soon as its own pass is complete --------------------------------------
def test_a_segmented_decode_hands_over_the_complete_audio_before_it_returns(tmp_path, sample_video, monkeypatch):
    """The audio decodes on a pass of its own beside the video's segments; once it reached its end,
    ``on_audio`` gets the closed track (the same one the result carries). A one-pass decode, where
    audio and video come from one demux loop, hands nothing over early."""
    import numpy as np

    monkeypatch.setattr(media.segments, "cpus_available", lambda: 4)
    monkeypatch.setattr(media.segments, "MIN_SEGMENT_PIXELS", 0)  # the sample's small picture
    video = media.probe(sample_video.path)
    got = []
    decoded = media.decode(sample_video.path, video, [FrameSpec(2.0, 64)], True, tmp_path / "seg",
                           on_audio=lambda track: got.append((track, np.asarray(track.samples[:]).copy())))
    (track, samples), = got
    final = np.asarray(decoded.audio.samples[:])
    assert track.path == decoded.audio.path and len(samples) == len(final) > 11 * 16000
    assert np.array_equal(samples, final)
    monkeypatch.setattr(media.segments, "MAX_WORKERS", 1)  # one pass
    again = []
    media.decode(sample_video.path, video, [FrameSpec(2.0, 64)], True, tmp_path / "one", on_audio=again.append)
    assert again == []


def test_the_segmented_decodes_audio_from_its_own_process_is_the_threads(tmp_path, sample_video, monkeypatch):
    """The audio pass in a process of its own (``media.audio_child``) writes the samples, frame count,
    packet tally and stats the pass on a thread writes; a child that cannot run leaves the pass to
    the thread, with the same result."""
    import numpy as np

    from framework.media import audio_child

    monkeypatch.setattr(media.segments, "cpus_available", lambda: 4)
    monkeypatch.setattr(media.segments, "MIN_SEGMENT_PIXELS", 0)  # the sample's small picture
    video = media.probe(sample_video.path)
    children = []
    real = audio_child.audio_pass_in_child

    def counted(*args, **kwargs):
        children.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(audio_child, "audio_pass_in_child", counted)

    def decode(folder, env):
        monkeypatch.setenv("FRAMEWORK_AUDIO_PROCESS", env)
        d = media.decode(sample_video.path, video, [FrameSpec(2.0, 64)], True, tmp_path / folder)
        return d, np.asarray(d.audio.samples[:])

    (child, child_samples), (thread, thread_samples) = decode("child", "1"), decode("thread", "0")
    assert len(children) == 1 and child.stats.segments > 1  # the child ran once: the thread's decode made none
    assert np.array_equal(child_samples, thread_samples) and len(child_samples) > 11 * 16000
    assert child.audio.start_time == thread.audio.start_time
    assert (child.stats.audio_frames_decoded, child.stats.packets) == (thread.stats.audio_frames_decoded,
                                                                       thread.stats.packets)
    monkeypatch.setattr(audio_child.sys, "executable", str(tmp_path / "no-python"))  # the child cannot start
    fallback, fallback_samples = decode("fallback", "1")
    assert len(children) == 2 and np.array_equal(fallback_samples, thread_samples)
    assert fallback.stats.audio_frames_decoded == thread.stats.audio_frames_decoded


def test_a_stop_ends_the_audios_own_process_at_once(tmp_path, sample_video, monkeypatch):
    import threading

    from framework.media import audio_child

    monkeypatch.setattr(audio_child, "POLL_S", 0.01)  # (a fresh interpreter takes longer than this to start)
    stop = threading.Event()
    stop.set()
    out = tmp_path / "audio.f32"
    video = media.probe(sample_video.path)
    passed = audio_child.audio_pass_in_child(Path(sample_video.path), video.audio_stream, 0.0, video.duration, out, stop)
    assert passed.error == "stopped" and not out.with_suffix(".json").exists()  # killed before it finished


class HearsOnly(Analyzer):
    """An analyzer that reads the audio and no frames: it may start before the video is decoded."""

    name = "t_hears_only"
    version = "1.0"
    needs_audio = True

    def analyze(self, inputs):
        return self.track(data={"at": time.time(), "samples": len(inputs.audio.samples)})


@pytest.mark.parametrize("waits", [False, True])
def test_an_analyzer_that_hears_only_the_audio_starts_before_the_video_is_decoded(tmp_path, sample_video,
                                                                                  monkeypatch, waits):
    """In a run that uses a GPU, with the video decoded in segments beside the loads: the audio-only
    analyzer analyzes once the audio is complete, before the decode pass has ended (its video
    segments are slowed here), and reads the whole audio; a frames analyzer waits for the end.
    With registry.yaml's ``wait_for_video: true`` the audio-only one waits for the end too."""
    # the decode runs in a child process (a fresh interpreter): it imports this sitecustomize first, which
    # gives it segments on this machine's small picture and slows the video's segments by 2 s
    _in_the_child(tmp_path, monkeypatch,
                  "import time\nimport framework.media.segments as s\nreal = s.decode_segments\n"
                  "def slow(*a, **k):\n    time.sleep(2.0)\n    return real(*a, **k)\n"
                  "s.decode_segments = slow\ns.cpus_available = lambda: 4\ns.MIN_SEGMENT_PIXELS = 0\n")
    one_simulated_gpu(monkeypatch)
    (tmp_path / "registry.yaml").write_text(f"analyzers:\n  t_hears_only: {{wait_for_video: {str(waits).lower()}}}\n"
                                            "  t_slow_load: {}\n")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[_plugin(HearsOnly, SlowLoad)])
    result = analyze(sample_video.path, registry=load_registry(tmp_path / "registry.yaml"), host=host,
                     out_dir=tmp_path / "run", progress=False)
    hears, frames = result.timeline.tracks["t_hears_only"], result.timeline.tracks["t_slow_load"]
    assert hears.status == frames.status == "ok", (hears.reason, frames.reason)
    assert hears.data["samples"] > 11 * 16000  # the whole 12 s
    if waits:  # (the frames analyzer loaded while the video decoded: it starts as the decode ends)
        assert hears.receipt["analyze_at_s"] > frames.receipt["analyze_at_s"] - 0.5
    else:
        assert hears.receipt["analyze_at_s"] + 1.0 < frames.receipt["analyze_at_s"]


def test_a_first_pass_hands_over_its_streams_and_the_audio_before_the_others_are_decoded(tmp_path, sample_video):
    """``first``: those streams (and the audio) in a pass of their own, handed over (``on_first``, ``first_ready``),
    then the others; every stream holds what one pass makes, and the stats count both passes."""
    import numpy as np

    meta = media.probe(sample_video.path)
    a, b = FrameSpec(fps=2.0, width=64, height=36), FrameSpec(fps=1.0, width=32, height=18)
    parts = []
    two = BackgroundDecode(sample_video.path, meta, [a, b], True, tmp_path / "two", first=[a],
                           on_first=lambda part: parts.append((set(part.streams), part.audio is not None,
                                                               two.ready.is_set())))
    decoded = two.result()
    assert parts == [({a}, True, False)] and two.first_ready.is_set()
    one = media.decode(sample_video.path, meta, [a, b], True, tmp_path / "one")
    assert set(decoded.streams) == {a, b}
    for spec in (a, b):
        mine, theirs = decoded.streams[spec], one.streams[spec]
        assert len(mine) == len(theirs) > 0 and np.array_equal(mine.frames[:], theirs.frames[:])
        assert list(mine.times) == list(theirs.times)
    assert decoded.stats.video_frames_decoded == 2 * one.stats.video_frames_decoded  # (the video decoded twice)
    assert len(decoded.audio.samples) == len(one.audio.samples)
    # all of them first, or none given: one pass, first_ready with ready
    whole = BackgroundDecode(sample_video.path, meta, [a], False, tmp_path / "whole", first=[a])
    assert whole.first == [] and whole.result().stats.video_frames_decoded == one.stats.video_frames_decoded


class LeadsTheRun(SlowLoad):
    """A GPU analyzer that says its analysis is the run's longest (``frames_first``)."""

    name = "t_z_leads"  # (after t_slow_load in every other order of the loads)
    frames_first = True

    def frame_specs(self):
        return [FrameSpec(fps=2.0, width=48, height=27)]


@pytest.mark.parametrize("switched_on", [True, False])
def test_frames_first_starts_the_leading_analyzer_while_the_other_streams_decode(tmp_path, sample_video,
                                                                                 monkeypatch, switched_on):
    """``FRAMEWORK_FRAMES_FIRST=1``: the leading analyzer's streams and its upstream's are decoded first, and
    it analyzes while the others are (their pass slowed here by 2 s); everything reads complete streams.
    Off (the default): it waits for every stream."""
    _in_the_child(tmp_path, monkeypatch,
                  "import time\nimport framework.media as m\nreal = m.decode\n"
                  "def slow(path, video, specs, want_audio, *a, **k):\n"
                  "    if not want_audio and len(specs) > 1:\n        time.sleep(2.0)  # (the second pass)\n"
                  "    return real(path, video, specs, want_audio, *a, **k)\n"
                  "m.decode = slow\n")
    one_simulated_gpu(monkeypatch)
    monkeypatch.setenv("FRAMEWORK_FRAMES_FIRST", "1" if switched_on else "0")
    import framework.runner as runner_module

    jobs = {}
    real_executor = runner_module.Executor

    def recording(plan, js, *args, **kwargs):
        jobs.update((j.name, j) for j in js)
        return real_executor(plan, js, *args, **kwargs)

    monkeypatch.setattr(runner_module, "Executor", recording)
    (tmp_path / "registry.yaml").write_text("analyzers:\n  t_slow_load: {}\n  t_z_leads: {}\n  audio_analysis: {}\n")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[_plugin(LeadsTheRun, SlowLoad)])
    result = analyze(sample_video.path, registry=load_registry(tmp_path / "registry.yaml"), host=host,
                     out_dir=tmp_path / "run", progress=False)
    leads, other = result.timeline.tracks["t_z_leads"], result.timeline.tracks["t_slow_load"]
    assert leads.status == other.status == result.timeline.tracks["audio_analysis"].status == "ok"
    assert leads.data["frames"] == other.data["frames"] == int(sample_video.duration * 2)
    if switched_on:
        assert leads.receipt["analyze_at_s"] + 1.0 < other.receipt["analyze_at_s"]
        # its load goes before the others waiting for a turn (here none waits: Job.load_first, test_executor.py)
        assert jobs["t_z_leads"].load_first and not jobs["t_slow_load"].load_first
        assert jobs["t_z_leads"].inputs_ready is not None and jobs["t_slow_load"].inputs_ready is None
        assert result.timeline.run["decode"]["video_frames_decoded"] >= 2 * 350  # (the 12 s at 30 fps, twice)
    else:
        assert leads.receipt["analyze_at_s"] > other.receipt["analyze_at_s"] - 0.5
        assert not jobs["t_z_leads"].load_first and jobs["t_z_leads"].inputs_ready is None
        assert result.timeline.run["decode"]["video_frames_decoded"] < 2 * 350


def test_the_decoding_child_computes_cut_analysis_signals_on_its_segments(tmp_path, sample_video, monkeypatch):
    """The features an analyzer asks for (``stream_features``) reach the child; its segments compute them."""
    (tmp_path / "site").mkdir()
    _in_the_child(tmp_path / "site", monkeypatch, "import framework.media.segments as s\n"
                  "s.MIN_SEGMENT_PIXELS = 0\ns.cpus_available = lambda: 4\n")
    beside = _run(tmp_path / "beside", sample_video.path, monkeypatch, ["t_slow_load", "cut_analysis"])
    here = _run(tmp_path / "here", sample_video.path, monkeypatch, ["t_slow_load", "cut_analysis"],
                env={"FRAMEWORK_DECODE_PROCESS": "0"})
    a, b = beside.timeline.tracks["cut_analysis"], here.timeline.tracks["cut_analysis"]
    assert beside.timeline.run["decode"]["segments"] > 1 and here.timeline.run["decode"]["segments"] == 0
    assert a.data["signals_from"] == "decode" and b.data["signals_from"] == "frames"
    assert [e.model_dump() for e in a.events] == [e.model_dump() for e in b.events]


def test_decode_nice_moves_the_decoding_process_priority_and_a_refusal_is_logged(tmp_path):
    """``FRAMEWORK_DECODE_NICE`` (a benchmark's knob): the decoding process's priority moves by its value; a value
    that is no number leaves it as it is, with a warning that names the variable."""
    import subprocess
    import sys
    code = ("import logging, os; logging.basicConfig(level=logging.WARNING)\n"
            "from framework.decode_process import change_priority\n"
            "before = os.nice(0); change_priority(); print(os.nice(0) - before)")
    root = Path(__file__).resolve().parents[1]
    for value, moved in (("3", "3"), ("", "0"), ("high", "0")):
        env = {**os.environ, "FRAMEWORK_DECODE_NICE": value, "PYTHONPATH": str(root)}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == moved, (value, out.stdout, out.stderr)
        assert ("FRAMEWORK_DECODE_NICE=high" in out.stderr) == (value == "high"), out.stderr


class WarmingA(SlowLoad):
    name = "t_warming_a"
    warm_imports = ("t_slow_import",)  # (its import holds the load turns while both loads ask for one)


class WarmingB(WarmingA):
    name = "t_warming_b"


def test_registry_load_first_gives_an_analyzers_load_the_first_turn(tmp_path, sample_video, monkeypatch):
    """registry.yaml's ``load_first``: of two GPU analyzers waiting for the video and for a turn (the import
    warm-up holds it), the one that says so loads first, whichever the order would put first without it (the
    receipt's load turns say who loaded when)."""
    import sys

    one_simulated_gpu(monkeypatch)
    (tmp_path / "t_slow_import.py").write_text("import time\ntime.sleep(1.5)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[_plugin(WarmingA, WarmingB)])
    names = ("t_warming_a", "t_warming_b")

    def loads(folder, first=None):
        monkeypatch.delitem(sys.modules, "t_slow_import", raising=False)  # (imported by each run's warm-up)
        folder.mkdir()
        (folder / "registry.yaml").write_text("analyzers:\n" + "".join(
            f"  {n}: {{load_first: true}}\n" if n == first else f"  {n}: {{}}\n" for n in names))
        result = analyze(sample_video.path, registry=load_registry(folder / "registry.yaml"), host=host,
                         out_dir=folder / "run", progress=False)
        assert all(result.timeline.tracks[n].status == "ok" for n in names)
        turns = result.timeline.run["receipt"]["load_turns"]
        assert turns[0][0] == "import t_slow_import"
        assert all(asked <= turns[0][3] for who, asked, *_ in turns if who in names)  # both asked during it
        return [t[0] for t in turns if t[0] in names]

    plain = loads(tmp_path / "plain")
    assert sorted(plain) == sorted(names)
    assert loads(tmp_path / "second_first", first=plain[1]) == [plain[1], plain[0]]
