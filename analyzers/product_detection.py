"""Products: YOLOv8s detections of product classes, tracked across frames, one event per product.

The same pipeline as ``object_detection`` (batched YOLO through the device step, ultralytics'
ByteTrack/BoT-SORT per shot), with the lighter YOLOv8s (manifest id ``yolov8s``) and a class
filter: by default the COCO classes that are things people buy and show (bottles, cups,
phones, laptops, bags, food...). ``weights`` points at custom weights instead (a local ``.pt``
trained with ultralytics, e.g. on a brand's packaging); then ``classes`` defaults to all of that
model's classes. Each product becomes one ``product`` event::

    Event(start, end, label="product", score=<mean confidence>,
          data={"class": "bottle", "text": "bottle", "track_id": 2, "shot": 0, "frames": 9,
                "confidence": 0.66, "boxes": [[t, x1, y1, x2, y2], ...]})

(fields as in ``object_detection``). Track data: ``classes``, ``products``, ``frames``,
``tracker``, ``model``, ``custom_weights``. The ``products`` series counts tracked products per
sampled frame.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from pydantic import Field

from framework import AnalyzerInputs, ModelRef, Track

from ._vision.yolo import FrameDets
from ._vision.yolo_base import YoloAnalyzer
from .object_detection import objects_track

logger = logging.getLogger(__name__)

#: COCO classes that are products (what the default filter keeps with the stock YOLOv8s weights)
PRODUCT_CLASSES = (
    "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
    "dining table", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush", "bicycle", "motorcycle",
)


class ProductDetection(YoloAnalyzer):
    """Products (YOLOv8s, a product-class filter, or custom weights) tracked across frames."""

    name = "product_detection"
    original_status = "active"
    version = "1.1.0"  # 1.1.0: channels-last on a GPU
    description = "Products (YOLOv8s, class filter or custom weights) tracked across frames: one event per product."
    models = ("yolov8s",)
    item_vram_mb = 25.0

    class Params(YoloAnalyzer.Params):
        classes: list[str] | None = Field(
            None, description="Class names to keep; default: the COCO product classes (stock weights) "
                              "or every class (custom weights).")
        weights: str | None = Field(
            None, description="A local ultralytics .pt with custom classes, used instead of yolov8s.")

    def model_ids(self) -> list[str]:
        return [] if self.params.weights else list(self.models)

    def local_files(self) -> list[Path]:
        """Custom weights: new weights at the same path are not the old ones."""
        return [Path(self.params.weights)] if self.params.weights else []

    def weights_path(self, models: dict[str, Path]) -> Path:
        if self.params.weights:
            return Path(self.params.weights).expanduser()
        return models["yolov8s"]

    def wanted_classes(self) -> list[str] | None:
        if self.params.classes is not None:
            return list(self.params.classes)
        return None if self.params.weights else list(PRODUCT_CLASSES)

    def strict_classes(self) -> bool:
        return self.params.classes is not None

    def load(self, device: str, models: dict[str, Path]) -> None:
        super().load(device, models)
        self._custom_ref: ModelRef | None = None
        if self.params.weights:  # no manifest entry: record the file's hash as its revision
            assert self.yolo is not None
            digest = hashlib.sha256(self.yolo.path.read_bytes()).hexdigest()
            self._custom_ref = ModelRef(id=f"file:{self.yolo.path.name}", revision=f"sha256:{digest}")

    def finish(self, results: list[FrameDets], inputs: AnalyzerInputs) -> Track:
        models = [self._custom_ref] if getattr(self, "_custom_ref", None) else None
        return objects_track(self, results, "product", "products", {"custom_weights": bool(self.params.weights)}, models)
