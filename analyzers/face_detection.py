"""Faces: where they are on each sampled frame, and each face followed across frames.

Disabled in the original system (seed 004 ``face_detection``, which used MTCNN from facenet-pytorch;
that package does not install with the torch pinned here). This port finds faces with mediapipe's
full-range face detector (BlazeFace, bundled in mediapipe 0.10.21; manifest id
``mediapipe-face-detection``; no download, CPU), the one eye_tracking uses (``_faces.detect``).
Faces of consecutive sampled frames are linked into face tracks by overlap and position within a
shot of the upstream ``cut_analysis`` track (``_faces.tracks``): a track is one person's
appearance, not an identity (no face recognition).

Series per sampled frame: ``faces`` (faces found). One ``face`` event per face track::

    Event(start, end, label="face", score=<mean detector confidence>,
          data={"track_id": 1, "frames": 12, "box": [0.41, 0.12, 0.58, 0.44], "size": 0.32,
                "boxes": [[0.0, 0.40, 0.12, 0.57, 0.44], ...], "text": "close-up face"})

``start``/``end`` are the midpoints to the shot's samples before and after it (the shot's start /
end when there is none); ``box`` is the mean box and ``size`` the mean face height, both frame
fractions; ``boxes`` the box on each sampled frame, ``[time, x0, y0, x1, y1]``; ``text`` says
"close-up face" (``size`` at least ``close_up``), "face", or "distant face" (under ``distant``).
Track data: ``faces_max``, ``face_presence``, ``face_tracks``, ``frames``, ``model``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from framework import AnalyzerInputs, BatchedAnalyzer, Event, Series, Track

from ._faces.detect import FaceFinder
from ._faces.tracks import face_tracks
from ._shots import shot_intervals
from ._vision.mediapipe_base import MediapipeFrameAnalyzer

logger = logging.getLogger(__name__)

MODEL_ID = "mediapipe-face-detection"


def size_word(size: float, close_up: float, distant: float) -> str:
    """``close-up face``, ``face`` or ``distant face`` for a face ``size`` (height share of the frame)."""
    if size >= close_up:
        return "close-up face"
    return "distant face" if size < distant else "face"


class FaceDetection(MediapipeFrameAnalyzer):
    """Faces per sampled frame with their boxes, linked into face tracks (mediapipe BlazeFace, bundled)."""

    name = "face_detection"
    version = "1.0.0"
    description = ("Faces per sampled frame with boxes, linked into face tracks (mediapipe's full-range face "
                   "detector, bundled; the original system used MTCNN).")
    original_status = "disabled"  # how the original system shipped it (docs/analyzers.md)
    depends_on = ("cut_analysis",)
    models = (MODEL_ID,)
    enabled_by_default = False

    class Params(BatchedAnalyzer.Params):
        fps: float = Field(2.0, gt=0, le=30, description="Frames per second read.")
        width: int = Field(960, ge=128, le=3840, description="Width in pixels of the frames read.")
        max_faces: int = Field(8, ge=1, le=50, description="Most faces read per frame (most confident first).")
        min_confidence: float = Field(0.5, gt=0, lt=1, description="Face detection confidence threshold.")
        min_iou: float = Field(0.3, ge=0, le=1, description="Box overlap that continues a face track.")
        max_gap: int = Field(2, ge=0, le=50, description="Sampled frames a face may be missing and keep its track.")
        close_up: float = Field(0.3, gt=0, le=1, description="Face height (share of the frame) called a close-up.")
        distant: float = Field(0.08, gt=0, le=1, description="Face height under which a face is called distant.")
        batch_size: int = Field(8, ge=1, le=256, description="Frames per step.")

    reader: FaceFinder | None = None

    def make_reader(self, models: dict[str, Path]) -> FaceFinder:
        return FaceFinder(models.get(MODEL_ID), self.name, self.params.min_confidence, self.params.max_faces)

    def finish(self, results: list[Any], inputs: AnalyzerInputs) -> Track:
        p = self.params
        times = [r[0] for r in results]
        faces = [r[1] for r in results]
        counts = [len(f) for f in faces]
        shots = shot_intervals(inputs, inputs.video.duration)
        events = []
        for t, start, end, members in face_tracks(times, faces, shots, p.min_iou, p.max_gap) if times else []:
            seen = [faces[i][j] for i, j in members]
            box = np.mean([f.box for f in seen], axis=0)
            size = float(np.mean([f.height for f in seen]))
            events.append(Event(
                start=start, end=end, label="face", score=round(float(np.mean([f.score for f in seen])), 4),
                data={"track_id": t.id, "frames": len(members), "box": [round(float(v), 4) for v in box],
                      "size": round(size, 4),
                      "boxes": [[round(times[i], 3), *faces[i][j].box] for i, j in members],
                      "text": size_word(size, p.close_up, p.distant)}))
        data = {"faces_max": max(counts, default=0),
                "face_presence": round(sum(1 for c in counts if c) / len(counts), 4) if counts else 0.0,
                "face_tracks": len(events), "frames": len(results), "model": MODEL_ID}
        series = [Series(name="faces", times=[round(t, 3) for t in times], values=[float(c) for c in counts])]
        return self.track(events=events, series=series, data=data)
