"""Temporal flow: the video's rhythm: shot-length pacing, energy over time, peaks and lulls.

Model-free. Reads the shots of the upstream track providing ``"shots"``, the loudness of the audio
(its RMS level in dBFS per ``hop_s``; with ``loudness: audio_analysis``, and that analyzer enabled
too, its ``loudness`` series instead: then a video without audio skips this analyzer, which is why
it is not the default) and every frame at 96 px wide (``cut_analysis``'s stream) for motion: the
mean absolute luma change between consecutive frames of one shot (a cut is not motion).

Every ``hop_s`` seconds three components are put on fixed scales (so a calm video stays calm; no
per-video normalisation): ``motion / motion_full``, ``(loudness_dB + 60) / 50`` and
``cut_rate / cuts_full`` (shot starts per minute in a ``pace_window_s`` window), each clipped to
0..1; ``energy`` is their mean (of those available), smoothed over ``smooth_s``.

Events: ``peak``: a local maximum of energy standing at least ``peak_prominence`` above its
surroundings, spanning where it stays above half that prominence; ``lull``: energy at most
``lull_level`` for at least ``min_lull_s``. Their data give the mean ``energy``, ``motion``,
``loudness_db`` and ``cut_rate`` over the event and a searchable ``text``.

Series: ``energy`` (0..1), ``motion`` (levels per frame), ``loudness`` (dBFS), ``cut_rate``
(1/min). Track data: ``shot_count``, ``mean_shot_s``, ``median_shot_s``, ``shot_s_cv``
(spread of shot lengths / mean), ``pacing`` (``fast``: median shot under 2 s, ``slow``: over 6 s,
else ``moderate``), ``pace_trend`` (``accelerating`` / ``decelerating`` when the median shot of the
second half is under 2/3 / over 3/2 of the first half's, else ``steady``), ``loudness_source``,
``mean_energy``, ``peak_count``, ``lull_count``.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from framework import Analyzer, AnalyzerInputs, Event, FrameSpec, Series, Track

from ._effects.signals import every_frame_spec, fmt_time, frame_signals, runs, shot_index
from ._shots import shot_intervals


class TemporalFlow(Analyzer):
    """Pacing (shot lengths), energy over time (motion, loudness, cut rate), and its peaks and lulls."""

    name = "temporal_flow"
    own_process = True  # mostly Python: beside GPU analyzers, in a process of its own
    cpu_priority = "low"  # nothing on the run's longest path waits for it: the decode and the VLM get the CPUs first
    version = "1.0.0"
    description = "The video's rhythm: shot-length pacing, energy (loudness, motion, cuts) over time, peaks and lulls."
    original_status = "active"
    depends_on = ("cut_analysis",)
    needs_audio = True

    def __init__(self, params: Any = None):
        super().__init__(params)
        if self.params.loudness == "audio_analysis":  # its track becomes an upstream of this instance
            self.depends_on = (*type(self).depends_on, "audio_analysis")

    class Params(Analyzer.Params):
        width: int = Field(96, ge=32, le=640, description="Analysis width in pixels; 96 shares cut_analysis's stream.")
        loudness: Literal["audio", "audio_analysis"] = Field(
            "audio", description="Where loudness comes from: the audio's RMS level, or audio_analysis's loudness series "
                                 "(enable audio_analysis too; a video without audio then skips this analyzer).")
        hop_s: float = Field(0.5, gt=0, description="Seconds between energy samples.")
        smooth_s: float = Field(2.0, gt=0, description="Moving-average length (s) of the energy curve.")
        pace_window_s: float = Field(10.0, gt=0, description="Window (s) over which the cut rate is counted.")
        motion_full: float = Field(10.0, gt=0, description="Mean luma change per frame (0..255) that counts as full motion.")
        cuts_full: float = Field(30.0, gt=0, description="Cuts per minute that count as full pace.")
        peak_prominence: float = Field(0.15, gt=0, le=1, description="How far (0..1) a peak stands above its surroundings.")
        lull_level: float = Field(0.15, ge=0, le=1, description="Energy (0..1) at or under which the video lulls.")
        min_lull_s: float = Field(3.0, gt=0, description="Shortest lull reported.")

    def frame_specs(self) -> list[FrameSpec]:
        return [every_frame_spec(self.params.width)]

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        p = self.params
        sig = frame_signals(inputs, self.frame_specs()[0], report=lambda f: inputs.report(0.8 * f))
        n = sig.times.size
        duration = inputs.video.duration or (sig.end_of(n - 1) if n else 0.0)
        shots = shot_intervals(inputs, duration)
        shot_of = shot_index(sig.times, shots)
        motion = sig.diff.astype(np.float64).copy()
        motion[np.r_[True, shot_of[1:] != shot_of[:-1]]] = np.nan  # a cut is not motion

        grid = np.arange(p.hop_s / 2, max(duration, p.hop_s), p.hop_s)  # window centres inside the video
        m = _window_mean(sig.times, motion, grid, p.hop_s)
        db, source = self._loudness(inputs, grid)
        starts = np.array([a for a, _ in shots[1:]])
        half = p.pace_window_s / 2
        span = np.clip(np.minimum(grid + half, duration) - np.maximum(grid - half, 0.0), p.hop_s, None)
        cut_rate = np.array([((starts >= g - half) & (starts < g + half)).sum() for g in grid]) / span * 60.0
        parts = [np.clip(m / p.motion_full, 0, 1), np.clip(cut_rate / p.cuts_full, 0, 1)]
        if db is not None:
            parts.append(np.clip((db + 60.0) / 50.0, 0, 1))
        stack = np.vstack(parts)
        raw = np.nanmean(np.where(np.isfinite(stack), stack, np.nan), axis=0)
        raw = np.where(np.isfinite(raw), raw, 0.0)
        k = max(1, int(round(p.smooth_s / p.hop_s)))
        energy = np.convolve(np.pad(raw, (k // 2, k - 1 - k // 2), mode="edge"), np.ones(k) / k, mode="valid")

        def describe(a: int, b: int) -> dict[str, Any]:
            sl = slice(a, b + 1)
            out = {"energy": round(float(energy[sl].mean()), 3),
                   "motion": _round(np.nanmean(m[sl]) if np.isfinite(m[sl]).any() else None),
                   "loudness_db": _round(np.nanmean(db[sl]) if db is not None and np.isfinite(db[sl]).any() else None),
                   "cut_rate": round(float(cut_rate[sl].mean()), 2)}
            return out

        events = []
        for a, b, top in _peaks(energy, p.peak_prominence):
            d = describe(a, b)
            start, end = max(0.0, grid[a] - p.hop_s / 2), min(duration, grid[b] + p.hop_s / 2)
            d["text"] = f"energy peak at {fmt_time(float(grid[top]))}: " + _what(d, p)
            events.append(Event(start=round(float(start), 3), end=round(float(end), 3), label="peak",
                                score=d["energy"], data=d))
        for a, b in runs(energy <= p.lull_level):
            start, end = max(0.0, grid[a] - p.hop_s / 2), min(duration, grid[b] + p.hop_s / 2)
            if end - start + 1e-6 < p.min_lull_s:
                continue
            d = describe(a, b)
            d["text"] = f"lull from {fmt_time(float(start))} to {fmt_time(float(end))}: " + _what(d, p)
            events.append(Event(start=round(float(start), 3), end=round(float(end), 3), label="lull",
                                score=round(1 - d["energy"], 3), data=d))
        events.sort(key=lambda e: e.start)
        inputs.report(1.0)

        times = [round(float(t), 3) for t in grid]
        series = [Series(name="energy", times=times, values=[round(float(v), 3) for v in energy]),
                  Series(name="motion", times=times, values=[_round(v) for v in m]),
                  Series(name="cut_rate", unit="1/min", times=times, values=[round(float(v), 2) for v in cut_rate])]
        if db is not None:
            series.append(Series(name="loudness", unit="dBFS", times=times, values=[_round(v) for v in db]))
        return self.track(events=events, series=series,
                          data={**_pacing(shots), "loudness_source": source,
                                "mean_energy": round(float(energy.mean()), 3) if energy.size else None,
                                "peak_count": sum(e.label == "peak" for e in events),
                                "lull_count": sum(e.label == "lull" for e in events)})

    def _loudness(self, inputs: AnalyzerInputs, grid: np.ndarray) -> tuple[np.ndarray | None, str | None]:
        """Loudness (dBFS) on ``grid``: audio_analysis's series when its track is ok, else the audio's RMS."""
        hop = self.params.hop_s
        track = inputs.upstream.get("audio_analysis")
        if track is not None and track.status == "ok":
            series = track.series_by_name("loudness")
            if series is not None and series.times:
                t = np.array(series.times, dtype=np.float64)
                v = np.array([np.nan if x is None else x for x in series.values], dtype=np.float64)
                power = _window_mean(t, np.power(10.0, v / 10.0), grid, hop)
                return 10.0 * np.log10(np.maximum(power, 1e-10)), "audio_analysis"
        audio = inputs.audio
        if audio is None or not audio.count:
            return None, None
        out = np.full(grid.size, np.nan)
        for i, g in enumerate(grid):
            a = max(0, int((g - hop / 2 - audio.start_time) * audio.sample_rate))
            b = max(a, int((g + hop / 2 - audio.start_time) * audio.sample_rate))
            y = np.asarray(audio.samples[a:b], dtype=np.float64)
            if y.size:
                out[i] = 10.0 * np.log10(max(float(np.mean(y * y)), 1e-10))
        return out, "audio"


def _window_mean(times: np.ndarray, values: np.ndarray, grid: np.ndarray, hop: float) -> np.ndarray:
    """Mean of the finite ``values`` whose time falls in each ``hop`` window centred on ``grid``."""
    out = np.full(grid.size, np.nan)
    if times.size == 0:
        return out
    lo = np.searchsorted(times, grid - hop / 2)
    hi = np.searchsorted(times, grid + hop / 2)
    for i, (a, b) in enumerate(zip(lo, hi)):
        block = values[a:b]
        block = block[np.isfinite(block)]
        if block.size:
            out[i] = block.mean()
    return out


def _peaks(energy: np.ndarray, prominence: float) -> list[tuple[int, int, int]]:
    """(first, last, top) sample indices of each peak standing at least ``prominence`` above the
    higher of the lowest points between it and the nearest higher sample on either side (the
    video's ends count as the curve's minimum, so a flat video has no peak). A peak spans the
    samples around its top that stay above half its prominence."""
    n = energy.size
    if n < 3:
        return []
    low = float(energy.min())
    out = []
    i = 0
    while i < n:
        j = i
        while j + 1 < n and energy[j + 1] == energy[i]:
            j += 1  # a plateau is one candidate
        left_ok = i == 0 or energy[i - 1] < energy[i]
        right_ok = j == n - 1 or energy[j + 1] < energy[i]
        if left_ok and right_ok:
            top = float(energy[i])
            bases = []
            for side in (range(i - 1, -1, -1), range(j + 1, n)):
                base = top
                for k in side:
                    if energy[k] > top:
                        break
                    base = min(base, float(energy[k]))
                else:
                    base = min(base, low)  # reached the end of the video
                bases.append(base)
            prom = top - max(bases)
            if prom >= prominence:
                level = top - prom / 2
                first, last = i, j
                while first > 0 and energy[first - 1] > level:
                    first -= 1
                while last < n - 1 and energy[last + 1] > level:
                    last += 1
                out.append((first, last, (i + j) // 2))
        i = j + 1
    return out


def _what(d: dict[str, Any], p: Any) -> str:
    words = []
    if d["motion"] is not None:
        words.append("much motion" if d["motion"] >= 0.5 * p.motion_full else "little motion")
    if d["loudness_db"] is not None:
        words.append("loud" if d["loudness_db"] >= -25 else "quiet" if d["loudness_db"] < -45 else "moderate sound")
    words.append("quick cuts" if d["cut_rate"] >= 0.5 * p.cuts_full else "few cuts")
    return ", ".join(words)


def _pacing(shots: list[tuple[float, float]]) -> dict[str, Any]:
    lengths = np.array([b - a for a, b in shots if b > a])
    if not lengths.size:
        return {"shot_count": 0, "mean_shot_s": None, "median_shot_s": None, "shot_s_cv": None,
                "pacing": None, "pace_trend": None}
    median = float(np.median(lengths))
    mid = (shots[0][0] + shots[-1][1]) / 2
    first = [b - a for a, b in shots if (a + b) / 2 < mid]
    second = [b - a for a, b in shots if (a + b) / 2 >= mid]
    trend = "steady"
    if len(first) >= 2 and len(second) >= 2:
        ratio = float(np.median(second) / np.median(first))
        trend = "accelerating" if ratio < 2 / 3 else "decelerating" if ratio > 1.5 else "steady"
    return {"shot_count": int(lengths.size), "mean_shot_s": round(float(lengths.mean()), 3),
            "median_shot_s": round(median, 3), "shot_s_cv": round(float(lengths.std() / lengths.mean()), 3),
            "pacing": "fast" if median < 2 else "slow" if median > 6 else "moderate", "pace_trend": trend}


def _round(v: Any) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 2)
