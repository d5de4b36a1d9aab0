"""Generated audio with known truth, in numpy only (tests and benchmarks; the GPU machine has no scipy).

- ``formant_speech``: syllables, each a short consonant (shaped noise) and a vowel: the harmonics
  of a pitch contour weighted by three vowel formants (additive synthesis), under a smooth
  envelope, with short gaps. silero-vad hears it as speech; the truth is each syllable's middle.
- ``tone``, ``chords`` (sustained triads with harmonics, a new chord every two beats), ``noise``,
  ``silence``, ``click`` (a 60 ms decaying broadband knock).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SR = 16_000
VOWELS = {"a": (730, 1090, 2440), "i": (270, 2290, 3010), "u": (300, 870, 2240), "e": (530, 1840, 2480),
          "o": (570, 840, 2410)}


@dataclass
class Speech:
    """Formant speech and its truth: the middle of each syllable (seconds from its start)."""

    samples: np.ndarray
    syllables: list[float] = field(default_factory=list)


def _formant_gain(freqs: np.ndarray, formants: tuple[int, int, int]) -> np.ndarray:
    """A vowel's spectral envelope at ``freqs``: three resonances (bandwidths 80, 120, 160 Hz)
    over a falling glottal slope."""
    gain = np.zeros_like(freqs)
    for k, (f, bw) in enumerate(zip(formants, (80.0, 120.0, 160.0))):
        gain += (1.0 / (k + 1)) / np.sqrt(1.0 + ((freqs - f) / (bw / 2)) ** 2)
    return gain / np.maximum(1.0, freqs / 500.0) ** 0.5


def _shaped_noise(n: int, centre: float, width: float, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec *= np.exp(-0.5 * ((f - centre) / width) ** 2)
    y = np.fft.irfft(spec, n)
    return y / (np.abs(y).max() + 1e-9)


def formant_speech(seconds: float, f0: float = 120.0, seed: int = 0, level: float = 0.3,
                   glide: tuple[float, float] | None = None) -> Speech:
    """Syllables of 120-300 ms (a consonant burst, then a vowel) with 20-120 ms gaps.

    ``glide=(f_start, f_end)``: the pitch moves geometrically from one to the other over the whole
    stretch (an intonation contour); else it wobbles around ``f0``.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    out = np.zeros(n)
    truth: list[float] = []
    t = 0.0
    while t < seconds - 0.15:
        d = rng.uniform(0.12, 0.3)
        a, b = int(t * SR), min(n, int((t + d) * SR))
        m = b - a
        tt = (a + np.arange(m)) / SR
        if glide:
            f = glide[0] * (glide[1] / glide[0]) ** (tt / seconds)
        else:
            f = f0 * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * tt + rng.uniform(0, 6))) * rng.uniform(0.85, 1.2)
        phase = 2 * np.pi * np.cumsum(f) / SR
        formants = VOWELS[str(rng.choice(list(VOWELS)))]
        harmonics = np.arange(1, int(4000 / f.min()) + 1)
        gains = _formant_gain(harmonics[:, None] * f[None, :], formants)  # (harmonics, samples)
        voiced = (gains * np.sin(harmonics[:, None] * phase[None, :])).sum(axis=0)
        env = np.sin(np.pi * np.arange(m) / m) ** 0.7
        c = int(rng.uniform(0.02, 0.06) * SR)
        burst = _shaped_noise(c, rng.uniform(2500, 5000), 700, rng) * 0.3 * np.abs(voiced).max()
        out[a:b] += np.concatenate([burst, voiced * env])[:m]
        truth.append(t + d / 2)
        t += d + rng.uniform(0.02, 0.12)
    out = out / (np.abs(out).max() + 1e-9) * level
    return Speech(out.astype(np.float32), truth)


def tone(seconds: float, freq: float = 440.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chords(seconds: float, level: float = 0.3, bpm: float = 100.0) -> np.ndarray:
    """Sustained triads (root, third, fifth with harmonics), a new chord every two beats."""
    n = int(seconds * SR)
    out = np.zeros(n)
    step = 2 * 60.0 / bpm
    for i, t in enumerate(np.arange(0.0, seconds, step)):
        a, b = int(t * SR), min(n, int((t + step) * SR))
        tt = np.arange(b - a) / SR
        root = (220.0, 246.9, 261.6, 196.0)[i % 4]
        y = sum(np.sin(2 * np.pi * root * ratio * h * tt) / h for ratio in (1.0, 1.26, 1.5) for h in (1, 2, 3))
        out[a:b] += y * np.minimum(1.0, tt / 0.02) * (0.6 + 0.4 * np.exp(-tt))
    return (out / (np.abs(out).max() + 1e-9) * level).astype(np.float32)


def noise(seconds: float, level: float = 0.05, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, level, int(seconds * SR)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), dtype=np.float32)


def click(level: float = 0.8, seed: int = 0) -> np.ndarray:
    """A 60 ms decaying broadband burst (a knock)."""
    rng = np.random.default_rng(seed)
    n = int(0.06 * SR)
    return (rng.normal(0, 1, n) * np.exp(-np.arange(n) / (0.01 * SR)) * level).clip(-1, 1).astype(np.float32)
