"""Hands with mediapipe's legacy Hands solution (mediapipe 0.10.21, models bundled in the wheel) and
gestures classified from the 21 hand landmarks' geometry. Shared by ``hand_gesture`` (which reads
the frames) and ``gesture_recognition`` (which reads ``hand_gesture``'s landmarks).

- ``reader.HandReader``: palm detection + hand landmarks on one RGB frame -> ``HandObs`` (box,
  handedness, score, 21 landmarks in frame fractions).
- ``gestures``: which fingers are extended, and ``classify`` -> ``open_palm``, ``fist``,
  ``pointing``, ``thumbs_up``, ``thumbs_down``, ``victory``, ``ok`` or None.
"""
from __future__ import annotations

from .gestures import GESTURES, classify, finger_states
from .reader import HandObs, HandReader

__all__ = ["GESTURES", "HandObs", "HandReader", "classify", "finger_states"]
