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

Onsets and tempo follow librosa's definitions (``onset_strength`` spectral flux on a 64-band
mel spectrogram at 40 Hz, ``onset_detect``'s peak picker, an 8 s autocorrelation ``tempogram``
and ``tempo``'s log-normal prior around 120 BPM), re-implemented in numpy: importing librosa
costs 3-5 s of CPU per process (scipy, numba), more than this analyzer's whole work on an hour
of audio. ``tests/test_audio_analysis.py`` checks these functions against librosa itself.
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


# --- librosa's onset and tempo functions, in numpy ------------------------------------------

def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``)."""
    f = np.asarray(f, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep, f * 3.0 / 200.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * 200.0 / 3.0)


def mel_filterbank(sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) Slaney-normalised triangular filters, as ``librosa.filters.mel``."""
    freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    width = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / width[:-1, None]
    upper = ramps[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


_MEL_T = mel_filterbank().T.astype(np.float32)
_HANN_FFT = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic
_HANN_TEMPO = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(TEMPO_WIN) / TEMPO_WIN)


def onset_strength(y: np.ndarray) -> np.ndarray:
    """Spectral-flux onset envelope at ``SR / ONSET_HOP`` Hz; frame ``k`` is at ``k * ONSET_HOP`` samples.

    As ``librosa.onset.onset_strength(y=y, sr=SR, hop_length=ONSET_HOP, n_fft=N_FFT,
    n_mels=N_MELS)``: centred STFT, mel power in dB (80 dB range), positive first difference
    averaged over bands, delayed by ``1 + N_FFT // (2 * ONSET_HOP)`` frames.
    """
    y = np.asarray(y, dtype=np.float32)
    n_frames = 1 + y.size // ONSET_HOP
    padded = np.pad(y, (N_FFT // 2, N_FFT // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::ONSET_HOP][:n_frames]
    spec = np.fft.rfft(frames * _HANN_FFT, axis=1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    mel_db = 10.0 * np.log10(np.maximum(power @ _MEL_T, 1e-10))
    mel_db = np.maximum(mel_db, mel_db.max() - 80.0)
    flux = np.maximum(0.0, np.diff(mel_db, axis=0)).mean(axis=1)
    env = np.concatenate([np.zeros(1 + N_FFT // (2 * ONSET_HOP), dtype=np.float32), flux])
    return env[:n_frames].astype(np.float32)


def pick_onsets(env: np.ndarray) -> np.ndarray:
    """Frame indices of onsets, as ``librosa.onset.onset_detect(onset_envelope=env, sr=SR,
    hop_length=ONSET_HOP)``: with the envelope scaled to 0..1, a frame at least as high as the
    30 ms before it, 0.07 above the mean of the 100 ms around it, and 30 ms after the last onset."""
    x = np.asarray(env, dtype=np.float64)
    if x.size == 0 or not np.isfinite(x).all():
        return np.zeros(0, dtype=np.int64)
    x = x - x.min()
    x = x / (x.max() + np.finfo(np.float64).tiny)
    if not x.any():
        return np.zeros(0, dtype=np.int64)
    pre_max, post_max = int(0.03 * SR // ONSET_HOP), 1
    pre_avg, post_avg = int(0.10 * SR // ONSET_HOP), int(0.10 * SR // ONSET_HOP) + 1
    wait = int(0.03 * SR // ONSET_HOP)
    n = x.size
    idx = np.arange(n)
    padded = np.pad(x, (pre_max, post_max), constant_values=-np.inf)
    local_max = np.lib.stride_tricks.sliding_window_view(padded, pre_max + post_max)[:n].max(axis=1)
    csum = np.concatenate([[0.0], np.cumsum(x)])
    lo, hi = np.maximum(0, idx - pre_avg), np.minimum(n, idx + post_avg)
    mean = (csum[hi] - csum[lo]) / (hi - lo)
    peaks: list[int] = []
    for c in np.flatnonzero((x == local_max) & (x >= mean + 0.07)):
        if not peaks or c > peaks[-1] + wait:  # greedy, as librosa: a peak mutes the next `wait` frames
            peaks.append(int(c))
    return np.asarray(peaks, dtype=np.int64)


def tempogram(env: np.ndarray, start: int, stop: int) -> np.ndarray:
    """(TEMPO_WIN, stop - start) autocorrelation tempogram of ``env`` for frames start..stop-1.

    As ``librosa.feature.tempogram(onset_envelope=env, win_length=TEMPO_WIN)``: a Hann-windowed
    8 s window centred on each frame (the envelope ramped down to 0 past its ends), its
    autocorrelation, each column scaled so that its largest value is 1.
    """
    half = TEMPO_WIN // 2
    lo, hi = max(0, start - half), min(len(env), stop + half)  # only the part these frames see
    part = np.asarray(env[lo:hi], dtype=np.float64)
    before, after = half - (start - lo), half - (hi - stop)
    if before or after:  # librosa ramps the envelope linearly to 0 over half a window at its ends
        ramp = np.pad(np.asarray(env, dtype=np.float64), (half, half), mode="linear_ramp", end_values=(0, 0))
        part = ramp[start:stop + 2 * half]
    frames = np.lib.stride_tricks.sliding_window_view(part, TEMPO_WIN)[:stop - start]
    n_fft = 2 * TEMPO_WIN
    spec = np.fft.rfft(frames * _HANN_TEMPO, n=n_fft, axis=1)
    ac = np.fft.irfft(spec.real ** 2 + spec.imag ** 2, n=n_fft, axis=1)[:, :TEMPO_WIN]
    peak = np.abs(ac).max(axis=1, keepdims=True)
    return (ac / np.where(peak > 0, peak, 1.0)).T


def tempo_bpm(mean_tg: np.ndarray) -> tuple[float, float]:
    """Tempo (BPM) and pulse clarity (0..1) of a time-averaged tempogram column (TEMPO_WIN,).

    The period is librosa's ``tempo`` pick (``log1p(1e6 * tg)`` plus a log-normal prior around
    120 BPM one octave wide; nothing at 320 BPM or faster), refined between lags on a parabola
    (the lag grid is coarse: 5% at 128 BPM). Pulse clarity is the autocorrelation at that lag.
    """
    tg = np.asarray(mean_tg, dtype=np.float64).reshape(-1)
    rate = SR / ONSET_HOP
    with np.errstate(divide="ignore"):
        bpms = 60.0 * rate / np.arange(TEMPO_WIN, dtype=np.float64)
    logprior = -0.5 * (np.log2(bpms) - np.log2(120.0)) ** 2
    logprior[: int(np.argmax(bpms < 320.0))] = -np.inf
    lag = int(np.argmax(np.log1p(1e6 * tg) + logprior))
    clarity = round(float(np.clip(tg[lag], 0.0, 1.0)), 3)
    exact = float(lag)
    if 1 < lag < TEMPO_WIN - 1:
        y0, y1, y2 = tg[lag - 1], tg[lag], tg[lag + 1]
        curve = y0 - 2 * y1 + y2
        if curve < 0:
            exact += float(np.clip(0.5 * (y0 - y2) / curve, -0.5, 0.5))
    return round(60.0 * rate / exact, 2), clarity


class AudioAnalysis(Analyzer):
    """Loudness, silences, tempo and onset density of the soundtrack (numpy only)."""

    name = "audio_analysis"
    original_status = "active"
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

        ``tail`` (the end of the previous chunk) and the overlap after ``main_len`` are context
        only; the envelope is scaled per chunk for peak picking, so quiet passages keep their onsets.
        """
        y = np.concatenate([tail, samples])
        lead = tail.size // ONSET_HOP
        frames = -(-main_len // ONSET_HOP)
        full = onset_strength(y)
        peaks = pick_onsets(full)
        peaks = peaks[(peaks >= lead) & (peaks < lead + frames)] - lead
        env = full[lead:lead + frames]
        if env.size < frames:
            env = np.pad(env, (0, frames - env.size))
        return env, peaks * ONSET_HOP / SR

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
        p = self.params
        rate = SR / ONSET_HOP
        windows: list[dict[str, Any]] = []
        total = np.zeros(TEMPO_WIN)
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
                mean = tempogram(env, a, b).mean(axis=1)
                if np.isfinite(mean).all() and mean[1:].max() > 0:
                    tempo, clarity = tempo_bpm(mean)
                    total += mean * (b - a)
                    weight += b - a
            windows.append({"time": t0 + (ws + we) / 2, "onset_density": round(n_on / span, 3),
                            "tempo": tempo, "pulse_clarity": clarity})
        data: dict[str, Any] = {"tempo_bpm": None, "pulse_clarity": None}
        if weight:
            data["tempo_bpm"], data["pulse_clarity"] = tempo_bpm(total / weight)
        return windows, data
