"""eye_tracking: mediapipe's bundled face detector and FaceMesh (with iris) find the face in a real
photo (zidane.jpg, shipped in the ultralytics wheel) and none in noise; the gaze rules."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import vision_fixtures as vf

from analyzers._vision.face import FaceObs, gaze_of
from analyzers.eye_tracking import EyeTracking
from framework import AnalyzerInputs, AnalyzerUnavailable
from framework.models import find_model, load_manifest


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    img = cv2.imread(str(vf.face_image()))[:, :, ::-1]
    return np.ascontiguousarray(cv2.resize(img, (960, 540), interpolation=cv2.INTER_AREA))


def test_the_face_in_a_real_photo_is_found_with_its_landmarks(tmp_path, photo):
    bundled = find_model(load_manifest()["mediapipe-face-mesh"])  # the runner's own look-up of the bundled models
    assert bundled is not None and bundled.revision.startswith("mediapipe 0.10.21")
    a = EyeTracking({"fps": 2})
    a.load("cpu", {"mediapipe-face-mesh": bundled.path})
    spec = a.frame_specs()[0]
    noise = np.random.default_rng(0).integers(0, 255, photo.shape, dtype=np.uint8)
    stream = vf.stream_of(tmp_path, spec, [photo, photo, noise, noise])
    try:
        track = a.analyze(AnalyzerInputs(video=vf.meta(2.0, 960, 540), streams={spec: stream}))
    finally:
        a.unload()
    faces = track.series_by_name("faces").values
    assert faces[0] >= 1 and faces[1] >= 1 and faces[2:] == [0.0, 0.0]
    (event,) = track.events
    assert event.label == "gaze" and event.data["faces_max"] >= 1 and event.data["face_presence"] == 0.5
    assert event.data["gaze"] in ("camera", "left", "right", "up", "down", "closed")
    assert sum(event.data["gaze_shares"].values()) == pytest.approx(1.0, abs=1e-3)
    contact = track.series_by_name("eye_contact").values
    assert contact[2:] == [None, None] and all(0.0 <= v <= 1.0 for v in contact[:2])
    # the face found is Zidane's, in the right part of the picture, with iris landmarks read
    reader_faces = EyeTracking()
    reader_faces.load("cpu", {"mediapipe-face-mesh": bundled.path})
    try:
        found = reader_faces.reader.read(photo)
    finally:
        reader_faces.unload()
    assert any(f.box[0] > 0.6 and f.box[1] < 0.3 and f.has_mesh for f in found)


def test_gaze_rules():
    front = FaceObs(box=(0, 0, 1, 1), score=0.9, iris_x=0.05, iris_y=0.1, yaw=0.02, openness=0.3)
    assert gaze_of(front) == "camera"
    assert gaze_of(FaceObs(box=(0, 0, 1, 1), score=0.9, iris_x=0.6, iris_y=0.0, yaw=0.3, openness=0.3)) == "right"
    assert gaze_of(FaceObs(box=(0, 0, 1, 1), score=0.9, iris_x=-0.5, iris_y=0.1, yaw=-0.1, openness=0.3)) == "left"
    assert gaze_of(FaceObs(box=(0, 0, 1, 1), score=0.9, iris_x=0.0, iris_y=0.9, yaw=0.0, openness=0.3)) == "down"
    assert gaze_of(FaceObs(box=(0, 0, 1, 1), score=0.9, iris_x=0.0, iris_y=0.0, yaw=0.0, openness=0.05)) == "closed"
    assert gaze_of(FaceObs(box=(0, 0, 1, 1), score=0.9)) is None  # detected, but no landmarks


def test_models_from_another_mediapipe_are_refused(tmp_path):
    with pytest.raises(AnalyzerUnavailable, match="not those of the imported mediapipe"):
        EyeTracking().load("cpu", {"mediapipe-face-mesh": tmp_path})
