"""``YoloAnalyzer``: the device-step base of object_detection, product_detection and body_pose.

Items are the sampled frames ``(index, time, frame)`` of one RGB stream (``fps``, ``imgsz`` wide);
``preprocess`` letterboxes a batch on a CPU thread, ``forward`` runs the model and the device's part
of the NMS, ``postprocess`` finishes the NMS, scales the boxes back to the frame and, for the tracking analyzers,
feeds them to the tracker frame by frame in time order (the device step postprocesses batches
in order on one thread, so the tracker sees frames in order while the device runs the next
batch). The tracker is reset at every cut of the upstream shots, so an object never spans a cut.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Iterable, Literal

import numpy as np
from pydantic import Field

from framework import AnalyzerInputs, BatchedAnalyzer, FrameSpec

from .._shots import shot_intervals
from .common import shot_of
from .yolo import FrameDets, ObjectTracker, YoloNet, load_yolo

logger = logging.getLogger(__name__)


class YoloAnalyzer(BatchedAnalyzer):
    """Batched YOLO inference over one sampled frame stream, with optional tracking."""

    device = "gpu"
    cuda_stream_local = True  # no device-wide CUDA calls while analyzing: graphs may be captured beside it
    warm_imports = ("ultralytics", "ultralytics.nn.tasks", "ultralytics.utils.nms", "ultralytics.trackers.byte_tracker")
    # ultralytics' pre- and postprocessing and its trackers are Python: beside the other models' threads it
    # waits for the interpreter's lock after every call; in a process of its own it does not (framework.own_process)
    own_process = True
    cpu_priority = "low"  # nothing on the run's longest path waits for it: the decode and the VLM get the CPUs first
    # for the same reason, under an MPS server (framework run --mps) its process is a client of below-normal
    # priority; without MPS it is "normal" (bench/results/end_to_end_h200_ab33.md)
    gpu_stream_priority = "low"
    depends_on = ("cut_analysis",)
    batch_size = 16
    item_vram_mb = 60.0
    tracking: ClassVar[bool] = True

    class Params(BatchedAnalyzer.Params):
        fps: float = Field(5.0, gt=0, le=30, description="Frames per second sampled for detection.")
        imgsz: int = Field(640, ge=64, le=1920, multiple_of=32, description="Model input size (longest side), pixels.")
        conf: float = Field(0.25, gt=0, lt=1, description="Minimum detection confidence.")
        iou: float = Field(0.7, gt=0, lt=1, description="IoU threshold of non-maximum suppression.")
        max_det: int = Field(300, ge=1, le=3000, description="Most detections per frame.")
        batch_size: int = Field(16, ge=1, le=512, description="Frames per forward pass (capped by the VRAM plan).")
        tracker: Literal["bytetrack", "botsort"] = Field("bytetrack", description="Ultralytics tracker.")
        lost_seconds: float = Field(1.0, ge=0, le=30, description="How long a lost object is kept for re-association.")
        min_frames: int = Field(2, ge=1, description="Objects seen on fewer sampled frames are dropped.")
        max_boxes: int = Field(12, ge=2, le=1000, description="Box samples kept per object (evenly spread).")
        host_nms: bool = Field(True, description="The device sends each batch's detection candidates back in one "
                               "copy and non-maximum suppression runs on the CPU, frame by frame as ultralytics does it "
                               "(one wait for the device a batch); off: ultralytics' non_max_suppression on the device "
                               "(some four waits a frame, each a turn of a GPU shared with other processes).")
        channels_last: bool = Field(True, description="On a GPU, the network and its batches channels-last (NHWC): "
                                    "cuDNN's NHWC kernels (YOLOv8x in fp16 on an H200 0.87 ms a frame against 1.07, "
                                    "bench/results/conv_layout_h200.md); off: NCHW (the CPU always is).")

    yolo: YoloNet | None = None

    # --- declarations --------------------------------------------------------------------------
    def frame_specs(self) -> list[FrameSpec]:
        return [FrameSpec(fps=self.params.fps, width=self.params.imgsz)]

    def weights_path(self, models: dict[str, Path]) -> Path:
        """The ``.pt`` to load (the analyzer's manifest model unless overridden)."""
        return models[self.model_ids()[0]]

    def wanted_classes(self) -> list[str] | None:
        """Class names to keep (None: all)."""
        return None

    def strict_classes(self) -> bool:
        """Whether a wanted class the model lacks is an error (a user's list) or left out (a default list)."""
        return True

    # --- lifecycle -------------------------------------------------------------------------------
    def load(self, device: str, models: dict[str, Path]) -> None:
        self.yolo = load_yolo(self.weights_path(models), device, self.precision, self.name, self.params.channels_last)
        self.class_filter = self.yolo.class_ids(self.wanted_classes(), self.name, self.strict_classes())

    def unload(self) -> None:
        device = self.yolo.device if self.yolo is not None else "cpu"
        self.yolo = None
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # --- the device step -------------------------------------------------------------------------
    def count_items(self, inputs: AnalyzerInputs) -> int | None:
        return len(inputs.frames(self.frame_specs()[0]))

    def items(self, inputs: AnalyzerInputs) -> Iterable[Any]:
        stream = inputs.frames(self.frame_specs()[0])
        self.grid = np.asarray(stream.times, dtype=np.float64)
        self.shots = shot_intervals(inputs, inputs.video.duration)
        self.shot_index = shot_of(self.grid, self.shots)
        self._tracker = (ObjectTracker(self.params.tracker, self.params.fps, self.params.lost_seconds)
                         if self.tracking else None)
        self._tracker_shot: int | None = None
        return ((i, t, frame) for i, (t, frame) in enumerate(stream))

    def preprocess(self, items: list[Any]) -> Any:
        assert self.yolo is not None
        return self.yolo.letterbox_batch([f for _, _, f in items], self.params.imgsz)

    def forward(self, batch: Any) -> Any:
        assert self.yolo is not None
        p = self.params
        return self.yolo.forward(batch, p.conf, p.iou, self.class_filter, p.max_det, p.host_nms)

    def postprocess(self, outputs: Any, items: list[Any]) -> list[FrameDets]:
        assert self.yolo is not None
        dets, in_shape = outputs
        dets = self.yolo.detections(dets)  # (the CPU's part of the NMS, here on the postprocessing thread)
        out = []
        for (i, t, frame), det in zip(items, dets):
            fd = self.yolo.scale(det, in_shape, t, frame.shape)
            if self._tracker is not None:
                shot = int(self.shot_index[i])
                if shot != self._tracker_shot:
                    self._tracker.reset()  # new shot: nothing carries over a cut
                    self._tracker_shot = shot
                fd.tracked = self._tracker.update(fd, frame)
            out.append(fd)
        return out
