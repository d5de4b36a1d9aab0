"""Audio: loudness over time, silent stretches, tempo and onset density.

Reads the run's 16 kHz mono audio one chunk at a time (60 s plus a little context), so memory
stays flat however long the video is. Outputs:

- series ``loudness``: RMS level in dBFS per ``hop_s`` block (10 Hz by default; a full-scale
  square wave is 0 dBFS, a full-scale sine -3 dBFS; digital silence is floored at -100);
- events ``silence``: stretches at least ``min_silence_s`` long whose blocks are all below
  ``silence_db``, with ``data={"mean_db": ...}``;
- series ``onset_density`` (onsets per second), ``tempo`` (BPM) and ``pulse_clarity`` (0..1,
  how strongly the onset envelope repeats at that tempo) per sliding window of ``window_s``
  seconds every ``window_hop_s``; ``tempo`` is ``None`` for windows with fewer than 4 onsets;
- track ``data``: ``tempo_bpm`` and ``pulse_clarity`` of the whole file, ``onset_rate``,
  ``mean_dbfs``, ``peak_dbfs`` (loudest block), ``silence_s`` and ``silence_fraction``.

Onsets and tempo come from librosa (spectral-flux onset envelope at 40 Hz, autocorrelation
tempogram over 8 s with librosa's log-normal tempo prior). librosa JIT-compiles some functions
with numba the first time they run on a machine (tens of seconds, cached on disk afterwards);
its imports cost a few seconds once per process and happen in ``load``.
All times include ``AudioTrack.start_time``.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from framework import AUDIO_SAMPLE_RATE, Analyzer, AnalyzerInputs, AnalyzerUnavailable, Event, Series, Track

logger = logging.getLogger(__name__)

SR = AUDIO_SAMPLE_RATE
ONSET_HOP = 400            # samples: a 40 Hz onset envelope
N_FFT = 1024
N_MELS = 64
TEMPO_WIN = 320            # envelope frames in the tempogram window (8 s)
CHUNK_S = 60.0             # audio read per step
CONTEXT_S = 1.0            # audio kept from each side of a chunk so its edges look like the middle
FLOOR_DB = -100.0
MIN_BEATS = 4              # onsets a window needs before it gets a tempo


def rms_dbfs(samples: np.ndarray, block: int) -> np.ndarray:
    """RMS level in dBFS of consecutive ``block``-sample blocks (the last one may be shorter)."""
    n = samples.size
    if n == 0:
        return np.zeros(0)
    full = n // block
    power = []
    if full:
        power.append(np.mean(np.square(samples[:full * block].reshape(full, block), dtype=np.float64), axis=1))
    if n > full * block:
        power.append(np.array([np.mean(np.square(samples[full * block:], dtype=np.float64))]))
    p = np.concatenate(power)
    return np.maximum(FLOOR_DB, 10.0 * np.log10(np.maximum(p, 1e-30)))


def quiet_runs(quiet: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """(first, last + 1) indices of runs of True at least ``min_len`` long."""
    if quiet.size == 0:
        return []
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, ends) if b - a >= min_len]


class AudioAnalysis(Analyzer):
    """Loudness, silences, tempo and onset density of the soundtrack (librosa + numpy)."""

    name = "audio_analysis"
    version = "1.0.0"
    description = "Loudness (dBFS) series, silent stretches, tempo (BPM) and onset density."
    needs_audio = True
    requires_audio = True

    class Params(Analyzer.Params):
        hop_s: float = Field(0.1, ge=0.01, le=1.0, description="Loudness block length in seconds.")
        silence_db: float = Field(-50.0, le=0, description="Blocks quieter than this (dBFS) are silent.")
        min_silence_s: float = Field(0.5, gt=0, description="Shortest silent stretch reported.")
        window_s: float = Field(10.0, ge=2.0, le=120.0, description="Window for tempo and onset density.")
        window_hop_s: float = Field(5.0, gt=0, description="Step between tempo/onset windows.")

        @model_validator(mode="after")
        def _hop_fits(self) -> "AudioAnalysis.Params":
            block = self.hop_s * SR
            if abs(block - round(block)) > 1e-6 or (CHUNK_S * SR) % round(block):
                raise ValueError(f"hop_s={self.hop_s} must divide {CHUNK_S:g} s into whole "
                                 f"samples at {SR} Hz (e.g. 0.05, 0.1, 0.2, 0.25, 0.5)")
            return self

    @classmethod
    def check_available(cls) -> str | None:
        import importlib.util

        if importlib.util.find_spec("librosa") is None:
            return "audio_analysis needs librosa: pip install librosa"
        return None

    def load(self, device: str, models: dict) -> None:
        try:  # the imports cost seconds; doing them here keeps them out of analyze's timing
            import librosa.feature  # noqa: F401
            import librosa.onset  # noqa: F401
        except ImportError as exc:
            raise AnalyzerUnavailable(f"audio_analysis needs librosa ({exc}): pip install librosa") from exc

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        audio = inputs.audio
        if audio is None:  # the runner skips us first (requires_audio); this guards direct calls
            raise AnalyzerUnavailable("audio_analysis: the video has no audio stream")
        p = self.params
        block = int(round(p.hop_s * SR))
        t0 = audio.start_time
        levels: list[np.ndarray] = []
        envelope: list[np.ndarray] = []
        onsets: list[np.ndarray] = []
        ctx = int(CONTEXT_S * SR)
        tail = np.zeros(0, dtype=np.float32)
        done = 0
        for start, samples in audio.chunks(CHUNK_S, overlap=CONTEXT_S):
            main = samples[:int(CHUNK_S * SR)]
            levels.append(rms_dbfs(main, block))
            env, on = self._onsets(tail, samples, main.size)
            envelope.append(env)
            onsets.append(start + on)
            tail = main[-ctx:]
            done += main.size
            inputs.report(0.8 * done / max(1, audio.count))

        db = np.concatenate(levels) if levels else np.zeros(0)
        env = np.concatenate(envelope) if envelope else np.zeros(0)
        onset_t = np.concatenate(onsets) if onsets else np.zeros(0)
        # an "onset" with only silence around it is noise made loud by normalisation: drop it
        # (an onset frame is centred up to N_FFT/2 samples before the sound, so look one block on)
        if onset_t.size and db.size:
            k = np.clip(((onset_t - t0) / p.hop_s).astype(int), 0, db.size - 1)
            around = np.maximum(db[k], db[np.minimum(k + 1, db.size - 1)])
            onset_t = onset_t[around >= p.silence_db]

        duration = audio.duration
        silences = self._silences(db, t0)
        windows, tempo_data = self._windows(env, onset_t, t0, duration)
        inputs.report(1.0)

        times = [round(t0 + (i + 0.5) * p.hop_s, 4) for i in range(db.size)]
        series = [Series(name="loudness", unit="dBFS", times=times, values=[round(float(v), 2) for v in db])]
        wt = [round(w["time"], 3) for w in windows]
        series += [Series(name="onset_density", unit="1/s", times=wt, values=[w["onset_density"] for w in windows]),
                   Series(name="tempo", unit="BPM", times=wt, values=[w["tempo"] for w in windows]),
                   Series(name="pulse_clarity", unit="", times=wt, values=[w["pulse_clarity"] for w in windows])]
        silence_s = float(sum(e.duration for e in silences))
        power = np.power(10.0, db / 10.0)
        data: dict[str, Any] = {
            **tempo_data,
            "onset_rate": round(onset_t.size / duration, 3) if duration > 0 else None,
            "mean_dbfs": round(float(10 * np.log10(max(power.mean(), 1e-10))), 2) if db.size else None,
            "peak_dbfs": round(float(db.max()), 2) if db.size else None,
            "silence_s": round(silence_s, 3),
            "silence_fraction": round(silence_s / duration, 4) if duration > 0 else None,
        }
        return self.track(events=silences, series=series, data=data)

    # --- steps --------------------------------------------------------------------------
    def _onsets(self, tail: np.ndarray, samples: np.ndarray, main_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Onset envelope frames of the chunk's main part, and onset times (s) relative to its start.

        ``tail`` (the end of the previous chunk) and the overlap after ``main_len`` are context only.
        """
        import librosa.onset

        y = np.concatenate([tail, samples]).astype(np.float32, copy=False)
        lead = tail.size // ONSET_HOP
        frames = -(-main_len // ONSET_HOP)
        if y.size < N_FFT:
            return np.zeros(frames, dtype=np.float32), np.zeros(0)
        full = librosa.onset.onset_strength(y=y, sr=SR, hop_length=ONSET_HOP, n_fft=N_FFT, n_mels=N_MELS)
        peaks = librosa.onset.onset_detect(onset_envelope=full, sr=SR, hop_length=ONSET_HOP, units="frames")
        peaks = peaks[(peaks >= lead) & (peaks < lead + frames)] - lead
        env = full[lead:lead + frames]
        if env.size < frames:
            env = np.pad(env, (0, frames - env.size))
        return env.astype(np.float32), peaks * ONSET_HOP / SR

    def _silences(self, db: np.ndarray, t0: float) -> list[Event]:
        p = self.params
        min_blocks = max(1, int(np.ceil(p.min_silence_s / p.hop_s - 1e-9)))
        events = []
        for a, b in quiet_runs(db < p.silence_db, min_blocks):
            events.append(Event(start=round(t0 + a * p.hop_s, 4), end=round(t0 + b * p.hop_s, 4),
                                label="silence", data={"mean_db": round(float(db[a:b].mean()), 2)}))
        return events

    def _windows(self, env: np.ndarray, onset_t: np.ndarray, t0: float,
                 duration: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Onset density, tempo and pulse clarity per sliding window, and the file's tempo."""
        import librosa.feature

        p = self.params
        rate = SR / ONSET_HOP
        half = TEMPO_WIN // 2
        windows: list[dict[str, Any]] = []
        total = np.zeros((TEMPO_WIN, 1))
        weight = 0
        span = min(p.window_s, duration) if duration > 0 else 0.0
        starts: list[float] = []
        if span > 0:  # every window_hop_s, plus one ending at the end so the tail is covered
            starts = list(np.arange(0.0, duration - span, p.window_hop_s)) + [duration - span]
        for ws in starts:
            we = ws + span
            a, b = int(ws * rate), min(env.size, int(np.ceil(we * rate)))
            n_on = int(np.count_nonzero((onset_t >= t0 + ws) & (onset_t < t0 + we)))
            tempo = clarity = None
            # a tempo needs a few beats; sparse clicks may leave most blocks silent, so gate on onsets
            if b - a >= TEMPO_WIN // 2 and n_on >= MIN_BEATS:
                seg = env[max(0, a - half):b + half]
                tg = librosa.feature.tempogram(onset_envelope=seg, sr=SR, hop_length=ONSET_HOP,
                                               win_length=TEMPO_WIN)
                off = a - max(0, a - half)
                mean = tg[:, off:off + (b - a)].mean(axis=1, keepdims=True)
                if np.isfinite(mean).all() and mean[1:].max() > 0:
                    tempo, clarity = self._tempo(mean)
                    total += mean * (b - a)
                    weight += b - a
            windows.append({"time": t0 + (ws + we) / 2, "onset_density": round(n_on / span, 3),
                            "tempo": tempo, "pulse_clarity": clarity})
        data: dict[str, Any] = {"tempo_bpm": None, "pulse_clarity": None}
        if weight:
            data["tempo_bpm"], data["pulse_clarity"] = self._tempo(total / weight)
        return windows, data

    @staticmethod
    def _tempo(mean_tg: np.ndarray) -> tuple[float, float]:
        """BPM (librosa's prior-weighted pick) and the autocorrelation at that period (0..1)."""
        import librosa

        bpm = float(librosa.feature.tempo(tg=mean_tg, sr=SR, hop_length=ONSET_HOP, aggregate=None)[0])
        bpms = librosa.tempo_frequencies(TEMPO_WIN, sr=SR, hop_length=ONSET_HOP)
        lag = int(np.argmin(np.abs(bpms[1:] - bpm))) + 1
        clarity = round(float(np.clip(mean_tg[lag, 0], 0.0, 1.0)), 3)
        if 1 < lag < TEMPO_WIN - 1:  # the lag grid is coarse (5% at 128 BPM): refine on a parabola
            y0, y1, y2 = (float(v) for v in mean_tg[lag - 1:lag + 2, 0])
            curve = y0 - 2 * y1 + y2
            if curve < 0:
                bpm = 60.0 * SR / ONSET_HOP / (lag + float(np.clip(0.5 * (y0 - y2) / curve, -0.5, 0.5)))
        return round(bpm, 2), clarity
