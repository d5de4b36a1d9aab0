"""color_analysis: palettes per shot and brightness/saturation/contrast, on frames of known colour."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analyzers.color_analysis import ColorAnalysis, dominant_palette, frame_stats, weighted_kmeans
from framework import AnalyzerInputs, Event, FrameSpec, Track, VideoMeta, media
from framework.streams import FrameStreamWriter
from framework.testing.synth import ShotSpec

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def shots_track(bounds: list[float]) -> Track:
    events = [Event(start=a, end=b, label="shot", data={"index": i})
              for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    return Track(analyzer="cut_analysis", version="test", events=events)


def solid_stream(folder: Path, spec: FrameSpec, frames: list[np.ndarray]) -> dict:
    """Write ``frames`` at the spec's rate through the decoder's writer."""
    h, w = frames[0].shape[:2]
    writer = FrameStreamWriter(folder / spec.key, spec, w, h)
    for i, f in enumerate(frames):
        t = i / spec.fps
        assert writer.wants(t)
        writer.write(t, f)
    return {spec: writer.close()}


def video_meta(duration: float) -> VideoMeta:
    return VideoMeta(path="solid.mp4", content_hash="x", size_bytes=1, duration=duration, has_video=True)


@pytest.fixture
def two_shots(tmp_path):
    """Shot 1 (0-2 s): solid red. Shot 2 (2-4 s): left half blue, right half green."""
    analyzer = ColorAnalysis()
    spec = analyzer.frame_specs()[0]
    red = np.zeros((54, 96, 3), np.uint8)
    red[:] = RED
    split = np.zeros((54, 96, 3), np.uint8)
    split[:, :48] = BLUE
    split[:, 48:] = GREEN
    streams = solid_stream(tmp_path, spec, [red] * 4 + [split] * 4)
    return analyzer, streams


def test_palettes_per_shot_of_solid_colours(two_shots):
    analyzer, streams = two_shots
    track = analyzer.analyze(AnalyzerInputs(video=video_meta(4.0), streams=streams,
                                            upstream={"cut_analysis": shots_track([0.0, 2.0, 4.0])}))
    first, second = track.events
    assert (first.label, first.start, first.end) == ("palette", 0.0, 2.0)
    assert first.data["colors"] == ["#ff0000"] and first.data["weights"] == [1.0]
    assert sorted(second.data["colors"]) == ["#0000ff", "#00ff00"]
    assert second.data["weights"] == pytest.approx([0.5, 0.5], abs=0.05)
    assert sum(second.data["weights"]) == pytest.approx(1.0, abs=1e-3)

    b = track.series_by_name("brightness")
    assert b.times == pytest.approx([i / 2 for i in range(8)])
    assert b.values[:4] == pytest.approx([0.299] * 4, abs=1e-3)
    assert b.values[4:] == pytest.approx([(0.587 + 0.114) / 2] * 4, abs=1e-3)
    assert track.series_by_name("saturation").values == pytest.approx([1.0] * 8)
    contrast = track.series_by_name("contrast").values
    assert contrast[:4] == pytest.approx([0.0] * 4, abs=1e-6)
    assert contrast[4:] == pytest.approx([(0.587 - 0.114) * 255 / 2 / 127.5] * 4, abs=1e-3)
    assert first.data["brightness"] == pytest.approx(0.299, abs=1e-3) and second.data["contrast"] > 0.4
    assert track.data["shots"] == 2 and sorted(track.data["palette"]["colors"]) == ["#0000ff", "#00ff00", "#ff0000"]


def test_without_cut_track_the_video_is_one_shot(two_shots):
    analyzer, streams = two_shots
    for upstream in ({}, {"cut_analysis": Track(analyzer="cut_analysis", version="t", status="failed")}):
        track = analyzer.analyze(AnalyzerInputs(video=video_meta(4.0), streams=streams, upstream=upstream))
        (only,) = track.events
        assert (only.start, only.end) == (0.0, 4.0)
        weights = dict(zip(only.data["colors"], only.data["weights"]))
        assert weights == pytest.approx({"#ff0000": 0.5, "#0000ff": 0.25, "#00ff00": 0.25}, abs=0.05)


def test_a_shot_shorter_than_the_sampling_interval_still_gets_a_palette(two_shots):
    analyzer, streams = two_shots
    track = analyzer.analyze(AnalyzerInputs(video=video_meta(4.0), streams=streams,
                                            upstream={"cut_analysis": shots_track([0.0, 1.1, 1.3, 4.0])}))
    assert [e.start for e in track.events] == [0.0, 1.1, 1.3]
    assert track.events[1].data["colors"] == ["#ff0000"]  # nearest frame: t=1.0 s


def test_synth_looks_through_decode(video_factory, tmp_path):
    """Shots of looks A, B, A, C: the two A shots get matching palettes, B and C do not, and each
    palette's weighted mean is the shot's mean colour."""
    truth = video_factory("looks.mp4", shots=[ShotSpec(1.0, "static", look=k) for k in (0, 1, 0, 2)],
                          audio=False, text=None)
    analyzer = ColorAnalysis()
    meta = media.probe(truth.path)
    decoded = media.decode(truth.path, meta, analyzer.frame_specs(), False, tmp_path / "cache")
    track = analyzer.analyze(AnalyzerInputs(video=meta, streams=decoded.streams, upstream={
        "cut_analysis": shots_track([*truth.shot_starts, truth.duration])}))
    assert len(track.events) == 4

    stream = decoded.streams[analyzer.frame_specs()[0]]
    means = []
    for e in track.events:
        rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in e.data["colors"]], float)
        mean = (rgb * np.array(e.data["weights"])[:, None]).sum(axis=0)
        inside = (stream.times >= e.start) & (stream.times < e.end)
        truth_mean = np.asarray(stream.frames[inside]).reshape(-1, 3).mean(axis=0)
        assert mean == pytest.approx(truth_mean, abs=4.0)
        means.append(mean)

    def distance(a: Event, b: Event) -> float:
        """Weighted mean distance from each colour of ``a`` to the nearest colour of ``b``."""
        ca, cb = (np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in e.data["colors"]], float) for e in (a, b))
        nearest = np.linalg.norm(ca[:, None] - cb[None], axis=2).min(axis=1)
        return float((nearest * np.array(a.data["weights"])).sum())

    ev = track.events
    same = distance(ev[0], ev[2])
    assert same < 8
    assert min(distance(ev[0], ev[1]), distance(ev[0], ev[3]), distance(ev[1], ev[3])) > 4 * same


def test_helpers():
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    frames[1] = 255
    brightness, saturation, contrast = frame_stats(frames)
    assert brightness == pytest.approx([0.0, 1.0], abs=1e-3)
    assert saturation == pytest.approx([0.0, 0.0]) and contrast == pytest.approx([0.0, 0.0])
    assert dominant_palette(np.zeros((0, 3), np.uint8), 5) == ([], [])
    rng = np.random.default_rng(0)
    pixels = np.concatenate([np.tile(c, (n, 1)) for c, n in ((RED, 600), (GREEN, 300), (BLUE, 100))]).astype(np.uint8)
    colors, weights = dominant_palette(rng.permutation(pixels), 5)
    assert colors == ["#ff0000", "#00ff00", "#0000ff"] and weights == [0.6, 0.3, 0.1]


def test_weighted_kmeans_matches_scikit_learn():
    """The numpy k-means (scikit-learn's import costs seconds per process) reaches the same
    weighted inertia as sklearn.cluster.KMeans on blobs of weighted points."""
    KMeans = pytest.importorskip("sklearn.cluster").KMeans
    rng = np.random.default_rng(1)
    centres = rng.uniform(0, 100, (5, 3))
    x = np.concatenate([c + rng.normal(0, 6, (80, 3)) for c in centres])
    w = rng.integers(1, 50, len(x)).astype(float)
    labels, inertia = weighted_kmeans(x, w, 5, seed=0)
    ref = KMeans(n_clusters=5, n_init=10, random_state=0).fit(x, sample_weight=w)
    assert inertia == pytest.approx(ref.inertia_, rel=0.01)
    assert len(set(labels)) == 5
    # the same partition, up to the numbering of the clusters
    pairs = set(zip(labels.tolist(), ref.labels_.tolist()))
    assert len(pairs) == 5


def test_registered_as_a_builtin_and_params_validated():
    from analyzers import analyzer_classes

    names = {cls.name for cls in analyzer_classes()}
    assert {"color_analysis", "camera_analysis", "audio_analysis"} <= names
    assert ColorAnalysis({"fps": 1, "width": 64}).frame_specs() == [FrameSpec(fps=1, width=64)]
    with pytest.raises(ValueError):
        ColorAnalysis({"k": 3})
