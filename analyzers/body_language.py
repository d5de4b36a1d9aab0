"""Body language per shot from body pose keypoints: posture cues, openness and movement energy.

Disabled in the original system (seed 004: "body_language (Pose Analysis)"); disabled by default
here too. It reads the per-frame COCO keypoints (17 per person) of the upstream ``body_pose`` track
(YOLOv8x-pose; ``data["observations"]``, written by body_pose 1.1 and later) and the shots of
``cut_analysis``; it loads no model of its own. Geometric rules on the keypoints seen with
visibility at least ``min_keypoint_conf``, in the picture's plane (not a trained classifier):

- ``arms_crossed``: each wrist on the far side of the body's midline from its own shoulder, both
  between shoulder and hip height;
- ``hands_raised``: wrists above their shoulder (0, 1 or 2);
- ``lean``: the torso's angle from vertical in degrees (hips to shoulders; positive: leaning to
  the picture's right); ``leaning`` left/right beyond ``lean_deg``, else ``upright``;
- ``facing``: ``camera`` (nose and both eyes seen, nose between the eyes), ``away`` (shoulders
  seen, no face point), else ``side``;
- ``openness`` 0..1: how far the wrists are from the midline, in half shoulder widths
  ((spread - 0.5) / 1.5, clipped; arms hanging at the sides read about 0.3, spread wide 1, crossed 0);
- movement energy: each person is matched to the nearest person (keypoint centroid) on the next
  sampled frame of the shot; the mean displacement of the keypoints seen on both, in torso
  lengths per second. ``energy`` is its shot mean; ``energy_level``: ``still`` (< 0.05),
  ``calm`` (< 0.3), ``moderate`` (< 1) or ``energetic``.

Outputs: series ``openness`` (mean over the frame's people) and ``movement`` (torso lengths per
second; None without a match) per sampled frame; one ``body_language`` event per shot with people::

    Event(start, end, label="body_language", score=<openness>,
          data={"people_max": 1, "arms_crossed": 0.0, "hands_raised": 0.5, "facing": {"camera": 1.0},
                "leaning": {"upright": 0.75, "right": 0.25}, "lean_deg": 4.2, "openness": 0.62,
                "energy": 0.41, "energy_level": "moderate", "frames": 8,
                "text": "open, hands raised, moderate movement, facing camera"})

(shares are over the shot's person observations). Track data: ``people_max``, ``frames``,
``openness``, ``energy`` (whole video).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from pydantic import Field

from framework import Analyzer, AnalyzerInputs, AnalyzerUnavailable, Event, Series, Track

from ._shots import shot_intervals
from ._vision.common import by_shot

UPSTREAM = "body_pose"
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SH, R_SH, L_WR, R_WR, L_HIP, R_HIP = 5, 6, 9, 10, 11, 12
ENERGY_LEVELS = ((0.05, "still"), (0.3, "calm"), (1.0, "moderate"))


def person_cues(k: np.ndarray, min_conf: float, lean_deg: float = 15.0) -> dict[str, Any] | None:
    """The body-language cues of one person's (17, 3) keypoints (x, y, visibility) in isotropic
    units (pixels), or None when the shoulders are not both seen."""
    seen = k[:, 2] >= min_conf
    if not (seen[L_SH] and seen[R_SH]):
        return None
    sh_l, sh_r = k[L_SH, :2], k[R_SH, :2]
    mid_sh = (sh_l + sh_r) / 2
    width = max(float(np.linalg.norm(sh_l - sh_r)), 1e-6)
    hips = [k[i, :2] for i in (L_HIP, R_HIP) if seen[i]]
    mid_hip = np.mean(hips, axis=0) if hips else None
    torso = float(np.linalg.norm(mid_hip - mid_sh)) if mid_hip is not None else 1.5 * width
    torso = max(torso, 1e-6)
    hip_y = float(mid_hip[1]) if mid_hip is not None else float(mid_sh[1]) + torso
    midline = float(mid_hip[0] + mid_sh[0]) / 2 if mid_hip is not None else float(mid_sh[0])

    wrists = {s: k[w, :2] for s, w in (("l", L_WR), ("r", R_WR)) if seen[w]}
    shoulder = {"l": sh_l, "r": sh_r}
    crossed = len(wrists) == 2 and all(
        np.sign(wrists[s][0] - midline) == -np.sign(shoulder[s][0] - midline) != 0
        and min(sh_l[1], sh_r[1]) - 0.1 * torso <= wrists[s][1] <= hip_y for s in ("l", "r"))
    raised = sum(1 for s, w in wrists.items() if w[1] < shoulder[s][1])
    if crossed:
        openness = 0.0
    elif wrists:
        spread = float(np.mean([abs(w[0] - midline) for w in wrists.values()])) / (width / 2)
        openness = float(np.clip((spread - 0.5) / 1.5, 0.0, 1.0))
    else:
        openness = None
    lean = None
    if mid_hip is not None:
        up = mid_sh - mid_hip
        lean = float(np.degrees(np.arctan2(up[0], -up[1])))
    leaning = "upright" if lean is None or abs(lean) <= lean_deg else ("right" if lean > 0 else "left")
    face = [seen[i] for i in (NOSE, L_EYE, R_EYE, L_EAR, R_EAR)]
    if seen[NOSE] and seen[L_EYE] and seen[R_EYE] and \
            min(k[L_EYE, 0], k[R_EYE, 0]) <= k[NOSE, 0] <= max(k[L_EYE, 0], k[R_EYE, 0]):
        facing = "camera"
    elif not any(face):
        facing = "away"
    else:
        facing = "side"
    return {"arms_crossed": bool(crossed), "hands_raised": raised, "lean": lean, "leaning": leaning,
            "facing": facing, "openness": openness, "torso": torso}


def _movement(a: np.ndarray, b: np.ndarray, a_cues: list[dict | None], min_conf: float,
              dt: float) -> float | None:
    """Mean keypoint displacement between two frames' people (nearest-centroid matches), in torso
    lengths (from the first frame's cues, ``a_cues``, one per person of ``a``) per second."""
    if not len(a) or not len(b) or dt <= 0:
        return None

    def centroid(k: np.ndarray) -> np.ndarray | None:
        s = k[:, 2] >= min_conf
        return k[s, :2].mean(axis=0) if s.any() else None

    cb = [centroid(k) for k in b]
    moves = []
    for ka, cues in zip(a, a_cues):
        ca = centroid(ka)
        if ca is None or cues is None:
            continue
        dists = [np.linalg.norm(c - ca) if c is not None else np.inf for c in cb]
        j = int(np.argmin(dists))
        if not np.isfinite(dists[j]):
            continue
        both = (ka[:, 2] >= min_conf) & (b[j][:, 2] >= min_conf)
        if both.any():
            shift = np.linalg.norm(b[j][both, :2] - ka[both, :2], axis=1).mean()
            moves.append(float(shift) / cues["torso"] / dt)
    return float(np.mean(moves)) if moves else None


def energy_level(energy: float) -> str:
    return next((name for limit, name in ENERGY_LEVELS if energy < limit), "energetic")


class BodyLanguage(Analyzer):
    """Posture cues, openness and movement energy per shot from body_pose's keypoints."""

    name = "body_language"
    version = "1.0.0"
    description = ("Body language per shot from body_pose keypoints: arms crossed, hands raised, leaning, facing, "
                   "openness, movement energy.")
    device = "cpu"
    original_status = "disabled"  # how the original system shipped it (docs/analyzers.md)
    depends_on = (UPSTREAM, "cut_analysis")
    enabled_by_default = False

    class Params(Analyzer.Params):
        min_keypoint_conf: float = Field(0.5, gt=0, lt=1, description="Keypoints below this visibility are unseen.")
        lean_deg: float = Field(15.0, gt=0, lt=90, description="Torso angle from vertical counted as leaning.")

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        pose = inputs.upstream.get(UPSTREAM)
        if pose is None or pose.status != "ok":
            raise AnalyzerUnavailable(f"body_language reads the {UPSTREAM} track; it is "
                                      f"{'missing' if pose is None else pose.status}")
        if "observations" not in pose.data:
            raise AnalyzerUnavailable(f"body_language needs the per-frame keypoints of {UPSTREAM} "
                                      f"(data['observations'], body_pose 1.1 or later); this track "
                                      f"(version {pose.version}) has none")
        p = self.params
        series = pose.series_by_name("people")
        grid = [round(float(t), 3) for t in series.times] if series is not None else []
        aspect = float(pose.data.get("aspect") or 1.0)
        people: dict[float, np.ndarray] = {}
        for obs in pose.data["observations"]:
            k = np.asarray(obs["people"], dtype=np.float64).reshape(-1, 17, 3)
            k[:, :, 0] *= aspect  # frame fractions -> isotropic units (heights)
            people[round(float(obs["t"]), 3)] = k
        frames = [people.get(t, np.zeros((0, 17, 3))) for t in grid]
        all_cues = [[person_cues(k, p.min_keypoint_conf, p.lean_deg) for k in f] for f in frames]  # one per person
        cues = [[c for c in cs if c is not None] for cs in all_cues]
        shots = shot_intervals(inputs, inputs.video.duration)
        groups = by_shot(shots, grid)
        movement: list[float | None] = [None] * len(grid)
        for _, _, idx in groups:
            for i, j in zip(idx, idx[1:]):
                movement[j] = _movement(frames[i], frames[j], all_cues[i], p.min_keypoint_conf, grid[j] - grid[i])
        openness = [float(np.mean(v)) if (v := [c["openness"] for c in cs if c["openness"] is not None]) else None
                    for cs in cues]
        events = []
        for start, end, idx in groups:
            obs = [c for i in idx for c in cues[i]]
            if not obs:
                continue
            n = len(obs)
            open_values = [c["openness"] for c in obs if c["openness"] is not None]
            moves = [movement[i] for i in idx if movement[i] is not None]
            leans = [c["lean"] for c in obs if c["lean"] is not None]
            data: dict[str, Any] = {
                "people_max": max(len(cues[i]) for i in idx),
                "arms_crossed": round(sum(c["arms_crossed"] for c in obs) / n, 4),
                "hands_raised": round(sum(c["hands_raised"] > 0 for c in obs) / n, 4),
                "facing": {k: round(v / n, 4) for k, v in Counter(c["facing"] for c in obs).most_common()},
                "leaning": {k: round(v / n, 4) for k, v in Counter(c["leaning"] for c in obs).most_common()},
                "lean_deg": round(float(np.mean(leans)), 2) if leans else None,
                "openness": round(float(np.mean(open_values)), 4) if open_values else None,
                "energy": round(float(np.mean(moves)), 4) if moves else None,
                "frames": len(idx)}
            data["energy_level"] = energy_level(data["energy"]) if data["energy"] is not None else None
            data["text"] = _describe(data)
            events.append(Event(start=round(start, 3), end=round(end, 3), label="body_language",
                                score=data["openness"], data=data))
        known_open = [v for v in openness if v is not None]
        known_moves = [v for v in movement if v is not None]
        return self.track(
            events=events,
            series=[Series(name="openness", times=grid, values=[None if v is None else round(v, 4) for v in openness]),
                    Series(name="movement", unit="torso/s", times=grid,
                           values=[None if v is None else round(v, 4) for v in movement])],
            data={"people_max": max((len(c) for c in cues), default=0), "frames": len(grid),
                  "openness": round(float(np.mean(known_open)), 4) if known_open else None,
                  "energy": round(float(np.mean(known_moves)), 4) if known_moves else None})


def _describe(d: dict[str, Any]) -> str:
    words = []
    if d["arms_crossed"] >= 0.5:
        words.append("arms crossed")
    elif d["openness"] is not None:
        words.append("open" if d["openness"] >= 0.5 else "closed" if d["openness"] < 0.2 else "neutral")
    if d["hands_raised"] >= 0.5:
        words.append("hands raised")
    lean = max(d["leaning"], key=d["leaning"].get)
    if lean != "upright":
        words.append(f"leaning {lean}")
    if d["energy_level"]:
        words.append(f"{d['energy_level']} movement" if d["energy_level"] != "still" else "still")
    facing = max(d["facing"], key=d["facing"].get)
    words.append({"camera": "facing camera", "away": "facing away", "side": "side-on"}[facing])
    return ", ".join(words)
