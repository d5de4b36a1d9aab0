"""Audio-visual sync: whether the speech energy and the on-screen mouth movement agree, and by what offset.

Disabled in the original system (seed 004: "audio_visual_sync (Algorithmus)"); disabled by default
here too. No download: mouths are read with mediapipe's bundled face detector and FaceMesh
(manifest id ``mediapipe-face-mesh``; ``analyzers/_faces/mesh.py``), on the CPU, through the device
step in batches.

1. Frames are sampled at ``fps`` (10 by default: mouth movement at syllable rate needs it). On
   each, the largest face's ``mouth_open`` (inner-lip gap over mouth width) is read; gaps of up
   to ``max_gap_frames`` samples without a face are interpolated.
2. The audio's loudness (dB, 10 ms RMS, speech band 200-4000 Hz) is averaged over each frame's
   interval: the speech envelope at the frame times.
3. Over windows of ``window_s`` (hop half a window) with a face on every sample and some speech
   (the envelope varies by at least ``min_speech_db``), the normalised cross-correlation of mouth
   opening and envelope is taken for lags up to ``max_offset_s``; the best lag (refined between
   samples by a parabola through the peak) is the window's offset. Positive: the audio comes
   *after* the mouth (audio late); negative: audio early.
4. A window is ``in_sync`` when its peak correlation is at least ``min_correlation`` and
   ``|offset| <= tolerance_s``, ``out_of_sync`` when correlated at a larger offset, and
   ``unclear`` when the mouth and the speech do not agree at any lag, or the mouth does not move
   while there is speech (a voice-over, an off-screen speaker, dubbing, or a face that is not the
   one talking).

In natural speech the lips often move a little (up to ~0.1-0.2 s) before the sound; the default
tolerance allows for it. The sample rate bounds the precision (0.1 s steps at 10 fps, refined by
interpolation). One face per frame (the largest) is taken to be the speaker. A single window is
weak evidence: on constructed signals, two unrelated syllable patterns reached peak correlations
of 0.3-0.6 by chance within 6 s windows (a related pair: 0.84-0.93), so the track's ``offset_s``
comes from every judged window's correlation curve averaged.

Outputs: series ``mouth_open`` (None without a face) and ``speech_db`` per sampled frame; one
``av_sync`` event per stretch of consecutive windows with one status::

    Event(start, end, label="av_sync", score=<peak correlation>,
          data={"status": "out_of_sync", "offset_s": 0.4, "correlation": 0.71, "windows": 5,
                "text": "audio 0.40 s late against the mouth"})

Track data: ``offset_s`` and ``correlation`` over every judged window together (None when none
could be judged), ``status`` (the overall verdict, or ``no_face`` / ``no_speech``), ``windows``
(per status), ``out_of_sync_s`` (seconds in out-of-sync stretches), ``face_presence`` (share of
samples with a mouth read), ``frames``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
from pydantic import Field

from framework import AUDIO_SAMPLE_RATE, AnalyzerInputs, BatchedAnalyzer, Event, Series, Track

from ._vision.mediapipe_base import MediapipeFrameAnalyzer

MODEL_ID = "mediapipe-face-mesh"
HOP_S = 0.01  # the envelope's resolution


def speech_envelope(audio: Any, start: float = 0.0, chunk_s: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """(times, dB) every 10 ms of the speech band (200-4000 Hz) of an ``AudioTrack`` (or a 16 kHz
    numpy array starting at ``start``), read a chunk at a time."""
    hop = int(HOP_S * AUDIO_SAMPLE_RATE)
    if isinstance(audio, np.ndarray):
        chunks: Iterable[tuple[float, np.ndarray]] = ((start + i / AUDIO_SAMPLE_RATE, audio[i:i + int(chunk_s * AUDIO_SAMPLE_RATE)])
                                                      for i in range(0, len(audio), int(chunk_s * AUDIO_SAMPLE_RATE)))
    else:
        chunks = audio.chunks(chunk_s)
    times, levels = [], []
    for t0, block in chunks:
        block = np.asarray(block, dtype=np.float32)
        n = len(block) // hop
        if n == 0:
            continue
        frames = block[: n * hop].reshape(n, hop)
        spec = np.fft.rfft(frames * np.hanning(hop), axis=1)
        freqs = np.fft.rfftfreq(hop, 1 / AUDIO_SAMPLE_RATE)
        band = (freqs >= 200) & (freqs <= 4000)
        power = (np.abs(spec[:, band]) ** 2).sum(axis=1) / hop
        levels.append(10 * np.log10(power + 1e-10))
        times.append(t0 + (np.arange(n) + 0.5) * HOP_S)
    if not times:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(times), np.concatenate(levels)


def at_frames(env_t: np.ndarray, env_db: np.ndarray, frame_times: np.ndarray, fps: float) -> np.ndarray:
    """The envelope averaged over each frame's interval (``t`` to ``t + 1/fps``)."""
    out = np.full(len(frame_times), np.nan)
    if not len(env_t):
        return out
    lo = np.searchsorted(env_t, frame_times)
    hi = np.searchsorted(env_t, frame_times + 1.0 / fps)
    for i, (a, b) in enumerate(zip(lo, hi)):
        if b > a:
            out[i] = float(env_db[a:b].mean())
    return out


def fill_gaps(values: list[float | None], max_gap: int) -> np.ndarray:
    """Values as floats with runs of at most ``max_gap`` Nones inside interpolated (NaN elsewhere)."""
    x = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    known = np.flatnonzero(~np.isnan(x))
    for a, b in zip(known, known[1:]):
        if 1 < b - a <= max_gap + 1:
            x[a + 1:b] = np.interp(np.arange(a + 1, b), [a, b], [x[a], x[b]])
    return x


def lag_correlation(mouth: np.ndarray, energy: np.ndarray, max_lag: int) -> np.ndarray:
    """Pearson correlation of ``mouth[i]`` with ``energy[i + lag]`` for lag = -max_lag..max_lag
    (NaN where fewer than 4 pairs overlap or one side is constant)."""
    n = len(mouth)
    out = np.full(2 * max_lag + 1, np.nan)
    for j, lag in enumerate(range(-max_lag, max_lag + 1)):
        a = mouth[max(0, -lag): n - max(0, lag)]
        b = energy[max(0, lag): n + min(0, lag)]
        if len(a) >= 4 and a.std() > 1e-9 and b.std() > 1e-9:
            out[j] = float(np.corrcoef(a, b)[0, 1])
    return out


def best_offset(curve: np.ndarray, fps: float) -> tuple[float | None, float | None]:
    """(offset in seconds, peak correlation) of a ``lag_correlation`` curve, the peak refined by a
    parabola through it and its neighbours; (None, None) for an all-NaN curve."""
    if np.all(np.isnan(curve)):
        return None, None
    max_lag = (len(curve) - 1) // 2
    j = int(np.nanargmax(curve))
    shift = 0.0
    if 0 < j < len(curve) - 1 and not np.isnan(curve[j - 1]) and not np.isnan(curve[j + 1]):
        denom = curve[j - 1] - 2 * curve[j] + curve[j + 1]
        if denom < 0:
            shift = float(np.clip(0.5 * (curve[j - 1] - curve[j + 1]) / denom, -0.5, 0.5))
    return (j - max_lag + shift) / fps, float(curve[j])


def describe(status: str, offset: float | None) -> str:
    if status == "in_sync":
        return "audio and mouth in sync"
    if status == "out_of_sync" and offset is not None:
        return f"audio {abs(offset):.2f} s {'late' if offset > 0 else 'early'} against the mouth"
    return "speech does not follow the mouth on screen (voice-over, off-screen speaker or dubbing?)"


class AudioVisualSync(MediapipeFrameAnalyzer):
    """Whether speech energy and mouth movement agree: the audio-video offset and out-of-sync stretches."""

    name = "audio_visual_sync"
    version = "1.0.0"
    description = ("Audio-video offset from mouth movement (bundled FaceMesh) against the speech envelope; "
                   "out-of-sync stretches.")
    original_status = "disabled"  # how the original system shipped it (docs/analyzers.md)
    needs_audio = True
    requires_audio = True
    models = (MODEL_ID,)
    enabled_by_default = False
    batch_size = 16

    class Params(BatchedAnalyzer.Params):
        fps: float = Field(10.0, ge=4, le=30, description="Frames per second read (mouth movement needs >= 8).")
        width: int = Field(640, ge=128, le=3840, description="Width in pixels of the frames read.")
        max_faces: int = Field(3, ge=1, le=10, description="Faces read per frame; the largest is taken as the speaker.")
        min_confidence: float = Field(0.5, gt=0, lt=1, description="Face detection confidence threshold.")
        window_s: float = Field(6.0, ge=1, le=60, description="Length of the windows judged.")
        max_offset_s: float = Field(0.6, gt=0, le=3, description="Largest offset looked for, either way.")
        tolerance_s: float = Field(0.2, ge=0, le=1, description="Offsets up to this count as in sync.")
        min_correlation: float = Field(0.5, gt=0, lt=1, description="Peak correlation under which a window is unclear.")
        min_speech_db: float = Field(6.0, gt=0, description="Envelope range (dB, 10th-90th percentile) a window needs "
                                                            "to count as having speech.")
        max_gap_frames: int = Field(2, ge=0, le=10, description="Samples without a face interpolated inside a window.")
        batch_size: int = Field(16, ge=1, le=256, description="Frames per step.")

    def make_reader(self, models: dict[str, Path]) -> Any:
        from ._faces.mesh import MeshReader

        return MeshReader(models.get(MODEL_ID), self.name, self.params.max_faces, self.params.min_confidence)

    def read_frame(self, frame: np.ndarray) -> float | None:
        """The largest face's ``mouth_open`` (None without a face with landmarks)."""
        mouth = self.reader.largest_mouth(frame)
        return None if mouth is None else float(mouth)

    def finish(self, results: list[Any], inputs: AnalyzerInputs) -> Track:
        times = np.array([r[0] for r in results], dtype=np.float64)
        mouth_raw = [r[1] for r in results]
        assert inputs.audio is not None  # requires_audio
        env_t, env_db = speech_envelope(inputs.audio)
        energy = at_frames(env_t, env_db, times, self.params.fps)
        verdict = judge(times, mouth_raw, energy, self.params, inputs.video.duration)
        series = [Series(name="mouth_open", times=[round(float(t), 3) for t in times], values=mouth_raw),
                  Series(name="speech_db", unit="dB", times=[round(float(t), 3) for t in times],
                         values=[None if np.isnan(v) else round(float(v), 2) for v in energy])]
        return self.track(events=verdict.pop("events"), series=series, data=verdict)


def judge(times: np.ndarray, mouth_raw: list[float | None], energy: np.ndarray, p: Any,
          duration: float | None = None) -> dict[str, Any]:
    """The windows' verdicts, merged into events (ending by ``duration``), and the track data (see
    the module docstring)."""
    fps = p.fps
    mouth = fill_gaps(mouth_raw, p.max_gap_frames)
    n_win = max(4, int(round(p.window_s * fps)))
    hop = max(1, n_win // 2)
    max_lag = max(1, int(round(p.max_offset_s * fps)))
    windows: list[tuple[int, int, str, float | None, float]] = []
    curves = []
    for a in range(0, max(0, len(times) - n_win + 1), hop):
        m, e = mouth[a:a + n_win], energy[a:a + n_win]
        if np.isnan(m).any() or np.isnan(e).any():
            continue  # no face (or no audio) on part of it
        lo, hi = np.percentile(e, [10, 90])
        if hi - lo < p.min_speech_db:
            continue  # no speech to compare
        if m.std() < 1e-3:  # speech, but the mouth on screen does not move
            windows.append((a, a + n_win - 1, "unclear", None, 0.0))
            continue
        curve = lag_correlation(m, e, max_lag)
        offset, peak = best_offset(curve, fps)
        if offset is None or peak is None:
            continue
        if peak < p.min_correlation:
            status = "unclear"
        else:
            status = "in_sync" if abs(offset) <= p.tolerance_s else "out_of_sync"
            curves.append(curve)
        windows.append((a, a + n_win - 1, status, offset, peak))
    step = 1.0 / fps
    events: list[Event] = []
    i = 0
    while i < len(windows):
        j = i
        while j + 1 < len(windows) and windows[j + 1][2] == windows[i][2] and windows[j + 1][0] <= windows[j][1] + 1:
            j += 1
        group = windows[i:j + 1]
        status = group[0][2]
        offsets = [w[3] for w in group if w[3] is not None]
        offset = float(np.median(offsets)) if offsets else None
        corr = float(np.mean([w[4] for w in group]))
        start, end = float(times[group[0][0]]), float(times[group[-1][1]]) + step
        if duration:
            end = max(start, min(end, duration))
        events.append(Event(start=round(start, 3), end=round(end, 3), label="av_sync", score=round(corr, 4),
                            data={"status": status, "offset_s": None if offset is None else round(offset, 3),
                                  "correlation": round(corr, 4),
                                  "windows": len(group), "text": describe(status, offset)}))
        i = j + 1
    counts = {s: sum(1 for w in windows if w[2] == s) for s in ("in_sync", "out_of_sync", "unclear")}
    offset = corr = None
    if curves:
        offset, corr = best_offset(np.nanmean(np.array(curves), axis=0), fps)
    face = float(np.mean([m is not None for m in mouth_raw])) if mouth_raw else 0.0
    if not windows:
        status = "no_face" if face == 0.0 else "no_speech"
    elif offset is None:
        status = "unclear"
    else:
        status = "in_sync" if abs(offset) <= p.tolerance_s else "out_of_sync"
    return {"events": events, "offset_s": None if offset is None else round(offset, 3),
            "correlation": None if corr is None else round(corr, 4), "status": status, "windows": counts,
            "out_of_sync_s": round(sum(e.duration for e in events if e.data["status"] == "out_of_sync"), 3),
            "face_presence": round(face, 4), "frames": len(times)}
