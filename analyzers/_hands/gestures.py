"""Gestures from the 21 hand landmarks' geometry (mediapipe's hand model: 0 wrist; thumb 1-4; index
5-8; middle 9-12; ring 13-16; pinky 17-20, each from the knuckle to the tip).

Coordinates are made isotropic first (x scaled by the frame's width / height), so the rules hold
for any frame shape and any hand size and rotation:

- a finger is *extended* when it is nearly straight (knuckle-to-tip distance at least
  ``straight`` of the summed bone lengths) and its tip is farther from the wrist than its middle
  joint;
- the thumb is extended when it is straight and its tip stands away from the index knuckle (more
  than 0.5 palm lengths; the palm length is wrist to middle knuckle).

``classify`` names: ``ok`` (thumb and index tips touch, the other three extended), ``open_palm``
(all four fingers extended), ``victory`` (index and middle only), ``pointing`` (index only),
``thumbs_up`` / ``thumbs_down`` (a fist with the thumb out, pointing up / down in the image), and
``fist`` (nothing extended); anything else is None. Rules on geometry, not a trained classifier.
"""
from __future__ import annotations

import numpy as np

GESTURES = ("open_palm", "fist", "pointing", "thumbs_up", "thumbs_down", "victory", "ok")

WRIST = 0
THUMB = (1, 2, 3, 4)
FINGERS = {"index": (5, 6, 7, 8), "middle": (9, 10, 11, 12), "ring": (13, 14, 15, 16), "pinky": (17, 18, 19, 20)}


def _iso(landmarks: np.ndarray, aspect: float) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2].copy()
    pts[:, 0] *= aspect
    return pts


def _straightness(pts: np.ndarray, joints: tuple[int, ...]) -> float:
    bones = sum(float(np.linalg.norm(pts[b] - pts[a])) for a, b in zip(joints, joints[1:]))
    return float(np.linalg.norm(pts[joints[-1]] - pts[joints[0]])) / max(bones, 1e-9)


def finger_states(landmarks: np.ndarray, aspect: float = 1.0, straight: float = 0.8) -> dict[str, bool]:
    """Whether each of ``thumb``, ``index``, ``middle``, ``ring``, ``pinky`` is extended.

    :param landmarks: (21, 2 or 3) landmark positions in frame fractions (x, y[, z]).
    :param aspect: the frame's width / height (1.0 when the positions are in pixels).
    """
    pts = _iso(landmarks, aspect)
    wrist = pts[WRIST]
    palm = max(float(np.linalg.norm(pts[9] - wrist)), 1e-9)
    states = {}
    for name, (mcp, pip, dip, tip) in FINGERS.items():
        states[name] = (_straightness(pts, (mcp, pip, dip, tip)) >= straight
                        and np.linalg.norm(pts[tip] - wrist) > np.linalg.norm(pts[pip] - wrist))
    states["thumb"] = (_straightness(pts, THUMB[1:]) >= straight
                       and float(np.linalg.norm(pts[THUMB[-1]] - pts[5])) > 0.5 * palm)
    return {k: bool(states[k]) for k in ("thumb", "index", "middle", "ring", "pinky")}


def classify(landmarks: np.ndarray, aspect: float = 1.0, straight: float = 0.8) -> str | None:
    """The gesture one hand shows (one of ``GESTURES``), or None when none fits."""
    pts = _iso(landmarks, aspect)
    palm = max(float(np.linalg.norm(pts[9] - pts[WRIST])), 1e-9)
    s = finger_states(landmarks, aspect, straight)
    four = [s[f] for f in ("index", "middle", "ring", "pinky")]
    if float(np.linalg.norm(pts[4] - pts[8])) < 0.3 * palm and s["middle"] and s["ring"] and s["pinky"]:
        return "ok"
    if all(four):
        return "open_palm"
    if four == [True, True, False, False]:
        return "victory"
    if four == [True, False, False, False]:
        return "pointing"
    if not any(four):
        if s["thumb"]:
            direction = pts[4] - pts[2]
            length = max(float(np.linalg.norm(direction)), 1e-9)
            if direction[1] < -0.6 * length:
                return "thumbs_up"
            if direction[1] > 0.6 * length:
                return "thumbs_down"
            return None
        return "fist"
    return None
