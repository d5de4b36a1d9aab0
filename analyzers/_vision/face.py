"""Faces and eyes with mediapipe's legacy solutions (0.10.21, models bundled in the wheel).

FaceMesh's own detector is the short-range BlazeFace, which misses faces smaller than about a
fifth of the frame (typical in video). So ``FaceReader`` finds faces with the full-range
detector (``solutions.face_detection``, ``model_selection=1``), crops a square around each
(twice the face box) and runs FaceMesh with iris refinement (478 landmarks) on the crop in
static-image mode (frames are sampled sparsely and cross cuts; no tracking between them).

Gaze geometry per face, from the landmarks (image coordinates; "left" is the viewer's left):

- ``iris_x``: where the irises sit between the eye corners, -1 (at the left corner) .. 1, 0
  centred, the mean of both eyes; ``iris_y`` likewise between the lids (-1 up .. 1 down);
- ``yaw``: the nose tip's offset from the middle of the outer eye corners in inter-ocular
  distances (0 facing the camera; positive: the face turned to the viewer's right);
- ``openness``: lid distance over eye width (eye aspect ratio), the mean of both eyes.

``gaze_of`` turns those into an estimate: ``camera`` (eye contact) when the face is frontal and
the irises centred, else the dominant direction (``left``, ``right``, ``up``, ``down``), or
``closed`` when the eyes are shut. It is geometry, not a calibrated gaze tracker.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .mediapipe_base import build_graph, close_quietly, mediapipe_solutions

logger = logging.getLogger(__name__)

# FaceMesh indices: corners (outer, inner), lids (upper, lower) and iris centres of both eyes
R_OUT, R_IN, R_UP, R_LO, R_IRIS = 33, 133, 159, 145, 468
L_OUT, L_IN, L_UP, L_LO, L_IRIS = 263, 362, 386, 374, 473
NOSE_TIP = 1


@dataclass(frozen=True)
class FaceObs:
    """One face on one frame: its box (frame fractions), detection score and gaze geometry
    (``None`` values when FaceMesh found no landmarks in the crop)."""

    box: tuple[float, float, float, float]
    score: float
    iris_x: float | None = None
    iris_y: float | None = None
    yaw: float | None = None
    openness: float | None = None

    @property
    def has_mesh(self) -> bool:
        return self.iris_x is not None


def gaze_of(face: FaceObs, max_yaw: float = 0.25, max_iris: float = 0.3, min_open: float = 0.12) -> str | None:
    """``camera``, ``left``, ``right``, ``up``, ``down`` or ``closed`` (None without landmarks)."""
    if not face.has_mesh:
        return None
    assert face.iris_x is not None and face.iris_y is not None and face.yaw is not None
    if face.openness is not None and face.openness < min_open:
        return "closed"
    horizontal = face.yaw + 0.5 * face.iris_x  # where the eyes point: head turn plus eye turn
    if abs(face.yaw) <= max_yaw and abs(face.iris_x) <= max_iris and abs(face.iris_y) <= 0.6:
        return "camera"
    if abs(horizontal) >= abs(face.iris_y) * 0.5:
        return "right" if horizontal > 0 else "left"
    return "down" if face.iris_y > 0 else "up"


def _geometry(pts: np.ndarray) -> tuple[float, float, float, float]:
    """iris_x, iris_y, yaw, openness from (478, 2) landmark positions in pixels."""

    def eye(outer: int, inner: int, up: int, lo: int, iris: int) -> tuple[float, float, float]:
        x0, x1 = sorted((pts[outer, 0], pts[inner, 0]))
        width = max(x1 - x0, 1e-6)
        ix = 2 * (pts[iris, 0] - x0) / width - 1
        top, bottom = pts[up, 1], pts[lo, 1]
        height = bottom - top
        iy = 2 * (pts[iris, 1] - top) / height - 1 if height > 1e-6 else 0.0
        return float(ix), float(iy), float(abs(height) / width)

    rx, ry, ro = eye(R_OUT, R_IN, R_UP, R_LO, R_IRIS)
    lx, ly, lo = eye(L_OUT, L_IN, L_UP, L_LO, L_IRIS)
    mid = (pts[R_OUT] + pts[L_OUT]) / 2
    iod = float(np.hypot(*(pts[L_OUT] - pts[R_OUT]))) or 1e-6
    yaw = float((pts[NOSE_TIP, 0] - mid[0]) / iod)
    return (rx + lx) / 2, (ry + ly) / 2, yaw, (ro + lo) / 2


class FaceReader:
    """Full-range face detection + FaceMesh with iris on face crops (see the module docstring)."""

    def __init__(self, package_dir: Path | None, max_faces: int, min_confidence: float):
        solutions = mediapipe_solutions(package_dir, "eye_tracking", "face_mesh")
        self.detector = build_graph("eye_tracking", "face detection", lambda: solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_confidence))
        self.mesh = build_graph("eye_tracking", "FaceMesh", lambda: solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3))
        self.max_faces = max_faces

    def close(self) -> None:
        close_quietly(self.detector, self.mesh)

    def read(self, rgb: np.ndarray) -> list[FaceObs]:
        """The faces on one RGB frame, most confident first, at most ``max_faces``."""
        img = np.ascontiguousarray(rgb)
        h, w = img.shape[:2]
        found = self.detector.process(img).detections or []
        found = sorted(found, key=lambda d: -d.score[0])[: self.max_faces]
        faces = []
        for det in found:
            b = det.location_data.relative_bounding_box
            box = (max(0.0, b.xmin), max(0.0, b.ymin), min(1.0, b.xmin + b.width), min(1.0, b.ymin + b.height))
            cx, cy = (box[0] + box[2]) / 2 * w, (box[1] + box[3]) / 2 * h
            side = 2.0 * max(b.width * w, b.height * h)
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            x1, y1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
            obs = FaceObs(box=tuple(round(float(v), 4) for v in box), score=round(float(det.score[0]), 4))
            if x1 - x0 >= 16 and y1 - y0 >= 16:
                crop = np.ascontiguousarray(img[y0:y1, x0:x1])
                mesh = self.mesh.process(crop).multi_face_landmarks
                if mesh:
                    lm = mesh[0].landmark
                    pts = np.array([[p.x * (x1 - x0) + x0, p.y * (y1 - y0) + y0] for p in lm], dtype=np.float64)
                    if len(pts) >= 478:
                        ix, iy, yaw, openness = _geometry(pts)
                        obs = FaceObs(box=obs.box, score=obs.score, iris_x=round(ix, 4), iris_y=round(iy, 4),
                                      yaw=round(yaw, 4), openness=round(openness, 4))
            faces.append(obs)
        return faces
