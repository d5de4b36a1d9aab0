"""Gestures as timed events: open palm, fist, pointing, thumbs up / down, victory (peace), ok.

Disabled in the original system (seed 004: "gesture_recognition (MediaPipe)"); disabled by default
here too. It reads the hand landmarks of the upstream ``hand_gesture`` track (mediapipe Hands, so
the frames are read once whichever of the two is enabled) and classifies each hand from its
landmarks' geometry (``analyzers/_hands/gestures.py``; rules, not a trained classifier). The same
gesture by the same hand (``left``/``right``) on consecutive sampled frames (``max_gap`` missed
samples allowed) is one event when it lasts at least ``min_frames`` samples::

    Event(start, end, label="gesture", score=<mean handedness score>,
          data={"gesture": "thumbs_up", "hand": "right", "frames": 5,
                "box": [x1, y1, x2, y2], "text": "thumbs up (right hand)"})

``start``/``end`` are the midpoints between the first (last) sample with the gesture and the
sample before (after) it. ``box`` is the median hand box in frame fractions. Track data:
``count``, ``by_gesture`` (events per gesture) and ``frames`` (samples read by hand_gesture).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from framework import Analyzer, AnalyzerInputs, AnalyzerUnavailable, Event, Track

from ._hands import GESTURES, classify
from ._vision.common import span

UPSTREAM = "hand_gesture"


class GestureRecognition(Analyzer):
    """Timed gesture events (open palm, fist, pointing, thumbs up/down, victory, ok) from hand landmarks."""

    name = "gesture_recognition"
    version = "1.0.0"
    description = ("Gestures (open palm, fist, pointing, thumbs up/down, victory, ok) as timed events from "
                   "hand_gesture's landmarks.")
    device = "cpu"
    original_status = "disabled"  # how the original system shipped it (docs/analyzers.md)
    depends_on = (UPSTREAM,)
    enabled_by_default = False

    class Params(Analyzer.Params):
        gestures: list[str] | None = Field(None, description=f"Gestures to report ({', '.join(GESTURES)}); null: all.")
        min_frames: int = Field(2, ge=1, le=100, description="Fewest sampled frames a gesture must last.")
        max_gap: int = Field(1, ge=0, le=10, description="Sampled frames a gesture may be missed inside one event.")
        straight: float = Field(0.8, gt=0.5, lt=1, description="How straight a finger must be to count as extended.")

    def __init__(self, params: Any = None):
        super().__init__(params)
        unknown = set(self.params.gestures or ()) - set(GESTURES)
        if unknown:
            raise ValueError(f"gesture_recognition: unknown gestures {sorted(unknown)}; known: {', '.join(GESTURES)}")

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        hands = inputs.upstream.get(UPSTREAM)
        if hands is None or hands.status != "ok":
            raise AnalyzerUnavailable(f"gesture_recognition reads the {UPSTREAM} track; it is "
                                      f"{'missing' if hands is None else hands.status}")
        p = self.params
        series = hands.series_by_name("hands")
        grid = [float(t) for t in series.times] if series is not None else []
        index = {round(t, 3): i for i, t in enumerate(grid)}
        aspect = float(hands.data.get("aspect") or 1.0)
        wanted = set(p.gestures or GESTURES)
        # (hand, gesture) -> sample index -> (score, box)
        seen: dict[tuple[str, str], dict[int, tuple[float, list[float]]]] = {}
        for obs in hands.data.get("observations", []):
            i = index.get(round(float(obs["t"]), 3))
            if i is None:
                continue
            for h in obs["hands"]:
                gesture = classify(np.array(h["landmarks"]), aspect, p.straight)
                if gesture in wanted:
                    slot = seen.setdefault((h["handedness"], gesture), {})
                    if i not in slot or h["score"] > slot[i][0]:
                        slot[i] = (float(h["score"]), list(h["box"]))
        end_of_video = inputs.video.duration or (grid[-1] if grid else 0.0)
        events = []
        for (hand, gesture), samples in seen.items():
            for run in _runs(sorted(samples), p.max_gap):
                if len(run) < p.min_frames:
                    continue
                start, end = span(grid, run[0], run[-1], 0.0, end_of_video)
                boxes = np.array([samples[i][1] for i in run])
                name = gesture.replace("_", " ")
                events.append(Event(start=start, end=end, label="gesture",
                                    score=round(float(np.mean([samples[i][0] for i in run])), 4),
                                    data={"gesture": gesture, "hand": hand, "frames": len(run),
                                          "box": [round(float(v), 4) for v in np.median(boxes, axis=0)],
                                          "text": f"{name} ({hand} hand)"}))
        events.sort(key=lambda e: (e.start, e.data["gesture"]))
        by_gesture: dict[str, int] = {}
        for e in events:
            by_gesture[e.data["gesture"]] = by_gesture.get(e.data["gesture"], 0) + 1
        return self.track(events=events, data={"count": len(events), "by_gesture": by_gesture, "frames": len(grid)})


def _runs(indices: list[int], max_gap: int) -> list[list[int]]:
    """Sorted sample indices split where more than ``max_gap`` samples are missing."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i - runs[-1][-1] <= max_gap + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs
