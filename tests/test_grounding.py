"""Grounding: times an LLM writes are kept, snapped to the nearest supporting event, or dropped
and counted; evidence always points at a real event. Includes a third-party backend registered
through the hook whose answer contains a fabricated timestamp."""
from __future__ import annotations

import json

import pytest

from analyzers.fusion import Fusion
from analyzers.fusion.align import TrackIndex, build_units
from analyzers.fusion.grounding import Grounder, parse_time
from analyzers.fusion.summarize import read_answer
from framework import AnalyzerInputs, Event, Track, VideoMeta, hookimpl
from framework.llm import LLMBackend
from framework.plugins import build_plugin_manager
from framework.summary import Summary

DURATION = 40.0


def _tracks() -> dict[str, Track]:
    shots = [(0.0, 4.0), (4.0, 10.0), (10.0, 16.0), (16.0, 25.0), (25.0, 33.0), (33.0, 40.0)]
    cut = Track(analyzer="cut_analysis", version="t",
                events=[Event(start=a, end=b, label="shot", data={"index": i}) for i, (a, b) in enumerate(shots)])
    scenes = Track(analyzer="scene_segmentation", version="t", events=[
        Event(start=0.0, end=10.0, label="scene", data={"index": 0, "shot_indices": [0, 1]}),
        Event(start=10.0, end=25.0, label="scene", data={"index": 1, "shot_indices": [2, 3]}),
        Event(start=25.0, end=40.0, label="scene", data={"index": 2, "shot_indices": [4, 5]})])
    speech = Track(analyzer="transcript", version="t", events=[
        Event(start=12.0, end=14.5, label="speech", data={"text": "we are going to the river"}),
        Event(start=27.2, end=30.0, label="speech", data={"text": "look at the bridge"})])
    return {"cut_analysis": cut, "scene_segmentation": scenes, "transcript": speech}


def _grounder(tolerance: float = 2.0) -> tuple[Grounder, dict[str, Track]]:
    tracks = _tracks()
    units = build_units(tracks, DURATION)
    return Grounder({n: TrackIndex(t) for n, t in tracks.items()}, units, DURATION, tolerance), tracks


def _assert_real(evidence, tracks):
    for ev in evidence:
        e = tracks[ev.analyzer].events[ev.event_index]
        assert (e.start, e.end, e.label) == (ev.start, ev.end, ev.label)


@pytest.mark.parametrize("raw,expected", [
    (83.5, 83.5), ("83.5", 83.5), ("83.5s", 83.5), ("1:23.5", 83.5), ("0:01:23", 83.0), ("12 seconds", 12.0),
    ("soon", None), (-3, None), (True, None), (None, None), (float("nan"), None)])
def test_parse_time(raw, expected):
    assert parse_time(raw) == expected


def test_chapters_are_kept_snapped_or_dropped_and_counted():
    g, tracks = _grounder()
    chapters = g.ground_chapters([
        {"start": 0, "end": 10, "title": "Opening"},                 # exact scene boundaries: kept
        {"start": "0:11", "end": "24.2", "title": "River"},          # 11 -> 10 (scene), 24.2 -> 25: snapped
        {"start": 25, "end": 52.0, "title": "Invented ending"},      # 52 s is past the 40 s video: dropped
        {"start": 26.0, "end": 36.5, "title": "Fabricated"},         # 36.5 is 3.5 s from shot 33 and scene 40
        {"start": "later", "end": 30, "title": "No time"},           # unreadable: dropped
        "not even an object",                                        # dropped
    ])
    assert [(c.start, c.end, c.title) for c in chapters] == [(0.0, 10.0, "Opening"), (10.0, 25.0, "River")]
    s = g.stats
    assert (s.checked, s.kept, s.snapped, s.dropped) == (6, 1, 1, 4)
    assert any("52.0 s is not within 2 s" in n for n in s.notes)
    assert any("36.5 s is not within 2 s" in n for n in s.notes)
    for ch in chapters:
        assert ch.evidence and all(ev.analyzer == "scene_segmentation" for ev in ch.evidence)
        _assert_real(ch.evidence, tracks)


def test_chapter_boundary_falls_back_to_a_shot_boundary():
    g, tracks = _grounder()
    (ch,) = g.ground_chapters([{"start": 15.5, "end": 25, "title": "Shot-aligned"}])
    assert ch.start == 16.0  # no scene boundary within 2 s of 15.5, the shot boundary at 16 is
    assert g.stats.snapped == 1


def test_overlapping_chapters_are_clipped_and_nested_ones_dropped():
    g, _ = _grounder()
    chapters = g.ground_chapters([{"start": 0, "end": 25, "title": "A"}, {"start": 10, "end": 40, "title": "B"},
                                  {"start": 25, "end": 40, "title": "C inside B"}])
    assert [(c.start, c.end) for c in chapters] == [(0.0, 25.0), (25.0, 40.0)]
    assert g.stats.dropped == 1 and g.stats.snapped == 1 and g.stats.kept == 1


def test_key_moments_snap_to_the_event_they_rest_on():
    g, tracks = _grounder()
    moments = g.ground_moments([
        {"time": 12.0, "text": "they decide to go to the river"},   # speech starts at 12.0: kept
        {"time": "0:28", "text": "someone points at a bridge"},     # 27.2 speech start: snapped
        {"time": 20.5, "text": "a car explodes"},                   # nothing within 2 s: dropped
        {"time": 400, "text": "after the end"},                      # past the end: dropped
        {"time": 29.9, "text": ""},                                  # no text: dropped
    ])
    assert [(m.time, m.text) for m in moments] == [(12.0, "they decide to go to the river"),
                                                   (27.2, "someone points at a bridge")]
    assert moments[1].evidence[0].analyzer == "transcript" and moments[1].end == 30.0
    for m in moments:
        _assert_real(m.evidence, tracks)
    s = g.stats
    assert (s.checked, s.kept, s.snapped, s.dropped) == (5, 1, 1, 3)
    assert any("a car explodes" in n and "20.5 s" in n for n in s.notes)


def test_window_restricts_what_a_map_step_may_cite():
    g, _ = _grounder()
    assert g.ground_moments([{"time": 27.2, "text": "bridge"}], window=(0.0, 20.0)) == []
    assert g.stats.dropped == 1


def test_lenient_reader_finds_times_in_prose():
    fields, was_json = read_answer("Here you go:\n0.0s - 10.0s Opening\n[27.2s] bridge talk\nnonsense 99\n")
    assert not was_json
    assert fields["chapters"] == [{"start": "0.0", "end": "10.0", "title": "Opening"}]
    assert fields["key_moments"] == [{"time": "27.2", "text": "bridge talk"}]
    fields, was_json = read_answer('```json\n{"title": "T", "chapters": "oops", "key_moments": []}\n```')
    assert was_json and fields["title"] == "T" and fields["chapters"] == []


class Scripted(LLMBackend):
    """A third-party backend (registered by hook below) that answers with a fixed JSON summary
    containing real, slightly-off and fabricated times."""

    name = "scripted"
    prompts: list[int] = []

    def generate(self, messages, max_new_tokens, temperature=0.0):
        Scripted.prompts.append(self.count_messages(messages))
        assert "[scene 2 | 10.0s-25.0s]" in messages[-1]["content"]  # it was given the digests
        return json.dumps({
            "title": "A trip to the river", "paragraph": "Two people talk about a river and a bridge.",
            "detailed": "They plan a trip, then look at a bridge.",
            "chapters": [{"start": 0, "end": 10.4, "title": "Plans"},
                         {"start": 10.4, "end": 25, "title": "The river"},
                         {"start": 25, "end": 61, "title": "A chapter that never happened"}],
            "key_moments": [{"time": 12.3, "text": "they decide to go"},
                            {"time": 21.0, "text": "a fabricated explosion"}]})


class ScriptedPlugin:
    @hookimpl
    def register_llm_backends(self, register):
        register(Scripted)


def test_fusion_grounds_a_third_party_backend_answer():
    tracks = _tracks()
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[ScriptedPlugin()])
    assert "scripted" in host.llm_backends
    meta = VideoMeta(path="x.mp4", content_hash="h", size_bytes=1, duration=DURATION, has_video=True)
    fusion = Fusion({"backend": "scripted", "token_budget": 2000, "language": "en"})
    track = fusion.analyze(AnalyzerInputs(video=meta, upstream=tracks, host=host))
    s = Summary.from_track(track)
    assert s.backend == "scripted" and not s.extractive
    assert s.title == "A trip to the river"
    assert [(c.start, c.end, c.title) for c in s.chapters] == [(0.0, 10.0, "Plans"), (10.0, 25.0, "The river")]
    assert [(m.time, m.text) for m in s.key_moments] == [(12.0, "they decide to go")]
    g = s.grounding
    assert (g.checked, g.kept, g.snapped, g.dropped) == (5, 0, 3, 2)
    assert any("never happened" in n for n in g.notes) and any("fabricated explosion" in n for n in g.notes)
    assert max(Scripted.prompts) <= 2000 and s.tokens_used == max(Scripted.prompts)
    for item in [*s.chapters, *s.key_moments]:
        assert item.evidence
        _assert_real(item.evidence, tracks)
    labels = [e.label for e in track.events]
    assert labels.count("chapter") == 2 and labels.count("key_moment") == 1
