"""cut_analysis: hard cuts frame-exact, fades and dissolves as gradual transitions, shots without gaps.

Generated media goes through the real pipeline (``framework.media.probe`` + ``decode``); the
edge cases (flashes, cut to black, tiny streams) are numpy frames written to a ``FrameStream``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from analyzers import analyzer_classes
from analyzers.cut_analysis import (CutAnalysis, content_difference, frame_signals, hsv_planes, plane_difference,
                                    rgb_histograms)
from framework import AnalyzerInputs, FrameSpec, Track, VideoMeta
from framework import media
from framework.streams import FrameStreamWriter
from framework.testing.synth import ShotSpec


def run_on_file(path: Path, cache: Path, **params) -> Track:
    """probe + one decode of the analyzer's streams + analyze, as the runner does it."""
    analyzer = CutAnalysis(params)
    meta = media.probe(path)
    decoded = media.decode(path, meta, analyzer.frame_specs(), False, cache)
    return analyzer.analyze(AnalyzerInputs(video=meta, streams=decoded.streams))


def run_on_frames(frames: np.ndarray, tmp_path: Path, fps: float = 30.0, **params) -> Track:
    """Analyze numpy RGB frames (N, H, W, 3) written to a real FrameStream at ``fps``."""
    analyzer = CutAnalysis(params)
    spec = analyzer.frame_specs()[0]
    h, w = frames.shape[1:3]
    writer = FrameStreamWriter(tmp_path / "frames", spec, w, h)
    for i, frame in enumerate(frames):
        writer.write(i / fps, frame)
    stream = writer.close()
    meta = VideoMeta(path=str(tmp_path / "synthetic.mp4"), content_hash="0", size_bytes=0,
                     duration=len(frames) / fps, has_video=True, width=w, height=h, fps=fps)
    return analyzer.analyze(AnalyzerInputs(video=meta, streams={spec: stream}))


def events(track: Track, label: str):
    return [e for e in track.events if e.label == label]


def texture(seed: int, h: int = 54, w: int = 96) -> np.ndarray:
    """A smooth colourful random picture, different for each seed."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 10, 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    return np.clip(img * (rng.random(3) * 0.7 + 0.3), 0, 255).astype(np.uint8)


def still(img: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` frames of ``img`` with a little sensor noise."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1.5, size=(n, *img.shape))
    return np.clip(img[None].astype(np.float32) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def sample_track(sample_video, tmp_path_factory) -> Track:
    return run_on_file(sample_video.path, tmp_path_factory.mktemp("cache"))


# --- the default synthetic programme -------------------------------------------------------
def test_is_registered_builtin():
    assert CutAnalysis in analyzer_classes()
    spec = CutAnalysis().frame_specs()[0]
    assert spec.fps is None and spec.pix_fmt == "rgb24" and spec.width == 96


def test_hard_cuts_are_frame_exact(sample_video, sample_track):
    cuts = events(sample_track, "cut")
    assert [e.data["frame"] for e in cuts] == sample_video.cut_frames == [60, 120, 240]
    for e in cuts:
        assert e.start == e.end == pytest.approx(e.data["frame"] / sample_video.fps, abs=1e-6)
        assert 0 < e.score <= 1


def test_fade_and_dissolve_are_gradual_not_cuts(sample_video, sample_track):
    cut_times = [e.start for e in events(sample_track, "cut")]
    for start, end, kind in sample_video.gradual:  # (5.5, 6.5, fade), (9.5, 10.5, dissolve)
        found = [e for e in events(sample_track, kind) if e.start < end and e.end > start]
        assert len(found) == 1, f"{kind} at {start}-{end} s not reported: {sample_track.events}"
        ev = found[0]
        assert abs(ev.start - start) < 0.25 and abs(ev.end - end) < 0.25
        assert ev.data["boundary_frame"] is not None
        assert not any(start - 0.2 <= t <= end + 0.2 for t in cut_times)
    fade = events(sample_track, "fade")[0]
    assert fade.data["kind"] == "out-in"


def test_shots_cover_the_video_without_gaps(sample_video, sample_track):
    shots = events(sample_track, "shot")
    assert len(shots) == 6 == sample_track.data["shot_count"]
    assert shots[0].start == 0.0
    assert shots[-1].end == pytest.approx(media.probe(sample_video.path).duration, abs=1e-6)
    assert shots[-1].end == pytest.approx(sample_video.duration, abs=0.05)
    for a, b in zip(shots, shots[1:]):
        assert a.end == b.start
        assert b.data["first_frame"] == a.data["last_frame"] + 1
    assert [s.data["index"] for s in shots] == list(range(6))
    assert [s.data["transition_in"] for s in shots] == ["start", "cut", "cut", "fade", "cut", "dissolve"]
    # gradual boundaries fall inside their transitions, near the middle
    for shot, truth in zip(shots[1:], sample_video.shot_starts[1:]):
        assert abs(shot.start - truth) <= 0.1


def test_track_data_and_series(sample_video, sample_track):
    d = sample_track.data
    assert d["fps"] == pytest.approx(30.0)
    assert d["frame_count"] == sample_video.frame_count
    assert (d["cut_count"], d["fade_count"], d["dissolve_count"]) == (3, 1, 1)
    series = sample_track.series_by_name("content_diff")
    assert series is not None and len(series.times) == sample_video.frame_count
    peak = int(np.argmax(series.values))
    assert peak in sample_video.cut_frames


def test_camera_motion_and_dissolves_without_cuts(video_factory, tmp_path):
    shots = [ShotSpec(2.0, "pan", look=0), ShotSpec(2.0, "zoom", "dissolve", 0.8, look=1),
             ShotSpec(2.0, "shake", "cut", look=2), ShotSpec(2.0, "tilt", "dissolve", 1.5, look=3)]
    truth = video_factory("motion.mp4", shots=shots, audio=False)
    track = run_on_file(truth.path, tmp_path / "cache")
    assert [e.data["frame"] for e in events(track, "cut")] == truth.cut_frames == [120]
    dissolves = events(track, "dissolve")
    assert len(dissolves) == 2
    for ev, (start, end, _) in zip(dissolves, [g for g in truth.gradual]):
        assert ev.start < end and ev.end > start
    assert [s.data["transition_in"] for s in events(track, "shot")] == ["start", "dissolve", "cut", "dissolve"]


# --- edge cases on numpy frames ------------------------------------------------------------
def test_flash_is_not_a_cut(tmp_path):
    a = still(texture(1), 40)
    a[20] = 255  # one white frame
    a[30:32] = np.clip(a[30:32].astype(int) + 120, 0, 255).astype(np.uint8)  # a two-frame flash
    track = run_on_frames(a, tmp_path)
    assert events(track, "cut") == []
    assert len(events(track, "shot")) == 1


def test_cut_to_black_then_fade_in_keeps_the_cut(tmp_path):
    """Shot A, hard cut to black, fade in to B: one boundary (the cut), the fade-in is an effect."""
    a, b = texture(1), texture(2)
    black = np.zeros((20, *a.shape), dtype=np.uint8)
    ramp = np.stack([(b * (k / 15)).astype(np.uint8) for k in range(1, 16)])
    frames = np.concatenate([still(a, 30), black, ramp, still(b, 30, seed=3)])
    track = run_on_frames(frames, tmp_path)
    assert [e.data["frame"] for e in events(track, "cut")] == [30]
    assert [s.data["transition_in"] for s in events(track, "shot")] == ["start", "cut"]
    fades = events(track, "fade")
    assert len(fades) == 1 and fades[0].data["kind"] == "in" and fades[0].data["boundary_frame"] is None
    assert fades[0].data["first_frame"] == 50


def fade_through_black(black_frames: int) -> np.ndarray:
    """30 frames of one picture, a 12-frame fade-out, ``black_frames`` of black, a 12-frame
    fade-in, 30 frames of another picture."""
    a, b = texture(4), texture(5)
    out = np.stack([(a * (1 - k / 12)).astype(np.uint8) for k in range(1, 13)])
    black = np.zeros((black_frames, *a.shape), dtype=np.uint8)
    into = np.stack([(b * (k / 12)).astype(np.uint8) for k in range(1, 13)])
    return np.concatenate([still(a, 30), out, black, into, still(b, 30, seed=2)])


def test_dip_to_black_starts_the_shot_at_the_fade_in(tmp_path):
    track = run_on_frames(fade_through_black(10), tmp_path)
    assert events(track, "cut") == []
    shots = events(track, "shot")
    assert [s.data["first_frame"] for s in shots] == [0, 52]  # first frame of the fade-in
    fade = events(track, "fade")[0]
    assert fade.data["kind"] == "out-in" and 28 <= fade.data["first_frame"] <= 31
    assert fade.data["last_frame"] >= 63


def test_held_black_between_fades_makes_a_cut_from_black(tmp_path):
    # fade out, 1 s of black, fade up (testvideo.mp4 does this at frame 394): the fade-up's
    # first frame is where the edit is, so it is a cut; a short dip (above) stays one fade
    frames = fade_through_black(30)
    track = run_on_frames(frames, tmp_path)
    cuts = events(track, "cut")
    assert [c.data["frame"] for c in cuts] == [72] and cuts[0].data["from_black"]
    assert [s.data["first_frame"] for s in events(track, "shot")] == [0, 72]
    assert events(track, "shot")[1].data["transition_in"] == "cut"
    assert sorted(f.data["kind"] for f in events(track, "fade")) == ["in", "out"]
    # a longer hold threshold turns it back into one fade through black
    track = run_on_frames(frames, tmp_path / "again", black_hold_s=2.0)
    assert events(track, "cut") == [] and events(track, "fade")[0].data["kind"] == "out-in"


def test_dissolve_out_of_a_dark_lit_shot_is_not_a_fade(tmp_path):
    """A dark shot with a few lit areas (mean luma ~13) is not black: leaving it is a dissolve."""
    dark = (texture(10).astype(np.float32) * 0.05).astype(np.uint8)
    dark[10:22, 20:50] = 200  # a lit window, ~7 % of the picture
    dark[35:45, 60:80] = 180
    bright = texture(11)
    mix = np.stack([(dark * (1 - w) + bright * w).astype(np.uint8) for w in np.linspace(0, 1, 22)[1:-1]])
    frames = np.concatenate([still(dark, 40), mix, still(bright, 40, seed=4)])
    track = run_on_frames(frames, tmp_path)
    assert events(track, "fade") == [] and events(track, "cut") == []
    (dissolve,) = events(track, "dissolve")
    assert 36 <= dissolve.data["first_frame"] <= 44 and 56 <= dissolve.data["last_frame"] <= 64
    assert [s.data["transition_in"] for s in events(track, "shot")] == ["start", "dissolve"]


def test_black_to_dark_cut_is_found(tmp_path):
    """A hard cut from black to a dim picture is a cut, not a fade-in (its first frame is not dim)."""
    dim = (texture(6).astype(np.float32) * 0.35).astype(np.uint8)
    frames = np.concatenate([np.zeros((20, *dim.shape), dtype=np.uint8), still(dim, 30)])
    track = run_on_frames(frames, tmp_path)
    assert [e.data["frame"] for e in events(track, "cut")] == [20]


def test_min_shot_length_keeps_the_stronger_cut(tmp_path):
    a, b, c = texture(7), texture(8), texture(9)
    frames = np.concatenate([still(a, 30), still(b, 5), still(c, 30)])  # b lasts 5 frames (0.17 s)
    track = run_on_frames(frames, tmp_path, min_shot_s=0.4)
    assert len(events(track, "cut")) == 1
    track = run_on_frames(frames, tmp_path / "again", min_shot_s=0.1)
    assert [e.data["frame"] for e in events(track, "cut")] == [30, 35]


@pytest.mark.parametrize("n", [0, 1, 2])
def test_tiny_streams(tmp_path, n):
    frames = still(texture(1), n) if n else np.zeros((0, 54, 96, 3), dtype=np.uint8)
    track = run_on_frames(frames, tmp_path)
    assert track.data["frame_count"] == n
    assert len(events(track, "shot")) == (1 if n else 0)


def test_series_is_max_pooled(tmp_path):
    frames = np.concatenate([still(texture(1), 60), still(texture(2), 60)])
    track = run_on_frames(frames, tmp_path, series_max_points=20)
    series = track.series_by_name("content_diff")
    assert len(series.values) <= 21
    assert max(series.values) == pytest.approx(events(track, "cut")[0].data["content"], abs=1e-2)


def test_content_difference_ignores_noise_in_black():
    black = np.zeros((1, 20, 20, 3), dtype=np.uint8)
    dim = black.copy()
    dim[..., 0] = 3  # tiny red: saturation 255, hue 0 in HSV, but visually black
    bright = np.full((1, 20, 20, 3), 200, dtype=np.uint8)
    assert content_difference(black, dim)[0] < 4
    assert content_difference(black, bright)[0] > 150


def _plane_difference_reference(a, b) -> np.ndarray:
    """The content score written out plainly in integers (what ``plane_difference`` must equal)."""
    ramp = np.clip(np.arange(256) - 8, 0, 24).astype(np.int64)
    (ha, sa, va), (hb, sb, vb) = ([p.astype(np.int64) for p in x] for x in (a, b))
    wv = ramp[np.minimum(va, vb)]
    whs = wv * ramp[np.minimum(sa, sb)]
    dh = np.abs(ha - hb)
    dh = np.minimum(dh, 180 - dh)
    num = (dh * whs).sum(1) * (2.0 / 576.0) + (np.abs(sa - sb) * wv).sum(1) / 24.0 + np.abs(va - vb).sum(1)
    den = whs.sum(1) / 576.0 + wv.sum(1) / 24.0 + va.shape[1]
    return (num / den).astype(np.float32)


def test_plane_difference_matches_the_integer_formula():
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, size=(9, 54, 96, 3), dtype=np.uint8)
    frames[3] //= 9  # dark frames, where the weights ramp
    planes = hsv_planes(frames)
    a, b = tuple(p[:-1] for p in planes), tuple(p[1:] for p in planes)
    np.testing.assert_array_equal(plane_difference(a, b), _plane_difference_reference(a, b))


def test_frame_signals_in_blocks_equal_one_pass():
    rng = np.random.default_rng(3)
    frames = np.concatenate([still(texture(k), 9, seed=k) for k in range(5)])
    frames[20:23] = rng.integers(0, 256, size=(3, 54, 96, 3), dtype=np.uint8)
    whole = frame_signals(frames, block=len(frames), spans=(2, 5))
    blocks = frame_signals(frames, block=7, spans=(5, 2))  # blocks, their overlaps and carried histograms
    for name in ("content", "luma", "lit", "hist_step"):
        np.testing.assert_array_equal(getattr(blocks, name), getattr(whole, name), err_msg=name)
    assert set(blocks.hist_span) == {2, 5}
    for k in (2, 5):
        np.testing.assert_array_equal(blocks.hist_span[k], whole.hist_span[k])
    assert blocks.content[0] == 0 and blocks.hist_step[0] == 0
    pairs = content_difference(frames[:-1], frames[1:])
    np.testing.assert_array_equal(blocks.content[1:], pairs)


def test_histogram_distances_match_the_histograms():
    """hist_step and hist_span are half the L1 distance of the frames' (float16) histograms."""
    frames = np.concatenate([still(texture(k), 6, seed=k) for k in range(4)])
    hists = rgb_histograms(frames, step=2).astype(np.float16).astype(np.float32)
    sig = frame_signals(frames, block=5, spans=(3,))
    dist = lambda i, j: 0.5 * np.abs(hists[i] - hists[j]).sum()  # noqa: E731
    np.testing.assert_allclose(sig.hist_step[1:], [dist(i - 1, i) for i in range(1, len(frames))], rtol=1e-6)
    span = sig.hist_span[3]
    assert np.isnan(span[:3]).all() and np.isnan(span[-3:]).all()  # no frame 3 before / after
    np.testing.assert_allclose(span[3:-3], [dist(i - 3, i + 3) for i in range(3, len(frames) - 3)], rtol=1e-6)
    assert sig.hist_step[6] > 0.2 and sig.hist_step[3] < 0.05  # a change of picture, then the same one


# --- parameters -----------------------------------------------------------------------------
def test_params_validation():
    assert CutAnalysis().params.threshold == 3.0
    with pytest.raises(ValidationError, match="extra"):
        CutAnalysis({"treshold": 2.0})
    with pytest.raises(ValidationError):
        CutAnalysis({"threshold": 1.0})
    with pytest.raises(ValidationError):
        CutAnalysis({"width": 8})
    with pytest.raises(ValidationError, match="dissolve_scales_s"):
        CutAnalysis({"dissolve_scales_s": [0.25, -1]})
    with pytest.raises(ValidationError, match="dissolve_second_min"):
        CutAnalysis({"dissolve_second_min": 1.5})
    assert CutAnalysis({"width": 64}).frame_specs() == [FrameSpec(fps=None, width=64, pix_fmt="rgb24")]


def test_switches_turn_detectors_off(sample_track, sample_video, tmp_path):
    track = run_on_file(sample_video.path, tmp_path, fades=False, dissolves=False)
    assert events(track, "fade") == [] and events(track, "dissolve") == []
    assert [e.data["frame"] for e in events(track, "cut")] == [60, 120, 240]
