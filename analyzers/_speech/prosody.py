"""Prosody: syllable nuclei, pauses, pitch (librosa pyin), intonation and fillers.

- ``intensity_db``: the speech-band (300-3400 Hz) level per 10 ms, smoothed over 50 ms.
- ``syllable_nuclei``: peaks of that level standing out by ``prominence_db`` from the dips around
  them, no more than ``floor_db`` under the loudest, voiced (periodic at a speaking pitch) and at
  least 100 ms apart: one per syllable (the approach of de Jong & Wempe, 2009, "Praat script to
  detect syllable nuclei"). ``tests/test_speech_rate.py`` counts known syllables in generated
  speech; on ``jfk.flac`` it finds 24 of the 28 syllables (``bench/audio_eval.py``).
- ``quiet_spans``: stretches inside a speech segment where the level stays ``floor_db`` under
  the segment's loud frames (pauses a voice-activity segment still contains).
- ``pitch``: librosa's probabilistic YIN at 0.25-semitone resolution (the default 0.1 costs
  about 4 times more and buys nothing for intonation ranges), unvoiced frames as NaN.
- ``claim_numba_cache``: a numba cache folder of its own for each pitch worker process (numba's
  cache is not safe to write from several processes at once).
- ``intonation``: median, range (5th to 95th percentile, in semitones), slope and the direction
  of the final 0.5 s of a pitch contour.
- ``FILLERS`` / ``find_fillers``: hesitation words in a transcript.
"""
from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from framework import AUDIO_SAMPLE_RATE

from ..audio_analysis import quiet_runs

SR = AUDIO_SAMPLE_RATE
HOP = 160  # 10 ms


def intensity_db(y: np.ndarray) -> np.ndarray:
    """Speech-band level (dBFS) per 10 ms frame of ``y``, smoothed over 50 ms."""
    from scipy.signal import butter, sosfilt

    if y.size < HOP:
        return np.zeros(0)
    sos = butter(4, [300, 3400], btype="bandpass", fs=SR, output="sos")
    band = sosfilt(sos, y.astype(np.float64))
    n = band.size // HOP
    power = np.square(band[:n * HOP]).reshape(n, HOP).mean(axis=1)
    kernel = np.ones(5) / 5
    smooth = np.convolve(power, kernel, mode="same")
    return 10 * np.log10(np.maximum(smooth, 1e-12))


def is_voiced(y: np.ndarray, frame: int, threshold: float = 0.4, fmin: float = 60.0, fmax: float = 400.0) -> bool:
    """Whether the 40 ms of ``y`` around 10 ms frame ``frame`` is periodic at a pitch between fmin and fmax
    (the normalised autocorrelation peaks above ``threshold``)."""
    centre = frame * HOP + HOP // 2
    seg = y[max(0, centre - 320):centre + 320].astype(np.float64)
    if seg.size < 400:
        return False
    seg = seg - seg.mean()
    spec = np.fft.rfft(seg, n=2 * seg.size)
    ac = np.fft.irfft(spec.real ** 2 + spec.imag ** 2)[:seg.size]
    if ac[0] <= 0:
        return False
    lo, hi = int(SR / fmax), min(seg.size - 1, int(SR / fmin))
    return float(ac[lo:hi].max() / ac[0]) > threshold


def syllable_nuclei(y: np.ndarray, db: np.ndarray | None = None, prominence_db: float = 2.0,
                    floor_db: float = 25.0, min_gap_s: float = 0.1, voicing: float = 0.4) -> np.ndarray:
    """Frame indices (10 ms) of syllable nuclei in ``y``: intensity peaks that stand out by
    ``prominence_db``, lie within ``floor_db`` of the loudest, are voiced (a consonant's burst is
    not a syllable) and, of voiced peaks closer than ``min_gap_s``, the louder."""
    from scipy.signal import find_peaks

    db = intensity_db(y) if db is None else db
    if db.size < 3:
        return np.zeros(0, dtype=int)
    top = np.percentile(db, 99)
    peaks, _ = find_peaks(db, height=top - floor_db, prominence=prominence_db)
    voiced = [int(i) for i in peaks if is_voiced(y, int(i), voicing)]
    gap = max(1, int(round(min_gap_s * SR / HOP)))
    keep: list[int] = []
    for i in sorted(voiced, key=lambda k: -db[k]):  # the loudest first, as find_peaks' distance does
        if all(abs(i - j) >= gap for j in keep):
            keep.append(i)
    return np.array(sorted(keep), dtype=int)


def quiet_spans(db: np.ndarray, floor_db: float = 25.0, min_s: float = 0.25) -> list[tuple[float, float]]:
    """(start, end) seconds from the contour's start where it stays ``floor_db`` under its loud frames."""
    if db.size == 0:
        return []
    frame = HOP / SR
    return [(a * frame, b * frame) for a, b in quiet_runs(db < np.percentile(db, 95) - floor_db, 1)
            if (b - a) * frame >= min_s and a > 0 and b < db.size]  # inside the segment, not at its edges


def pitch(y: np.ndarray, fmin: float = 65.0, fmax: float = 400.0, hop_s: float = 0.02,
          resolution: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(times from the start of ``y``, f0 in Hz with NaN where unvoiced), by librosa's pyin."""
    import librosa

    hop = max(1, int(round(hop_s * SR)))
    frame = max(1024, int(2 ** math.ceil(math.log2(2.2 * SR / fmin))))
    if y.size < frame:
        return np.zeros(0), np.zeros(0)
    f0, voiced, _prob = librosa.pyin(y.astype(np.float32), fmin=fmin, fmax=fmax, sr=SR, frame_length=frame,
                                     hop_length=hop, resolution=resolution, center=True)
    f0 = np.where(voiced, f0, np.nan)
    return np.arange(f0.size) * hop / SR, f0


_HELD_SLOT: list[Any] = []  # the open lock file of this process's numba cache folder, held while it lives


def claim_numba_cache(root: Path | None = None, slots: int = 64) -> Path | None:
    """Give this process a numba cache folder of its own, before numba is imported.

    numba caches librosa's compiled functions on disk, and that cache is not safe to write from
    several processes at once (numba/numba#10128, #4807): pitch workers compiling side by side left
    a cache on which later runs' workers died of SIGSEGV (an H200 machine, eleventh session). So each
    pitch worker takes the first free folder ``slot-K`` under ``root`` (default
    ``$XDG_CACHE_HOME/framework/numba``), holds its lock while it lives, and points
    ``NUMBA_CACHE_DIR`` there: no two live processes write one cache, and the next run's workers find
    what these compiled. None (numba's own cache) when numba is already imported here, no slot is
    free, or the platform has no ``fcntl`` (Windows)."""
    try:
        import fcntl
    except ImportError:
        return None
    if "numba" in sys.modules:
        return None  # numba read NUMBA_CACHE_DIR when it was imported
    if root is None:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "framework" / "numba"
    for k in range(slots):
        folder = root / f"slot-{k}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fh = open(folder / ".lock", "a+")
        except OSError:
            return None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        _HELD_SLOT.append(fh)
        os.environ["NUMBA_CACHE_DIR"] = str(folder)
        return folder
    return None


class PitchTracker:
    """``pitch`` with fixed settings, as a callable a worker process builds once
    (``framework.ProcessWorkers("analyzers._speech.prosody:PitchTracker", (fmin, fmax, hop_s), n)``);
    building it gives the worker a numba cache of its own (``claim_numba_cache``)."""

    def __init__(self, settings: tuple[float, float, float]):
        self.fmin, self.fmax, self.hop_s = settings
        self.numba_cache = claim_numba_cache()

    def __call__(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pitch(y, self.fmin, self.fmax, self.hop_s)


@dataclass(frozen=True)
class Intonation:
    """The shape of one pitch contour."""

    f0_median_hz: float | None
    f0_low_hz: float | None
    f0_high_hz: float | None
    range_semitones: float | None
    slope_st_per_s: float | None
    final: str | None  # "rising", "falling" or "level": the last 0.5 s of voiced pitch
    voiced_fraction: float

    def as_dict(self) -> dict[str, float | str | None]:
        r = lambda v, n=2: None if v is None else round(float(v), n)  # noqa: E731
        return {"f0_median_hz": r(self.f0_median_hz, 1), "f0_low_hz": r(self.f0_low_hz, 1),
                "f0_high_hz": r(self.f0_high_hz, 1), "range_semitones": r(self.range_semitones),
                "slope_st_per_s": r(self.slope_st_per_s), "final": self.final,
                "voiced_fraction": round(self.voiced_fraction, 3)}


def semitones(f0: np.ndarray, ref: float) -> np.ndarray:
    return 12.0 * np.log2(f0 / ref)


def intonation(times: np.ndarray, f0: np.ndarray, final_s: float = 0.5, level_st: float = 1.0) -> Intonation:
    """Median, 5-95 % range (semitones), overall slope and final direction of a contour."""
    voiced = np.isfinite(f0)
    frac = float(voiced.mean()) if f0.size else 0.0
    if voiced.sum() < 5:
        return Intonation(None, None, None, None, None, None, frac)
    t, f = times[voiced], f0[voiced]
    med = float(np.median(f))
    lo, hi = np.percentile(f, [5, 95])
    st = semitones(f, med)
    slope = float(np.polyfit(t, st, 1)[0]) if np.ptp(t) > 0 else 0.0
    tail = t >= t[-1] - final_s
    final = None
    if tail.sum() >= 3 and np.ptp(t[tail]) > 0:
        change = float(np.polyfit(t[tail], st[tail], 1)[0]) * float(np.ptp(t[tail]))
        final = "rising" if change > level_st else "falling" if change < -level_st else "level"
    return Intonation(med, float(lo), float(hi), float(12.0 * np.log2(hi / lo)), slope, final, frac)


FILLERS = ("um", "umm", "uh", "uhm", "uh-huh", "er", "erm", "ah", "eh", "hmm", "mm", "mhm")
_WORD = re.compile(r"[^\w'-]+")


def is_filler(word: str, fillers: tuple[str, ...] = FILLERS) -> bool:
    """Whether a transcript word (punctuation and case ignored) is a hesitation filler."""
    return _WORD.sub("", word.lower()) in fillers
