"""Facial details from mediapipe FaceMesh landmarks (bundled in mediapipe 0.10.21).

``MeshReader`` finds faces with the full-range detector (``detect.FaceFinder``), cuts the square
twice each face's size around it, and runs FaceMesh (static-image mode, 468 landmarks, 478 with
the iris model) on the crop, as eye_tracking's ``_vision.face.FaceReader`` does. From the
landmarks (crop pixels; ``z`` on the scale of ``x``, as mediapipe gives it):

- ``mouth_open``: inner-lip gap (landmarks 13-14) over mouth width (corners 61-291); about 0-0.05
  with the lips closed, 0.2 and more with the mouth open;
- ``eye_open``: lid gap (159-145, 386-374) over eye width (33-133, 263-362), the mean of both
  eyes; about 0.25-0.35 open, under 0.12 shut;
- head pose in degrees from the face's own axes (eye corners 33-263 across, forehead 10 to chin
  152 down, their cross product forward): ``yaw`` (positive: the face turned to the viewer's
  right), ``pitch`` (positive: looking up), ``roll`` (positive: the head tilted clockwise as the
  viewer sees it). Geometry on FaceMesh's relative depth, not a calibrated head-pose model: expect
  a few degrees of error, more beyond 45 degrees of yaw.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._vision.mediapipe_base import build_graph, close_quietly, mediapipe_solutions
from .detect import Box, FaceFinder, square_bounds

# FaceMesh indices
R_OUT, R_IN, R_UP, R_LO = 33, 133, 159, 145
L_OUT, L_IN, L_UP, L_LO = 263, 362, 386, 374
LIP_UP, LIP_LO, MOUTH_R, MOUTH_L = 13, 14, 61, 291
FOREHEAD, CHIN = 10, 152


@dataclass(frozen=True)
class FaceDetails:
    """One face on one frame: box (frame fractions), detection score and, when FaceMesh read the
    crop, mouth and eye opening and head pose (degrees); ``None`` without landmarks."""

    box: Box
    score: float
    mouth_open: float | None = None
    eye_open: float | None = None
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None

    @property
    def has_mesh(self) -> bool:
        return self.mouth_open is not None


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(*(a[:2] - b[:2])))


def openings(pts: np.ndarray) -> tuple[float, float]:
    """``mouth_open`` and ``eye_open`` (see the module docstring) from landmark positions (N, 2+)."""
    mouth = _dist(pts[LIP_UP], pts[LIP_LO]) / max(_dist(pts[MOUTH_R], pts[MOUTH_L]), 1e-6)
    right = _dist(pts[R_UP], pts[R_LO]) / max(_dist(pts[R_OUT], pts[R_IN]), 1e-6)
    left = _dist(pts[L_UP], pts[L_LO]) / max(_dist(pts[L_OUT], pts[L_IN]), 1e-6)
    return mouth, (right + left) / 2


def head_pose(pts: np.ndarray) -> tuple[float, float, float]:
    """``yaw``, ``pitch``, ``roll`` in degrees (see the module docstring) from (N, 3) landmarks in
    image axes (x right, y down, z away from the camera)."""
    ex = pts[L_OUT] - pts[R_OUT]  # across the face, the viewer's left to right on a frontal face
    ey = pts[CHIN] - pts[FOREHEAD]  # down the face
    ex = ex / max(np.linalg.norm(ex), 1e-9)
    ey = ey - np.dot(ey, ex) * ex
    ey = ey / max(np.linalg.norm(ey), 1e-9)
    forward = -np.cross(ex, ey)  # out of the face, towards the camera when frontal: (0, 0, -1)
    yaw = math.degrees(math.atan2(forward[0], -forward[2]))
    pitch = math.degrees(math.atan2(-forward[1], math.hypot(forward[0], forward[2])))
    roll = math.degrees(math.atan2(ex[1], ex[0]))
    return yaw, pitch, roll


class MeshReader:
    """Full-range face detection + FaceMesh on each face's crop (see the module docstring)."""

    def __init__(self, package_dir: Path | None, who: str, max_faces: int, min_confidence: float):
        solutions = mediapipe_solutions(package_dir, who, "face_mesh")
        self.finder = FaceFinder(package_dir, who, min_confidence, max_faces)
        self.mesh = build_graph(who, "FaceMesh", lambda: solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3))

    def close(self) -> None:
        close_quietly(self.finder, self.mesh)

    def landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray | None:
        """(N, 3) FaceMesh landmarks in frame pixels (z on x's scale) of the face in ``box``, or None."""
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = square_bounds(box, w, h, 2.0)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        found = self.mesh.process(np.ascontiguousarray(rgb[y0:y1, x0:x1])).multi_face_landmarks
        if not found:
            return None
        cw, ch = x1 - x0, y1 - y0
        return np.array([[p.x * cw + x0, p.y * ch + y0, p.z * cw] for p in found[0].landmark], dtype=np.float64)

    def largest_mouth(self, rgb: np.ndarray) -> float | None:
        """``mouth_open`` of the largest face with landmarks (None without one): FaceMesh runs on the
        faces from the largest down, and stops at the first it reads (ties: the more confident)."""
        img = np.ascontiguousarray(rgb)
        faces = sorted(self.finder.find(img), key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        for face in faces:
            pts = self.landmarks(img, face.box)
            if pts is not None and len(pts) >= 468:
                return round(openings(pts)[0], 4)
        return None

    def read(self, rgb: np.ndarray) -> list[FaceDetails]:
        """The faces on one RGB frame, most confident first."""
        img = np.ascontiguousarray(rgb)
        out = []
        for face in self.finder.find(img):
            pts = self.landmarks(img, face.box)
            if pts is None or len(pts) < 468:
                out.append(FaceDetails(box=face.box, score=face.score))
                continue
            mouth, eye = openings(pts)
            yaw, pitch, roll = head_pose(pts)
            out.append(FaceDetails(box=face.box, score=face.score, mouth_open=round(mouth, 4), eye_open=round(eye, 4),
                                   yaw=round(yaw, 2), pitch=round(pitch, 2), roll=round(roll, 2)))
        return out
