"""Ultralytics YOLO in the device step: load a local ``.pt``, batch frames through it, track.

``load_yolo(path, device, precision)`` loads a checkpoint with ``ultralytics.YOLO(path)`` (the
library's own loader; never a name it could download) and keeps its ``nn.Module``. The device
step then splits what ``YOLO.predict`` does in one call:

- ``letterbox_batch`` (CPU thread): ultralytics' ``LetterBox`` (minimum rectangle, stride
  padding, grey 114), stacked as a uint8 tensor, pinned when the device is a GPU;
- ``YoloNet.forward`` (device): uint8 -> float/255 in the model's precision, the forward pass and
  the NMS candidates of the whole batch back to the CPU in one copy (``yolo_nms``; or ultralytics'
  ``non_max_suppression`` on the device, frame by frame, with ``host_nms`` off);
- ``YoloNet.detections`` (CPU): the candidates suppressed per frame as ultralytics does;
- ``YoloNet.scale`` (CPU): boxes (and keypoints) back to the decoded frame's pixels.

Tracking is sequential per frame, so it runs after the batched forward, frame by frame in time
order, on ultralytics' own tracker classes (``BYTETracker`` or ``BOTSORT``, configured from the
package's ``cfg/trackers/*.yaml``). Their assignment step imports ``lap``, which ultralytics
would otherwise try to ``pip install`` at run time; ``lap`` is pinned in the project's
dependencies and ``check_tracking_requirements`` proves the import works without it.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from framework import AnalyzerUnavailable

from .common import channels_last_module, dtype_of, in_layout, nchw_batch, pick_precision, torch_device
from .yolo_nms import candidates_to_host, suppress_on_host

logger = logging.getLogger(__name__)

TRACKERS = ("bytetrack", "botsort")


@dataclass
class FrameDets:
    """Detections on one sampled frame, in the decoded frame's pixels.

    :ivar boxes: (n, 4) x1, y1, x2, y2.  :ivar conf: (n,).  :ivar cls: (n,) class ids.
    :ivar kpts: (n, K, 3) x, y, visibility for pose models, else None.
    """

    time: float
    width: int
    height: int
    boxes: np.ndarray
    conf: np.ndarray
    cls: np.ndarray
    kpts: np.ndarray | None = None
    tracked: np.ndarray | None = None  # (m, 8) x1, y1, x2, y2, track_id, score, cls, idx from the tracker

    def normalised(self, box: Sequence[float]) -> list[float]:
        x1, y1, x2, y2 = (float(v) for v in box)
        return [round(x1 / self.width, 4), round(y1 / self.height, 4), round(x2 / self.width, 4),
                round(y2 / self.height, 4)]


@dataclass
class HostCandidates:
    """A batch's NMS candidates on the host (``yolo_nms.candidates_to_host``), waiting for their suppression."""

    rows: Any
    iou: float
    max_det: int

    def suppress(self) -> list[Any]:
        return suppress_on_host(self.rows, self.iou, self.max_det)


class YoloNet:
    """A loaded YOLO model, ready for batched letterboxed frames (see the module docstring)."""

    def __init__(self, path: Path, device: str, precision: str | None, who: str, channels_last: bool = False):
        from ultralytics import YOLO

        self.path = Path(path)
        self.device = torch_device(device)
        self.precision = pick_precision(precision, self.device, "fp16", who=who)
        try:
            model = YOLO(str(self.path))
        except Exception as exc:  # a corrupt or foreign file: say which and what to do
            raise AnalyzerUnavailable(f"{who}: cannot load YOLO weights {self.path} ({type(exc).__name__}: {exc}); "
                                      "re-fetch them with `framework models pull`") from exc
        self.task = model.task
        self.names: dict[int, str] = {int(k): str(v) for k, v in model.names.items()}
        net = model.model
        if hasattr(net, "fuse"):
            net = net.fuse(verbose=False)  # Conv+BN folded, as YOLO.predict does
        net = net.to(self.device).eval()
        if self.precision != "fp32":
            net = net.to(dtype_of(self.precision))
        net, self.channels_last = channels_last_module(net, self.device, channels_last)
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net
        self.stride = int(max(int(net.stride.max()) if hasattr(net, "stride") else 32, 32))
        self.kpt_shape = tuple(getattr(net, "kpt_shape", None) or ()) or None
        self.end2end = bool(getattr(net, "end2end", False))

    def class_ids(self, wanted: Sequence[str] | None, who: str, strict: bool = True) -> list[int] | None:
        """Ids of the class names in ``wanted`` (None: every class). With ``strict``, names the
        model does not know are an error that lists its classes; else they are left out (an
        error only when none is left)."""
        if wanted is None:
            return None
        by_name = {v: k for k, v in self.names.items()}
        unknown = [w for w in wanted if w not in by_name]
        if not strict and len(unknown) < len(wanted):
            wanted = [w for w in wanted if w in by_name]
            unknown = []
        if unknown:
            raise ValueError(f"{who}: classes {unknown} are not classes of {self.path.name} "
                             f"(it knows: {', '.join(sorted(by_name))}); fix `classes` in registry.yaml")
        return sorted(by_name[w] for w in wanted)

    # --- the device step's three parts -----------------------------------------------------
    def letterbox_batch(self, frames: Sequence[np.ndarray], imgsz: int) -> Any:
        """RGB frames -> a uint8 (B, 3, H, W) tensor, letterboxed like ``YOLO.predict`` does (channels-last:
        the frames' own NHWC memory, seen as NCHW)."""
        from ultralytics.data.augment import LetterBox

        box = LetterBox(new_shape=(imgsz, imgsz), auto=True, stride=self.stride)
        boxed = [box(image=np.ascontiguousarray(f)) for f in frames]
        shape = boxed[0].shape
        if any(b.shape != shape for b in boxed):  # frames of one stream share a size; be safe anyway
            box = LetterBox(new_shape=(imgsz, imgsz), auto=False, stride=self.stride)
            boxed = [box(image=np.ascontiguousarray(f)) for f in frames]
        batch = nchw_batch(np.stack(boxed), self.channels_last)
        if self.device.startswith("cuda"):
            batch = batch.pin_memory()
        return batch

    def forward(self, batch: Any, conf: float, iou: float, classes: list[int] | None,
                max_det: int, host_nms: bool = True) -> tuple[Any, tuple[int, int]]:
        """The forward pass, then NMS: with ``host_nms`` the device sends the batch's candidates back in one
        copy and ``detections`` suppresses them on the CPU (``yolo_nms``); else ultralytics'
        ``non_max_suppression`` on the device. Pass the first item to ``detections``."""
        import torch
        from ultralytics.utils.nms import non_max_suppression

        nc = 0 if self.task == "detect" else len(self.names)
        with torch.inference_mode():
            x = in_layout(batch.to(self.device, non_blocking=True).to(dtype_of(self.precision)) / 255.0,
                          self.channels_last)
            preds = self.net(x)
            if host_nms and not self.end2end:
                return HostCandidates(candidates_to_host(preds, conf, classes, nc), iou, max_det), tuple(x.shape[2:])
            dets = non_max_suppression(preds, conf, iou, classes=classes, max_det=max_det, nc=nc,
                                       end2end=self.end2end)
            return [d.float().cpu() for d in dets], tuple(x.shape[2:])

    @staticmethod
    def detections(out: Any) -> list[Any]:
        """``forward``'s first output as the kept rows (n, 6[+K*3]) of each image, float32 CPU tensors."""
        return out.suppress() if isinstance(out, HostCandidates) else out

    def scale(self, det: Any, in_shape: tuple[int, int], time: float, frame_shape: tuple[int, ...]) -> FrameDets:
        """One image's NMS rows -> ``FrameDets`` in the decoded frame's pixels."""
        from ultralytics.utils import ops

        h, w = int(frame_shape[0]), int(frame_shape[1])
        det = det.clone()
        if len(det):
            det[:, :4] = ops.scale_boxes(in_shape, det[:, :4], (h, w))
        kpts = None
        if self.kpt_shape:
            k = det[:, 6:].view(len(det), *self.kpt_shape)
            kpts = ops.scale_coords(in_shape, k, (h, w)).numpy() if len(det) else np.zeros((0, *self.kpt_shape), np.float32)
        arr = det.numpy()
        return FrameDets(time=float(time), width=w, height=h, boxes=arr[:, :4].astype(np.float32),
                         conf=arr[:, 4].astype(np.float32), cls=arr[:, 5].astype(np.int64), kpts=kpts)


def load_yolo(path: Path, device: str, precision: str | None, who: str, channels_last: bool = False) -> YoloNet:
    """``YoloNet`` for the checkpoint at ``path`` (a local ``.pt``), on ``device`` (channels-last there
    when asked and ``device`` is a GPU)."""
    path = Path(path)
    if not path.is_file():
        raise AnalyzerUnavailable(f"{who}: YOLO weights {path} do not exist")
    return YoloNet(path, device, precision, who, channels_last)


# --- tracking ------------------------------------------------------------------------------------
def check_tracking_requirements() -> str:
    """Import ultralytics' assignment module the trackers use; return the ``lap`` version.

    ``ultralytics.trackers.utils.matching`` does ``import lap`` and, only if that fails, calls
    ``check_requirements("lap>=0.5.12")``, which pip-installs it when online. With ``lap`` pinned
    the import succeeds and nothing is installed at run time.
    """
    import importlib.metadata

    import lap  # noqa: F401 - the pinned dependency; its absence is the failure to report
    from ultralytics.trackers.utils import matching  # noqa: F401

    return importlib.metadata.version("lap")


class ObjectTracker:
    """Ultralytics' ByteTrack or BoT-SORT over ``FrameDets``, one frame at a time in time order."""

    def __init__(self, kind: str, fps: float, lost_s: float):
        import ultralytics
        from ultralytics.utils import YAML, IterableSimpleNamespace

        if kind not in TRACKERS:
            raise ValueError(f"tracker {kind!r} is not one of {TRACKERS}")
        try:
            check_tracking_requirements()
        except ImportError as exc:
            raise AnalyzerUnavailable(f"tracking needs the `lap` package ({exc}); pip install 'lap>=0.5.12'") from exc
        from ultralytics.trackers.bot_sort import BOTSORT
        from ultralytics.trackers.byte_tracker import BYTETracker

        cfg_path = Path(ultralytics.__file__).parent / "cfg" / "trackers" / f"{kind}.yaml"
        cfg = IterableSimpleNamespace(**YAML.load(cfg_path))
        cfg.track_buffer = max(1, int(round(lost_s * fps)))  # frames a lost object is kept for
        if kind == "botsort":
            cfg.with_reid = False  # appearance ReID would need another downloaded model
        self.kind = kind
        self.tracker = (BYTETracker if kind == "bytetrack" else BOTSORT)(args=cfg)
        # BoT-SORT's camera-motion compensation reads the frame; ByteTrack never does, and a BGR copy of every
        # frame for it took 1 ms, 20 times its update on a frame with nothing detected (bench/tracker_update.py)
        self.reads_frames = kind == "botsort"

    def reset(self) -> None:
        self.tracker.reset()

    def update(self, dets: FrameDets, frame: np.ndarray | None) -> np.ndarray:
        """Rows ``x1, y1, x2, y2, track_id, score, cls, idx`` of the objects tracked on this frame."""
        from ultralytics.engine.results import Boxes

        data = np.concatenate([dets.boxes, dets.conf[:, None], dets.cls[:, None].astype(np.float32)], axis=1)
        boxes = Boxes(data.astype(np.float32), orig_shape=(dets.height, dets.width))
        img = None if frame is None or not self.reads_frames else np.ascontiguousarray(frame[..., ::-1])  # BGR
        out = self.tracker.update(boxes, img)
        return np.asarray(out, dtype=np.float64).reshape(-1, 8)


@dataclass
class TrackedObject:
    """One tracked object: which sampled frames it was on, its boxes there and its class votes."""

    track_id: int
    shot: int
    frames: list[int] = field(default_factory=list)  # indices into the sampling grid
    boxes: list[list[float]] = field(default_factory=list)  # normalised x1, y1, x2, y2
    scores: list[float] = field(default_factory=list)
    votes: Counter = field(default_factory=Counter)

    @property
    def class_id(self) -> int:
        return self.votes.most_common(1)[0][0]


def collect_objects(results: Sequence[FrameDets], shots: np.ndarray) -> list[TrackedObject]:
    """Group the tracker's rows of every frame by track id (ids restart per shot, so the key is
    (shot, id)); objects in first-appearance order."""
    objects: dict[tuple[int, int], TrackedObject] = {}
    for i, fr in enumerate(results):
        if fr.tracked is None:
            continue
        for x1, y1, x2, y2, tid, score, cls, _idx in fr.tracked:
            key = (int(shots[i]), int(tid))
            obj = objects.setdefault(key, TrackedObject(track_id=int(tid), shot=int(shots[i])))
            obj.frames.append(i)
            obj.boxes.append(fr.normalised((x1, y1, x2, y2)))
            obj.scores.append(float(score))
            obj.votes[int(cls)] += 1
    return sorted(objects.values(), key=lambda o: (o.frames[0], o.track_id))


