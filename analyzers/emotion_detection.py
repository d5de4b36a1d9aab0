"""Facial expression per face: what each face's expression looks like, over time.

Disabled in the original system (seed 004 ``emotion_detection``, which used the FER package's
small Keras model; FER needs TensorFlow, which this stack does not ship). This port classifies face
crops with a ViT fine-tuned on FER2013 (manifest id ``vit-face-expression``,
``trpakov/vit-face-expression``: angry, disgust, fear, happy, neutral, sad, surprise; about 71 %
accuracy on FER2013's test set per its model card), through transformers. Faces come from
mediapipe's bundled full-range face detector and are linked into face tracks within shots
(``_faces.classify``). It reads an expression, not what someone feels: FER2013 is posed and
noisy, skewed to ``happy`` and ``neutral``, and the model is less reliable for ``disgust`` and
``fear`` and on darker skin tones (its model card).

Per face track, the samples' probabilities are smoothed (a moving mean over ``smooth`` samples)
and each run of samples with the same top expression becomes one ``emotion`` event::

    Event(start, end, label="emotion", score=0.82,
          data={"emotion": "happy", "track_id": 1, "frames": 5,
                "scores": {"happy": 0.82, "neutral": 0.1, ...}, "text": "happy face"})

``score`` / ``scores`` are the run's mean probabilities. Series: ``faces`` (faces classified per
sampled frame). Track data: ``emotions`` (label -> share of all face observations whose top
class it is), ``dominant`` (the commonest), ``labels`` (the model's), ``faces_max``,
``face_presence``, ``face_tracks``, ``frames``, ``model``.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from framework import Event

from ._faces.classify import DETECTOR_ID, FaceClassifier
from ._faces.tracks import FaceTrack
from ._vision.common import span

MODEL_ID = "vit-face-expression"


def smooth_rows(probs: np.ndarray, window: int) -> np.ndarray:
    """Each row replaced by the mean of the ``window`` rows centred on it (fewer at the ends)."""
    if window <= 1 or len(probs) < 2:
        return probs
    half = window // 2
    return np.stack([probs[max(0, i - half): i + half + 1].mean(axis=0) for i in range(len(probs))])


def runs(values: list[int]) -> list[tuple[int, int]]:
    """``(first, last)`` positions of the runs of equal consecutive values."""
    out, first = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[first]:
            out.append((first, i - 1))
            first = i
    return out


class EmotionDetection(FaceClassifier):
    """Facial expression per face track over time (mediapipe face detection + a FER2013 ViT)."""

    name = "emotion_detection"
    version = "1.0.0"
    description = ("Facial expression (angry, disgust, fear, happy, neutral, sad, surprise) per face track "
                   "over time: a FER2013 ViT on mediapipe face crops (the original system used FER).")
    original_status = "disabled"  # how the original system shipped it (docs/analyzers.md)
    MODEL_ID = MODEL_ID
    models = (DETECTOR_ID, MODEL_ID)

    class Params(FaceClassifier.Params):
        smooth: int = Field(3, ge=1, le=31, description="Samples averaged (moving mean) before a face's expression is read.")

    def track_events(self, track: FaceTrack, start: float, end: float, times: list[float],
                     probs: np.ndarray, members: list[tuple[int, int]]) -> list[Event]:
        smoothed = smooth_rows(probs, self.params.smooth)
        top = [int(i) for i in smoothed.argmax(axis=1)]
        events = []
        for a, b in runs(top):
            s, e = span(times, members[a][0], members[b][0], start, end) if (a, b) != (0, len(top) - 1) else (start, end)
            mean = probs[a:b + 1].mean(axis=0)
            label = self.labels[top[a]]
            order = np.argsort(-mean, kind="stable")
            events.append(Event(start=s, end=e, label="emotion", score=round(float(mean[top[a]]), 4),
                                data={"emotion": label, "track_id": track.id, "frames": b - a + 1,
                                      "scores": {self.labels[i]: round(float(mean[i]), 4) for i in order},
                                      "text": f"{label} face"}))
        return events

    def summary(self, events: list[Event], observations: np.ndarray) -> dict:
        if not len(observations):
            return {"emotions": {}, "dominant": None}
        counts = np.bincount(observations.argmax(axis=1), minlength=len(self.labels))
        shares = {self.labels[i]: round(float(counts[i] / counts.sum()), 4)
                  for i in np.argsort(-counts, kind="stable") if counts[i]}
        return {"emotions": shares, "dominant": next(iter(shares))}
