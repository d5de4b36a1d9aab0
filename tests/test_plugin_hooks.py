"""One test per hook (``test_hook_<name>``): each hook is called when docs/plugin-hooks.md says,
with the arguments it documents. ``test_every_hook_has_its_own_test`` enforces the naming."""
from __future__ import annotations

import json

import pytest

from framework import Analyzer, Event, FrameSpec, Timeline, Track, VideoMeta, hookimpl
from framework.outputs import Exporter
from framework.plugins import build_plugin_manager
from framework.runner import analyze
from framework.testing.synth import ShotSpec, make_video


class Steady(Analyzer):
    name = "hook_steady"
    version = "1.2.0"

    def frame_specs(self):
        return [FrameSpec(fps=2.0, width=32, pix_fmt="gray")]

    def analyze(self, inputs):
        stream = inputs.frames(self.frame_specs()[0])
        return self.track(events=[Event(start=0.0, end=float(stream.times[-1]), label="seen")])


class Broken(Analyzer):
    name = "hook_broken"

    def analyze(self, inputs):
        raise ValueError("no luck at 1.50 s")


class Recorder:
    """Implements every observer hook and records the arguments it got."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    @hookimpl
    def register_analyzers(self, register):
        register(Steady)
        register(Broken)

    @hookimpl
    def analysis_started(self, video, analyzers, run_dir):
        self.calls.append(("analysis_started", dict(video=video, analyzers=list(analyzers), run_dir=run_dir,
                                                    results_exist=(run_dir / "results.json").exists())))

    @hookimpl
    def analyzer_finished(self, track):
        self.calls.append(("analyzer_finished", dict(track=track)))

    @hookimpl
    def analyzer_failed(self, name, error, track):
        self.calls.append(("analyzer_failed", dict(name=name, error=error, track=track)))

    @hookimpl
    def analysis_finished(self, timeline, run_dir):
        self.calls.append(("analysis_finished", dict(
            timeline=timeline, run_dir=run_dir, results=Timeline.read(run_dir / "results.json"))))

    def of(self, hook):
        return [args for name, args in self.calls if name == hook]


class EventCount(Exporter):
    """Writes the number of events in the run: enough to see it ran, and on what."""

    name = "event_count"
    filenames = ("event_count.txt",)

    def export(self, timeline, run_dir, context):
        path = run_dir / "event_count.txt"
        path.write_text(str(sum(len(t.events) for t in timeline.tracks.values())))
        return [path]


class ExporterPlugin:
    @hookimpl
    def register_exporters(self, register):
        register(EventCount)


class RaisingObserver:
    """Every observer raises: the run must go on regardless."""

    @hookimpl
    def analysis_started(self):
        raise RuntimeError("observer bug")

    @hookimpl
    def analyzer_finished(self):
        raise RuntimeError("observer bug")

    @hookimpl
    def analyzer_failed(self):
        raise RuntimeError("observer bug")

    @hookimpl
    def analysis_finished(self):
        raise RuntimeError("observer bug")


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    """One real run of a 2 s video with an analyzer that works and one that raises."""
    tmp = tmp_path_factory.mktemp("observed")
    video = make_video(tmp / "clip.mp4", [ShotSpec(1.0), ShotSpec(1.0, "pan")], audio=False, text=None)
    registry = tmp / "registry.yaml"
    registry.write_text("analyzers:\n  hook_steady: {}\n  hook_broken: {}\n")
    recorder = Recorder()
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[RaisingObserver(), recorder, ExporterPlugin()])
    result = analyze(video.path, registry_path=registry, host=host, out_dir=tmp / "run", progress=False)
    return recorder, result


# --- registration hooks ----------------------------------------------------------------------
def test_hook_register_analyzers(tmp_path):
    class Plugin:
        @hookimpl
        def register_analyzers(self, register):
            register(Steady)

    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Plugin()])
    assert host.analyzers["hook_steady"] is Steady
    assert Steady.plugin == "Plugin-0"  # the host stamps the registering plugin's name
    reg = tmp_path / "registry.yaml"
    reg.write_text("analyzers:\n  hook_steady: {}\n")
    from framework.registry import load_registry

    (configured,) = [c for c in load_registry(reg).configure(host.analyzers) if c.enabled]
    assert configured.cls is Steady


def test_hook_register_llm_backends():
    from framework.llm import LLMBackend, make_backend

    class Echo(LLMBackend):
        name = "echo_test"

        def generate(self, messages, max_new_tokens, temperature=0.0):
            return messages[-1]["content"][:max_new_tokens]

    class Plugin:
        @hookimpl
        def register_llm_backends(self, register):
            register(Echo)

    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Plugin()])
    assert host.llm_backends["echo_test"] is Echo
    backend = make_backend("echo_test", {}, host.llm_backends)
    assert backend.generate([{"role": "user", "content": "hello there"}], max_new_tokens=5) == "hello"


def test_hook_register_exporters(observed):
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[ExporterPlugin()])
    assert host.exporters["event_count"] is EventCount
    # in the real run the exporter ran after results.json was written, on the run's timeline
    result = observed[1]
    assert result.run_dir / "event_count.txt" in result.outputs
    assert (result.run_dir / "event_count.txt").read_text() == "1"  # hook_steady's one event


# --- observer hooks ---------------------------------------------------------------------------
def test_hook_analysis_started(observed):
    recorder, result = observed
    (call,) = recorder.of("analysis_started")
    assert isinstance(call["video"], VideoMeta) and call["video"].duration == pytest.approx(2.0, abs=0.1)
    assert sorted(call["analyzers"]) == ["hook_broken", "hook_steady"]
    assert call["run_dir"] == result.run_dir and not call["results_exist"]
    assert recorder.calls[0][0] == "analysis_started"  # before anything else


def test_hook_analyzer_finished(observed):
    recorder, result = observed
    (call,) = recorder.of("analyzer_finished")  # the failing analyzer goes to analyzer_failed
    assert isinstance(call["track"], Track)
    assert (call["track"].analyzer, call["track"].status) == ("hook_steady", "ok")
    assert call["track"].events == result.timeline.tracks["hook_steady"].events
    # the raising observer (registered too) did not stop the run
    assert result.timeline.tracks["hook_steady"].status == "ok"


def test_hook_analyzer_failed(observed):
    recorder, result = observed
    (call,) = recorder.of("analyzer_failed")
    assert call["name"] == "hook_broken"
    assert call["error"].startswith("ValueError: no luck at 1.50 s")
    assert call["track"].status == "failed" and call["track"].reason == call["error"]
    assert result.failed == ["hook_broken"]


def test_hook_analysis_finished(observed):
    recorder, result = observed
    (call,) = recorder.of("analysis_finished")
    assert recorder.calls[-1][0] == "analysis_finished"  # after everything else
    assert call["run_dir"] == result.run_dir
    assert call["results"] == call["timeline"] == result.timeline  # results.json was written first
    assert set(call["timeline"].tracks) == {"hook_steady", "hook_broken"}


def test_observer_hooks_are_not_called_for_reused_tracks(observed):
    """A rerun announces the run but not tracks reused from the first one."""
    recorder, first = observed
    again = Recorder()
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[again])
    registry = first.run_dir.parent / "registry.yaml"
    result = analyze(first.video, registry_path=registry, host=host, out_dir=first.run_dir, progress=False)
    assert result.reused == ["hook_steady"]
    assert sorted(again.of("analysis_started")[0]["analyzers"]) == ["hook_broken", "hook_steady"]
    assert again.of("analyzer_finished") == []  # hook_steady was reused
    assert [c["name"] for c in again.of("analyzer_failed")] == ["hook_broken"]  # failures rerun
    assert json.loads((first.run_dir / "results.json").read_text())["tracks"]["hook_steady"]["reused"]
