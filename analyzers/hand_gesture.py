"""Hands: how many are on screen, which hand, where, their 21 landmarks and the gesture they show.

Disabled in the original system (seed 004: "hand_gesture (MediaPipe)"); disabled by default here
too, though it needs no download: mediapipe's legacy Hands (mediapipe 0.10.21, palm detection and
hand landmark models bundled in the wheel, manifest id ``mediapipe-hands``). Samples RGB frames
(4 fps, 640 px wide by default) and reads each on its own (static-image mode), on the CPU, through
the device step in batches (``_hands.reader``). Each hand's gesture is classified from its
landmarks' geometry (``_hands.gestures``: ``open_palm``, ``fist``, ``pointing``, ``thumbs_up``,
``thumbs_down``, ``victory``, ``ok``, or none); ``gesture_recognition`` turns these into timed
gesture events.

Handedness is the person's own hand for ordinary video; mediapipe's labels assume a mirrored
(selfie) picture, so set ``mirrored: true`` for mirrored front-camera recordings.

Outputs:

- series ``hands``: hands found per sampled frame;
- one ``hands`` event per shot of the upstream ``cut_analysis`` track (the whole video when there
  is none) with a hand::

      Event(start, end, label="hands", score=<presence>,
            data={"hands_max": 2, "presence": 0.8, "handedness": {"right": 0.6, "left": 0.4},
                  "gestures": {"open_palm": 0.3, "pointing": 0.1}, "frames": 8,
                  "text": "hands: open palm, pointing"})

  ``presence`` is the share of the shot's sampled frames with a hand; ``handedness`` and
  ``gestures`` are shares of the shot's hand observations;
- track data: ``hands_max``, ``presence``, ``frames`` (sampled), ``aspect`` (the frames' width /
  height) and ``observations``: for each sampled frame with a hand, ``{"t": seconds, "hands":
  [{"box": [x1, y1, x2, y2], "handedness": "right", "score": 0.97, "gesture": "pointing",
  "landmarks": [[x, y, z] x 21]}]}`` (positions in frame fractions; mediapipe's landmark order).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from framework import AnalyzerInputs, BatchedAnalyzer, Event, Series, Track

from ._hands import HandObs, HandReader, classify
from ._shots import shot_intervals
from ._vision.common import by_shot
from ._vision.mediapipe_base import MediapipeFrameAnalyzer

MODEL_ID = "mediapipe-hands"


class HandGesture(MediapipeFrameAnalyzer):
    """Hands per sampled frame (landmarks, handedness, gesture) and a hands summary per shot."""

    name = "hand_gesture"
    version = "1.0.0"
    description = "Hands per sampled frame with landmarks, handedness and gesture (mediapipe Hands, bundled)."
    original_status = "disabled"  # how the original system shipped it (docs/analyzers.md)
    depends_on = ("cut_analysis",)
    models = (MODEL_ID,)
    enabled_by_default = False

    class Params(BatchedAnalyzer.Params):
        fps: float = Field(4.0, gt=0, le=30, description="Frames per second read.")
        width: int = Field(640, ge=128, le=3840, description="Width in pixels of the frames read.")
        max_hands: int = Field(4, ge=1, le=10, description="Most hands read per frame.")
        min_confidence: float = Field(0.4, gt=0, lt=1, description="Palm detection confidence threshold.")
        model_complexity: int = Field(1, ge=0, le=1, description="0: the lite models, 1: the full ones.")
        mirrored: bool = Field(False, description="The video is mirrored (a selfie camera): keep mediapipe's labels.")
        straight: float = Field(0.8, gt=0.5, lt=1, description="How straight a finger must be to count as extended.")
        batch_size: int = Field(8, ge=1, le=256, description="Frames per step.")

    reader: HandReader | None = None

    def make_reader(self, models: dict[str, Path]) -> HandReader:
        p = self.params
        return HandReader(models.get(MODEL_ID), p.max_hands, p.min_confidence, p.model_complexity, p.mirrored,
                          who=self.name)

    def read_frame(self, frame: np.ndarray) -> tuple[list[HandObs], float]:
        # the aspect makes the gesture geometry isotropic
        return self.reader.read(frame), frame.shape[1] / frame.shape[0]

    def postprocess(self, outputs: Any, items: list[Any]) -> list[Any]:
        return [(float(t), aspect, [(h, classify(np.array(h.landmarks), aspect, self.params.straight)) for h in hands])
                for (t, _), (hands, aspect) in zip(items, outputs)]

    def finish(self, results: list[Any], inputs: AnalyzerInputs) -> Track:
        times = [round(r[0], 3) for r in results]
        counts = [len(r[2]) for r in results]
        events = []
        for start, end, idx in by_shot(shot_intervals(inputs, inputs.video.duration), times):
            obs = [pair for i in idx for pair in results[i][2]]
            if not obs:
                continue
            sides = Counter(h.handedness for h, _ in obs)
            gestures = Counter(g for _, g in obs if g is not None)
            presence = sum(1 for i in idx if counts[i]) / len(idx)
            named = [g.replace("_", " ") for g, _ in gestures.most_common(3)]
            text = "hands: " + ", ".join(named) if named else ("hands visible" if max(counts[i] for i in idx) > 1
                                                               else "a hand visible")
            events.append(Event(start=round(start, 3), end=round(end, 3), label="hands", score=round(presence, 4),
                                data={"hands_max": max(counts[i] for i in idx), "presence": round(presence, 4),
                                      "handedness": {k: round(v / len(obs), 4) for k, v in sides.most_common()},
                                      "gestures": {k: round(v / len(obs), 4) for k, v in gestures.most_common()},
                                      "frames": len(idx), "text": text}))
        observations = [{"t": round(t, 3), "hands": [{**h.as_dict(), "gesture": g} for h, g in hands]}
                        for t, _, hands in results if hands]
        data: dict[str, Any] = {
            "hands_max": max(counts, default=0),
            "presence": round(sum(1 for c in counts if c) / len(counts), 4) if counts else 0.0,
            "frames": len(results), "aspect": round(results[0][1], 6) if results else None,
            "observations": observations}
        return self.track(events=events, series=[Series(name="hands", times=times, values=[float(c) for c in counts])],
                          data=data)
