"""YOLO's non-maximum suppression with one device-to-host copy per batch.

Ultralytics' ``non_max_suppression`` works image by image on the device: boolean selections and
shape tests, then the suppression itself, which without torchvision imported (the run's YOLO
processes) is a loop of tensor operations with a wait for the device at every kept box, and one
copy back per frame. Where the GPU is shared with other processes each wait is a turn of the
GPU's time slicing, taken from the model on the run's longest path: beside the VLM on an H200
the YOLOs' forward took some 3.4 ms a frame for YOLOv8s and YOLOv8x alike (10.2 and 10.4 s for
3,000 frames; YOLOv8x's arithmetic is about 0.9 ms a frame).

``candidates_to_host`` does the device's part for the whole batch in a few kernels and one
copy: each anchor's best class and its score, the confidence (and class) test, the boxes as
corners, all in the model's own precision as ultralytics computes them, then as float32.
``suppress_on_host`` does the rest on the CPU, image by image, as ultralytics does it (the
``max_nms`` cap, the class offset, ``max_det``) with torchvision's compiled ``nms`` (ultralytics
takes it when torchvision was imported, else its own loop of tensor operations, which on a GPU
waits for the device at every kept box; that loop here where torchvision does not load): the
same rows come out, up to the order (and, at
``max_det``, the choice) of boxes with equal scores, as between ultralytics' own two ways (the
tests compare it with both). Multi-label, class-agnostic, rotated and end-to-end outputs
are not covered; the caller keeps ultralytics' function for those.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Sequence

logger = logging.getLogger(__name__)

#: ultralytics' defaults for the per-image candidate cap and the class offset of its class-aware NMS
MAX_NMS = 30000
MAX_WH = 7680


def candidates_to_host(preds: Any, conf_thres: float, classes: Sequence[int] | None, nc: int = 0) -> Any:
    """The batch's anchors as host rows ``(B, N, 7 + extra)``: x1, y1, x2, y2, score, class, extras, and a
    last column that is 1 where the anchor is a candidate (best class score above ``conf_thres``, of a
    wanted class), in one copy to the host. ``preds``: the model's ``(B, 4 + nc + extra, N)`` output."""
    import torch
    from ultralytics.utils.ops import xywh2xyxy

    if isinstance(preds, (list, tuple)):
        preds = preds[0]
    nc = nc or preds.shape[1] - 4
    x = preds.transpose(-1, -2)  # (B, N, 4 + nc + extra)
    conf, j = x[..., 4:4 + nc].max(-1, keepdim=True)
    keep = conf > conf_thres  # in the model's precision, as ultralytics compares
    if classes is not None:
        keep &= torch.isin(j, _class_ids(tuple(classes), preds.device))
    rows = torch.cat((xywh2xyxy(x[..., :4]).float(), conf.float(), j.float(), x[..., 4 + nc:].float(),
                      keep.float()), -1)
    return rows.cpu()


@functools.lru_cache(maxsize=16)
def _class_ids(classes: tuple[int, ...], device: Any) -> Any:
    """The wanted class ids as a tensor on ``device``, made once (not copied to the GPU with every batch)."""
    import torch

    return torch.as_tensor(classes, device=device)


def host_nms_kernel() -> Callable[[Any, Any, float], Any]:
    """torchvision's compiled ``nms`` where torchvision imports and runs, else ultralytics' own loop
    (``TorchNMS.nms``, what ultralytics itself takes without torchvision; on host tensors it never waits for
    a device): a torchvision build whose compiled operators do not load must not fail the analyzer."""
    global _KERNEL
    if _KERNEL is None:
        import torch

        try:
            import torchvision

            torchvision.ops.nms(torch.zeros((1, 4)), torch.ones(1), 0.5)
            _KERNEL = torchvision.ops.nms
        except Exception as exc:  # ImportError, or RuntimeError: operator torchvision::nms does not exist
            from ultralytics.utils.nms import TorchNMS

            logger.info("YOLO NMS on the host by ultralytics' TorchNMS (torchvision's nms: %s: %s)",
                        type(exc).__name__, exc)
            _KERNEL = TorchNMS.nms
    return _KERNEL


_KERNEL: Callable[[Any, Any, float], Any] | None = None


def suppress_on_host(rows: Any, iou_thres: float, max_det: int, max_nms: int = MAX_NMS,
                     max_wh: int = MAX_WH) -> list[Any]:
    """Per image of ``candidates_to_host``'s rows: the kept detections ``(n, 6 + extra)`` float32, best
    score first, as ultralytics' ``non_max_suppression`` returns them."""
    import torch

    nms = host_nms_kernel()
    out = []
    for image in rows:
        x = image[image[:, -1] > 0][:, :-1]
        if not x.shape[0]:
            out.append(torch.zeros((0, x.shape[1]), dtype=torch.float32))
            continue
        if x.shape[0] > max_nms:
            x = x[x[:, 4].argsort(descending=True)[:max_nms]]
        boxes = x[:, :4] + x[:, 5:6] * max_wh  # class-aware: the classes' boxes never overlap
        keep = nms(boxes, x[:, 4], iou_thres)[:max_det]
        out.append(x[keep])
    return out
