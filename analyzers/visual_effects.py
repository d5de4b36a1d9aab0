"""Visual effects: flashes, freeze frames, slow motion, split screens and picture-in-picture, black frames.

Model-free. Reads every frame at 96 px wide (the stream ``cut_analysis`` reads, so a run decodes
nothing more) and the shots of the upstream track providing ``"shots"``. Per frame it measures the
mean brightness, the change from the previous frame (mean absolute luma difference, and the share
of pixels that changed by more than ``change_level``) and the share of lit pixels
(``analyzers._effects.signals``). Then, one event per effect:

- ``black``: a run of frames with at most ``black_lit`` of their pixels brighter than
  ``dark_level`` (a fade through black holds black frames too), at least ``min_black_s`` long;
- ``flash``: the brightness jumps by at least ``flash_rise`` (0..255) above the level of the
  frames just before, within two frames, and falls back within ``flash_max_s``; the event spans the
  bright frames;
- ``freeze``: the picture stops changing (``freeze_diff``, ``freeze_changed`` and ``freeze_peak``:
  a small moving object is change) for at least ``min_freeze_s`` inside a shot that clearly moved
  (``motion_diff``) within ``motion_s`` before or moves again within ``motion_s`` after (the video
  goes on); a shot that is still from cut to cut (a slide, a still life, a locked-off empty room)
  is not a freeze, and the change inside a fade or dissolve of the shot track is not motion (so a
  still picture faded in and out is not a freeze either);
- ``slow_motion``: a stretch of at least ``min_slow_s`` where repeated frames (a frame shown again
  unchanged) alternate with moving ones, their share being at least ``slow_share`` above the rest of
  the video's (so a 24-to-30 fps pull-down or animation on twos throughout is not slow motion);
  ``data.speed`` is the share of new frames relative to that baseline (0.5: each frame shown twice);
- ``split_screen``: a straight border across the whole frame that stays put while the content on
  its two sides moves independently;
- ``picture_in_picture``: a rectangle (3-40 % of the frame, at least three drawn sides) whose
  border stays put while its content moves independently of the rest of the frame.
  Both come from ``analyzers._effects.layout``, sampled at ``layout_fps`` in windows of about
  ``layout_window_s`` inside each shot; consecutive windows with the same layout are one event.

Limits: slow motion made by frame interpolation or optical-flow retiming (no repeated frames) and
speed-ups are not detected; a split of two still pictures, or a still inset, shows no independent
motion and is not reported; an inset flush with a corner of the frame (two drawn sides) is not
reported either (trees against the sky make such corners).

Series: ``brightness`` (mean luma 0..255) and ``change`` (mean absolute luma change per frame),
pooled to at most ``series_max_points``. Track data: ``counts`` (events per label), ``fps``.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydantic import Field

from framework import Analyzer, AnalyzerInputs, Event, FrameSpec, Series, Track

from ._effects.layout import Layout, find_window_layout
from ._effects.signals import (FrameSignals, every_frame_spec, fmt_time, frame_signals, moving_sum, pooled, runs,
                               shot_index)
from ._shots import shot_intervals, shot_source

logger = logging.getLogger(__name__)

LABELS = ("black", "flash", "freeze", "slow_motion", "split_screen", "picture_in_picture")


class VisualEffects(Analyzer):
    """Flashes, freeze frames, slow motion, split screens / picture-in-picture and black frames, with times."""

    name = "visual_effects"
    own_process = True  # mostly Python: beside GPU analyzers, in a process of its own
    cpu_priority = "low"  # nothing on the run's longest path waits for it: the decode and the VLM get the CPUs first
    version = "1.0.0"
    description = "Flashes, freeze frames, slow motion (repeated frames), split screens / picture-in-picture, black frames."
    original_status = "active"
    depends_on = ("cut_analysis",)

    class Params(Analyzer.Params):
        width: int = Field(96, ge=32, le=640, description="Analysis width in pixels; 96 shares cut_analysis's stream.")
        dark_level: float = Field(32.0, ge=0, le=255, description="A pixel at most this bright (0..255) is dark.")
        black_lit: float = Field(0.02, ge=0, le=1, description="Largest share of non-dark pixels in a black frame.")
        min_black_s: float = Field(0.0, ge=0, description="Shortest black stretch reported (0: a single frame).")
        flash_rise: float = Field(40.0, gt=0, description="Brightness jump (0..255) over the frames before a flash.")
        flash_max_s: float = Field(0.5, gt=0, description="Longest flash: the brightness must fall back within it.")
        change_level: float = Field(12.0, gt=0, description="A pixel whose luma moves more than this has changed.")
        freeze_diff: float = Field(1.0, ge=0, description="Mean absolute luma change (0..255) under which a frame repeats.")
        freeze_changed: float = Field(0.005, ge=0, le=1, description="Largest share of changed pixels in a repeated frame.")
        freeze_peak: float = Field(10.0, ge=0, description="Largest change of any pixel (0..255) in a repeated frame.")
        min_freeze_s: float = Field(1.0, gt=0, description="Shortest freeze frame reported.")
        motion_s: float = Field(1.0, gt=0, description="A freeze needs motion in its shot within this many seconds.")
        motion_diff: float = Field(1.0, gt=0, description="Mean luma change (0..255) that counts as motion around a freeze.")
        slow_window_s: float = Field(1.0, gt=0, description="Window (s) over which the share of repeated frames is measured.")
        slow_share: float = Field(0.3, gt=0, le=1, description="Repeated-frame share above the video's baseline for slow motion.")
        min_slow_s: float = Field(1.0, gt=0, description="Shortest slow-motion stretch reported.")
        max_repeat: int = Field(4, ge=1, description="Longest run of one repeated frame counted as slow motion (longer: a freeze).")
        layout: bool = Field(True, description="Look for split screens and picture-in-picture.")
        layout_fps: float = Field(4.0, gt=0, le=30, description="Frames per second sampled for the layout test.")
        layout_window_s: float = Field(2.0, gt=0, description="Window (s) of the layout test; longer shots give several.")
        edge_min: float = Field(10.0, gt=0, description="Colour difference (0..255) across a layout's border.")
        series_max_points: int = Field(2000, ge=10, description="Most samples per series.")

    def frame_specs(self) -> list[FrameSpec]:
        return [every_frame_spec(self.params.width)]

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        p = self.params
        spec = self.frame_specs()[0]
        sig = frame_signals(inputs, spec, p.change_level, p.dark_level,
                            report=lambda f: inputs.report(0.7 * f))
        n = sig.times.size
        duration = inputs.video.duration or (sig.end_of(n - 1) if n else 0.0)
        shots = shot_intervals(inputs, duration)
        shot_of = shot_index(sig.times, shots)
        black = sig.lit <= p.black_lit
        still = (sig.diff < p.freeze_diff) & (sig.changed < p.freeze_changed) & (sig.peak < p.freeze_peak) & ~black
        still[1:] &= ~black[:-1]
        still[np.r_[True, shot_of[1:] != shot_of[:-1]]] = False  # never across a cut

        in_transition = np.zeros(sig.times.size, bool)
        source = shot_source(inputs)
        for e in source.events if source is not None and source.status == "ok" else ():
            if e.label in ("fade", "dissolve"):
                in_transition |= (sig.times >= e.start - 1e-6) & (sig.times <= e.end + 1e-6)
        events = (self._black(sig, black) + self._flashes(sig) + self._freezes(sig, still, shot_of, in_transition)
                  + self._slow_motion(sig, still, shot_of))
        if p.layout:
            events += self._layouts(inputs, spec, sig, shots)
        inputs.report(1.0)
        events.sort(key=lambda e: (e.start, e.label))
        counts = {label: sum(e.label == label for e in events) for label in LABELS}
        series = []
        for name, values, how in (("brightness", sig.luma, "mean"), ("change", sig.diff, "max")):
            t, v = pooled(sig.times, values.astype(np.float64), p.series_max_points, how)
            series.append(Series(name=name, times=t, values=v))
        return self.track(events=events, series=series,
                          data={"counts": {k: v for k, v in counts.items() if v}, "fps": round(sig.fps, 3)})

    # --- effects ------------------------------------------------------------------------
    def _black(self, sig: FrameSignals, black: np.ndarray) -> list[Event]:
        out = []
        for a, b in runs(black):
            start, end = float(sig.times[a]), sig.end_of(b)
            if end - start + 1e-6 < self.params.min_black_s:
                continue
            out.append(Event(start=round(start, 4), end=round(end, 4), label="black",
                             data={"frames": b - a + 1, "mean_luma": round(float(sig.luma[a:b + 1].mean()), 2),
                                   "text": f"black frames at {fmt_time(start)} for {end - start:.2f} s"}))
        return out

    def _flashes(self, sig: FrameSignals) -> list[Event]:
        p = self.params
        luma, n = sig.luma.astype(np.float64), sig.times.size
        before = max(2, int(round(0.2 / sig.step)))
        longest = max(1, int(round(p.flash_max_s / sig.step)))
        out, i = [], 1
        while i < n:
            base = float(np.median(luma[max(0, i - before):i]))
            jump = luma[i] - max(luma[i - 1], luma[max(0, i - 2)] if i >= 2 else luma[i - 1])
            if luma[i] - base >= p.flash_rise and jump >= 0.5 * p.flash_rise:
                stop = min(n, i + longest + 1)
                back = np.flatnonzero(luma[i + 1:stop] <= base + 0.3 * p.flash_rise)
                if back.size:
                    j = i + 1 + int(back[0])  # the first frame back near the level before
                    start, end = float(sig.times[i]), float(sig.times[j])
                    peak = float(luma[i:j].max())
                    out.append(Event(start=round(start, 4), end=round(end, 4), label="flash",
                                     score=round(min(1.0, (peak - base) / 255.0), 3),
                                     data={"frames": j - i, "peak_luma": round(peak, 2), "base_luma": round(base, 2),
                                           "text": f"flash at {fmt_time(start)}"}))
                    i = j + 1
                    continue
            i += 1
        return out

    def _freezes(self, sig: FrameSignals, still: np.ndarray, shot_of: np.ndarray,
                 in_transition: np.ndarray) -> list[Event]:
        p = self.params
        # clear motion, not coding noise (a still-life shot never moves: it is not a freeze)
        moving = ((sig.diff >= p.motion_diff) | (sig.changed >= 2 * p.freeze_changed)) & ~in_transition
        # a key frame re-coding a frozen picture is one slightly different frame: bridge it
        still = still.copy()
        soft = (sig.diff < 2 * p.freeze_diff) & (sig.changed < 2 * p.freeze_changed)
        gaps = np.flatnonzero(~still[1:-1] & still[:-2] & still[2:] & soft[1:-1]) + 1
        still[gaps] = True
        near = max(1, int(round(p.motion_s / sig.step)))
        out = []
        for a, b in runs(still):
            start, end = float(sig.times[a - 1]), sig.end_of(b)  # from the frame that froze
            if end - start + 1e-6 < p.min_freeze_s:
                continue
            s = shot_of[a]
            pre = [k for k in range(max(1, a - near), a) if shot_of[k] == s and shot_of[k - 1] == s]
            post = [k for k in range(b + 1, min(sig.times.size, b + 1 + near)) if shot_of[k] == s]
            moved_before, moves_after = bool(moving[pre].any()) if pre else False, bool(moving[post].any()) if post else False
            if not (moved_before or moves_after):
                continue
            out.append(Event(start=round(start, 4), end=round(end, 4), label="freeze",
                             data={"frames": b - a + 2, "moved_before": moved_before, "moves_after": moves_after,
                                   "text": f"freeze frame at {fmt_time(start)} for {end - start:.1f} s"}))
        return out

    def _slow_motion(self, sig: FrameSignals, still: np.ndarray, shot_of: np.ndarray) -> list[Event]:
        p = self.params
        n = sig.times.size
        if n < 4:
            return []
        repeat = still.copy()
        valid = np.r_[False, shot_of[1:] == shot_of[:-1]] & np.isfinite(sig.diff)
        for a, b in runs(still):
            if b - a + 1 > p.max_repeat:  # a freeze, not a repeated frame: neither counts
                repeat[a:b + 1] = False
                valid[a:b + 1] = False
        win = max(3, int(round(p.slow_window_s / sig.step)))
        count = moving_sum(valid, win)
        reps = moving_sum(repeat & valid, win)
        share = np.where(count >= 0.5 * win, reps / np.maximum(count, 1), np.nan)
        moving_share = moving_sum(valid & ~repeat, win) / np.maximum(count, 1)
        finite = np.isfinite(share)
        if not finite.any():
            return []
        baseline = float(np.median(share[finite]))
        slow = finite & (np.nan_to_num(share) - baseline >= p.slow_share) & (moving_share >= 0.15)
        out = []
        for a, b in runs(slow):
            # the stretch: from the first to the last repeated frame of the run
            reps_in = np.flatnonzero(repeat[a:b + 1]) + a
            if reps_in.size < 2:
                continue
            first, last = max(0, int(reps_in[0]) - 1), int(reps_in[-1])
            start, end = float(sig.times[first]), sig.end_of(last)
            if end - start + 1e-6 < p.min_slow_s:
                continue
            part = valid[first + 1:last + 1]
            rep_share = float(repeat[first + 1:last + 1][part].mean()) if part.any() else 0.0
            speed = (1.0 - rep_share) / max(1e-6, 1.0 - baseline)
            out.append(Event(start=round(start, 4), end=round(end, 4), label="slow_motion",
                             score=round(min(1.0, rep_share), 3),
                             data={"speed": round(speed, 2), "repeated_share": round(rep_share, 3),
                                   "baseline_share": round(baseline, 3),
                                   "text": f"slow motion at {fmt_time(start)}, about {speed:.2f}x speed"}))
        return out

    def _layouts(self, inputs: AnalyzerInputs, spec: FrameSpec, sig: FrameSignals,
                 shots: list[tuple[float, float]]) -> list[Event]:
        p = self.params
        stream = inputs.frames(spec)
        found: list[tuple[float, float, Layout]] = []
        for s_start, s_end in shots:
            count = max(1, int(round((s_end - s_start) / p.layout_window_s)))  # equal windows, no short tail
            edges = np.linspace(s_start, s_end, count + 1)
            for t, w_end in zip(edges[:-1], edges[1:]):
                want = np.arange(t, w_end, 1.0 / p.layout_fps)
                idx = np.unique(np.clip(np.searchsorted(sig.times, want), 0, sig.times.size - 1))
                idx = idx[(sig.times[idx] >= s_start - 1e-6) & (sig.times[idx] < s_end)]
                if idx.size < 3:
                    continue
                frames = stream.frames[idx]
                layout = find_window_layout(frames, edge_min=p.edge_min)
                if layout is not None:
                    found.append((float(t), float(w_end), layout))
        merged: list[list[Any]] = []
        for a, b, layout in found:
            if merged and merged[-1][2].same_as(layout) and a - merged[-1][1] <= 1e-3 + p.layout_window_s:
                merged[-1][1] = b
                merged[-1][3].append(layout)
            else:
                merged.append([a, b, layout, [layout]])
        events = []
        for a, b, layout, all_ in merged:
            data: dict[str, Any] = {"box": [round(v, 3) for v in layout.box],
                                    "cover": round(float(np.mean([l.cover for l in all_])), 3),
                                    "motion": list(layout.motion), "shift_apart": layout.apart}
            if layout.kind == "split":
                label = "split_screen"
                side = "side by side" if layout.orientation == "vertical" else "stacked"
                data["orientation"] = layout.orientation
                data["text"] = f"split screen ({side}) from {fmt_time(a)} to {fmt_time(b)}"
            else:
                label = "picture_in_picture"
                data["text"] = f"picture-in-picture from {fmt_time(a)} to {fmt_time(b)}"
            events.append(Event(start=round(a, 4), end=round(b, 4), label=label, score=data["cover"], data=data))
        return events
