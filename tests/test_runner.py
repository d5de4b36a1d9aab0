"""The runner: dependency order, failure isolation, resume, decode-once, skips."""
from __future__ import annotations

import json

import numpy as np
import pytest

from framework import Analyzer, Event, FrameSpec, Series, hookimpl
from framework import media
from framework.plugins import build_plugin_manager
from framework.registry import load_registry
from framework.runner import analyze
from framework.testing.plugins import analyzers_plugin

CALLS: dict[str, int] = {}


class Brightness(Analyzer):
    name = "t_brightness"
    version = "1.0"

    class Params(Analyzer.Params):
        fps: float = 4.0

    def frame_specs(self):
        return [FrameSpec(fps=self.params.fps, width=32, pix_fmt="gray")]

    def analyze(self, inputs):
        CALLS[self.name] = CALLS.get(self.name, 0) + 1
        stream = inputs.frames(self.frame_specs()[0])
        values = [float(np.asarray(f).mean()) for _, f in stream]
        return self.track(series=[Series(name="brightness", times=[float(t) for t in stream.times], values=values)])


class AllFrames(Analyzer):
    name = "t_allframes"
    version = "1.0"

    def frame_specs(self):
        return [FrameSpec(fps=None, width=48, pix_fmt="rgb24")]

    def analyze(self, inputs):
        CALLS[self.name] = CALLS.get(self.name, 0) + 1
        stream = inputs.frames(self.frame_specs()[0])
        return self.track(data={"frames": len(stream)})


class Loud(Analyzer):
    name = "t_loud"
    version = "1.0"
    needs_audio = requires_audio = True

    def analyze(self, inputs):
        CALLS[self.name] = CALLS.get(self.name, 0) + 1
        rms = float(np.sqrt(np.mean(np.square(inputs.audio.samples))))
        return self.track(data={"rms": rms, "seconds": inputs.audio.duration})


class Broken(Analyzer):
    name = "t_broken"
    version = "1.0"

    def analyze(self, inputs):
        CALLS[self.name] = CALLS.get(self.name, 0) + 1
        raise RuntimeError("model exploded at 3.2 s")


class Downstream(Analyzer):
    name = "t_downstream"
    version = "1.0"
    depends_on = ("t_brightness",)

    def analyze(self, inputs):
        CALLS[self.name] = CALLS.get(self.name, 0) + 1
        up = inputs.upstream["t_brightness"].series_by_name("brightness")
        return self.track(events=[Event(start=0.0, end=up.times[-1], label="span")])


class Everything(Analyzer):
    name = "t_everything"
    version = "1.0"
    depends_on = ("*",)

    def analyze(self, inputs):
        CALLS[self.name] = CALLS.get(self.name, 0) + 1
        return self.track(data={"saw": sorted(inputs.upstream)})


class Shots(Analyzer):
    name = "t_shots"
    version = "1.0"

    def analyze(self, inputs):
        d = inputs.video.duration
        return self.track(events=[Event(start=0, end=d / 2, label="shot", data={"index": 0}),
                                  Event(start=d / 2, end=d, label="shot", data={"index": 1})])


_ShotsPlugin = analyzers_plugin(Shots)


_Plugin = analyzers_plugin(Brightness, AllFrames, Loud, Broken, Downstream, Everything)


@pytest.fixture
def host():
    CALLS.clear()
    return build_plugin_manager(load_entrypoints=False, extra_plugins=[_Plugin])


def registry(tmp_path, names, params=None):
    lines = ["analyzers:"]
    for n in names:
        lines.append(f"  {n}:")
        lines.append("    enabled: true")
        if params and n in params:
            lines.append(f"    params: {json.dumps(params[n])}")
    p = tmp_path / "registry.yaml"
    p.write_text("\n".join(lines) + "\n")
    return load_registry(p)


ALL = ["t_brightness", "t_allframes", "t_loud", "t_broken", "t_downstream", "t_everything"]


def test_failure_is_isolated_and_results_are_written(tmp_path, sample_video, host):
    res = analyze(sample_video.path, registry=registry(tmp_path, ALL), host=host,
                  out_dir=tmp_path / "run", progress=False)
    tracks = res.timeline.tracks
    assert tracks["t_broken"].status == "failed"
    assert "RuntimeError: model exploded at 3.2 s" in tracks["t_broken"].reason
    for name in ("t_brightness", "t_allframes", "t_loud", "t_downstream", "t_everything"):
        assert tracks[name].status == "ok", (name, tracks[name].reason)
    assert res.failed == ["t_broken"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["tracks"]["t_broken"]["status"] == "failed"
    # the "*" analyzer ran last and saw every other track
    assert tracks["t_everything"].data["saw"] == sorted(set(ALL) - {"t_everything"})
    assert tracks["t_brightness"].duration_s is not None and tracks["t_brightness"].started_at


def test_video_is_decoded_once_for_all_streams(tmp_path, sample_video, host, monkeypatch):
    import av

    calls, opens = [], []
    real, real_open = media.decode, av.open
    with av.open(str(sample_video.path)) as c:
        packets = sum(1 for p in c.demux() if p.size)

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    def counting_open(file, *args, **kwargs):
        if str(file) == str(sample_video.path):
            opens.append(kwargs.get("mode", "r"))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(media, "decode", counting)
    monkeypatch.setattr(av, "open", counting_open)
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[_Plugin, _ShotsPlugin])
    res = analyze(sample_video.path, registry=registry(tmp_path, ["t_brightness", "t_allframes", "t_loud", "t_shots"]),
                  host=host, out_dir=tmp_path / "run", progress=False)
    assert len(calls) == 1
    stats = res.timeline.run["decode"]
    # one pass: every packet read once and every frame decoded once, whether in one go or split
    # into keyframe-aligned segments decoded in parallel (each opens the file, as does their plan)
    assert stats["demux_passes"] == 1
    assert stats["packets"] == packets
    assert stats["video_frames_decoded"] == sample_video.frame_count
    # probe and decode; the report's thumbnails come from the same pass
    assert len(opens) == 2 + (1 + stats["segments"] if stats["segments"] else 0)
    assert len(list((tmp_path / "run" / "thumbs").glob("*.jpg"))) == 2
    # every frame at native rate, and ~4 per second for the other stream
    assert res.timeline.tracks["t_allframes"].data["frames"] == sample_video.frame_count
    n = len(res.timeline.tracks["t_brightness"].series[0].values)
    assert abs(n - sample_video.duration * 4) <= 2
    assert abs(res.timeline.tracks["t_loud"].data["seconds"] - sample_video.duration) < 0.2


def test_rerun_reuses_unchanged_tracks_and_recomputes_changed_ones(tmp_path, sample_video, host):
    reg = registry(tmp_path, ["t_brightness", "t_downstream", "t_broken"])
    out = tmp_path / "run"
    analyze(sample_video.path, registry=reg, host=host, out_dir=out, progress=False)
    assert CALLS == {"t_brightness": 1, "t_downstream": 1, "t_broken": 1}
    res = analyze(sample_video.path, registry=reg, host=host, out_dir=out, progress=False)
    assert CALLS == {"t_brightness": 1, "t_downstream": 1, "t_broken": 2}  # failed tracks are retried
    assert sorted(res.reused) == ["t_brightness", "t_downstream"]
    assert res.timeline.tracks["t_brightness"].reused
    # a changed param recomputes that analyzer and its dependents
    reg2 = registry(tmp_path, ["t_brightness", "t_downstream"], params={"t_brightness": {"fps": 2.0}})
    analyze(sample_video.path, registry=reg2, host=host, out_dir=out, progress=False)
    assert CALLS["t_brightness"] == 2 and CALLS["t_downstream"] == 2
    # --no-resume recomputes everything
    analyze(sample_video.path, registry=reg2, host=host, out_dir=out, progress=False, resume=False)
    assert CALLS["t_brightness"] == 3


def test_audio_analyzer_is_skipped_without_audio(tmp_path, video_factory, host):
    silent = video_factory("noaudio.mp4", audio=False)
    res = analyze(silent.path, registry=registry(tmp_path, ["t_loud", "t_brightness"]), host=host,
                  out_dir=tmp_path / "run", progress=False)
    assert res.timeline.tracks["t_loud"].status == "skipped"
    assert "no audio" in res.timeline.tracks["t_loud"].reason
    assert res.timeline.tracks["t_brightness"].status == "ok"


def test_dependents_of_a_failed_analyzer_are_skipped_with_the_reason(tmp_path, sample_video, host):
    class NeedsBroken(Analyzer):
        name = "t_needs_broken"
        depends_on = ("t_broken",)

        def analyze(self, inputs):
            raise AssertionError("must not run")

    P = analyzers_plugin(NeedsBroken)

    host2 = build_plugin_manager(load_entrypoints=False, extra_plugins=[_Plugin, P])
    res = analyze(sample_video.path, registry=registry(tmp_path, ["t_broken", "t_needs_broken"]), host=host2,
                  out_dir=tmp_path / "run", progress=False)
    t = res.timeline.tracks["t_needs_broken"]
    assert t.status == "skipped" and "t_broken is failed" in t.reason


def test_a_skip_is_not_reused_once_its_cause_is_gone(tmp_path, sample_video):
    """A track skipped because its upstream failed, or because a package was missing, has the same
    key after the cause goes away; the rerun must recompute it, not reuse the old skip."""
    state = {"flaky_fails": True, "package": False}

    class Flaky(Analyzer):
        name = "t_flaky"
        version = "1.0"

        def analyze(self, inputs):
            CALLS[self.name] = CALLS.get(self.name, 0) + 1
            if state["flaky_fails"]:
                raise RuntimeError("out of memory, this time")
            return self.track(data={"ok": True})

    class AfterFlaky(Analyzer):
        name = "t_after_flaky"
        version = "1.0"
        depends_on = ("t_flaky",)

        def frame_specs(self):
            return [FrameSpec(fps=1.0, width=32, pix_fmt="gray")]

        def analyze(self, inputs):
            CALLS[self.name] = CALLS.get(self.name, 0) + 1
            return self.track()

    class NeedsPackage(Analyzer):
        name = "t_needs_package"
        version = "1.0"

        @classmethod
        def check_available(cls):
            return None if state["package"] else "pip install some-package"

        def analyze(self, inputs):
            CALLS[self.name] = CALLS.get(self.name, 0) + 1
            return self.track()

    P = analyzers_plugin(Flaky, AfterFlaky, NeedsPackage)

    CALLS.clear()
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[P])
    reg = registry(tmp_path, ["t_flaky", "t_after_flaky", "t_needs_package"])
    kwargs = dict(registry=reg, host=host, out_dir=tmp_path / "run", progress=False)
    first = analyze(sample_video.path, **kwargs).timeline.tracks
    assert first["t_flaky"].status == "failed" and first["t_after_flaky"].status == "skipped"
    assert first["t_needs_package"].status == "skipped"
    # the same causes: the package skip is reused; the failed upstream is retried, so its dependent
    # is decided again rather than reused
    again = analyze(sample_video.path, **kwargs)
    assert again.reused == ["t_needs_package"]
    assert again.timeline.tracks["t_after_flaky"].status == "skipped" and CALLS["t_flaky"] == 2
    # the causes are gone: both are recomputed and run
    state.update(flaky_fails=False, package=True)
    fixed = analyze(sample_video.path, **kwargs)
    assert fixed.reused == []
    assert {n: t.status for n, t in fixed.timeline.tracks.items()} == {
        "t_flaky": "ok", "t_after_flaky": "ok", "t_needs_package": "ok"}
    assert CALLS == {"t_flaky": 3, "t_after_flaky": 1, "t_needs_package": 1}


def test_nothing_is_decoded_for_an_analyzer_whose_upstream_cannot_run(tmp_path, video_factory,
                                                                            monkeypatch):
    class AfterLoud(Analyzer):
        name = "t_after_loud"
        version = "1.0"
        depends_on = ("t_loud",)

        def frame_specs(self):
            return [FrameSpec(fps=1.0, width=32, pix_fmt="gray")]

        def analyze(self, inputs):
            raise AssertionError("its upstream is skipped: it must not run")

    P = analyzers_plugin(Loud, AfterLoud)

    silent = video_factory("silent.mp4", audio=False)
    decodes = []
    real_decode = media.decode
    monkeypatch.setattr(media, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[P])
    kwargs = dict(registry=registry(tmp_path, ["t_loud", "t_after_loud"]), host=host, out_dir=tmp_path / "run",
                  progress=False)
    for _ in range(2):  # the first run, then a rerun that reuses t_loud's skip
        res = analyze(silent.path, **kwargs)
        t = res.timeline.tracks["t_after_loud"]
        assert t.status == "skipped" and "t_loud is skipped" in t.reason
    assert decodes == []  # never a decode for an analyzer that cannot run


def test_only_pulls_in_dependencies_and_rejects_unknown_names(tmp_path, sample_video, host):
    from framework.errors import ConfigError

    res = analyze(sample_video.path, registry=registry(tmp_path, ALL), host=host, only=["t_downstream"],
                  out_dir=tmp_path / "run", progress=False)
    assert sorted(res.timeline.tracks) == ["t_brightness", "t_downstream"]
    with pytest.raises(ConfigError, match="unknown analyzer 't_nope'.*t_brightness"):
        analyze(sample_video.path, registry=registry(tmp_path, ALL), host=host, only=["t_nope"],
                out_dir=tmp_path / "run", progress=False)


def test_observer_exceptions_do_not_stop_the_run(tmp_path, sample_video, host):
    seen = []

    class Observer:
        @hookimpl
        def analyzer_finished(self, track):
            seen.append(track.analyzer)
            raise ValueError("observer bug")

        @hookimpl
        def analysis_finished(self, timeline, run_dir):
            raise ValueError("observer bug")

    host.pm.register(Observer())
    res = analyze(sample_video.path, registry=registry(tmp_path, ["t_brightness"]), host=host,
                  out_dir=tmp_path / "run", progress=False)
    assert seen == ["t_brightness"] and res.timeline.tracks["t_brightness"].status == "ok"


class WithModel(Analyzer):
    name = "t_with_model"
    version = "1.0"
    models = ("yolov8n",)
    seen: dict = {}

    def load(self, device, models):
        WithModel.seen = dict(models)

    def analyze(self, inputs):
        return self.track(data={"models": sorted(WithModel.seen)})


def test_models_are_resolved_from_the_manifest_or_the_track_says_how_to_pull(tmp_path, sample_video, monkeypatch):
    from framework.models.roots import CacheRoots

    monkeypatch.chdir(tmp_path)  # ultralytics' default weights folder is ./weights

    P = analyzers_plugin(WithModel)

    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[P])
    reg = registry(tmp_path, ["t_with_model"])
    res = analyze(sample_video.path, registry=reg, host=host, out_dir=tmp_path / "run1", progress=False)
    t = res.timeline.tracks["t_with_model"]
    assert t.status == "skipped" and "framework models pull yolov8n" in t.reason
    weights = CacheRoots.from_env().file_dirs("ultralytics")[0] / "yolov8n.pt"
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(b"not really weights")
    res = analyze(sample_video.path, registry=reg, host=host, out_dir=tmp_path / "run2", progress=False)
    assert res.timeline.tracks["t_with_model"].status == "ok"
    assert WithModel.seen == {"yolov8n": weights}


class EverythingSummarized(Analyzer):
    """Reads every track and provides the summary, as fusion does."""

    name = "t_summary"
    version = "1.0"
    depends_on = ("*",)
    provides = ("summary",)

    def analyze(self, inputs):
        return self.track(data={"saw": sorted(inputs.upstream)})


def test_the_summary_reads_the_other_analyzers_that_read_everything(tmp_path, sample_video):
    """comment_cta_detection reads every track, and fusion must read its track too."""

    Plugin = analyzers_plugin(Brightness, Everything, EverythingSummarized)

    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Plugin])
    res = analyze(sample_video.path, registry=registry(tmp_path, ["t_brightness", "t_everything", "t_summary"]),
                  host=host, out_dir=tmp_path / "run", progress=False)
    tracks = res.timeline.tracks
    assert tracks["t_everything"].data["saw"] == ["t_brightness"]  # not the summary, which runs after it
    assert tracks["t_summary"].data["saw"] == ["t_brightness", "t_everything"]
