"""Facial details per face: mouth open, eyes open / closed and blinks, head pose (yaw, pitch, roll).

Disabled in the original system (seed 004 ``facial_details``, MediaPipe). Each sampled frame's
faces are found with mediapipe's full-range face detector and read with FaceMesh on a crop around
each (both bundled in mediapipe 0.10.21, manifest id ``mediapipe-face-mesh``; ``_faces.mesh``):
``mouth_open`` (inner-lip gap over mouth width), ``eye_open`` (lid gap over eye width, both eyes)
and the head pose in degrees (``yaw`` positive: turned to the viewer's right; ``pitch`` positive:
looking up; ``roll`` positive: tilted clockwise as seen). Faces are linked across sampled frames
into face tracks within each shot, as face_detection does.

Series (the largest face of each sampled frame; ``None`` without a read face): ``mouth_open``,
``eye_open``, ``yaw``, ``pitch``, ``roll`` (degrees). One ``facial_details`` event per face
track::

    Event(start, end, label="facial_details",
          data={"track_id": 1, "frames": 12, "mouth_open_share": 0.4, "eyes_closed_share": 0.08,
                "blinks": 1, "yaw": 12.5, "pitch": -3.1, "roll": 2.0, "head_pose": "frontal",
                "text": "frontal face, mouth open"})

``mouth_open_share`` / ``eyes_closed_share`` are shares of the track's read samples with the mouth
open (``mouth_open`` at least ``mouth_open``) / the eyes shut (``eye_open`` under ``eyes_closed``);
``yaw``/``pitch``/``roll`` their medians; ``head_pose`` is ``frontal``, ``turned left``/``turned right``
(|yaw| over ``max_yaw``), ``looking up``/``looking down`` (|pitch| over ``max_pitch``) or ``tilted``
(|roll| over ``max_roll``). Closed eyes on consecutive samples of a track make a ``blink`` event
when the stretch is at most ``max_blink_s`` long, else an ``eyes_closed`` event (``data``:
``track_id``, ``frames``, ``text``). At a few frames per second most blinks (0.1-0.4 s) fall
between samples: ``blinks`` counts the ones seen, raise ``fps`` to see more. Track data:
``faces_max``, ``face_presence``, ``face_tracks``, ``mouth_open_share``, ``eyes_closed_share``,
``blinks``, ``frames``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from framework import AnalyzerInputs, BatchedAnalyzer, Event, Series, Track

from ._faces.mesh import FaceDetails, MeshReader
from ._effects.signals import runs
from ._faces.tracks import face_tracks
from ._shots import shot_intervals
from ._vision.common import span
from ._vision.mediapipe_base import MediapipeFrameAnalyzer

logger = logging.getLogger(__name__)

MODEL_ID = "mediapipe-face-mesh"


def pose_word(yaw: float, pitch: float, roll: float, max_yaw: float, max_pitch: float, max_roll: float) -> str:
    """``frontal``, ``turned left``/``turned right``, ``looking up``/``looking down`` or ``tilted``
    (the largest departure, relative to its threshold, wins)."""
    scores = {"yaw": abs(yaw) / max_yaw, "pitch": abs(pitch) / max_pitch, "roll": abs(roll) / max_roll}
    axis, score = max(scores.items(), key=lambda kv: kv[1])
    if score <= 1.0:
        return "frontal"
    if axis == "yaw":
        return "turned right" if yaw > 0 else "turned left"
    if axis == "pitch":
        return "looking up" if pitch > 0 else "looking down"
    return "tilted"


def closed_runs(closed: list[bool | None]) -> list[tuple[int, int]]:
    """``(first, last)`` positions of the runs of True (None, a sample without landmarks, ends a run)."""
    return runs(np.asarray(closed, dtype=bool))


class FacialDetails(MediapipeFrameAnalyzer):
    """Mouth, eyes (blinks) and head pose per face track (mediapipe FaceMesh, bundled)."""

    name = "facial_details"
    version = "1.0.0"
    description = ("Mouth open, eyes open/closed and blinks, head pose (yaw, pitch, roll) per face track "
                   "(mediapipe FaceMesh, bundled).")
    original_status = "disabled"  # how the original system shipped it (docs/analyzers.md)
    depends_on = ("cut_analysis",)
    models = (MODEL_ID,)
    enabled_by_default = False

    class Params(BatchedAnalyzer.Params):
        fps: float = Field(4.0, gt=0, le=30, description="Frames per second read.")
        width: int = Field(960, ge=128, le=3840, description="Width in pixels of the frames read.")
        max_faces: int = Field(4, ge=1, le=20, description="Most faces read per frame (most confident first).")
        min_confidence: float = Field(0.5, gt=0, lt=1, description="Face detection confidence threshold.")
        mouth_open: float = Field(0.2, gt=0, le=2, description="Inner-lip gap over mouth width from which the mouth counts as open.")
        eyes_closed: float = Field(0.12, gt=0, le=1, description="Lid gap over eye width under which the eyes count as closed.")
        max_blink_s: float = Field(0.5, gt=0, le=5, description="Longest closed-eye stretch counted as a blink.")
        max_yaw: float = Field(20.0, gt=0, le=90, description="Degrees of yaw still called frontal.")
        max_pitch: float = Field(20.0, gt=0, le=90, description="Degrees of pitch still called frontal.")
        max_roll: float = Field(20.0, gt=0, le=90, description="Degrees of roll still called frontal.")
        min_iou: float = Field(0.3, ge=0, le=1, description="Box overlap that continues a face track.")
        max_gap: int = Field(2, ge=0, le=50, description="Sampled frames a face may be missing and keep its track.")
        batch_size: int = Field(8, ge=1, le=256, description="Frames per step.")

    reader: MeshReader | None = None

    def make_reader(self, models: dict[str, Path]) -> MeshReader:
        return MeshReader(models.get(MODEL_ID), self.name, self.params.max_faces, self.params.min_confidence)

    def finish(self, results: list[Any], inputs: AnalyzerInputs) -> Track:
        p = self.params
        times = [r[0] for r in results]
        faces: list[list[FaceDetails]] = [r[1] for r in results]
        counts = [len(f) for f in faces]
        shots = shot_intervals(inputs, inputs.video.duration)
        events: list[Event] = []
        totals = {"read": 0, "open": 0, "closed": 0, "blinks": 0}
        tracks = face_tracks(times, faces, shots, p.min_iou, p.max_gap) if times else []
        for t, start, end, members in tracks:
            read = [(i, faces[i][j]) for i, j in members if faces[i][j].has_mesh]
            data: dict[str, Any] = {"track_id": t.id, "frames": len(members)}
            blinks = 0
            if read:
                mouth = sum(f.mouth_open >= p.mouth_open for _, f in read)
                shut = [f.eye_open < p.eyes_closed for _, f in read]
                yaw, pitch, roll = (float(np.median([getattr(f, k) for _, f in read])) for k in ("yaw", "pitch", "roll"))
                pose = pose_word(yaw, pitch, roll, p.max_yaw, p.max_pitch, p.max_roll)
                lo, hi = start, end
                for a, b in closed_runs(shut):
                    s, e = span(times, read[a][0], read[b][0], lo, hi)
                    blink = (e - s) <= p.max_blink_s
                    blinks += blink
                    events.append(Event(start=s, end=e, label="blink" if blink else "eyes_closed",
                                        data={"track_id": t.id, "frames": b - a + 1,
                                              "text": "blink" if blink else "eyes closed"}))
                words = [f"{pose} face"] + (["mouth open"] if mouth / len(read) >= 0.5 else [])
                data.update({"mouth_open_share": round(mouth / len(read), 4),
                             "eyes_closed_share": round(sum(shut) / len(read), 4), "blinks": blinks,
                             "yaw": round(yaw, 2), "pitch": round(pitch, 2), "roll": round(roll, 2),
                             "head_pose": pose, "text": ", ".join(words)})
                totals["read"] += len(read)
                totals["open"] += mouth
                totals["closed"] += sum(shut)
                totals["blinks"] += blinks
            events.append(Event(start=start, end=end, label="facial_details", data=data))
        events.sort(key=lambda e: (e.start, e.label))
        largest = [max(f, key=lambda x: x.box[3] - x.box[1]) if f else None for f in faces]
        series = [Series(name=k, unit="deg" if k in ("yaw", "pitch", "roll") else "",
                         times=[round(t, 3) for t in times],
                         values=[getattr(f, k) if f is not None and f.has_mesh else None for f in largest])
                  for k in ("mouth_open", "eye_open", "yaw", "pitch", "roll")]
        read = totals["read"]
        data = {"faces_max": max(counts, default=0),
                "face_presence": round(sum(1 for c in counts if c) / len(counts), 4) if counts else 0.0,
                "face_tracks": len(tracks),
                "mouth_open_share": round(totals["open"] / read, 4) if read else None,
                "eyes_closed_share": round(totals["closed"] / read, 4) if read else None,
                "blinks": totals["blinks"], "frames": len(results)}
        return self.track(events=events, series=series, data=data)
