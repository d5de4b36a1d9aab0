"""Estimated age range per detected face.

Active in the original system (seed 004 ``age_estimation``, "DeepFace integriert": DeepFace's
Keras age model, ``age_model_weights.h5``, which needs TensorFlow; this stack does not ship it).
This port classifies face crops with a ViT age classifier trained on FairFace (manifest id
``vit-age-classifier``, ``nateraw/vit-age-classifier``; age bands 0-2, 3-9, 10-19, 20-29, 30-39,
40-49, 50-59, 60-69, more than 70) through transformers. Faces come from mediapipe's bundled
full-range face detector, linked into face tracks within shots (``_faces.classify``). Enabled by
default, as in the original: its model is fetched on first use where the plan runs it (or beforehand with
``framework models pull vit-age-classifier``); without mediapipe it is skipped with the reason.

The apparent age of a face in a video frame is an estimate (lighting, make-up, pose, blur); the
probabilities of a face track's samples are averaged, so a track seen on many frames is steadier.
One ``age`` event per face track::

    Event(start, end, label="age", score=0.55,
          data={"age_range": "20-29", "age_low": 20, "age_high": 29, "age": 27.4, "track_id": 1,
                "frames": 8, "scores": {"20-29": 0.55, "30-39": 0.3, ...}, "text": "age 20-29"})

``age_range`` is the band with the highest mean probability (``score``); ``age_low``/``age_high``
its bounds read from the label (``age_high`` null for an open band such as "more than 70");
``age`` the probability-weighted mean of the bands' middles (an open band counts as its lower
bound + 5; null when a label is not a range). Series: ``faces`` (faces classified per sampled
frame) and ``age`` (that weighted mean for the largest face of each sampled frame, years).
Track data: ``age_ranges`` (band -> face tracks estimated in it), ``labels`` (the model's),
``faces_max``, ``face_presence``, ``face_tracks``, ``frames``, ``model``.
"""
from __future__ import annotations

import re

import numpy as np

from framework import Event, Series

from ._faces.classify import DETECTOR_ID, FaceClassifier
from ._faces.detect import FaceBox
from ._faces.tracks import FaceTrack

MODEL_ID = "vit-age-classifier"


def age_bounds(label: str) -> tuple[int, int | None] | None:
    """``(low, high)`` years of an age-band label: "20-29" -> (20, 29); "more than 70" / "70+" ->
    (70, None); None when the label is not an age band."""
    text = label.strip().lower()
    m = re.fullmatch(r"(\d+)\s*[-–]\s*(\d+)", text)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = re.fullmatch(r"(?:more than|over|above|>)\s*(\d+)|(\d+)\s*\+", text)
    if m:
        return int(m.group(1) or m.group(2)), None
    return None


def expected_age(probs: np.ndarray, bounds: list[tuple[int, int | None] | None]) -> float | None:
    """The probability-weighted mean of the bands' middles (None when a band is unknown)."""
    if any(b is None for b in bounds):
        return None
    mids = np.array([(lo + hi) / 2 if hi is not None else lo + 5 for lo, hi in bounds], dtype=np.float64)  # type: ignore[misc]
    return float(np.dot(probs, mids) / max(float(probs.sum()), 1e-9))


class AgeEstimation(FaceClassifier):
    """Estimated age range per face track (mediapipe face detection + a FairFace ViT age classifier)."""

    name = "age_estimation"
    # beside the other GPU analyzers, in a process of its own at a lower CPU priority (see eye_tracking):
    # its face detection and crops are Python and CPU, and nothing on the run's longest path waits for it
    own_process = True
    cpu_priority = "low"
    version = "1.0.0"
    description = ("Estimated age range per face track: a ViT age classifier (FairFace) on mediapipe face "
                   "crops (the original system used DeepFace); its model is fetched on first use.")
    original_status = "active"  # how the original system shipped it (docs/analyzers.md)
    enabled_by_default = True  # as in the original (the other face classifiers were off there)
    MODEL_ID = MODEL_ID
    models = (DETECTOR_ID, MODEL_ID)

    def load(self, device, models) -> None:
        super().load(device, models)
        self.bounds = [age_bounds(label) for label in self.labels]

    def track_events(self, track: FaceTrack, start: float, end: float, times: list[float],
                     probs: np.ndarray, members: list[tuple[int, int]]) -> list[Event]:
        mean = probs.mean(axis=0)
        top = int(mean.argmax())
        label = self.labels[top]
        bounds = self.bounds[top]
        age = expected_age(mean, self.bounds)
        order = np.argsort(-mean, kind="stable")
        return [Event(start=start, end=end, label="age", score=round(float(mean[top]), 4),
                      data={"age_range": label, "age_low": bounds[0] if bounds else None,
                            "age_high": bounds[1] if bounds else None,
                            "age": round(age, 1) if age is not None else None, "track_id": track.id,
                            "frames": len(members), "scores": {self.labels[i]: round(float(mean[i]), 4) for i in order},
                            "text": f"age {label}"})]

    def summary(self, events: list[Event], observations: np.ndarray) -> dict:
        ranges: dict[str, int] = {}
        for e in events:
            ranges[e.data["age_range"]] = ranges.get(e.data["age_range"], 0) + 1
        return {"age_ranges": dict(sorted(ranges.items(), key=lambda kv: -kv[1]))}

    def series(self, times: list[float], faces: list[list[FaceBox]], probs: list[np.ndarray]) -> list[Series]:
        values: list[float | None] = []
        for found, rows in zip(faces, probs):
            if not found:
                values.append(None)
                continue
            j = max(range(len(found)), key=lambda k: found[k].height)
            age = expected_age(rows[j], self.bounds)
            values.append(round(age, 1) if age is not None else None)
        return [Series(name="age", unit="years", times=[round(t, 3) for t in times], values=values)]
