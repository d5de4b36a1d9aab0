"""The face analyzers: face_detection and facial_details with mediapipe's bundled models on a real
photo (real results: where the face is, when it is on screen, how the head pose follows a mirrored
or rotated photo); emotion_detection and age_estimation loading tiny ViT classifiers with the real
label sets from a Hugging Face cache through the runner (shapes and labels only: random weights
say nothing about expressions or ages), and skipped with the pull command when weights are missing."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import face_fixtures as ff
import vision_fixtures as vf

from analyzers._faces.mesh import MeshReader, head_pose, openings
from analyzers._faces.tracks import link
from analyzers.age_estimation import AgeEstimation, age_bounds, expected_age
from analyzers.emotion_detection import EmotionDetection, runs, smooth_rows
from analyzers.face_detection import FaceDetection
from analyzers.facial_details import FacialDetails, closed_runs, pose_word
from framework import AnalyzerUnavailable
from framework.models import load_manifest
from framework.models.roots import CacheRoots
from framework.runner import analyze


@pytest.fixture
def caches(tmp_path, monkeypatch):
    vf.offline_env(monkeypatch, tmp_path / "caches")
    return CacheRoots.from_env()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return ff.face_clip(tmp_path_factory.mktemp("faces") / "faces.mp4")


def _run(tmp_path, clip, analyzers):
    result = analyze(clip, registry_path=vf.registry(tmp_path, {"cut_analysis": {}, **analyzers}),
                     out_dir=tmp_path / "run", progress=False, load_entrypoints=False, offline=True)
    return result.timeline.tracks


def _in(events, lo, hi):
    return [e for e in events if e.start >= lo - 0.3 and e.end <= hi + 0.3]


def _documented(track):
    """Every label, event data key, track data key and series of ``track`` is in docs/analyzers.md
    (the docs test runs these analyzers only on a faceless sample, where they make no events)."""
    from test_docs_analyzers import _track_keys, _undocumented_track_keys, outputs

    doc = outputs()[track.analyzer]
    for e in track.events:
        assert e.label in doc.labels, e.label
        for key in e.data:
            assert "*" in doc.event_keys.get(key, ()) or e.label in doc.event_keys.get(key, ()), (e.label, key)
    assert not _undocumented_track_keys(_track_keys(track.data), doc.track_keys)
    assert {s.name: s.unit for s in track.series} == {n: u for n, u in doc.series.items()}


# --- mediapipe, bundled: real results -------------------------------------------------------------
def test_faces_and_their_details_on_a_real_photo_clip(tmp_path, clip, caches):
    tracks = _run(tmp_path, clip, {"face_detection": {"fps": 2, "width": 640},
                                   "facial_details": {"fps": 2, "width": 640}})
    faces, details = tracks["face_detection"], tracks["facial_details"]
    assert faces.status == "ok" and details.status == "ok", (faces.reason, details.reason)
    # Zidane's face (upper right) in both photo shots, in two tracks; nothing in the faceless shot
    zidane = [e for e in faces.events if e.data["box"][0] > 0.6 and e.data["box"][1] < 0.3]
    first, second = _in(zidane, 0, 2), _in(zidane, 4, 6)
    assert len(first) == 1 and len(second) == 1, [(e.start, e.end, e.data["box"]) for e in faces.events]
    assert first[0].start == 0.0 and first[0].end == pytest.approx(2.0, abs=0.05)  # seen up to the cut
    assert second[0].start == pytest.approx(4.0, abs=0.05) and second[0].end == pytest.approx(6.0, abs=0.05)
    assert first[0].data["track_id"] != second[0].data["track_id"] and first[0].data["frames"] >= 3
    assert all(len(b) == 5 and 0 <= b[0] < 2.0 for b in first[0].data["boxes"])
    assert not [e for e in faces.events if e.start >= 2.0 and e.end <= 4.0]
    counts = dict(zip(faces.series_by_name("faces").times, faces.series_by_name("faces").values))
    assert all(counts[t] == 0 for t in counts if 2.2 <= t <= 3.8) and counts[0.0] >= 1
    assert faces.data["face_tracks"] == len(faces.events) and 0.5 < faces.data["face_presence"] < 1.0
    # FaceMesh on that face: frontal-ish, eyes open, mouth closed (as in the photo)
    read = [e for e in details.events if e.label == "facial_details" and "head_pose" in e.data
            and _in([e], 0, 2)]
    assert read, [(e.label, e.start, e.end, e.data) for e in details.events]
    d = max(read, key=lambda e: e.data["frames"]).data
    assert d["head_pose"] == "frontal" and abs(d["yaw"]) < 25 and abs(d["roll"]) < 15
    assert d["eyes_closed_share"] == 0.0 and d["mouth_open_share"] == 0.0 and d["blinks"] == 0
    yaw = details.series_by_name("yaw")
    assert yaw.unit == "deg" and any(v is not None for v in yaw.values)
    assert all(v is None for t, v in zip(yaw.times, yaw.values) if 2.2 <= t <= 3.8)
    _documented(faces)
    _documented(details)


def test_head_pose_follows_a_mirrored_and_a_rotated_photo():
    photo = ff.face_photo()
    reader = MeshReader(None, "facial_details", max_faces=4, min_confidence=0.5)
    try:
        (face, *_) = reader.read(photo)
        mirrored = [f for f in reader.read(np.ascontiguousarray(photo[:, ::-1])) if f.box[2] < 0.4]
        cx, cy = (face.box[0] + face.box[2]) / 2 * photo.shape[1], (face.box[1] + face.box[3]) / 2 * photo.shape[0]
        turned = {}
        for angle in (15, -15):  # cv2: positive = counter-clockwise
            m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
            img = cv2.warpAffine(photo, m, photo.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
            turned[angle] = max(reader.read(img), key=lambda f: f.score if f.box[0] > 0.5 else 0)
    finally:
        reader.close()
    assert face.has_mesh and face.box[0] > 0.6
    (m,) = mirrored
    assert m.has_mesh and np.sign(m.yaw) == -np.sign(face.yaw) and abs(m.yaw + face.yaw) < 6
    assert abs(m.roll + face.roll) < 4 and abs(m.pitch - face.pitch) < 4
    assert turned[15].roll - face.roll == pytest.approx(-15, abs=5)  # tilted counter-clockwise as seen
    assert turned[-15].roll - face.roll == pytest.approx(15, abs=5)
    assert 0.15 < face.eye_open < 0.5 and face.mouth_open < 0.1


def test_face_models_from_another_mediapipe_are_refused(tmp_path):
    with pytest.raises(AnalyzerUnavailable, match="not those of the imported mediapipe"):
        FaceDetection().load("cpu", {"mediapipe-face-detection": tmp_path})


# --- geometry and bookkeeping on constructed inputs ------------------------------------------------
def test_pose_and_openings_from_constructed_landmarks():
    pts = np.zeros((478, 3))
    pts[33], pts[263] = (-1, 0, 0), (1, 0, 0)  # eye corners across
    pts[10], pts[152] = (0, -1.5, 0), (0, 1.5, 0)  # forehead, chin
    assert head_pose(pts) == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)
    turn = np.radians(30)  # the face's x axis rotated about the vertical: its forward gains +x
    pts[33], pts[263] = (-np.cos(turn), 0, -np.sin(turn)), (np.cos(turn), 0, np.sin(turn))
    assert head_pose(pts)[0] == pytest.approx(30, abs=1e-6)
    pts[13], pts[14], pts[61], pts[291] = (0, 1, 0), (0, 1.3, 0), (-0.5, 1.15, 0), (0.5, 1.15, 0)
    pts[133], pts[362] = (-0.4, 0, 0), (0.4, 0, 0)
    pts[159], pts[145], pts[386], pts[374] = (-0.7, -0.05, 0), (-0.7, 0.05, 0), (0.7, -0.05, 0), (0.7, 0.05, 0)
    mouth, eye = openings(pts)
    assert mouth == pytest.approx(0.3) and eye == pytest.approx(0.1 / (np.cos(turn) - 0.4))


def test_face_tracks_link_by_overlap_and_stop_at_shots_and_gaps():
    a, b = (0.1, 0.1, 0.3, 0.4), (0.6, 0.1, 0.8, 0.4)
    moved = (0.14, 0.12, 0.34, 0.42)
    frames = [[a, b], [b, moved], [], [], [], [moved], [moved]]
    tracks = link(frames, shot_of=[0, 0, 0, 0, 0, 0, 1], max_gap=2)
    assert [t.members for t in tracks] == [[(0, 0), (1, 1)], [(0, 1), (1, 0)], [(5, 0)], [(6, 0)]]
    assert len(link(frames, max_gap=3)) == 2  # a longer allowed gap keeps the face's track


def test_blinks_and_closed_eyes_of_a_face_track():
    from analyzers._faces.mesh import FaceDetails
    from framework import AnalyzerInputs

    box = (0.4, 0.2, 0.6, 0.5)
    eye = [0.3, 0.05, 0.3, 0.3, 0.05, 0.04, 0.05, 0.06, 0.3, 0.3]  # 4 fps: one closed sample, then 1 s closed
    results = [(i / 4, [FaceDetails(box=box, score=0.9, mouth_open=0.3 if i < 5 else 0.01, eye_open=e,
                                    yaw=-30.0, pitch=0.0, roll=0.0)]) for i, e in enumerate(eye)]
    a = FacialDetails({"fps": 4})
    track = a.finish(results, AnalyzerInputs(video=vf.meta(2.5)))
    by = {e.label: e for e in track.events}
    assert set(by) == {"facial_details", "blink", "eyes_closed"}
    assert (by["blink"].start, by["blink"].end) == (0.125, 0.375)
    assert (by["eyes_closed"].start, by["eyes_closed"].end) == (0.875, 1.875) and by["eyes_closed"].data["frames"] == 4
    d = by["facial_details"].data
    assert d["blinks"] == 1 and d["eyes_closed_share"] == 0.5 and d["mouth_open_share"] == 0.5
    assert d["head_pose"] == "turned left" and d["text"] == "turned left face, mouth open"
    assert (by["facial_details"].start, by["facial_details"].end) == (0.0, 2.5)
    _documented(track)


def test_pose_words_runs_and_age_bands():
    assert pose_word(5, -3, 2, 20, 20, 20) == "frontal"
    assert pose_word(35, 5, 0, 20, 20, 20) == "turned right" and pose_word(-5, -30, 0, 20, 20, 20) == "looking down"
    assert pose_word(0, 0, 25, 20, 20, 20) == "tilted"
    assert closed_runs([False, True, True, None, True, False]) == [(1, 2), (4, 4)]
    assert runs([3, 3, 1, 1, 1, 3]) == [(0, 1), (2, 4), (5, 5)]
    sm = smooth_rows(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), 3)
    assert sm[1] == pytest.approx([2 / 3, 1 / 3]) and sm[0] == pytest.approx([0.5, 0.5])
    assert [age_bounds(x) for x in ("0-2", "20-29", "more than 70", "70+", "adult")] == \
        [(0, 2), (20, 29), (70, None), (70, None), None]
    bounds = [age_bounds(x) for x in ff.AGE_BANDS]
    one_hot = np.eye(len(bounds))
    assert expected_age(one_hot[3], bounds) == pytest.approx(24.5) and expected_age(one_hot[-1], bounds) == 75
    assert expected_age(np.array([0.5, 0.5]), [(20, 29), None]) is None


# --- the transformers classifiers: tiny models with the real label sets ----------------------------
def test_classifiers_load_the_real_format_and_classify_face_crops():
    photo = ff.face_photo()
    detector = load_manifest()["mediapipe-face-detection"]
    from framework.models import find_model

    bundled = find_model(detector).path
    for cls, kind, labels in ((EmotionDetection, "expression", ff.EXPRESSIONS), (AgeEstimation, "age", ff.AGE_BANDS)):
        a = cls({"batch_size": 2})
        a.load("cpu", {"mediapipe-face-detection": bundled, cls.MODEL_ID: ff.tiny_classifier(kind)})
        try:
            assert a.labels == labels
            items = [(0.0, photo), (0.5, np.zeros_like(photo))]
            faces, pixels = a.preprocess(items)
            assert len(faces[0]) >= 1 and faces[1] == [] and tuple(pixels.shape[1:]) == (3, 32, 32)
            (t0, found, probs), (t1, none, empty) = a.postprocess(a.forward((faces, pixels)), items)
        finally:
            a.unload()
        assert probs.shape == (len(found), len(labels)) and probs.sum(axis=1) == pytest.approx(1.0, abs=1e-5)
        assert none == [] and empty.shape == (0, len(labels))


def test_emotion_and_age_through_the_runner_with_models_from_the_cache(tmp_path, clip, caches):
    placed = ff.seed_face_models(caches)
    manifest = load_manifest()
    tracks = _run(tmp_path, clip, {"emotion_detection": {"fps": 2, "width": 640},
                                   "age_estimation": {"fps": 2, "width": 640}})
    emo, age = tracks["emotion_detection"], tracks["age_estimation"]
    assert emo.status == "ok" and age.status == "ok", (emo.reason, age.reason)
    assert {m.id: m.revision for m in emo.models}["vit-face-expression"] == manifest["vit-face-expression"].revision
    assert placed["vit-age-classifier"].is_dir()
    assert emo.data["labels"] == ff.EXPRESSIONS and age.data["labels"] == ff.AGE_BANDS
    for track in (emo, age):
        assert _in(track.events, 0, 2) and _in(track.events, 4, 6)
        assert not [e for e in track.events if e.start >= 2.0 and e.end <= 4.0]
        assert track.data["face_tracks"] >= 2 and track.data["faces_max"] >= 1
    for e in emo.events:
        assert e.label == "emotion" and e.data["emotion"] in ff.EXPRESSIONS
        assert set(e.data["scores"]) == set(ff.EXPRESSIONS) and sum(e.data["scores"].values()) == pytest.approx(1, abs=1e-3)
        assert e.data["text"] == f"{e.data['emotion']} face" and e.score == e.data["scores"][e.data["emotion"]]
    assert sum(emo.data["emotions"].values()) == pytest.approx(1, abs=1e-3) and emo.data["dominant"] in ff.EXPRESSIONS
    for e in age.events:
        lo, hi = age_bounds(e.data["age_range"])
        assert e.label == "age" and (e.data["age_low"], e.data["age_high"]) == (lo, hi)
        assert 1.0 <= e.data["age"] <= 75.0 and e.data["text"] == f"age {e.data['age_range']}"
    assert sum(age.data["age_ranges"].values()) == len(age.events)
    ages = age.series_by_name("age")
    assert ages.unit == "years" and any(v is not None for v in ages.values)
    _documented(emo)
    _documented(age)


def test_eye_tracking_and_age_estimation_run_in_processes_of_their_own_beside_a_gpu(tmp_path, clip, caches, monkeypatch):
    """Their classes ask for a process of their own at a lower CPU priority (on an H200 the default set's
    runner's wall fell 31.1 -> 28.2 s by the median, docs/benchmarks.md): beside a (simulated) GPU
    analyzer both go to children, which give the tracks the run's threads give."""
    import yaml

    from framework.registry import load_registry
    from test_own_process import Gpu, in_a_process_and_in_a_thread

    ff.seed_face_models(caches)
    # age_estimation on the CPU: on the simulated GPU its ViT would go to a CUDA device that is not there
    blocks = {"cut_analysis": {}, "eye_tracking": {"params": {"fps": 2, "width": 640}},
              "age_estimation": {"device": "cpu", "params": {"fps": 2, "width": 640}}, Gpu.name: {}}
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump({"analyzers": blocks}))
    in_process, runs = in_a_process_and_in_a_thread(tmp_path, clip, load_registry(tmp_path / "registry.yaml"),
                                                    monkeypatch, offline=True)
    assert sorted(n for n, _ in in_process if n != "cut_analysis") == ["age_estimation", "eye_tracking"]
    assert {n: p for n, p in in_process if n != "cut_analysis"} == {"age_estimation": "low", "eye_tracking": "low"}
    for name in ("eye_tracking", "age_estimation"):
        a, b = runs["process"][name], runs["thread"][name]
        assert a.status == b.status == "ok", (name, a.reason, b.reason)
        assert a.events and [e.model_dump() for e in a.events] == [e.model_dump() for e in b.events], name


def test_missing_classifier_weights_offline_skip_with_the_pull_command(tmp_path, clip, caches):
    tracks = _run(tmp_path, clip, {"emotion_detection": {}, "age_estimation": {}})
    for name, mid in (("emotion_detection", "vit-face-expression"), ("age_estimation", "vit-age-classifier")):
        assert tracks[name].status == "skipped" and f"framework models pull {mid}" in tracks[name].reason


def test_a_protobuf_that_cannot_build_a_legacy_graph_is_named_for_every_solution(monkeypatch):
    """protobuf 7 (an AttributeError) and 5.x (a RuntimeError from mediapipe's C++, which cannot parse
    the graph config) break every legacy mediapipe graph: each reader builds its graphs through
    ``build_graph``, which turns that into a skip naming the protobuf to install. Other errors pass."""
    import google.protobuf

    from analyzers._vision.mediapipe_base import build_graph
    from framework import AnalyzerUnavailable

    def broken():
        raise AttributeError("'FieldDescriptor' object has no attribute 'label'")

    with pytest.raises(AnalyzerUnavailable, match=r"facial_details: mediapipe .* cannot build its FaceMesh graph "
                                                  r"with protobuf .*pip install 'protobuf<5'"):
        build_graph("facial_details", "FaceMesh", broken)
    assert build_graph("facial_details", "FaceMesh", lambda: "graph") == "graph"

    def unparsed():
        raise RuntimeError('Failed to parse: node {\n  name: "facedetectionfullrange__ToImageCalculator"\n}')

    monkeypatch.setattr(google.protobuf, "__version__", "5.29.6")
    with pytest.raises(AnalyzerUnavailable, match=r"eye_tracking: mediapipe .* cannot build its face detection graph "
                                                  r"with protobuf 5\.29\.6 \(Failed to parse: node \{\);"):
        build_graph("eye_tracking", "face detection", unparsed)

    def other():
        raise RuntimeError("ValidatedGraphConfig Initialization failed")

    with pytest.raises(RuntimeError, match="ValidatedGraphConfig"):  # not protobuf's doing: the real error
        build_graph("eye_tracking", "face detection", other)
    monkeypatch.setattr(google.protobuf, "__version__", "6.33.6")
    with pytest.raises(RuntimeError, match="Failed to parse"):  # only protobuf 5 fails to parse the graphs
        build_graph("eye_tracking", "face detection", unparsed)
