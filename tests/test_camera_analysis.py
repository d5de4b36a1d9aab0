"""camera_analysis: each synthetic shot's camera move (framework.testing.synth ShotSpec.motion) is recognised."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analyzers.camera_analysis import CameraAnalysis, pair_motion
from framework import AnalyzerInputs, Event, FrameSpec, Track, VideoMeta, media
from framework.streams import FrameStreamWriter
from framework.testing.synth import ShotSpec, SynthTruth


def shot_track(truth: SynthTruth) -> Track:
    """The cut_analysis track a perfect shot detector would give for ``truth``."""
    bounds = [*truth.shot_starts, truth.duration]
    events = [Event(start=a, end=b, label="shot", data={"index": i})
              for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    return Track(analyzer="cut_analysis", version="test", events=events)


def decoded_inputs(truth: SynthTruth, analyzer: CameraAnalysis, cache: Path, with_cuts: bool = True) -> AnalyzerInputs:
    meta = media.probe(truth.path)
    decoded = media.decode(truth.path, meta, analyzer.frame_specs(), False, cache)
    upstream = {"cut_analysis": shot_track(truth)} if with_cuts else {}
    return AnalyzerInputs(video=meta, streams=decoded.streams, upstream=upstream)


def test_default_sample_shots_are_classified(sample_video, tmp_path):
    """static, pan, zoom, static (after a fade), tilt, shake (after a dissolve)."""
    analyzer = CameraAnalysis()
    track = analyzer.analyze(decoded_inputs(sample_video, analyzer, tmp_path))
    assert [e.label for e in track.events] == sample_video.motions
    assert [e.start for e in track.events] == pytest.approx(sample_video.shot_starts)
    for e in track.events:
        assert 0.0 < e.data["confidence"] <= 1.0 and e.score == e.data["confidence"]
        assert e.data["valid_pairs"] >= 0.8 * e.data["pairs"] > 0
    by = {e.label: e for e in track.events}
    assert by["pan"].data["direction"] == "right" and by["pan"].data["dx"] < -0.1
    assert by["tilt"].data["direction"] == "down" and by["tilt"].data["dy"] < -0.1
    assert by["zoom"].data["direction"] == "out" and by["zoom"].data["scale"] < -0.05
    assert by["shake"].data["jitter"] > 3 * analyzer.params.shake_jitter
    assert track.data["classes"] == {"static": 2, "pan": 1, "tilt": 1, "zoom": 1, "shake": 1}


def test_every_motion_with_hard_cuts_and_no_cut_across_shots(video_factory, tmp_path):
    motions = ["shake", "zoom", "tilt", "static", "pan"]
    truth = video_factory("moves.mp4", shots=[ShotSpec(1.5, m, look=i) for i, m in enumerate(motions)],
                          audio=False, text=None)
    analyzer = CameraAnalysis()
    inputs = decoded_inputs(truth, analyzer, tmp_path / "cache")
    track = analyzer.analyze(inputs)
    assert [e.label for e in track.events] == motions

    motion = track.series_by_name("motion")
    stream = inputs.frames(analyzer.frame_specs()[0])
    firsts = [float(stream.times[stream.times >= s - 1e-6][0]) for s in truth.shot_starts[1:]]
    assert not set(np.round(firsts, 4)) & set(motion.times)  # no flow from the last frame of a shot
    assert len(motion.times) == len(stream) - len(truth.shot_starts)
    values = dict(zip(motion.times, motion.values))
    static_shot = [v for t, v in values.items() if 4.6 < t < 6.0]
    pan_shot = [v for t, v in values.items() if 6.1 < t < 7.5]
    assert max(static_shot) < 0.01 < min(pan_shot)

    # without a shot track the video is one shot, and the pairs across the cuts are measured too
    whole = analyzer.analyze(AnalyzerInputs(video=inputs.video, streams=inputs.streams))
    assert len(whole.events) == 1 and whole.events[0].end == pytest.approx(inputs.video.duration)
    assert len(whole.series_by_name("motion").times) == len(stream) - 1


def test_single_pan_without_cut_track(video_factory, tmp_path):
    truth = video_factory("pan.mp4", shots=[ShotSpec(2.0, "pan")], audio=False)
    analyzer = CameraAnalysis({"fps": 6})
    track = analyzer.analyze(decoded_inputs(truth, analyzer, tmp_path / "cache", with_cuts=False))
    (event,) = track.events
    assert event.label == "pan" and event.start == 0.0
    assert event.data["dx"] == pytest.approx(-(1.6 - 1.0) * 320 / 320 / 2.0, rel=0.15)  # 0.6 widths in 2 s


def test_textureless_shot_is_unknown(tmp_path):
    spec = CameraAnalysis().frame_specs()[0]
    writer = FrameStreamWriter(tmp_path / spec.key, spec, 160, 90)
    for i in range(16):
        assert writer.wants(i / 8)
        writer.write(i / 8, np.full((90, 160), 128, dtype=np.uint8))
    video = VideoMeta(path="flat.mp4", content_hash="x", size_bytes=1, duration=2.0, has_video=True)
    track = CameraAnalysis().analyze(AnalyzerInputs(video=video, streams={spec: writer.close()}))
    (event,) = track.events
    assert event.label == "unknown" and event.data["confidence"] == 0.0 and event.data["valid_pairs"] == 0
    assert track.series_by_name("motion").values == [None] * 15


def test_pair_motion_recovers_a_known_shift_and_scale():
    import cv2

    rng = np.random.default_rng(3)
    base = cv2.resize(rng.integers(0, 256, (24, 40), dtype=np.uint8), (400, 240), interpolation=cv2.INTER_CUBIC)
    prev = base[60:150, 100:260]
    shifted = base[60 + 4:150 + 4, 100 - 8:260 - 8]  # camera moves left and down: content right and up
    m = pair_motion(prev, shifted)
    assert m.valid and m.dx == pytest.approx(8 / 160, abs=0.004) and m.dy == pytest.approx(-4 / 90, abs=0.006)
    assert m.log_scale == pytest.approx(0.0, abs=0.01)
    zoom = cv2.warpAffine(prev, cv2.getRotationMatrix2D((80, 45), 0, 1.1), (160, 90))
    z = pair_motion(prev, zoom)
    assert z.valid and z.log_scale == pytest.approx(np.log(1.1), abs=0.01)
    assert abs(z.dx) < 0.01 and abs(z.dy) < 0.01  # a zoom about the centre is not a translation


def test_params():
    a = CameraAnalysis({"fps": 10, "width": 128})
    assert a.frame_specs() == [FrameSpec(fps=10, width=128, pix_fmt="gray")]
    assert a.depends_on == ("cut_analysis",)
    with pytest.raises(ValueError):
        CameraAnalysis({"pan_threshold": 0.1})
