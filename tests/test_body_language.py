"""body_language: the cues of constructed COCO keypoints (arms crossed, hands raised, leaning, facing,
openness), movement energy per shot that never spans a cut, and the run's handling of a body_pose
that cannot run (no weights offline)."""
from __future__ import annotations

import numpy as np
import pytest
import vision_fixtures as vf

from analyzers.body_language import BodyLanguage, energy_level, person_cues
from analyzers.body_pose import BodyPose
from framework import AnalyzerInputs, AnalyzerUnavailable, Event, Series, Track
from framework.runner import analyze

W, H = 1600, 900  # the constructed people stand in a 16:9 frame, in pixels


def _person(pose: str = "neutral", dx: float = 0.0, face: bool = True) -> np.ndarray:
    """(17, 3) COCO keypoints in pixels of a person facing the camera (their left is the picture's right)."""
    pts = {0: (800, 200), 1: (815, 190), 2: (785, 190), 3: (830, 200), 4: (770, 200),
           5: (880, 300), 6: (720, 300), 7: (900, 420), 8: (700, 420), 9: (880, 540), 10: (720, 540),
           11: (850, 560), 12: (750, 560), 13: (850, 700), 14: (750, 700), 15: (850, 840), 16: (750, 840)}
    if pose == "crossed":
        pts[9], pts[10] = (740, 430), (860, 430)
    elif pose == "raised":
        pts[9], pts[10] = (950, 150), (650, 150)
    elif pose == "lean_right":
        for i in range(0, 11):  # the upper body shifted to the picture's right
            pts[i] = (pts[i][0] + 100, pts[i][1])
    k = np.array([[x + dx, y, 0.9] for _, (x, y) in sorted(pts.items())], dtype=np.float64)
    if not face:
        k[:5, 2] = 0.1
    return k


def test_cues_of_constructed_people():
    neutral = person_cues(_person(), 0.5)
    assert neutral["arms_crossed"] is False and neutral["hands_raised"] == 0
    assert neutral["facing"] == "camera" and neutral["leaning"] == "upright" and abs(neutral["lean"]) < 1
    assert neutral["openness"] == pytest.approx(1 / 3, abs=0.01)  # wrists at the shoulders' width: arms at the sides
    crossed = person_cues(_person("crossed"), 0.5)
    assert crossed["arms_crossed"] is True and crossed["openness"] == 0.0
    raised = person_cues(_person("raised"), 0.5)
    assert raised["hands_raised"] == 2 and raised["openness"] > 0.9 and raised["arms_crossed"] is False
    lean = person_cues(_person("lean_right"), 0.5)
    assert lean["leaning"] == "right" and lean["lean"] == pytest.approx(np.degrees(np.arctan2(100, 260)), abs=0.5)
    assert person_cues(_person(face=False), 0.5)["facing"] == "away"
    no_shoulders = _person()
    no_shoulders[5, 2] = 0.1
    assert person_cues(no_shoulders, 0.5) is None
    assert [energy_level(e) for e in (0.0, 0.2, 0.5, 1.5)] == ["still", "calm", "moderate", "energetic"]


def _pose_track(frames: list[list[np.ndarray]], times: list[float]) -> Track:
    obs = []
    for t, people in zip(times, frames):
        if people:
            obs.append({"t": t, "people": [[[x / W, y / H, v] for x, y, v in k] for k in people]})
    return Track(analyzer="body_pose", version="1.1.0",
                 series=[Series(name="people", times=times, values=[float(len(f)) for f in frames])],
                 data={"aspect": W / H, "observations": obs})


def test_shots_get_their_cues_and_energy_without_crossing_the_cut():
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    # shot 1: standing still, arms at the sides; shot 2: arms crossed, walking one torso length
    # (260 px) per second to the right
    frames = [[_person()] for _ in range(4)] + [[_person("crossed", dx=130.0 * i)] for i in range(4)]
    cuts = Track(analyzer="cut_analysis", version="1", provides=["shots"],
                 events=[Event(start=0.0, end=2.0, label="shot"), Event(start=2.0, end=4.0, label="shot")])
    track = BodyLanguage().analyze(AnalyzerInputs(video=vf.meta(4.0, W, H),
                                                  upstream={"body_pose": _pose_track(frames, times),
                                                            "cut_analysis": cuts}))
    still, walking = track.events
    assert (still.start, still.end, walking.start, walking.end) == (0.0, 2.0, 2.0, 4.0)
    assert still.data["energy"] == 0.0 and still.data["energy_level"] == "still"
    assert still.data["arms_crossed"] == 0.0 and still.data["facing"] == {"camera": 1.0}
    assert still.data["openness"] == pytest.approx(1 / 3, abs=0.01)
    assert walking.data["arms_crossed"] == 1.0 and walking.data["openness"] == 0.0
    assert walking.data["energy"] == pytest.approx(1.0, abs=0.02) and walking.data["energy_level"] == "energetic"
    assert walking.data["text"].startswith("arms crossed") and "facing camera" in walking.data["text"]
    movement = track.series_by_name("movement").values
    assert movement[0] is None and movement[4] is None  # nothing before the first sample, nor across the cut
    assert movement[5] == pytest.approx(1.0, abs=0.02)
    assert track.data["people_max"] == 1 and track.data["frames"] == 8


def test_a_body_pose_track_without_keypoints_is_refused():
    old = Track(analyzer="body_pose", version="1.0.0", data={"people_max": 1})
    with pytest.raises(AnalyzerUnavailable, match="per-frame keypoints"):
        BodyLanguage().analyze(AnalyzerInputs(video=vf.meta(1.0), upstream={"body_pose": old}))


def test_without_pose_weights_offline_the_run_skips_it_naming_the_pull(tmp_path):
    video = vf.encode(
        tmp_path / "clip.mp4", [np.full((180, 320, 3), 90, np.uint8)] * 20, 10, 320, 180)
    registry = vf.registry(tmp_path, {"body_language": {}})
    result = analyze(video, registry_path=registry, out_dir=tmp_path / "run", progress=False, load_entrypoints=False,
                     offline=True)
    tracks = result.timeline.tracks
    assert tracks["body_pose"].status == "skipped" and "framework models pull yolov8x-pose" in tracks["body_pose"].reason
    assert tracks["body_language"].status == "skipped" and "body_pose" in tracks["body_language"].reason


@pytest.mark.skipif(tuple(map(int, BodyPose.version.split("."))) < (1, 1),
                    reason="body_pose writes per-frame keypoints from version 1.1 (the patch in the issue-20 report)")
def test_body_pose_keypoints_reach_body_language():
    """body_pose's own finish() on constructed detections, read back by body_language: the two agree on the format."""
    from analyzers._vision.yolo import FrameDets

    times = [0.0, 0.5, 1.0]
    dets = [FrameDets(time=t, width=W, height=H, boxes=np.array([[650, 150, 950, 860]], np.float32),
                      conf=np.array([0.9], np.float32), cls=np.array([0]),
                      kpts=_person("raised", dx=26.0 * i)[None].astype(np.float32)) for i, t in enumerate(times)]
    pose = BodyPose()
    pose.grid, pose.shots, pose.yolo = np.array(times), [(0.0, 1.5)], None
    track = pose.finish(dets, AnalyzerInputs(video=vf.meta(1.5, W, H)))
    language = BodyLanguage().analyze(AnalyzerInputs(video=vf.meta(1.5, W, H), upstream={"body_pose": track}))
    (event,) = language.events
    assert event.data["hands_raised"] == 1.0 and event.data["openness"] > 0.9
    assert event.data["energy"] == pytest.approx(0.2, abs=0.01)  # 26 px per 0.5 s, torso 260 px
