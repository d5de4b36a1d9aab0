"""``analyzers._vision.yolo_nms``: the batch's candidates sent to the host in one copy and suppressed there give
ultralytics' ``non_max_suppression``'s rows, on synthetic predictions built to overlap, and through the YOLO
analyzers on a tiny real checkpoint."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import vision_fixtures as vf

torch = pytest.importorskip("torch")
nms_module = pytest.importorskip("ultralytics.utils.nms")

from analyzers._vision.yolo_nms import candidates_to_host, suppress_on_host  # noqa: E402


def overlapping_predictions(batch: int, nc: int, extra: int, anchors: int = 600, seed: int = 0,
                            dtype=torch.float32) -> torch.Tensor:
    """A YOLO head's output ``(B, 4 + nc + extra, N)``: boxes around a few centres (so many overlap), class scores
    spread over 0..0.6 (so many pass 0.25), one image with nothing above the threshold."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(40, 600, size=(8, 2))
    pick = rng.integers(0, len(centres), size=(batch, anchors))
    xy = centres[pick] + rng.normal(0, 6, size=(batch, anchors, 2))
    wh = rng.uniform(20, 90, size=(batch, anchors, 2))
    scores = rng.uniform(0, 0.6, size=(batch, anchors, nc))
    scores[-1] *= 0.3  # the last image: no candidate
    extras = rng.uniform(0, 640, size=(batch, anchors, extra))
    out = np.concatenate([xy, wh, scores, extras], -1).transpose(0, 2, 1)
    return torch.tensor(out, dtype=dtype)


def ultralytics_rows(preds, conf, iou, classes, max_det, nc, max_nms=30000, monkeypatch=None):
    """ultralytics' rows; with ``monkeypatch``, by its own NMS loop (``TorchNMS.nms``, which it takes when torchvision
    was not imported, as in the run's YOLO processes) instead of torchvision's."""
    if monkeypatch is not None:
        monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    try:
        return nms_module.non_max_suppression(preds, conf, iou, classes=classes, max_det=max_det, nc=nc,
                                              max_nms=max_nms)
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()


def host_rows(preds, conf, iou, classes, max_det, nc, max_nms=30000):
    return suppress_on_host(candidates_to_host(preds, conf, classes, nc), iou, max_det, max_nms=max_nms)


@pytest.mark.parametrize("nc,extra,classes,max_det,max_nms,dtype,own_loop", [
    (80, 0, None, 300, 30000, torch.float32, False),  # a detector, every class
    (80, 0, None, 300, 30000, torch.float32, True),  # ... against ultralytics' own NMS loop
    (80, 0, None, 300, 30000, torch.float16, False),  # ... in half precision (many equal scores, see below)
    (80, 0, [0, 2, 5, 39], 300, 30000, torch.float32, False),  # a class filter (product_detection's way)
    (80, 0, None, 3, 30000, torch.float32, False),  # max_det cuts
    (80, 0, None, 300, 10, torch.float32, False),  # the per-image candidate cap
    (1, 51, None, 300, 30000, torch.float32, True),  # a pose model: one class, 17 keypoints as extra channels
])
def test_host_suppression_gives_ultralytics_rows(nc, extra, classes, max_det, max_nms, dtype, own_loop, monkeypatch):
    preds = overlapping_predictions(3, nc, extra, dtype=dtype)
    want = ultralytics_rows(preds, 0.25, 0.7, classes, max_det, nc if extra else 0, max_nms,
                            monkeypatch if own_loop else None)
    got = host_rows(preds, 0.25, 0.7, classes, max_det, nc if extra else 0, max_nms)
    assert len(got) == len(want) == 3
    candidates = int((preds[:2, 4:4 + nc].float().amax(1) > 0.25).sum())
    kept = sum(len(w) for w in want[:2])  # (the data exercise NMS: some kept, more suppressed)
    assert 2 * min(max_det, 3) <= kept < candidates and len(want[2]) == 0
    for g, w in zip(got, want):
        assert g.dtype == torch.float32 and g.shape == w.shape
        assert torch.equal(g, w)
    if classes is not None:
        assert set(torch.cat(got)[:, 5].int().tolist()) <= set(classes)


def test_with_equal_scores_the_host_keeps_ultralytics_scores_against_its_own_loop(monkeypatch):
    """Half-precision scores are often equal; torchvision's ``nms`` and ultralytics' own loop may then order (and,
    at ``max_det``, keep) different boxes of one score, as ultralytics itself does with and without torchvision.
    The scores kept are the same."""
    preds = overlapping_predictions(3, 80, 0, dtype=torch.float16)
    want = ultralytics_rows(preds, 0.25, 0.7, None, 300, 0, monkeypatch=monkeypatch)
    got = host_rows(preds, 0.25, 0.7, None, 300, 0)
    for g, w in zip(got, want):
        assert g.shape == w.shape and torch.equal(g[:, 4], w[:, 4])


def test_without_a_working_torchvision_the_host_takes_ultralytics_loop(monkeypatch):
    """A torchvision that does not import (or whose compiled operators do not load) leaves the host on ultralytics'
    own loop, with the same rows."""
    from analyzers._vision import yolo_nms

    preds = overlapping_predictions(3, 80, 0)
    want = ultralytics_rows(preds, 0.25, 0.7, None, 300, 0)
    monkeypatch.setattr(yolo_nms, "_KERNEL", None)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # (import torchvision raises ImportError)
    assert yolo_nms.host_nms_kernel() is nms_module.TorchNMS.nms
    got = host_rows(preds, 0.25, 0.7, None, 300, 0)
    assert all(torch.equal(g, w) for g, w in zip(got, want))
    monkeypatch.undo()
    monkeypatch.setattr(yolo_nms, "_KERNEL", None)
    import torchvision

    assert yolo_nms.host_nms_kernel() is torchvision.ops.nms


def test_suppression_really_suppresses():
    """Two nearly equal boxes of one class: one is kept; of two classes: both (class-aware)."""
    box = [100.0, 100.0, 40.0, 40.0]
    preds = torch.zeros((1, 4 + 3, 3))
    preds[0, :4, 0] = torch.tensor(box)
    preds[0, :4, 1] = torch.tensor([101.0, 100.0, 40.0, 40.0])
    preds[0, :4, 2] = torch.tensor([101.0, 101.0, 40.0, 40.0])
    preds[0, 4, 0], preds[0, 4, 1], preds[0, 5, 2] = 0.9, 0.8, 0.7
    rows = host_rows(preds, 0.25, 0.7, None, 300, 0)[0]
    assert rows[:, 4].tolist() == pytest.approx([0.9, 0.7]) and rows[:, 5].tolist() == [0.0, 1.0]
    assert rows[0, :4].tolist() == [80.0, 80.0, 120.0, 120.0]  # corners, in the input's pixels


def test_the_yolo_analyzers_detect_the_same_with_either_nms(tmp_path):
    """Through ``YoloNet`` on a tiny real checkpoint (random weights, a low threshold so that boxes come out):
    ``host_nms`` on and off give the same rows."""
    from analyzers._vision.yolo import load_yolo

    yolo = load_yolo(vf.tiny_yolo("detect"), "cpu", None, "object_detection")
    frames = [np.random.default_rng(i).integers(0, 255, (180, 320, 3), dtype=np.uint8) for i in range(4)]
    batch = yolo.letterbox_batch(frames, 160)
    on, _ = yolo.forward(batch, 1e-4, 0.5, None, 300, host_nms=True)
    off, _ = yolo.forward(batch, 1e-4, 0.5, None, 300, host_nms=False)
    on, off = yolo.detections(on), yolo.detections(off)
    assert sum(len(d) for d in off) > 4
    for a, b in zip(on, off):
        assert torch.equal(a, b)


@pytest.mark.gpu
def test_on_cuda_host_suppression_gives_ultralytics_rows():
    """On a GPU: the rows of ultralytics' NMS on the device (float32 scores: equal scores, frequent in half
    precision, may come out in another order from the device's sort than from the host's)."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    import torchvision  # noqa: F401 - ultralytics' NMS by torchvision's kernel (its own loop: seconds per image here)

    preds = overlapping_predictions(4, 80, 0).cuda()
    want = [w.cpu() for w in ultralytics_rows(preds, 0.25, 0.7, None, 300, 0)]
    got = host_rows(preds, 0.25, 0.7, None, 300, 0)
    for g, w in zip(got, want):
        assert g.shape == w.shape and torch.allclose(g, w, atol=1e-4, rtol=0)
