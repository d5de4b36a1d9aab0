"""Capabilities, not names: tracks say what they provide, and outputs and per-shot analyzers ask
for a capability, so a third-party analyzer that provides shots, a transcript or a summary drives
cuts.csv/.edl, the report's shot list, the subtitles and summary.md as a built-in does."""
from __future__ import annotations

import csv
import re

from analyzers._shots import shot_intervals, upstream_shots
from framework import (Analyzer, AnalyzerInputs, Event, FrameSpec, Timeline, Track, VideoMeta, tracks_providing)
from framework.outputs import write_outputs
from framework.plugins import build_plugin_manager
from framework.registry import load_registry
from framework.runner import analyze
from framework.testing.plugins import analyzers_plugin
from test_outputs import build_timeline


def _track(name: str, provides=(), status="ok", events=(), data=None) -> Track:
    return Track(analyzer=name, version="1", provides=list(provides), status=status, events=list(events),
                 data=data or {})


def _meta(duration: float = 10.0, fps: float = 10.0) -> VideoMeta:
    return VideoMeta(path="/nowhere/clip.mp4", content_hash="b2:" + "0" * 64, size_bytes=1, duration=duration,
                     has_video=True, width=64, height=36, fps=fps, frame_count=int(duration * fps))


# --- the contract ------------------------------------------------------------------------------


def test_track_stamps_the_analyzers_capabilities():
    class Detector(Analyzer):
        name = "my_detector"
        provides = ("shots", "scenes")

    class Plain(Analyzer):
        name = "plain"

    assert Detector().track().provides == ["shots", "scenes"]
    assert Plain().track().provides == []
    # the capability survives results.json
    tl = Timeline(video=_meta(), tracks={"my_detector": Detector().track()})
    assert Timeline.from_json(tl.to_json()).tracks["my_detector"].provides == ["shots", "scenes"]


def test_builtin_analyzers_declare_what_they_provide():
    from analyzers.cut_analysis import CutAnalysis
    from analyzers.fusion import Fusion
    from analyzers.scene_segmentation import SceneSegmentation

    assert CutAnalysis.provides == ("shots",)
    assert SceneSegmentation.provides == ("scenes",)
    assert Fusion.provides == ("summary",)


def test_tracks_providing_puts_ok_tracks_first_in_mapping_order():
    tracks = {"a": _track("a", ["shots"], status="failed"), "b": _track("b", ["transcript"]),
              "c": _track("c", ["shots", "scenes"]), "d": _track("d", ["shots"], status="skipped"),
              "e": _track("e", ["shots"])}
    assert [t.analyzer for t in tracks_providing(tracks, "shots")] == ["c", "e", "a", "d"]
    assert [t.analyzer for t in tracks_providing(tracks, "transcript")] == ["b"]
    assert tracks_providing(tracks, "descriptions") == []


# --- per-shot analyzers find shots by capability ---------------------------------------------------


def _shot_events(bounds: list[float]) -> list[Event]:
    return [Event(start=a, end=b, label="shot", data={"index": i}) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]


def test_per_shot_analyzers_read_any_track_providing_shots():
    mine = _track("my_shots", ["shots"], events=_shot_events([0.0, 3.0, 10.0]))
    # a track named cut_analysis that does not provide shots is not the shot list
    decoy = _track("cut_analysis", ["descriptions"], events=_shot_events([0.0, 5.0, 10.0]))
    inputs = AnalyzerInputs(video=_meta(), upstream={"cut_analysis": decoy, "my_shots": mine})
    assert [(e.start, e.end) for e in upstream_shots(inputs)] == [(0.0, 3.0), (3.0, 10.0)]
    assert shot_intervals(inputs, 10.0) == [(0.0, 3.0), (3.0, 10.0)]
    failed = AnalyzerInputs(video=_meta(), upstream={"my_shots": _track("my_shots", ["shots"], status="failed")})
    assert shot_intervals(failed, 10.0) == [(0.0, 10.0)]  # the whole video as one shot


def test_tracks_saved_before_capabilities_are_read_by_their_shot_events():
    old = _track("cut_analysis", [], events=_shot_events([0.0, 4.0, 10.0]))
    inputs = AnalyzerInputs(video=_meta(), upstream={"cut_analysis": old})
    assert shot_intervals(inputs, 10.0) == [(0.0, 4.0), (4.0, 10.0)]


def test_color_analysis_uses_a_third_party_shot_list(video_factory):
    from analyzers.color_analysis import ColorAnalysis
    from framework import media
    from framework.testing.synth import ShotSpec

    truth = video_factory("two.mp4", shots=[ShotSpec(2.0), ShotSpec(2.0)], audio=False, text=None)
    meta = media.probe(truth.path)
    analyzer = ColorAnalysis()
    decoded = media.decode(truth.path, meta, analyzer.frame_specs(), False, truth.path.parent / "cache")
    upstream = {"my_shots": _track("my_shots", ["shots"], events=_shot_events([0.0, 2.0, 4.0]))}
    track = analyzer.analyze(AnalyzerInputs(video=meta, streams=decoded.streams, upstream=upstream))
    palettes = [e for e in track.events if e.label == "palette"]
    assert [(round(e.start, 2), round(e.end, 2)) for e in palettes] == [(0.0, 2.0), (2.0, 4.0)]


# --- outputs find shots, transcript and summary by capability ---------------------------------------


def _third_party_timeline(truth) -> Timeline:
    """The built-in names replaced: shots from ``my_cuts``, a transcript from ``my_asr``, a summary
    from ``my_summary``; decoys with the old names or the same labels that do not provide them."""
    tl = build_timeline(truth)
    tracks = dict(tl.tracks)
    cut = tracks.pop("cut_analysis")
    fusion = tracks.pop("fusion")
    asr = tracks.pop("speech_to_text")
    shots = [e for e in cut.events if e.label == "shot"][:3]
    last = shots[-1]
    shots[-1] = last.model_copy(update={"end": truth.duration, "data": {
        **last.data, "last_frame": truth.frame_count - 1}})
    tracks["my_cuts"] = cut.model_copy(update={"analyzer": "my_cuts", "events": shots})
    tracks["cut_analysis"] = _track("cut_analysis", ["descriptions"], events=cut.events)  # not shots
    tracks["my_asr"] = asr.model_copy(update={"analyzer": "my_asr"})
    tracks["vad"] = _track("vad", [], events=[Event(start=8.0, end=9.0, label="speech",
                                                     data={"text": "NOT A TRANSCRIPT LINE"})])
    tracks["my_summary"] = fusion.model_copy(update={"analyzer": "my_summary"})
    return tl.model_copy(update={"tracks": tracks})


def test_outputs_follow_third_party_providers(tmp_path, sample_video):
    tl = _third_party_timeline(sample_video)
    run = tmp_path / "run"
    write_outputs(tl, run, video_path=sample_video.path)
    rows = list(csv.DictReader((run / "cuts.csv").open()))
    assert len(rows) == 3  # my_cuts' three shots, not cut_analysis' six
    assert [int(r["start_frame"]) for r in rows] == [round(s * 30) for s in sample_video.shot_starts[:3]]
    assert len(re.findall(r"^\d{3}  AX", (run / "cuts.edl").read_text(), re.M)) == 3
    page = (run / "report.html").read_text()
    assert page.count('class="shot"') == 3 and "Shots (3)" in page
    assert "A sample in six shots" in page  # the summary of my_summary
    srt = (run / "transcript.srt").read_text()
    assert "Hello & welcome" in srt and "NOT A TRANSCRIPT LINE" not in srt
    md = (run / "summary.md").read_text()
    assert md.startswith("# A sample in six shots") and "3 shots" in md and "No summary" not in md


def test_no_summary_names_the_provider_that_failed(tmp_path, sample_video):
    tl = _third_party_timeline(sample_video)
    tl.tracks["my_summary"] = _track("my_summary", ["summary"], status="failed", data={})
    tl.tracks["my_summary"] = tl.tracks["my_summary"].model_copy(update={"reason": "LLM unreachable"})
    write_outputs(tl, tmp_path, video_path=sample_video.path)
    md = (tmp_path / "summary.md").read_text()
    assert "No summary was produced (my_summary failed: LLM unreachable)" in md
    page = (tmp_path / "report.html").read_text()
    assert "my_summary failed: LLM unreachable" in page


def test_results_written_before_capabilities_still_render(tmp_path, sample_video):
    tl = build_timeline(sample_video, capabilities=False)
    assert not any(t.provides for t in tl.tracks.values())
    write_outputs(tl, tmp_path, video_path=sample_video.path)
    assert len(list(csv.DictReader((tmp_path / "cuts.csv").open()))) == 6
    assert (tmp_path / "summary.md").read_text().startswith("# A sample in six shots")
    assert "Hello & welcome" in (tmp_path / "transcript.srt").read_text()


def test_an_undeclared_track_is_read_by_content_only_when_nobody_provides_the_capability(tmp_path, sample_video):
    tl = build_timeline(sample_video)
    # an old saved cut track (no capabilities) beside tracks that declare theirs: still the shot list
    tl.tracks["cut_analysis"] = tl.tracks["cut_analysis"].model_copy(update={"provides": []})
    write_outputs(tl, tmp_path / "a", video_path=sample_video.path)
    assert len(list(csv.DictReader((tmp_path / "a" / "cuts.csv").open()))) == 6
    # once a track provides shots, the undeclared one is not read
    tl.tracks["my_cuts"] = _track("my_cuts", ["shots"], events=_shot_events([0.0, 5.0, sample_video.duration]))
    write_outputs(tl, tmp_path / "b", video_path=sample_video.path)
    assert len(list(csv.DictReader((tmp_path / "b" / "cuts.csv").open()))) == 2


# --- through the runner: a plugin's shots and transcript ---------------------------------------------


class HalfShots(Analyzer):
    """A third-party shot detector: two shots, split at the middle decoded frame."""

    name = "my_cuts"
    version = "1.0"
    provides = ("shots",)

    def frame_specs(self):
        return [FrameSpec(fps=None, width=32, pix_fmt="gray")]

    def analyze(self, inputs):
        times = list(inputs.frames(self.frame_specs()[0]).times)
        n, mid = len(times), len(times) // 2
        end = inputs.video.duration
        return self.track(events=[
            Event(start=0.0, end=times[mid], label="shot",
                  data={"index": 0, "first_frame": 0, "last_frame": mid - 1, "transition_in": "start"}),
            Event(start=times[mid], end=end, label="shot",
                  data={"index": 1, "first_frame": mid, "last_frame": n - 1, "transition_in": "cut"})])


class Words(Analyzer):
    """A third-party speech-to-text analyzer."""

    name = "my_asr"
    version = "1.0"
    provides = ("transcript",)

    def analyze(self, inputs):
        return self.track(events=[Event(start=0.5, end=1.5, label="speech", data={"text": "plugin words"})])


_Plugin = analyzers_plugin(HalfShots, Words)


def test_a_plugins_shots_and_transcript_drive_the_outputs(tmp_path, sample_video):
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[_Plugin])
    reg = tmp_path / "registry.yaml"
    reg.write_text("analyzers:\n  my_cuts: {enabled: true}\n  my_asr: {enabled: true}\n")
    res = analyze(sample_video.path, registry=load_registry(reg), host=host, out_dir=tmp_path / "run",
                  only=["my_cuts", "my_asr"], progress=False)
    assert res.timeline.tracks["my_cuts"].provides == ["shots"]
    run = tmp_path / "run"
    shots = [e for e in res.timeline.tracks["my_cuts"].events if e.label == "shot"]
    rows = list(csv.DictReader((run / "cuts.csv").open()))
    assert [int(r["start_frame"]) for r in rows] == [e.data["first_frame"] for e in shots] == [0, 180]
    assert [int(r["end_frame"]) for r in rows] == [180, 360]
    assert (run / "cuts.edl").is_file()
    assert (run / "report.html").read_text().count('class="shot"') == 2
    assert "2 shots" in (run / "summary.md").read_text()
    assert "plugin words" in (run / "transcript.srt").read_text()
    assert "plugin words" in (run / "transcript.vtt").read_text()


def test_fusion_builds_its_units_from_the_tracks_that_provide_scenes_and_shots():
    from analyzers.fusion.align import build_units, shots_track
    from analyzers.fusion.digest import renderer_for

    decoy_shots = [Event(start=0, end=5, label="shot"), Event(start=5, end=10, label="shot")]
    real_shots = [Event(start=0, end=2, label="shot"), Event(start=2, end=7, label="shot"),
                  Event(start=7, end=10, label="shot")]
    scenes = [Event(start=0, end=7, label="scene"), Event(start=7, end=10, label="scene")]
    # a track with the built-in's name but no capability loses to a plugin that provides shots
    tracks = {"cut_analysis": _track("cut_analysis", events=decoy_shots),
              "my_cuts": _track("my_cuts", ["shots"], events=real_shots)}
    assert shots_track(tracks).analyzer == "my_cuts"
    assert [(u.start, u.end, u.source) for u in build_units(tracks, 10.0)] == [
        (0, 2, "my_cuts"), (2, 7, "my_cuts"), (7, 10, "my_cuts")]
    tracks["my_scenes"] = _track("my_scenes", ["scenes"], events=scenes)
    assert [(u.start, u.end, u.label) for u in build_units(tracks, 10.0)] == [(0, 7, "scene"), (7, 10, "scene")]
    assert renderer_for(tracks["my_scenes"]) is None  # the units' source adds no line of its own
    # without any capability (results written before capabilities), labels still find them
    legacy = {"old": _track("old", events=real_shots)}
    assert len(build_units(legacy, 10.0)) == 3
