"""Camera motion: static / pan / tilt / zoom / shake per shot, and a motion series.

Reads one small grayscale stream (8 fps, 160 px wide by default). For each pair of consecutive
frames *inside the same shot* (never across a cut of the upstream ``cut_analysis`` track) it
tracks corners with pyramidal Lucas-Kanade and fits a similarity transform (translation, scale,
rotation) with RANSAC; the transform is read about the frame centre, so a zoom is a scale and
not a translation. Per pair, in frame units per second:

- ``vx``: horizontal image motion in frame widths/s (content moving right is positive);
- ``vy``: vertical image motion in frame heights/s (content moving down is positive);
- ``vz``: log-scale change per second (content growing, i.e. zooming in, is positive).

Each shot gets one event whose label is its class, and data::

    {"dx": vx, "dy": vy, "scale": vz, "rotation": deg/s, "jitter": ..., "confidence": 0..1,
     "direction": "left"|"right"|"up"|"down"|"in"|"out"|None, "pairs": n, "valid_pairs": m}

``dx``/``dy``/``scale`` are medians over the shot's frame pairs; ``jitter`` is the robust spread
of the per-pair displacement (frame fractions per pair) around that median. The class is the
one whose value exceeds its threshold (a ``Params`` field) by the largest factor, ``static``
when none does, and ``unknown`` when no pair could be measured (a blank or textureless shot).
``direction`` names the *camera* move: content moving left means the camera pans right.
``confidence`` is the share of measurable pairs times ``1 - runner_up / best`` of those factors
(``static`` counts as factor 1).

The ``motion`` series is the per-pair camera-motion magnitude ``hypot(vx, vy) + |vz|`` at the
time of the pair's second frame (``None`` where the pair could not be measured).
"""
from __future__ import annotations

import logging
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from framework import Analyzer, AnalyzerInputs, Event, FrameSpec, Series, Track

from ._shots import shot_intervals

logger = logging.getLogger(__name__)

CLASSES = ("static", "pan", "tilt", "zoom", "shake")


@dataclass(frozen=True)
class PairMotion:
    """The global motion between two frames, or ``valid=False`` when it could not be measured."""

    valid: bool
    dx: float = 0.0        # frame widths moved between the two frames
    dy: float = 0.0        # frame heights
    log_scale: float = 0.0
    rotation: float = 0.0  # degrees
    inliers: int = 0


def pair_motion(prev: np.ndarray, cur: np.ndarray, max_corners: int = 100, min_inliers: int = 8) -> PairMotion:
    """Similarity transform from ``prev`` to ``cur`` (uint8 grayscale), read about the frame centre."""
    import cv2

    h, w = prev.shape
    p0 = cv2.goodFeaturesToTrack(prev, maxCorners=max_corners, qualityLevel=0.001, minDistance=6, blockSize=5)
    if p0 is None or len(p0) < min_inliers:
        return PairMotion(False)
    p1, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, winSize=(11, 11), maxLevel=2)
    ok = status.reshape(-1) == 1
    if ok.sum() < min_inliers:
        return PairMotion(False)
    m, inliers = cv2.estimateAffinePartial2D(p0[ok], p1[ok], method=cv2.RANSAC, ransacReprojThreshold=1.0)
    if m is None or inliers is None or int(inliers.sum()) < min_inliers:
        return PairMotion(False)
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    if scale <= 0:
        return PairMotion(False)
    centre = np.array([w / 2.0, h / 2.0])
    shift = m[:, :2] @ centre + m[:, 2] - centre  # where the centre goes
    return PairMotion(True, float(shift[0] / w), float(shift[1] / h), float(np.log(scale)),
                      float(np.degrees(np.arctan2(m[1, 0], m[0, 0]))), int(inliers.sum()))


class CameraAnalysis(Analyzer):
    """Camera-move class per shot (static, pan, tilt, zoom, shake) from sparse optical flow."""

    name = "camera_analysis"
    own_process = True  # mostly Python: beside GPU analyzers, in a process of its own
    cpu_priority = "low"  # nothing on the run's longest path waits for it: the decode and the VLM get the CPUs first
    original_status = "active"
    version = "1.0.0"
    description = "Camera motion per shot (static/pan/tilt/zoom/shake) and a global-motion series."
    depends_on = ("cut_analysis",)

    class Params(Analyzer.Params):
        fps: float = Field(8.0, gt=0, le=30, description="Frames per second analysed.")
        width: int = Field(160, ge=32, le=640, description="Width in pixels of the analysed frames.")
        max_corners: int = Field(100, ge=10, le=2000, description="Corners tracked per frame pair.")
        pan_speed: float = Field(0.03, gt=0, description="Frame widths per second above which a shot pans.")
        tilt_speed: float = Field(0.03, gt=0, description="Frame heights per second above which a shot tilts.")
        zoom_rate: float = Field(0.02, gt=0, description="|log scale| per second above which a shot zooms.")
        shake_jitter: float = Field(0.008, gt=0,
                                    description="Per-pair jitter (frame fraction) above which a shot shakes.")

    def frame_specs(self) -> list[FrameSpec]:
        return [FrameSpec(fps=self.params.fps, width=self.params.width, pix_fmt="gray")]

    @classmethod
    def check_available(cls) -> str | None:
        import importlib.util

        if importlib.util.find_spec("cv2") is None:
            return "camera_analysis needs OpenCV: pip install opencv-python-headless"
        return None

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        stream = inputs.frames(self.frame_specs()[0])
        duration = inputs.video.duration or (float(stream.times[-1]) if len(stream) else 0.0)
        shots = shot_intervals(inputs, duration)
        starts = np.array([s for s, _ in shots])
        shot_of = np.searchsorted(starts, stream.times, side="right") - 1  # -1: before the first shot

        # one row per frame pair, in compact arrays (an hour at 8 fps is 28,800 pairs)
        cols: dict[str, array] = {k: array("d") for k in ("dt", "dx", "dy", "log_scale", "rotation")}
        valid_col, shot_col = array("b"), array("q")
        times: list[float] = []
        motion: list[float | None] = []
        prev: np.ndarray | None = None
        prev_t, i = 0.0, 0
        for batch_t, frames in stream.batches(256):
            for t, frame in zip(batch_t, frames):
                t = float(t)
                s = int(shot_of[i])
                if prev is not None and s >= 0 and s == shot_of[i - 1] and t > prev_t:
                    pm = pair_motion(prev, frame, self.params.max_corners)
                    dt = t - prev_t
                    for key, value in (("dt", dt), ("dx", pm.dx), ("dy", pm.dy), ("log_scale", pm.log_scale),
                                       ("rotation", pm.rotation)):
                        cols[key].append(value)
                    valid_col.append(pm.valid)
                    shot_col.append(s)
                    times.append(round(t, 4))
                    motion.append(round(float(np.hypot(pm.dx, pm.dy) + abs(pm.log_scale)) / dt, 5)
                                  if pm.valid else None)
                prev, prev_t, i = frame, t, i + 1
            inputs.report(i / max(1, len(stream)))

        pairs = {k: np.frombuffer(v, dtype=np.float64) if len(v) else np.zeros(0) for k, v in cols.items()}
        valid = np.frombuffer(valid_col, dtype=np.int8).astype(bool) if len(valid_col) else np.zeros(0, bool)
        shot_ix = np.frombuffer(shot_col, dtype=np.int64) if len(shot_col) else np.zeros(0, np.int64)
        bounds = np.searchsorted(shot_ix, np.arange(len(shots) + 1))  # pairs of shot k: bounds[k]:bounds[k+1]
        per_shot = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        events = [self._classify(start, end, k, {c: v[sl] for c, v in pairs.items()}, valid[sl])
                  for k, ((start, end), sl) in enumerate(zip(shots, per_shot))]
        counts = {c: sum(e.label == c for e in events) for c in (*CLASSES, "unknown")}
        valid = sum(m is not None for m in motion)
        data = {"classes": {c: n for c, n in counts.items() if n}, "pairs": len(motion),
                "valid_pairs": valid}
        series = [Series(name="motion", unit="frame/s", times=times, values=motion)]
        return self.track(events=events, series=series, data=data)

    def _classify(self, start: float, end: float, index: int, pairs: dict[str, np.ndarray],
                  valid: np.ndarray) -> Event:
        """Label one shot from its frame pairs (``pairs``: columns dt, dx, dy, log_scale, rotation)."""
        p = self.params
        n_ok = int(valid.sum())
        base: dict[str, Any] = {"shot": index, "pairs": len(valid), "valid_pairs": n_ok}
        if not n_ok:
            return Event(start=start, end=end, label="unknown", score=0.0,
                         data={**base, "dx": None, "dy": None, "scale": None, "rotation": None,
                               "jitter": None, "confidence": 0.0, "direction": None})
        dt, dx, dy = (pairs[c][valid] for c in ("dt", "dx", "dy"))
        vx = float(np.median(dx / dt))
        vy = float(np.median(dy / dt))
        vz = float(np.median(pairs["log_scale"][valid] / dt))
        rot = float(np.median(pairs["rotation"][valid] / dt))
        # spread of each pair's displacement around the shot's steady motion (median absolute deviation)
        dev = np.hypot(dx - vx * dt, dy - vy * dt)
        jitter = float(np.median(dev) * 1.4826) if n_ok >= 3 else 0.0
        factors = {"static": 1.0, "pan": abs(vx) / p.pan_speed, "tilt": abs(vy) / p.tilt_speed,
                   "zoom": abs(vz) / p.zoom_rate, "shake": jitter / p.shake_jitter}
        ranked = sorted(factors.items(), key=lambda kv: kv[1], reverse=True)
        label, best = ranked[0]
        margin = 1.0 - ranked[1][1] / best if best > 0 else 0.0
        confidence = round(n_ok / len(valid) * max(0.0, margin), 3)
        direction = {"pan": "right" if vx < 0 else "left", "tilt": "down" if vy < 0 else "up",
                     "zoom": "in" if vz > 0 else "out"}.get(label)
        data = {**base, "dx": round(vx, 5), "dy": round(vy, 5), "scale": round(vz, 5),
                "rotation": round(rot, 3), "jitter": round(jitter, 5), "confidence": confidence,
                "direction": direction}
        return Event(start=start, end=end, label=label, score=confidence, data=data)
