"""cut_analysis's per-frame signals computed by the decode, segment by segment (``stream_features``):
joined, they are ``frame_signals``' own, bit for bit, and the track is the same either way.

Also the machinery under it: a stream's feature files (``FrameStream.features``), joined from the
segments' in order with the rows where each began, and the runner asking the decode for them.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from analyzers import cut_analysis as ca
from framework import AnalyzerInputs, FrameSpec, media
from framework.media import decode, probe
from framework.plugins import build_plugin_manager
from framework.registry import load_registry
from framework.runner import analyze
from framework.streams import PART_STARTS, FrameStream, FrameStreamWriter, feature_file

DARK = {"dark_level": 16.0}


def _frames(n: int = 150, seed: int = 0) -> np.ndarray:
    """Shots of noise pictures drifting sideways, a still stretch, a dissolve and dark frames."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, 18, 32, 3), dtype=np.uint8)
    pictures = [rng.integers(0, 256, size=(18, 32, 3), dtype=np.uint8) for _ in range(5)]
    for i in range(n):
        out[i] = np.roll(pictures[(i // 31) % 5], i % 7, axis=1)
    out[60:70] = out[60]
    mix = np.linspace(0, 1, 12)[:, None, None, None]
    out[100:112] = (pictures[0] * (1 - mix) + pictures[1] * mix).astype(np.uint8)
    out[120:126] //= 12
    return out


def _joined(frames: np.ndarray, starts: list[int]) -> dict[str, np.ndarray]:
    """``part_signals`` of each part (split at ``starts``), joined as a stream's feature file holds them."""
    edges = [*starts, len(frames)]
    parts = [ca.part_signals(frames[a:b], **DARK) for a, b in zip(edges[:-1], edges[1:])]
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out[PART_STARTS] = np.asarray(starts, dtype=np.int64)
    return out


def _assert_same(a: ca.FrameSignals, b: ca.FrameSignals) -> None:
    for name in ("content", "luma", "lit", "hist_step"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert sorted(a.hist_span) == sorted(b.hist_span)
    for k in a.hist_span:
        np.testing.assert_array_equal(a.hist_span[k], b.hist_span[k], err_msg=f"hist_span[{k}]")


@pytest.mark.parametrize("starts", [[0], [0, 1], [0, 37, 80, 81, 149], [0, 64, 128], [0, 5, 10, 15, 20, 140]])
def test_joined_part_signals_are_frame_signals_bit_for_bit(starts):
    frames = _frames()
    whole = ca.frame_signals(frames, spans=(3, 6), **DARK)
    _assert_same(ca.signals_from_parts(frames, _joined(frames, starts), spans=(6, 3)), whole)


def test_a_segments_first_frame_knows_no_frame_before_it():
    parts = ca.part_signals(_frames()[40:80], **DARK)
    assert np.isnan(parts["content"][0]) and np.isfinite(parts["content"][1:]).all()
    assert parts["hist"].dtype == np.float16 and parts["hist"].shape == (40, 64)
    assert ca.part_signals(_frames()[:0], **DARK)["content"].shape == (0,)


def _stream(folder, frames, times, spec=FrameSpec(None, 32)) -> FrameStream:
    writer = FrameStreamWriter(folder, spec, frames.shape[2], frames.shape[1])
    for t, frame in zip(times, frames):
        writer.write(float(t), frame)
    return writer.close()


def test_a_streams_features_are_stored_and_joined_from_its_parts_in_order(tmp_path, caplog):
    frames = _frames()[:60]
    spec = FrameSpec(None, 32)
    a = _stream(tmp_path / "a", frames[:25], np.arange(25) / 30)
    b = _stream(tmp_path / "b", frames[24:], np.arange(24, 60) / 30)  # its first frame is a's last: skipped
    for part in (a, b):
        part.store_features(ca.PART_SIGNALS, DARK, ca.part_signals(part.frames[:], **DARK))
    with pytest.raises(ValueError, match="a row per frame"):
        a.store_features(ca.PART_SIGNALS, DARK, {"content": np.zeros(3)})
    writer = FrameStreamWriter(tmp_path / "joined", spec, 32, 18)
    writer.append(a)
    writer.append(b, skip=1)
    joined = writer.close()
    got = joined.features(ca.PART_SIGNALS, DARK)
    assert got is not None and got[PART_STARTS].tolist() == [0, 25]
    np.testing.assert_array_equal(got["luma"], np.concatenate([a.features(ca.PART_SIGNALS, DARK)["luma"],
                                                               b.features(ca.PART_SIGNALS, DARK)["luma"][1:]]))
    _assert_same(ca.signals_from_parts(joined.frames, got, (2,)), ca.frame_signals(frames, spans=(2,), **DARK))
    assert joined.features(ca.PART_SIGNALS, {"dark_level": 20.0}) is None  # other arguments: another file
    assert feature_file(joined.folder, ca.PART_SIGNALS, DARK).name.startswith("analyzers.cut_analysis.part_signals-")
    # a stream whose parts lack a feature, or one that does not fit it, has none
    plain = _stream(tmp_path / "plain", frames[:10], np.arange(10) / 30)
    assert plain.features(ca.PART_SIGNALS, DARK) is None
    short = feature_file(plain.folder, ca.PART_SIGNALS, DARK)
    short.parent.mkdir()
    np.savez(short, content=np.zeros(9))
    assert plain.features(ca.PART_SIGNALS, DARK) is None
    # a damaged part file: the joined stream has no such feature, and says so
    broken = feature_file(b.folder, ca.PART_SIGNALS, DARK)
    broken.write_bytes(b"not a zip")
    writer = FrameStreamWriter(tmp_path / "joined2", spec, 32, 18)
    writer.append(a)
    writer.append(b, skip=1)
    with caplog.at_level(logging.WARNING, logger="framework.streams"):
        again = writer.close()
    assert again.features(ca.PART_SIGNALS, DARK) is None and len(again) == len(joined) == 60
    assert "not joined" in caplog.text


def _segmented(monkeypatch) -> None:
    monkeypatch.setattr(media.segments, "cpus_available", lambda: 4)
    monkeypatch.setattr(media.segments, "MIN_SEGMENT_PIXELS", 0)  # small test pictures


def _without_signals(track) -> dict:
    data = track.model_dump()
    data["data"].pop("signals_from")
    return data


def test_a_segmented_decode_computes_the_signals_and_the_track_is_the_same(sample_video, tmp_path, monkeypatch):
    analyzer = ca.CutAnalysis({})
    spec = analyzer.frame_specs()[0]
    meta = probe(sample_video.path)
    one = decode(sample_video.path, meta, [spec], False, tmp_path / "one")  # no features asked: none made
    assert one.streams[spec].features(ca.PART_SIGNALS, DARK) is None
    _segmented(monkeypatch)
    seg = decode(sample_video.path, meta, [spec], False, tmp_path / "seg", features=analyzer.stream_features())
    assert seg.stats.segments > 1
    parts = seg.streams[spec].features(ca.PART_SIGNALS, DARK)
    assert parts is not None and len(parts[PART_STARTS]) == seg.stats.segments
    frames = seg.streams[spec].frames[:]
    spans = ca.dissolve_scales(30.0, analyzer.params)
    _assert_same(ca.signals_from_parts(frames, parts, spans), ca.frame_signals(frames, spans=spans, **DARK))
    from_decode = analyzer.analyze(AnalyzerInputs(video=meta, streams=seg.streams))
    from_frames = analyzer.analyze(AnalyzerInputs(video=meta, streams=one.streams))
    assert from_decode.data["signals_from"] == "decode" and from_frames.data["signals_from"] == "frames"
    assert _without_signals(from_decode) == _without_signals(from_frames)
    assert [e.start for e in from_decode.events if e.label == "cut"] == pytest.approx(
        [f / sample_video.fps for f in sample_video.cut_frames], abs=0.04)


def test_a_feature_that_fails_is_logged_and_the_decode_goes_on(sample_video, tmp_path, monkeypatch, caplog):
    _segmented(monkeypatch)
    spec = FrameSpec(None, 64)
    wanted = {spec: [("analyzers.cut_analysis:no_such_function", {}), (ca.PART_SIGNALS, DARK)]}
    with caplog.at_level(logging.WARNING, logger="framework.media.segments"):
        seg = decode(sample_video.path, probe(sample_video.path), [spec], False, tmp_path / "seg", features=wanted)
    assert "no_such_function not computed in the decode" in caplog.text
    assert seg.streams[spec].features("analyzers.cut_analysis:no_such_function", {}) is None
    assert seg.streams[spec].features(ca.PART_SIGNALS, DARK) is not None


@pytest.mark.parametrize("switch, made_by", [(None, "decode"), ("0", "frames")])
def test_the_runner_asks_the_decode_for_cut_analysis_signals(sample_video, tmp_path, monkeypatch, switch, made_by):
    _segmented(monkeypatch)
    if switch is not None:
        monkeypatch.setenv("FRAMEWORK_STREAM_FEATURES", switch)
    (tmp_path / "registry.yaml").write_text("analyzers:\n  cut_analysis:\n    enabled: true\n"
                                            f"    params: {json.dumps({'dark_level': 20})}\n")
    res = analyze(sample_video.path, registry=load_registry(tmp_path / "registry.yaml"),
                  host=build_plugin_manager(load_entrypoints=False), out_dir=tmp_path / "run", progress=False)
    track = res.timeline.tracks["cut_analysis"]
    assert track.status == "ok" and track.data["signals_from"] == made_by


def test_a_stream_written_again_keeps_no_features_of_the_frames_before(tmp_path):
    frames = _frames()[:20]
    first = _stream(tmp_path / "s", frames, np.arange(20) / 30)
    first.store_features(ca.PART_SIGNALS, DARK, ca.part_signals(frames, **DARK))
    again = _stream(tmp_path / "s", frames[::-1], np.arange(20) / 30)  # the same folder, other frames
    assert again.features(ca.PART_SIGNALS, DARK) is None
