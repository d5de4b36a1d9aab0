"""scene_segmentation: shots with the same look (in a row, or A-B-A) group; different looks split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from analyzers import analyzer_classes
from analyzers.cut_analysis import CutAnalysis
from analyzers.scene_segmentation import SceneSegmentation, group_shots
from framework import AnalyzerInputs, Event, FrameSpec, Track, VideoMeta
from framework import media
from framework.streams import FrameStreamWriter
from framework.testing.synth import ShotSpec


def run_pipeline(path: Path, cache: Path, **params) -> tuple[Track, Track]:
    """probe, one decode of both analyzers' streams, cut_analysis, then scene_segmentation."""
    cuts, scenes = CutAnalysis(), SceneSegmentation(params)
    meta = media.probe(path)
    decoded = media.decode(path, meta, cuts.frame_specs() + scenes.frame_specs(), False, cache)
    cut_track = cuts.analyze(AnalyzerInputs(video=meta, streams=decoded.streams))
    scene_track = scenes.analyze(AnalyzerInputs(video=meta, streams=decoded.streams,
                                                upstream={"cut_analysis": cut_track}))
    return cut_track, scene_track


def scene_shots(track: Track) -> list[list[int]]:
    return [e.data["shot_indices"] for e in track.events if e.label == "scene"]


def test_declares_its_dependency_and_stream():
    assert SceneSegmentation in analyzer_classes()
    assert SceneSegmentation.depends_on == ("cut_analysis",)
    assert SceneSegmentation().frame_specs() == [FrameSpec(fps=2.0, width=64, pix_fmt="rgb24")]


def test_same_looks_group_and_different_looks_split(video_factory, tmp_path):
    looks = [0, 0, 1, 2, 1, 3, 3]  # A A | B C B | D D
    motions = ["static", "pan", "zoom", "tilt", "static", "pan", "zoom"]
    truth = video_factory("scenes.mp4", shots=[ShotSpec(1.0, m, look=k) for m, k in zip(motions, looks)],
                          audio=False)
    cut_track, scene_track = run_pipeline(truth.path, tmp_path / "cache")
    assert [e.data["frame"] for e in cut_track.events if e.label == "cut"] == truth.cut_frames
    assert scene_shots(scene_track) == [[0, 1], [2, 3, 4], [5, 6]]
    scenes = [e for e in scene_track.events if e.label == "scene"]
    shots = [e for e in cut_track.events if e.label == "shot"]
    assert [s.data["index"] for s in scenes] == [0, 1, 2]
    for scene in scenes:  # aligned with the shot boundaries
        assert scene.start == shots[scene.data["first_shot"]].start
        assert scene.end == shots[scene.data["last_shot"]].end
        assert 0 < scene.score <= 1
    assert scenes[0].start == 0.0 and scenes[-1].end == shots[-1].end
    assert scene_track.data == {"scene_count": 3, "shot_count": 7}


def test_a_stricter_threshold_splits_more(video_factory, tmp_path):
    truth = video_factory("two.mp4", shots=[ShotSpec(1.0, "static", look=0), ShotSpec(1.0, "pan", look=0)],
                          audio=False)
    _, together = run_pipeline(truth.path, tmp_path / "a")
    _, apart = run_pipeline(truth.path, tmp_path / "b", threshold=0.99)
    assert scene_shots(together) == [[0, 1]]
    assert scene_shots(apart) == [[0], [1]]


# --- grouping on hand-made descriptors --------------------------------------------------------
def _desc(pattern: str) -> np.ndarray:
    """One-hot 'histograms': equal letters are identical shots, different letters share nothing."""
    letters = sorted(set(pattern))
    return np.eye(len(letters), dtype=np.float32)[[letters.index(c) for c in pattern]]


@pytest.mark.parametrize("pattern, window, expected", [
    ("AABB", 3, [[0, 1], [2, 3]]),
    ("ABAB", 3, [[0, 1, 2, 3]]),            # shot / reverse shot
    ("ABA", 1, [[0], [1], [2]]),            # no look-ahead: every change splits
    ("ABCA", 3, [[0, 1, 2, 3]]),
    ("ABCDA", 3, [[0], [1], [2], [3], [4]]),  # the return is too far away
    ("AABCC", 2, [[0, 1], [2], [3, 4]]),
    ("A", 3, [[0]]),
])
def test_overlapping_links(pattern, window, expected):
    groups = group_shots(_desc(pattern), threshold=0.5, window=window)
    assert [g for g, _ in groups] == expected


def test_hard_breaks_stop_links():
    assert [g for g, _ in group_shots(_desc("ABABAB"), 0.5, 3)] == [[0, 1, 2, 3, 4, 5]]
    groups = group_shots(_desc("ABABAB"), threshold=0.5, window=3, hard_breaks={3})
    assert [g for g, _ in groups] == [[0, 1, 2], [3, 4, 5]]
    assert group_shots(np.zeros((0, 4)), 0.5, 3) == []


# --- without a usable upstream track ------------------------------------------------------------
def _stream(tmp_path: Path, n: int = 6) -> tuple[VideoMeta, dict]:
    spec = SceneSegmentation().frame_specs()[0]
    writer = FrameStreamWriter(tmp_path / "frames", spec, 64, 36)
    for i in range(n):
        assert writer.wants(i / 2.0)
        writer.write(i / 2.0, np.full((36, 64, 3), 40 * i, dtype=np.uint8))
    meta = VideoMeta(path=str(tmp_path / "x.mp4"), content_hash="0", size_bytes=0, duration=n / 2.0,
                     has_video=True, width=64, height=36, fps=2.0)
    return meta, {spec: writer.close()}


def test_no_upstream_is_one_scene(tmp_path):
    meta, streams = _stream(tmp_path)
    track = SceneSegmentation().analyze(AnalyzerInputs(video=meta, streams=streams))
    scenes = [e for e in track.events if e.label == "scene"]
    assert len(scenes) == 1 and (scenes[0].start, scenes[0].end) == (0.0, 3.0)
    failed = Track(analyzer="cut_analysis", version="1", status="failed", reason="boom")
    track = SceneSegmentation().analyze(AnalyzerInputs(video=meta, streams=streams,
                                                       upstream={"cut_analysis": failed}))
    assert scene_shots(track) == [[0]]


def test_fade_starts_a_new_scene(tmp_path):
    meta, streams = _stream(tmp_path)
    shots = [Event(start=0.0, end=1.5, label="shot", data={"index": 0, "transition_in": "start"}),
             Event(start=1.5, end=3.0, label="shot", data={"index": 1, "transition_in": "fade"})]
    upstream = {"cut_analysis": Track(analyzer="cut_analysis", version="1", events=shots)}
    # a threshold this low links any two shots, so only the fade can split them
    assert scene_shots(SceneSegmentation({"threshold": 0.01}).analyze(
        AnalyzerInputs(video=meta, streams=streams, upstream=upstream))) == [[0], [1]]
    assert scene_shots(SceneSegmentation({"threshold": 0.01, "split_on_fades": False}).analyze(
        AnalyzerInputs(video=meta, streams=streams, upstream=upstream))) == [[0, 1]]


def test_params_validation():
    with pytest.raises(ValidationError, match="extra"):
        SceneSegmentation({"windw": 2})
    with pytest.raises(ValidationError):
        SceneSegmentation({"threshold": 0})
    with pytest.raises(ValidationError):
        SceneSegmentation({"link_window": 0})
    assert SceneSegmentation({"fps": 1}).frame_specs()[0].fps == 1.0
