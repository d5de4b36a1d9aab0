"""Faces and eyes: who is on screen and whether they look into the camera, per shot.

Samples RGB frames (2 fps, 960 px wide by default) and reads each with mediapipe's legacy
solutions (mediapipe 0.10.21; models bundled in the wheel, manifest id ``mediapipe-face-mesh``):
the full-range face detector finds faces of any size, FaceMesh with iris refinement reads 478
landmarks on a crop around each (``_vision.face``). From the landmarks each face gets a gaze
estimate: ``camera`` (eye contact: a frontal face with centred irises), ``left``, ``right``,
``up``, ``down`` (the viewer's directions) or ``closed``. Runs on the CPU, through the device
step in batches.

Series per sampled frame: ``faces`` (faces found) and ``eye_contact`` (share of the frame's
faces looking into the camera; ``None`` without a face). Each shot of the upstream
``cut_analysis`` track (the whole video when there is none) with a face gets one ``gaze``
event::

    Event(start, end, label="gaze", score=<eye contact>,
          data={"faces_max": 2, "face_presence": 0.9, "eye_contact": 0.65, "gaze": "camera",
                "gaze_shares": {"camera": 0.65, "left": 0.2, "down": 0.15}, "frames": 8,
                "text": "eye contact"})

``face_presence`` is the share of the shot's sampled frames with a face; ``eye_contact`` and
``gaze_shares`` are shares of the face observations with landmarks; ``gaze`` is the commonest
direction; ``text`` says "eye contact" or "looking <direction>" for search. Track data:
``faces_max``, ``face_presence``, ``eye_contact`` (over the whole video), ``frames``.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from framework import AnalyzerInputs, BatchedAnalyzer, Event, Series, Track

from ._shots import shot_intervals
from ._vision.common import by_shot
from ._vision.face import FaceReader, gaze_of
from ._vision.mediapipe_base import MediapipeFrameAnalyzer

logger = logging.getLogger(__name__)

MODEL_ID = "mediapipe-face-mesh"


class EyeTracking(MediapipeFrameAnalyzer):
    """Faces present and a gaze / eye-contact estimate per shot (mediapipe FaceMesh with iris)."""

    name = "eye_tracking"
    # beside GPU analyzers, in a process of its own at a lower CPU priority: FaceMesh's steps are driven
    # from Python, and nothing on the run's longest path waits for it (with age_estimation likewise, the
    # runner's wall on an H200 went from 31.1 to 28.2 s by the median: docs/benchmarks.md, 37th session)
    own_process = True
    cpu_priority = "low"
    original_status = "active"
    version = "1.0.0"
    description = "Faces present and gaze / eye contact per shot (mediapipe face detection + FaceMesh with iris)."
    depends_on = ("cut_analysis",)
    models = (MODEL_ID,)

    class Params(BatchedAnalyzer.Params):
        fps: float = Field(2.0, gt=0, le=30, description="Frames per second read.")
        width: int = Field(960, ge=128, le=3840, description="Width in pixels of the frames read.")
        max_faces: int = Field(4, ge=1, le=20, description="Most faces read per frame (most confident first).")
        min_confidence: float = Field(0.5, gt=0, lt=1, description="Face detection confidence threshold.")
        max_yaw: float = Field(0.25, gt=0, le=1, description="Head turn (inter-ocular units) still counted as eye contact.")
        max_iris: float = Field(0.3, gt=0, le=1, description="Iris offset (-1..1) still counted as eye contact.")
        batch_size: int = Field(8, ge=1, le=256, description="Frames per step.")

    reader: FaceReader | None = None

    def make_reader(self, models: dict[str, Path]) -> FaceReader:
        return FaceReader(models.get(MODEL_ID), self.params.max_faces, self.params.min_confidence)

    def postprocess(self, outputs: Any, items: list[Any]) -> list[Any]:
        p = self.params
        return [(float(t), faces, [gaze_of(f, p.max_yaw, p.max_iris) for f in faces])
                for (t, _), faces in zip(items, outputs)]

    def finish(self, results: list[Any], inputs: AnalyzerInputs) -> Track:
        times = [r[0] for r in results]
        counts = [len(r[1]) for r in results]
        contact: list[float | None] = []
        for _, _, gazes in results:
            known = [g for g in gazes if g is not None]
            contact.append(round(sum(g == "camera" for g in known) / len(known), 4) if known else None)
        events = []
        for start, end, idx in by_shot(shot_intervals(inputs, inputs.video.duration), times):
            if not any(counts[i] for i in idx):
                continue
            gazes = Counter(g for i in idx for g in results[i][2] if g is not None)
            total = sum(gazes.values())
            eye = gazes.get("camera", 0) / total if total else 0.0
            top = gazes.most_common(1)[0][0] if total else None
            data: dict[str, Any] = {"faces_max": max(counts[i] for i in idx),
                                    "face_presence": round(sum(1 for i in idx if counts[i]) / len(idx), 4),
                                    "eye_contact": round(eye, 4), "gaze": top,
                                    "gaze_shares": {k: round(v / total, 4) for k, v in gazes.most_common()},
                                    "frames": len(idx)}
            if top is not None:
                data["text"] = "eye contact" if top == "camera" else ("eyes closed" if top == "closed" else f"looking {top}")
            events.append(Event(start=round(start, 3), end=round(end, 3), label="gaze", score=round(eye, 4), data=data))
        known = [c for c in contact if c is not None]
        data = {"faces_max": max(counts, default=0),
                "face_presence": round(sum(1 for c in counts if c) / len(counts), 4) if counts else 0.0,
                "eye_contact": round(float(np.mean(known)), 4) if known else None, "frames": len(results)}
        series = [Series(name="faces", times=[round(t, 3) for t in times], values=[float(c) for c in counts]),
                  Series(name="eye_contact", times=[round(t, 3) for t in times], values=contact)]
        return self.track(events=events, series=series, data=data)
