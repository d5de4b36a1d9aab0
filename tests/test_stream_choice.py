"""Which streams are analyzed: FFmpeg's choice by default, the user's with --video-stream /
--audio-stream, recorded in results.json, and used by every decoder (one pass, segments, audio)."""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from framework import media
from framework.errors import EXIT_INPUT
from framework.media import MediaError, decode, probe
from framework.streams import FrameSpec
from framework.testing.synth import AudioStreamSpec, VideoStreamSpec, make_multistream

SMALL = VideoStreamSpec(320, 180, 25, grey=60, default=True)
LARGE = VideoStreamSpec(480, 270, Fraction(30000, 1001), grey=180, default=True)
MONO = AudioStreamSpec(8000, 1, 440.0, default=True)
STEREO = AudioStreamSpec(16000, 2, 880.0, default=True)


@pytest.fixture
def two_of_each(tmp_path):
    """Like nasa_13013.mp4: two video streams (320x180@25, 480x270@29.97) and two audio streams
    (mono 8 kHz, stereo 16 kHz), every one marked default. Streams 0-1 video, 2-3 audio."""
    return make_multistream(tmp_path / "angles.mp4", [SMALL, LARGE], [MONO, STEREO], duration=5.0)


def tone(audio) -> float:
    x = np.asarray(audio.samples[8000:24000])
    return float(np.argmax(np.abs(np.fft.rfft(x))) * 16000 / x.size)


def test_ffmpegs_choice_is_the_default(two_of_each, tmp_path):
    meta = probe(two_of_each)
    assert (meta.video_stream, meta.audio_stream) == (1, 3)  # most pixels; most channels
    assert (meta.width, meta.height, meta.fps_rational) == (480, 270, "30000/1001")
    assert [(s.index, s.kind, s.analyzed) for s in meta.streams] == [
        (0, "video", False), (1, "video", True), (2, "audio", False), (3, "audio", True)]
    small, stereo = meta.streams[0], meta.streams[3]
    assert (small.width, small.height, small.fps, small.default) == (320, 180, 25.0, True)
    assert (stereo.channels, stereo.sample_rate, stereo.codec) == (2, 16000, "aac")
    out = decode(two_of_each, meta, [FrameSpec(None, None)], True, tmp_path / "cache")
    frames = out.streams[FrameSpec(None, None)]
    assert frames.frame_shape == (270, 480, 3) and len(frames) == 150
    assert frames.frames[10].mean() == pytest.approx(180, abs=4)
    assert tone(out.audio) == pytest.approx(880, abs=3)
    assert set(out.stats.packets_by_stream) == {"1", "3"}  # only the chosen streams were demuxed


def test_the_users_choice_is_decoded(two_of_each, tmp_path):
    meta = probe(two_of_each, video_stream=0, audio_stream=2)
    assert (meta.video_stream, meta.audio_stream) == (0, 2)
    assert (meta.width, meta.height, meta.fps) == (320, 180, 25.0)
    assert [s.index for s in meta.streams if s.analyzed] == [0, 2]
    out = decode(two_of_each, meta, [FrameSpec(None, 64)], True, tmp_path / "cache")
    frames = out.streams[FrameSpec(None, 64)]
    assert len(frames) == 125 and frames.frames[10].mean() == pytest.approx(60, abs=4)
    np.testing.assert_allclose(np.diff(frames.times), 1 / 25, atol=1e-3)
    assert tone(out.audio) == pytest.approx(440, abs=3)


def test_segment_decoders_use_the_chosen_stream(two_of_each, tmp_path, monkeypatch):
    monkeypatch.setattr(media.segments, "cpus_available", lambda: 4)
    monkeypatch.setattr(media.segments, "MIN_SEGMENT_PIXELS", 0)
    for index, grey, count in ((1, 180, 150), (0, 60, 125)):
        meta = probe(two_of_each, video_stream=index)
        out = decode(two_of_each, meta, [FrameSpec(None, 64)], True, tmp_path / f"c{index}")
        assert out.stats.segments >= 2, out.stats
        frames = out.streams[FrameSpec(None, 64)]
        assert len(frames) == count and abs(float(frames.frames[-1].mean()) - grey) < 4
        assert out.stats.packets_by_stream[str(index)] == out.stats.video_frames_decoded == count


def test_a_default_stream_beats_a_larger_one(tmp_path):
    """Matroska flags: the small video and the mono audio are the file's defaults, so they win."""
    path = make_multistream(tmp_path / "flags.mkv", [VideoStreamSpec(320, 180, 25, 60, default=True),
                                                     VideoStreamSpec(480, 270, 25, 180, default=False)],
                            [AudioStreamSpec(8000, 1, 440.0, default=True),
                             AudioStreamSpec(16000, 2, 880.0, default=False)])
    meta = probe(path)
    assert (meta.video_stream, meta.audio_stream) == (0, 2)
    assert [s.default for s in meta.streams] == [True, False, True, False]


@pytest.mark.parametrize("kwargs, words", [
    ({"video_stream": 2}, "stream #2 is not a video stream"),
    ({"video_stream": 9}, "stream #9 is not a video stream"),
    ({"audio_stream": 1}, "stream #1 is not an audio stream"),
])
def test_a_bad_index_lists_the_streams(two_of_each, kwargs, words):
    with pytest.raises(MediaError) as err:
        probe(two_of_each, **kwargs)
    msg = str(err.value)
    assert words in msg and str(two_of_each) in msg and "\n" not in msg
    assert "#0 video h264 320x180 25 fps" in msg and "#1 video h264 480x270 29.97 fps" in msg
    assert "#3 audio aac 2 ch 16000 Hz" in msg
    kind = "video" if "video_stream" in kwargs else "audio"
    assert f"--{kind}-stream N" in msg


def test_command_line_choice_is_recorded_in_results(two_of_each, tmp_path):
    from test_cli_run import _registry, run_cli

    code, out, err = run_cli(["run", two_of_each, "--registry", _registry(tmp_path), "--out", tmp_path / "run",
                              "--no-progress", "--video-stream", "0", "--audio-stream", "2"])
    assert code == 0, err
    video = json.loads((tmp_path / "run" / "results.json").read_text())["video"]
    assert (video["video_stream"], video["audio_stream"], video["width"], video["fps"]) == (0, 2, 320, 25.0)
    assert [(s["index"], s["analyzed"]) for s in video["streams"]] == [(0, True), (1, False), (2, True), (3, False)]
    code, out, err = run_cli(["run", two_of_each, "--out", tmp_path / "bad", "--no-progress", "--video-stream", "3"])
    assert code == EXIT_INPUT, (code, out, err)
    text = " ".join(err.split())
    assert "stream #3 is not a video stream" in text and "choose one of 0, 1 with --video-stream N" in text


def test_a_rerun_on_another_stream_does_not_reuse_the_tracks(two_of_each, tmp_path):
    from test_cli_run import _registry

    from framework.runner import analyze

    registry = _registry(tmp_path, ["cut_analysis", "audio_analysis"])
    kwargs = dict(registry_path=registry, out_dir=tmp_path / "run", progress=False, load_entrypoints=False)
    first = analyze(two_of_each, video_stream=0, audio_stream=2, **kwargs)
    assert first.timeline.tracks["cut_analysis"].status == "ok"
    same = analyze(two_of_each, video_stream=0, audio_stream=2, **kwargs)
    assert sorted(same.reused) == ["audio_analysis", "cut_analysis"]
    other = analyze(two_of_each, video_stream=1, audio_stream=3, **kwargs)
    assert other.reused == []  # computed on the other streams, not reused from the first run
    assert other.timeline.video.width == 480
