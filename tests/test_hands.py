"""hand_gesture and gesture_recognition: mediapipe's bundled Hands finds the one hand in a real photo
(zidane.jpg, shipped in the ultralytics wheel: a hand pointing with its index finger) and none in
noise; the gesture rules on constructed hands; both analyzers in a real run on a generated clip."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import vision_fixtures as vf

from analyzers._hands import HandReader, classify, finger_states
from analyzers.gesture_recognition import GestureRecognition
from analyzers.hand_gesture import HandGesture
from framework import AnalyzerInputs, AnalyzerUnavailable
from framework.models import find_model, load_manifest
from framework.runner import analyze


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    img = cv2.imread(str(vf.face_image()))[:, :, ::-1]
    return np.ascontiguousarray(cv2.resize(img, (640, 360), interpolation=cv2.INTER_AREA))


def test_the_pointing_hand_in_a_real_photo(tmp_path, photo):
    bundled = find_model(load_manifest()["mediapipe-hands"])  # the runner's own look-up of the bundled models
    assert bundled is not None
    a = HandGesture()
    a.load("cpu", {"mediapipe-hands": bundled.path})
    spec = a.frame_specs()[0]
    noise = np.random.default_rng(0).integers(0, 255, photo.shape, dtype=np.uint8)
    stream = vf.stream_of(tmp_path, spec, [photo, photo, photo, noise])
    try:
        track = a.analyze(AnalyzerInputs(video=vf.meta(1.0), streams={spec: stream}))
    finally:
        a.unload()
    assert track.series_by_name("hands").values == [1.0, 1.0, 1.0, 0.0]
    (event,) = track.events
    assert event.label == "hands" and event.data["presence"] == 0.75 and event.data["hands_max"] == 1
    assert event.data["gestures"] == {"pointing": 1.0} and event.data["text"] == "hands: pointing"
    assert len(track.data["observations"]) == 3 and track.data["aspect"] == pytest.approx(640 / 360)
    hand = track.data["observations"][0]["hands"][0]
    assert len(hand["landmarks"]) == 21 and hand["handedness"] in ("left", "right") and hand["score"] > 0.5
    x1, y1, x2, y2 = hand["box"]
    assert 0.7 < x1 < x2 < 0.95 and 0.5 < y1 < y2 < 0.75  # the pointing hand at the right, mid-height
    tip, wrist = hand["landmarks"][8], hand["landmarks"][0]
    assert tip[0] > wrist[0] + 0.05  # the index finger points to the right of the picture
    mirrored = HandReader(bundled.path, min_confidence=0.4, mirrored=True)
    try:
        (seen,) = mirrored.read(photo)
    finally:
        mirrored.close()
    assert {seen.handedness, hand["handedness"]} == {"left", "right"}  # mediapipe's own label, swapped back

    gestures = GestureRecognition().analyze(AnalyzerInputs(video=vf.meta(1.0), upstream={"hand_gesture": track}))
    (g,) = gestures.events
    assert g.data["gesture"] == "pointing" and g.data["frames"] == 3 and g.data["hand"] == hand["handedness"]
    assert (g.start, g.end) == (0.0, 0.625)  # samples at 0, .25, .5 with the hand; .75 without
    assert gestures.data == {"count": 1, "by_gesture": {"pointing": 1}, "frames": 4}
    assert GestureRecognition({"gestures": ["fist"]}).analyze(
        AnalyzerInputs(video=vf.meta(1.0), upstream={"hand_gesture": track})).events == []
    assert GestureRecognition({"min_frames": 4}).analyze(
        AnalyzerInputs(video=vf.meta(1.0), upstream={"hand_gesture": track})).events == []


# --- constructed hands: wrist at the origin, palm length 1, fingers up (y grows downwards) ---------
MCP_X = {"index": -0.3, "middle": -0.1, "ring": 0.1, "pinky": 0.3}
BASE = {"index": 5, "middle": 9, "ring": 13, "pinky": 17}


def _hand(extended: set[str], thumb: str = "in", turn_deg: float = 0.0) -> np.ndarray:
    pts = np.zeros((21, 2))
    for name, x in MCP_X.items():
        b = BASE[name]
        pts[b] = (x, -1.0)
        pts[b + 1:b + 4] = ([(x, -1.4), (x, -1.7), (x, -1.95)] if name in extended
                            else [(x, -1.35), (x, -1.1), (x, -0.9)])  # curled back into the palm
    pts[1], pts[2] = (-0.35, -0.2), (-0.55, -0.4)
    pts[3], pts[4] = {"in": [(-0.4, -0.6), (-0.2, -0.7)], "out": [(-0.85, -0.55), (-1.15, -0.7)],
                      "ok": [(-0.7, -0.7), (-0.68, -1.05)]}[thumb]
    if thumb == "ok":  # the index bends over to touch the thumb
        pts[6:9] = [(-0.45, -1.3), (-0.6, -1.3), (-0.65, -1.1)]
    a = math.radians(turn_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return pts @ rot.T + (0.5, 0.5)


def _thumb_turn(up: bool) -> float:
    """The rotation (degrees) that points the outstretched thumb straight up (or down) in the picture."""
    d = np.array([-1.15 + 0.55, -0.7 + 0.4])
    return math.degrees(math.atan2(-1.0 if up else 1.0, 0.0) - math.atan2(d[1], d[0]))


@pytest.mark.parametrize("hand, gesture", [
    (_hand({"index", "middle", "ring", "pinky"}, "out"), "open_palm"),
    (_hand(set()), "fist"),
    (_hand({"index"}), "pointing"),
    (_hand({"index"}, turn_deg=80), "pointing"),  # any orientation
    (_hand({"index", "middle"}), "victory"),
    (_hand({"middle", "ring", "pinky"}, "ok"), "ok"),
    (_hand(set(), "out", _thumb_turn(up=True)), "thumbs_up"),
    (_hand(set(), "out", _thumb_turn(up=False)), "thumbs_down"),
    (_hand({"index", "pinky"}), None),  # no gesture of the list
])
def test_gesture_rules(hand, gesture):
    assert classify(hand) == gesture
    # the same hand in frame fractions of a 16:9 frame reads the same
    squeezed = hand.copy()
    squeezed[:, 0] /= 16 / 9
    assert classify(squeezed, aspect=16 / 9) == gesture


def test_finger_states():
    assert finger_states(_hand({"index", "middle"})) == {"thumb": False, "index": True, "middle": True,
                                                         "ring": False, "pinky": False}
    assert finger_states(_hand({"index", "middle", "ring", "pinky"}, "out"))["thumb"] is True


def test_unknown_gestures_and_foreign_models_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown gestures"):
        GestureRecognition({"gestures": ["wave"]})
    with pytest.raises(AnalyzerUnavailable, match="not those of the imported mediapipe"):
        HandGesture().load("cpu", {"mediapipe-hands": tmp_path})


def test_hands_and_gestures_in_a_run(tmp_path, photo):
    noise = np.random.default_rng(1).integers(0, 255, photo.shape, dtype=np.uint8)
    frames = [photo] * 20 + [noise] * 10  # 2 s of the photo, 1 s of noise at 10 fps
    video = vf.encode(tmp_path / "hand.mp4", frames, 10, 640, 360)
    registry = vf.registry(tmp_path, {"hand_gesture": {"fps": 2}, "gesture_recognition": {}})
    result = analyze(video, registry_path=registry, out_dir=tmp_path / "run", progress=False, load_entrypoints=False)
    tracks = result.timeline.tracks
    assert {n: t.status for n, t in tracks.items() if n in ("hand_gesture", "gesture_recognition", "cut_analysis")} \
        == {"hand_gesture": "ok", "gesture_recognition": "ok", "cut_analysis": "ok"}
    assert tracks["hand_gesture"].series_by_name("hands").values == [1.0] * 4 + [0.0] * 2
    (g,) = tracks["gesture_recognition"].events
    assert g.data["gesture"] == "pointing" and g.start == 0.0 and abs(g.end - 2.0) <= 0.5
