"""audio_visual_sync: the offset between mouth movement and speech energy, on constructed signals and
on a generated clip whose mouth (a real face photo with the lower lip moved by the test, read by the
bundled FaceMesh) opens on a known syllable pattern while the audio follows it, first in sync and
then 0.4 s late."""
from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest
import vision_fixtures as vf

from analyzers.audio_visual_sync import AudioVisualSync, best_offset, fill_gaps, judge, lag_correlation, speech_envelope
from framework.runner import analyze


def _syllables(duration: float, seed: int = 0) -> list[tuple[float, float]]:
    """Irregular syllables (start, end): 0.15-0.35 s long, 0.1-0.45 s apart."""
    rng = np.random.default_rng(seed)
    out, t = [], 0.3
    while t < duration - 0.4:
        d = float(rng.uniform(0.15, 0.35))
        out.append((t, t + d))
        t += d + float(rng.uniform(0.1, 0.45))
    return out


def _opening(t: np.ndarray, syllables: list[tuple[float, float]]) -> np.ndarray:
    """0..1: a raised-cosine bump over each syllable."""
    out = np.zeros_like(t, dtype=np.float64)
    for a, b in syllables:
        inside = (t >= a) & (t < b)
        out[inside] = np.sin(np.pi * (t[inside] - a) / (b - a))
    return out


PARAMS = AudioVisualSync.Params()


def _signals(delay_s: float, fps: float = 10.0, duration: float = 12.0):
    syl = _syllables(duration)
    times = np.arange(0, duration, 1 / fps)
    mouth = [float(v) * 0.25 for v in _opening(times, syl)]
    energy = 20 * np.log10(0.001 + _opening(times - delay_s, syl))  # dB: silence at -60
    return times, mouth, energy


def test_the_offset_of_a_delayed_envelope_is_found():
    times, mouth, energy = _signals(0.3)
    verdict = judge(times, mouth, energy, PARAMS)
    assert verdict["offset_s"] == pytest.approx(0.3, abs=0.06) and verdict["status"] == "out_of_sync"
    assert verdict["correlation"] > 0.8 and verdict["windows"]["out_of_sync"] == 3  # 6 s windows, 3 s apart
    (event,) = verdict["events"]
    assert event.data["status"] == "out_of_sync" and event.data["text"].startswith("audio 0.3")
    assert event.start == 0.0 and event.end == pytest.approx(12.0, abs=0.11)
    early = judge(times, *_signals(-0.3)[1:], PARAMS)
    assert early["offset_s"] == pytest.approx(-0.3, abs=0.06) and early["events"][0].data["text"].endswith("early against the mouth")
    synced = judge(times, *_signals(0.0)[1:], PARAMS)
    assert abs(synced["offset_s"]) < 0.05 and synced["status"] == "in_sync" and synced["out_of_sync_s"] == 0.0


def test_unclear_no_face_and_no_speech():
    times, mouth, energy = _signals(0.0)
    noise = 20 * np.log10(0.001 + np.random.default_rng(5).uniform(0, 1, len(times)) ** 4)  # speech-like level, no pattern
    other = judge(times, mouth, noise, PARAMS)
    assert other["status"] == "unclear" and other["offset_s"] is None and other["windows"]["unclear"] == 3
    (event,) = other["events"]
    assert event.data["status"] == "unclear" and "voice-over" in event.data["text"]
    still = judge(times, [0.01] * len(times), energy, PARAMS)  # speech while the face's mouth stays shut
    assert still["status"] == "unclear" and still["events"][0].data["offset_s"] is None
    assert judge(times, [None] * len(times), energy, PARAMS)["status"] == "no_face"
    assert judge(times, mouth, np.full(len(times), -30.0), PARAMS)["status"] == "no_speech"


def test_helpers():
    assert np.allclose(fill_gaps([1.0, None, 3.0, None, None, None, 7.0], 2)[:3], [1, 2, 3])
    assert np.isnan(fill_gaps([1.0, None, 3.0, None, None, None, 7.0], 2)[4])
    x = np.sin(np.arange(40) * 0.7) + np.arange(40) * 0.01
    curve = lag_correlation(x[2:], x[:-2], 4)  # energy[i + 2] == mouth[i]: the sound comes 2 samples late
    assert best_offset(curve, 10.0)[0] == pytest.approx(0.2, abs=0.02)
    assert best_offset(lag_correlation(x[:-2], x[2:], 4), 10.0)[0] == pytest.approx(-0.2, abs=0.02)
    t, db = speech_envelope(np.concatenate([np.zeros(8000), 0.5 * np.sin(np.arange(8000) * 2 * np.pi * 500 / 16000)]))
    assert len(t) == 100 and db[:45].max() < -60 and db[55:].min() > -20


# --- a generated talking clip ------------------------------------------------------------------
MOUTH_X, LIP_Y, HALF, DEPTH = 989.0, 236, 26, 45  # the closed mouth of the face in zidane.jpg (full size)


def _face_frame(img: np.ndarray, opening: float) -> np.ndarray:
    """The face, its lower lip and chin moved down by up to 14 px (the mouth opens), cropped 16:9."""
    out = img.copy()
    for x in range(int(MOUTH_X - HALF), int(MOUTH_X + HALF) + 1):
        s = int(round(14 * opening * np.sqrt(max(0.0, 1 - ((x - MOUTH_X) / HALF) ** 2))))
        if s > 0:
            col = img[LIP_Y:LIP_Y + DEPTH, x].copy()
            out[LIP_Y + s:LIP_Y + DEPTH, x] = col[:DEPTH - s]
            out[LIP_Y:LIP_Y + s, x] = (50, 20, 25)
    return np.ascontiguousarray(cv2.resize(out[40:310, 760:1240], (640, 360), interpolation=cv2.INTER_AREA))


def _talking_clip(path, duration: float, fps: int, delay) -> None:
    import av

    img = cv2.imread(str(vf.face_image()))[:, :, ::-1]
    frames: dict[int, np.ndarray] = {}  # the lip moves in whole pixels: one frame per opening level
    syl = _syllables(duration, seed=3)
    rate = 16000
    t = np.arange(int(duration * rate)) / rate
    carrier = sum(np.sin(2 * np.pi * f0 * t) / k for k, f0 in enumerate((150, 300, 450, 900, 1800), start=1))
    audio = (0.3 * carrier * _opening(t - delay(t), syl) + 0.001 * np.random.default_rng(0).standard_normal(t.size))
    with av.open(str(path), mode="w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt, v.options = 640, 360, "yuv420p", {"crf": "18", "preset": "ultrafast"}
        a = out.add_stream("aac", rate=rate)
        a.layout = "mono"
        for i in range(int(duration * fps)):
            level = int(round(14 * float(_opening(np.array([i / fps]), syl)[0])))
            if level not in frames:
                frames[level] = _face_frame(img, level / 14)
            frame = av.VideoFrame.from_ndarray(frames[level], format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        samples = audio.astype(np.float32)
        for k in range(0, samples.size, 1024):
            chunk = np.pad(samples[k:k + 1024], (0, max(0, k + 1024 - samples.size)))
            af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            af.sample_rate, af.pts, af.time_base = rate, k, Fraction(1, rate)
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)


def test_a_clip_in_sync_then_late_in_a_run(tmp_path):
    video = tmp_path / "talk.mp4"
    _talking_clip(video, 10.0, 20, lambda t: np.where(t < 5.0, 0.0, 0.4))
    registry = vf.registry(tmp_path, {"audio_visual_sync": {"fps": 8, "window_s": 5}})  # fewer frames to read
    result = analyze(video, registry_path=registry, out_dir=tmp_path / "run", progress=False, load_entrypoints=False)
    track = result.timeline.tracks["audio_visual_sync"]
    assert track.status == "ok", track.reason
    assert track.data["face_presence"] == 1.0
    mouth = track.series_by_name("mouth_open").values
    assert min(mouth) < 0.03 and max(mouth) > 0.15  # FaceMesh really saw the mouth open and close
    first, last = track.events[0], track.events[-1]
    assert first.data["status"] == "in_sync" and first.start == 0.0 and abs(first.data["offset_s"]) <= 0.1
    assert last.data["status"] == "out_of_sync" and last.end == pytest.approx(10.0, abs=0.2)
    assert last.data["offset_s"] == pytest.approx(0.4, abs=0.1) and last.start >= 2.0
    assert track.data["out_of_sync_s"] >= 4.0
