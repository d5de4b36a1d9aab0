"""audio_analysis: loudness, silences, tempo and onset density on synthetic audio with known truth."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from analyzers.audio_analysis import (ONSET_HOP, TEMPO_WIN, AudioAnalysis, mel_filterbank, onset_strength,
                                      pick_onsets, quiet_runs, rms_dbfs, tempo_bpm, tempogram)
from framework import AnalyzerInputs, VideoMeta, media
from framework.streams import AudioWriter

SR = 16_000


def click_track(bpm: float, seconds: float, first: float = 0.5, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    """Decaying noise bursts every 60/bpm s over a quiet noise floor (about -40 dBFS)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0, noise, int(seconds * SR)).astype(np.float32)
    n = int(0.02 * SR)
    burst = (rng.normal(0, 1, n) * np.exp(-np.arange(n) / (0.004 * SR)) * 0.5).astype(np.float32)
    for t in np.arange(first, seconds - 0.05, 60.0 / bpm):
        i = int(round(t * SR))
        seg = y[i:i + n]
        seg += burst[:seg.size]
    return y


def audio_inputs(tmp_path: Path, samples: np.ndarray, start_time: float = 0.0) -> AnalyzerInputs:
    writer = AudioWriter(tmp_path / "audio.f32", start_time=start_time)
    for k in range(0, samples.size, SR * 7):  # written in pieces, like the decoder does
        writer.write(samples[k:k + SR * 7])
    audio = writer.close()
    video = VideoMeta(path="synthetic.wav", content_hash="x", size_bytes=samples.nbytes,
                      duration=start_time + samples.size / SR, has_video=False,
                      audio_streams=[{"codec": "pcm_f32le"}])
    return AnalyzerInputs(video=video, audio=audio)


@pytest.fixture(scope="module")
def analyzer() -> AudioAnalysis:
    return AudioAnalysis()


def test_sample_video_silence_and_loudness(sample_video, tmp_path, analyzer):
    """Through probe + decode: speech 0.2-5.4 s, silence, tone 7.2-11.8 s -> one silence 5.4-7.2 s."""
    meta = media.probe(sample_video.path)
    decoded = media.decode(sample_video.path, meta, [], True, tmp_path / "cache")
    track = analyzer.analyze(AnalyzerInputs(video=meta, audio=decoded.audio))

    silences = [e for e in track.events if e.label == "silence"]
    assert len(silences) == 1, silences
    s = silences[0]
    assert s.start == pytest.approx(5.4, abs=0.15) and s.end == pytest.approx(7.2, abs=0.15)
    assert s.data["mean_db"] < -80
    assert track.data["silence_s"] == pytest.approx(1.8, abs=0.3)

    loud = track.series_by_name("loudness")
    assert loud.unit == "dBFS"
    times, values = np.array(loud.times), np.array(loud.values)
    assert np.allclose(np.diff(times), 0.1, atol=1e-6)
    assert times[-1] == pytest.approx(meta.duration, abs=0.15)
    tone = values[(times > 7.5) & (times < 11.5)]
    # the tone is a 0.25-amplitude sine: RMS = 0.25/sqrt(2) -> -15.05 dBFS (AAC adds a little error)
    assert np.median(tone) == pytest.approx(20 * np.log10(0.25 / np.sqrt(2)), abs=1.0)
    assert values[(times > 5.6) & (times < 7.0)].max() < -60
    assert track.data["peak_dbfs"] > -20


@pytest.mark.parametrize("bpm", [90.0, 120.0, 140.0])
def test_click_track_tempo_and_onset_density(tmp_path, analyzer, bpm):
    track = analyzer.analyze(audio_inputs(tmp_path, click_track(bpm, 20.0)))
    assert track.data["tempo_bpm"] == pytest.approx(bpm, rel=0.02)
    assert track.data["pulse_clarity"] > 0.5
    assert track.data["onset_rate"] == pytest.approx(bpm / 60 * 19.5 / 20, rel=0.08)
    tempo = track.series_by_name("tempo")
    assert len(tempo.values) >= 3 and all(v == pytest.approx(bpm, rel=0.02) for v in tempo.values)
    density = track.series_by_name("onset_density")
    assert all(v == pytest.approx(bpm / 60, rel=0.12) for v in density.values)
    assert not [e for e in track.events if e.label == "silence"]  # the noise floor is about -40 dBFS


def test_chunk_boundaries_and_start_time(tmp_path, analyzer):
    """130 s (three 60 s chunks) starting at 2.0 s: a silence across the 60 s chunk edge is one
    event, onsets near the edges are neither lost nor doubled, every time is shifted by 2.0 s."""
    y = click_track(120.0, 130.0, first=0.25)
    y[int(57 * SR):int(64 * SR)] = 0.0
    track = analyzer.analyze(audio_inputs(tmp_path, y, start_time=2.0))

    silences = [e for e in track.events if e.label == "silence"]
    assert len(silences) == 1, silences
    assert silences[0].start == pytest.approx(2.0 + 57.0, abs=0.11)
    assert silences[0].end == pytest.approx(2.0 + 64.0, abs=0.11)
    clicks = sum(1 for t in np.arange(0.25, 129.95, 0.5) if not 57 <= t < 64)
    # plus the two places where sound starts from nothing (0 s and 64 s) are onsets too
    assert track.data["onset_rate"] * 130.0 == pytest.approx(clicks + 2, abs=1)
    assert track.data["tempo_bpm"] == pytest.approx(120.0, rel=0.02)
    loud = track.series_by_name("loudness")
    assert loud.times[0] == pytest.approx(2.05) and len(loud.times) == 1300
    tempo = track.series_by_name("tempo")
    assert tempo.times[0] == pytest.approx(2.0 + 5.0) and tempo.times[-1] == pytest.approx(2.0 + 125.0)
    density = dict(zip(track.series_by_name("onset_density").times, track.series_by_name("onset_density").values))
    assert density[2.0 + 60.0] < 1.0 < density[2.0 + 30.0]  # the 55-65 s window is mostly silent


def test_silent_and_tiny_audio(tmp_path, analyzer):
    track = analyzer.analyze(audio_inputs(tmp_path, np.zeros(SR * 3, dtype=np.float32)))
    assert [(e.start, e.end) for e in track.events] == [(0.0, 3.0)]
    assert track.data["tempo_bpm"] is None and track.data["onset_rate"] == 0
    assert set(track.series_by_name("loudness").values) == {-100.0}

    tiny = analyzer.analyze(audio_inputs(tmp_path / "tiny", np.full(500, 0.1, dtype=np.float32)))
    assert tiny.data["tempo_bpm"] is None
    assert len(tiny.series_by_name("loudness").values) == 1


def test_helpers():
    assert quiet_runs(np.array([1, 1, 0, 1, 1, 1, 0], bool), 2) == [(0, 2), (3, 6)]
    assert quiet_runs(np.array([1, 0, 1], bool), 2) == []
    levels = rms_dbfs(np.ones(2500, dtype=np.float32) * 0.5, 1000)
    assert levels == pytest.approx([20 * np.log10(0.5)] * 3)


def test_params_are_validated():
    with pytest.raises(ValidationError, match="hop_s"):
        AudioAnalysis({"hop_s": 0.07})
    with pytest.raises(ValidationError):
        AudioAnalysis({"silence_threshold": -40})  # unknown key
    assert AudioAnalysis({"hop_s": 0.05, "silence_db": -40}).params.silence_db == -40


def test_numpy_dsp_matches_librosa():
    """The onset/tempo functions are numpy re-implementations of librosa's (whose import costs
    seconds per process); librosa itself is the reference here."""
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(5)
    t = np.arange(12 * SR) / SR
    y = click_track(128.0, 12.0) + 0.1 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    y = (y + rng.normal(0, 0.003, y.size)).astype(np.float32)

    assert np.allclose(mel_filterbank(), librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64), atol=1e-7)
    ours = onset_strength(y)
    ref = librosa.onset.onset_strength(y=y, sr=SR, hop_length=ONSET_HOP, n_fft=1024, n_mels=64)
    assert ours.shape == ref.shape
    assert np.allclose(ours, ref, rtol=1e-3, atol=2e-3 * ref.max())
    assert list(pick_onsets(ref)) == list(librosa.onset.onset_detect(onset_envelope=ref, sr=SR, hop_length=ONSET_HOP))
    tg_ref = librosa.feature.tempogram(onset_envelope=ref, sr=SR, hop_length=ONSET_HOP, win_length=TEMPO_WIN)
    assert np.allclose(tempogram(ref, 0, ref.size), tg_ref, atol=1e-6)
    assert np.allclose(tempogram(ref, 100, 300), tg_ref[:, 100:300], atol=1e-6)  # a slice = the same columns
    mean = tg_ref.mean(axis=1)
    ref_bpm = float(librosa.feature.tempo(tg=mean[:, None], sr=SR, hop_length=ONSET_HOP, aggregate=None)[0])
    bpm, clarity = tempo_bpm(mean)
    assert bpm == pytest.approx(ref_bpm, rel=0.03) and bpm == pytest.approx(128.0, rel=0.01)
    assert 0.5 < clarity <= 1.0
