"""Body pose: people and a pose summary per shot, from YOLOv8x-pose (disabled by default).

Samples an RGB stream (2 fps, 640 px wide by default) and runs YOLOv8x-pose (manifest id
``yolov8x-pose``, a local ``.pt`` loaded with ``ultralytics.YOLO``) through the device step in
batches. Each person gets the 17 COCO keypoints; from the keypoints seen with visibility at
least ``min_keypoint_conf`` every person on every frame is given (simple geometric rules, not
a trained classifier):

- a posture: ``standing`` (shoulders above hips above knees above ankles, legs at least as long
  as the torso), ``sitting`` (knees barely below the hips), ``lying`` (torso closer to horizontal
  than vertical), ``upper_body`` (no hips seen) or ``unknown``;
- ``arms_raised``: a wrist above its shoulder;
- ``facing_camera``: nose and both eyes seen, the nose between the eyes.

Each shot of the upstream ``cut_analysis`` track with at least one person gets one ``pose``
event::

    Event(start, end, label="pose", data={"people_max": 2, "people_mean": 1.4, "presence": 0.9,
          "postures": {"standing": 0.7, "sitting": 0.3}, "arms_raised": 0.1,
          "facing_camera": 0.6, "text": "2 people, standing"})

``postures`` are shares of the shot's person observations (each posture's count over all
people on all sampled frames); ``arms_raised`` and ``facing_camera`` likewise; ``presence`` is
the share of sampled frames with someone on them. The ``people`` series is the person count
per sampled frame. Track data: ``people_max``, ``frames``, ``model``, ``aspect`` (the frames'
width / height) and ``observations``: for each sampled frame with a person, ``{"t": seconds,
"people": [[[x, y, visibility] x 17], ...]}`` (x, y in frame fractions; COCO keypoint order), which
``body_language`` reads.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
from pydantic import Field

from framework import AnalyzerInputs, Event, Series, Track

from ._vision.common import by_shot
from ._vision.yolo import FrameDets
from ._vision.yolo_base import YoloAnalyzer

logger = logging.getLogger(__name__)

NOSE, L_EYE, R_EYE = 0, 1, 2
L_SH, R_SH, L_WR, R_WR = 5, 6, 9, 10
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANK, R_ANK = 11, 12, 13, 14, 15, 16


def person_pose(k: np.ndarray, min_conf: float) -> dict[str, Any]:
    """Posture, raised arms and facing for one person's (17, 3) keypoints (x, y, visibility)."""
    seen = k[:, 2] >= min_conf

    def mid(a: int, b: int) -> np.ndarray | None:
        pts = [k[i, :2] for i in (a, b) if seen[i]]
        return np.mean(pts, axis=0) if pts else None

    sh, hip, knee, ank = mid(L_SH, R_SH), mid(L_HIP, R_HIP), mid(L_KNEE, R_KNEE), mid(L_ANK, R_ANK)
    posture = "unknown"
    if sh is not None and hip is None:
        posture = "upper_body"
    elif sh is not None and hip is not None:
        torso = hip - sh
        length = float(np.hypot(*torso)) or 1e-6
        if abs(torso[0]) > abs(torso[1]):
            posture = "lying"
        elif knee is not None and (knee[1] - hip[1]) < 0.5 * length:
            posture = "sitting"
        elif knee is not None and ank is not None and sh[1] < hip[1] < knee[1] < ank[1] \
                and (ank[1] - hip[1]) >= 0.8 * length:
            posture = "standing"
    arms = any(seen[w] and seen[s] and k[w, 1] < k[s, 1] for w, s in ((L_WR, L_SH), (R_WR, R_SH)))
    facing = bool(seen[NOSE] and seen[L_EYE] and seen[R_EYE]
                  and min(k[L_EYE, 0], k[R_EYE, 0]) <= k[NOSE, 0] <= max(k[L_EYE, 0], k[R_EYE, 0]))
    return {"posture": posture, "arms_raised": bool(arms), "facing_camera": facing}


class BodyPose(YoloAnalyzer):
    """People and a pose summary per shot (YOLOv8x-pose keypoints, geometric rules)."""

    name = "body_pose"
    original_status = "disabled"
    version = "1.2.0"  # 1.2.0: channels-last on a GPU
    description = "People and a pose summary (posture, raised arms, facing) per shot from YOLOv8x-pose."
    models = ("yolov8x-pose",)
    enabled_by_default = False
    tracking = False
    item_vram_mb = 60.0

    class Params(YoloAnalyzer.Params):
        fps: float = Field(2.0, gt=0, le=30, description="Frames per second sampled for pose.")
        min_keypoint_conf: float = Field(0.5, gt=0, lt=1, description="Keypoints below this visibility are unseen.")

    def load(self, device: str, models: dict) -> None:
        super().load(device, models)
        assert self.yolo is not None
        if self.yolo.task != "pose" or not self.yolo.kpt_shape:
            raise ValueError(f"{self.name}: {self.yolo.path.name} is a {self.yolo.task} model, not a pose model")
        self.class_filter = [0] if 0 in self.yolo.names else None  # the pose models' one class, person

    def finish(self, results: list[FrameDets], inputs: AnalyzerInputs) -> Track:
        p = self.params
        per_frame = [[person_pose(k, p.min_keypoint_conf) for k in (r.kpts if r.kpts is not None else [])]
                     for r in results]
        counts = [len(f) for f in per_frame]
        events: list[Event] = []
        for start, end, idx in by_shot(self.shots, self.grid):
            people = [person for i in idx for person in per_frame[i]]
            if not people:
                continue
            n = len(people)
            postures = Counter(x["posture"] for x in people)
            shares = {k: round(v / n, 3) for k, v in postures.most_common()}
            people_max = max(counts[i] for i in idx)
            top = postures.most_common(1)[0][0]
            text = f"{people_max} {'person' if people_max == 1 else 'people'}" + (
                f", {top.replace('_', ' ')}" if top != "unknown" else "")
            events.append(Event(
                start=round(start, 3), end=round(end, 3), label="pose",
                data={"people_max": people_max, "people_mean": round(float(np.mean([counts[i] for i in idx])), 3),
                      "presence": round(sum(1 for i in idx if counts[i]) / len(idx), 3),
                      "postures": shares,
                      "arms_raised": round(sum(x["arms_raised"] for x in people) / n, 3),
                      "facing_camera": round(sum(x["facing_camera"] for x in people) / n, 3),
                      "text": text}))
        series = [Series(name="people", times=[round(float(t), 3) for t in self.grid], values=[float(c) for c in counts])]
        data: dict[str, Any] = {"people_max": max(counts, default=0), "frames": len(results),
                                "model": self.yolo.path.name if self.yolo else None,
                                "aspect": round(results[0].width / results[0].height, 6) if results else None,
                                "observations": [
                                    {"t": round(float(r.time), 3),
                                     "people": [[[round(float(x) / r.width, 4), round(float(y) / r.height, 4),
                                                  round(float(v), 3)] for x, y, v in k] for k in r.kpts]}
                                    for r in results if r.kpts is not None and len(r.kpts)]}
        return self.track(events=events, series=series, data=data)
