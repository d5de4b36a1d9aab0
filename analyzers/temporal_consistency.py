"""Temporal consistency: flicker and sudden colour or exposure jumps within a shot.

Model-free; disabled in the original system (and by default here). Reads every frame at 96 px
wide (``cut_analysis``'s stream, so nothing more is decoded) and the shots of the upstream track
providing ``"shots"``; frames within ``guard_s`` of a shot boundary and inside its fades and
dissolves are ignored, so edits are never reported as inconsistencies. A boundary whose frames
either side are one picture (per-channel correlation at least ``same_picture``) is not an edit: a
shot detector can take a global exposure jump for a cut, and that jump is reported here.

- ``flicker``: inside a shot, the mean brightness minus its moving average over ``trend_s``
  swings up and down: in a window of ``flicker_window_s``, at least ``flicker_swings`` alternations
  between ``+flicker_amp/2`` and ``-flicker_amp/2`` (0..255 levels). Slow light changes and camera
  moves are in the moving average; a single flash makes one swing, not several. Data: ``amplitude``
  (levels, RMS of the residual), ``frequency_hz`` (swings per second / 2).
- ``exposure_jump`` / ``color_jump``: inside a shot, the median brightness (or colour balance) of
  the ``jump_frames`` frames after a frame (and of the ``jump_frames`` after those: a flash that
comes back is not a jump) differs from that of the frames before by at least
  ``exposure_jump`` levels (``color_jump`` for the largest change of a channel's share of the
  brightness, in levels) and most of the change (``sudden``) happens between two frames. A gradual
  change (a light dimming, auto-exposure settling smoothly) is not reported. Instant events.

Series: ``brightness`` (mean luma 0..255) and ``flicker`` (the residual's RMS per second,
levels). Track data: ``counts`` (events per label).
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from framework import Analyzer, AnalyzerInputs, Event, FrameSpec, Series, Track, tracks_providing

from ._effects.signals import (FrameSignals, every_frame_spec, fmt_time, frame_signals, moving_sum, pooled, runs,
                               shot_index)
from ._shots import shot_intervals

LABELS = ("flicker", "exposure_jump", "color_jump")


class TemporalConsistency(Analyzer):
    """Flicker and sudden colour / exposure jumps within shots (not at cuts)."""

    name = "temporal_consistency"
    version = "1.0.0"
    description = "Flicker and sudden colour or exposure jumps within a shot (edits excluded)."
    original_status = "disabled"
    enabled_by_default = False
    depends_on = ("cut_analysis",)

    class Params(Analyzer.Params):
        width: int = Field(96, ge=32, le=640, description="Analysis width in pixels; 96 shares cut_analysis's stream.")
        guard_s: float = Field(0.15, ge=0, description="Seconds next to a shot boundary that are ignored.")
        trend_s: float = Field(0.5, gt=0, description="Moving-average length (s) that flicker is measured against.")
        flicker_window_s: float = Field(1.0, gt=0, description="Window (s) in which flicker swings are counted.")
        flicker_amp: float = Field(4.0, gt=0, description="Peak-to-peak brightness swing (0..255) that counts.")
        flicker_swings: int = Field(4, ge=2, description="Alternations per window that make flicker.")
        min_flicker_s: float = Field(0.5, gt=0, description="Shortest flicker reported.")
        jump_frames: int = Field(5, ge=2, description="Frames on each side whose medians are compared.")
        exposure_jump: float = Field(15.0, gt=0, description="Brightness step (0..255) of an exposure jump.")
        color_jump: float = Field(12.0, gt=0, description="Step (levels) of a channel's deviation from grey for a colour jump.")
        same_picture: float = Field(0.9, gt=0, le=1, description="Correlation of the frames either side of a shot "
                                    "boundary above which it is one picture (its jump is reported, not skipped as a cut).")
        sudden: float = Field(0.6, gt=0, le=1, description="Share of the step that must happen between two frames.")
        series_max_points: int = Field(2000, ge=10, description="Most samples per series.")

    def frame_specs(self) -> list[FrameSpec]:
        return [every_frame_spec(self.params.width)]

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        p = self.params
        sig = frame_signals(inputs, self.frame_specs()[0], report=lambda f: inputs.report(0.8 * f))
        n = sig.times.size
        duration = inputs.video.duration or (sig.end_of(n - 1) if n else 0.0)
        shots = self._same_picture_merged(inputs, sig, shot_intervals(inputs, duration))
        shot_of = shot_index(sig.times, shots)
        usable = self._usable(inputs, sig, shots)
        residual = self._residual(sig, shot_of)
        flicker = self._flicker(sig, residual, shot_of, usable)
        calm = usable.copy()
        for e in flicker:
            calm &= ~((sig.times >= e.start) & (sig.times < e.end))
        events = flicker + self._jumps(sig, shot_of, calm)
        events.sort(key=lambda e: (e.start, e.label))
        inputs.report(1.0)
        bt, bv = pooled(sig.times, sig.luma.astype(np.float64), p.series_max_points, "mean")
        ft, fv = self._flicker_series(sig, residual, usable)
        counts = {k: sum(e.label == k for e in events) for k in LABELS}
        return self.track(events=events, series=[Series(name="brightness", times=bt, values=bv),
                                                 Series(name="flicker", times=ft, values=fv)],
                          data={"counts": {k: v for k, v in counts.items() if v}})

    def _same_picture_merged(self, inputs: AnalyzerInputs, sig: FrameSignals,
                             shots: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """The shots, with a boundary removed where the frames either side are one picture whose
        exposure or colour changed (each channel's pattern correlates at ``same_picture``): a shot
        detector may take a global exposure jump for a cut."""
        if len(shots) < 2 or sig.times.size < 2:
            return shots
        frames = inputs.frames(self.frame_specs()[0]).frames
        merged = [shots[0]]
        for a, b in shots[1:]:
            j = int(np.searchsorted(sig.times, a - 1e-6))
            if 0 < j < sig.times.size and _correlation(frames[j - 1], frames[j]) >= self.params.same_picture:
                merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        return merged

    def _usable(self, inputs: AnalyzerInputs, sig: FrameSignals, shots: list[tuple[float, float]]) -> np.ndarray:
        """Frames away from shot boundaries and outside transitions."""
        t = sig.times
        ok = np.ones(t.size, bool)
        g = self.params.guard_s
        for a, b in shots:
            ok &= ~((t >= a - g) & (t < a + g)) | (a <= 0)
            ok &= ~((t >= b - g) & (t < b + g))
        for track in tracks_providing(inputs.upstream, "shots"):
            for e in track.events:
                if e.label in ("fade", "dissolve"):
                    ok &= ~((t >= e.start - g) & (t <= e.end + g))
        return ok

    def _residual(self, sig: FrameSignals, shot_of: np.ndarray) -> np.ndarray:
        """Brightness minus its centred moving average, per shot (NaN where undefined)."""
        k = max(3, int(round(self.params.trend_s / sig.step)) | 1)
        out = np.full(sig.times.size, np.nan)
        luma = sig.luma.astype(np.float64)
        for s in np.unique(shot_of):
            idx = np.flatnonzero(shot_of == s)
            if idx.size < k:
                continue
            seg = luma[idx]
            trend = np.convolve(np.pad(seg, k // 2, mode="edge"), np.ones(k) / k, mode="valid")
            out[idx] = seg - trend
        return out

    def _flicker(self, sig: FrameSignals, r: np.ndarray, shot_of: np.ndarray, usable: np.ndarray) -> list[Event]:
        """``r``: the brightness residual (``_residual``)."""
        p = self.params
        half = p.flicker_amp / 2
        state = np.where(r >= half, 1, np.where(r <= -half, -1, 0))
        state[~usable | ~np.isfinite(r)] = 0
        # an alternation: a frame whose sign differs from the last non-zero sign before it (same shot)
        swing = np.zeros(r.size, bool)
        last, last_shot = 0, -2
        for i in range(r.size):
            if shot_of[i] != last_shot:
                last, last_shot = 0, shot_of[i]
            if state[i] != 0:
                if last != 0 and state[i] != last:
                    swing[i] = True
                last = int(state[i])
        win = max(3, int(round(p.flicker_window_s / sig.step)))
        count = moving_sum(swing, win)
        flick = (count >= p.flicker_swings) & usable
        out = []
        for a, b in runs(flick):
            sw = np.flatnonzero(swing[a:b + 1]) + a
            if sw.size < 2:
                continue
            first, last_i = max(0, int(sw[0]) - 1), int(sw[-1])  # from the frame before the first swing
            start, end = float(sig.times[first]), sig.end_of(last_i)
            if end - start + 1e-6 < p.min_flicker_s:
                continue
            seg = r[first:last_i + 1]
            amp = float(np.sqrt(np.nanmean(seg ** 2)))
            freq = sw.size / max(end - start, sig.step) / 2
            out.append(Event(start=round(start, 4), end=round(end, 4), label="flicker", score=round(min(1.0, amp / 20), 3),
                             data={"amplitude": round(amp, 2), "frequency_hz": round(freq, 2),
                                   "text": f"flicker at {fmt_time(start)} ({freq:.1f} Hz, {amp:.1f} levels)"}))
        return out

    def _flicker_series(self, sig: FrameSignals, residual: np.ndarray, usable: np.ndarray):
        r = np.where(usable, residual, np.nan)
        per = max(1, int(round(1.0 / sig.step)))
        rms = np.array([np.sqrt(np.nanmean(r[i:i + per] ** 2)) if np.isfinite(r[i:i + per]).any() else np.nan
                        for i in range(0, r.size, per)])
        t = sig.times[::per]
        return pooled(t, rms, self.params.series_max_points, "max")

    def _jumps(self, sig: FrameSignals, shot_of: np.ndarray, usable: np.ndarray) -> list[Event]:
        p = self.params
        k = p.jump_frames
        n = sig.times.size
        if n < 3 * k:
            return []
        luma = sig.luma.astype(np.float64)
        tint = sig.rgb.astype(np.float64) - luma[:, None]  # each channel's deviation from grey, levels
        win = np.lib.stride_tricks.sliding_window_view
        # for frame i (k <= i <= n - 2k): medians of frames [i-k, i), [i, i+k) and [i+k, i+2k)
        idx = np.arange(k, n - 2 * k + 1)
        med_l = np.median(win(luma, k), axis=-1)                    # med_l[j]: frames j..j+k-1
        med_c = np.median(win(tint, k, axis=0), axis=-1)             # (n-k+1, 3)
        std_l = np.std(win(luma, k), axis=-1)
        std_l3 = np.std(win(luma, 2 * k), axis=-1)
        before_l, after_l, later_l = med_l[idx - k], med_l[idx], med_l[idx + k]
        before_c, after_c, later_c = med_c[idx - k], med_c[idx], med_c[idx + k]
        dl, dc = after_l - before_l, after_c - before_c
        step_l = luma[idx] - luma[idx - 1]
        step_c = tint[idx] - tint[idx - 1]
        spread = np.maximum(std_l[idx - k], std_l3[idx])  # flicker is not a step
        with np.errstate(divide="ignore", invalid="ignore"):
            exposure = ((np.abs(dl) >= p.exposure_jump) & (spread < np.abs(dl) / 3)
                        & (step_l / dl >= p.sudden) & ((later_l - before_l) / dl >= 0.7))
            c = np.argmax(np.abs(dc), axis=1)
            r = np.arange(idx.size)
            dcc = dc[r, c]
            colour = ((np.abs(dcc) >= p.color_jump) & (step_c[r, c] / dcc >= p.sudden)
                      & ((later_c[r, c] - before_c[r, c]) / dcc >= 0.7))
        same_shot = shot_of[idx - k] == shot_of[idx + 2 * k - 1]
        usable_all = np.convolve(~usable, np.ones(3 * k), mode="valid")[idx - k] == 0  # frames i-k .. i+2k-1
        candidates = np.flatnonzero((exposure | colour) & same_shot & usable_all)
        out: list[Event] = []
        last = -n
        for j in candidates:
            i = int(idx[j])
            if i - last < k:
                continue  # one event per step
            last = i
            t = float(sig.times[i])
            d_l, d_c, ch = float(dl[j]), dc[j], int(c[j])
            if exposure[j]:
                label, size = "exposure_jump", d_l
                text = f"exposure jump at {fmt_time(t)} ({'brighter' if d_l > 0 else 'darker'} by {abs(d_l):.0f} levels)"
            else:
                label, size = "color_jump", float(d_c[ch])
                text = f"colour jump at {fmt_time(t)} ({'RGB'[ch]} {'+' if size > 0 else '-'}{abs(size):.0f} levels)"
            out.append(Event(start=round(t, 4), end=round(t, 4), label=label, score=round(min(1.0, abs(size) / 64), 3),
                             data={"delta_luma": round(d_l, 2), "delta_rgb": [round(float(v), 2) for v in d_c],
                                   "text": text}))
        return out

def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over colour channels of the Pearson correlation of two frames (gain and offset free)."""
    a = a.reshape(-1, a.shape[-1] if a.ndim == 3 else 1).astype(np.float64)
    b = b.reshape(-1, b.shape[-1] if b.ndim == 3 else 1).astype(np.float64)
    out = []
    for c in range(a.shape[1]):
        x, y = a[:, c] - a[:, c].mean(), b[:, c] - b[:, c].mean()
        den = np.sqrt((x * x).sum() * (y * y).sum())
        out.append(float((x * y).sum() / den) if den > 0 else 0.0)
    return float(np.mean(out))
