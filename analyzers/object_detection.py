"""Objects: YOLOv8x detections tracked across frames, one event per object.

Samples an RGB stream (5 fps, 640 px wide by default), runs YOLOv8x (manifest id ``yolov8x``,
loaded with ``ultralytics.YOLO`` from the local ``.pt`` the runner hands over) through the
device step in batches, and tracks the detections with ultralytics' ByteTrack (or BoT-SORT)
frame by frame inside each shot of the upstream ``cut_analysis`` track. Each tracked object
becomes one ``object`` event::

    Event(start, end, label="object", score=<mean confidence>,
          data={"class": "person", "text": "person", "track_id": 3, "shot": 1, "frames": 14,
                "confidence": 0.81, "boxes": [[t, x1, y1, x2, y2], ...]})

``start``/``end`` are the midpoints between the first (last) sampled frame the object was on and
the sample before (after) it, clipped to its shot. ``boxes`` is a sampled box series (at most
``max_boxes``, always the first and last) in frame fractions (0..1, top-left origin). ``class``
is the majority of the tracker's class votes; ``text`` repeats it so searches find it.

Track data: ``classes`` (objects per class), ``objects``, ``frames`` (sampled frames),
``tracker``, ``model`` (the weights file name). The ``objects`` series counts the tracked
objects on each sampled frame.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from framework import AnalyzerInputs, Event, ModelRef, Series, Track

from ._vision.common import sample_evenly, span
from ._vision.yolo import FrameDets, TrackedObject, collect_objects
from ._vision.yolo_base import YoloAnalyzer

logger = logging.getLogger(__name__)


def objects_track(analyzer: YoloAnalyzer, results: list[FrameDets], label: str, plural: str,
                  extra: dict[str, Any] | None = None, models: list[ModelRef] | None = None) -> Track:
    """The track of the tracked objects: one ``label`` event each, the ``plural`` series (objects per
    sampled frame) and count, the classes; ``extra`` appended to the track data."""
    events, classes = object_events(analyzer, results, label)
    data: dict[str, Any] = {"classes": classes, plural: len(events), "frames": len(results),
                            "tracker": analyzer.params.tracker,
                            "model": analyzer.yolo.path.name if analyzer.yolo else None, **(extra or {})}
    series = Series(name=plural, times=[round(float(t), 3) for t in analyzer.grid],
                    values=[float(0 if r.tracked is None else len(r.tracked)) for r in results])
    return analyzer.track(events=events, series=[series], data=data, models=models)


def object_events(analyzer: YoloAnalyzer, results: list[FrameDets], label: str) -> tuple[list[Event], dict[str, int]]:
    """The tracked objects of ``results`` as events of ``label``, and the object count per class."""
    assert analyzer.yolo is not None
    grid = analyzer.grid
    p = analyzer.params
    events: list[Event] = []
    classes: dict[str, int] = {}
    for obj in collect_objects(results, analyzer.shot_index):
        if len(obj.frames) < p.min_frames:
            continue
        events.append(_event(obj, grid, analyzer.shots[obj.shot], analyzer.yolo.names, label, p.max_boxes))
        name = events[-1].data["class"]
        classes[name] = classes.get(name, 0) + 1
    events.sort(key=lambda e: (e.start, e.data["track_id"]))
    return events, dict(sorted(classes.items(), key=lambda kv: (-kv[1], kv[0])))


def _event(obj: TrackedObject, grid: np.ndarray, shot: tuple[float, float], names: dict[int, str],
           label: str, max_boxes: int) -> Event:
    start, end = span(grid, obj.frames[0], obj.frames[-1], shot[0], shot[1])
    name = names.get(obj.class_id, str(obj.class_id))
    keep = sample_evenly(len(obj.frames), max_boxes)
    boxes = [[round(float(grid[obj.frames[k]]), 3), *obj.boxes[k]] for k in keep]
    conf = float(np.mean(obj.scores))
    return Event(start=start, end=end, label=label, score=round(conf, 4),
                 data={"class": name, "text": name, "track_id": obj.track_id, "shot": obj.shot,
                       "frames": len(obj.frames), "confidence": round(conf, 4), "boxes": boxes})


class ObjectDetection(YoloAnalyzer):
    """Objects (YOLOv8x, 80 COCO classes) tracked across frames: one event per object."""

    name = "object_detection"
    original_status = "active"
    version = "1.1.0"  # 1.1.0: channels-last on a GPU
    description = "Objects (YOLOv8x) tracked across frames with ByteTrack: one event per object, labels searchable."
    models = ("yolov8x",)
    item_vram_mb = 60.0

    def finish(self, results: list[FrameDets], inputs: AnalyzerInputs) -> Track:
        return objects_track(self, results, "object", "objects")
