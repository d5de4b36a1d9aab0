"""Faces on a frame with mediapipe's bundled full-range face detector (BlazeFace, mediapipe 0.10.21).

The same detector ``_vision.face.FaceReader`` (eye_tracking) uses: ``solutions.face_detection`` with
``model_selection=1`` (the full-range model, which also finds faces a fifth of the frame high or
smaller), its weights inside the mediapipe wheel (manifest ids ``mediapipe-face-detection`` and
``mediapipe-face-mesh``). No download, CPU only, a few milliseconds per frame.

Boxes are ``(x0, y0, x1, y1)`` fractions of the frame, clipped to it. ``square_crop`` cuts the
square around a box (``scale`` times its longer side) that the landmark model and the face
classifiers read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._vision.mediapipe_base import build_graph, close_quietly, mediapipe_solutions

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class FaceBox:
    """One detected face: its box (frame fractions) and the detector's confidence."""

    box: Box
    score: float

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


class FaceFinder:
    """mediapipe's full-range face detector; ``find(rgb)`` gives the faces, most confident first.

    Not thread-safe: call it from one thread at a time (mediapipe graphs keep state).
    """

    def __init__(self, package_dir: Path | None, who: str, min_confidence: float = 0.5, max_faces: int = 8):
        solutions = mediapipe_solutions(package_dir, who)
        self.detector = build_graph(who, "face detection", lambda: solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_confidence))
        self.max_faces = max_faces

    def close(self) -> None:
        close_quietly(self.detector)

    def find(self, rgb: np.ndarray) -> list[FaceBox]:
        found = self.detector.process(np.ascontiguousarray(rgb)).detections or []
        faces = []
        for det in sorted(found, key=lambda d: -d.score[0])[: self.max_faces]:
            b = det.location_data.relative_bounding_box
            box = (max(0.0, b.xmin), max(0.0, b.ymin), min(1.0, b.xmin + b.width), min(1.0, b.ymin + b.height))
            if box[2] > box[0] and box[3] > box[1]:
                faces.append(FaceBox(box=tuple(round(float(v), 4) for v in box), score=round(float(det.score[0]), 4)))
        return faces

    read = find  # the reader interface of ``_vision.mediapipe_base.MediapipeFrameAnalyzer``


def square_bounds(box: Box, width: int, height: int, scale: float) -> tuple[int, int, int, int]:
    """Pixel bounds ``(x0, y0, x1, y1)`` of the square ``scale`` times the box's longer side,
    centred on the box, clipped to the frame."""
    cx, cy = (box[0] + box[2]) / 2 * width, (box[1] + box[3]) / 2 * height
    side = scale * max((box[2] - box[0]) * width, (box[3] - box[1]) * height)
    x0, y0 = int(max(0, round(cx - side / 2))), int(max(0, round(cy - side / 2)))
    x1, y1 = int(min(width, round(cx + side / 2))), int(min(height, round(cy + side / 2)))
    return x0, y0, x1, y1


def square_crop(rgb: np.ndarray, box: Box, scale: float) -> np.ndarray | None:
    """The square crop around ``box`` (see ``square_bounds``); None when it is under 8 pixels."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = square_bounds(box, w, h, scale)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])
