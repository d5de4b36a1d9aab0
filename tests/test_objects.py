"""object_detection / product_detection / body_pose: the real ultralytics loading code on a tiny
YOLOv8n checkpoint built from its yaml, batched letterbox -> forward -> NMS through the device
step, and ultralytics' ByteTrack turning detections into one event per object."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import vision_fixtures as vf

from analyzers.body_pose import BodyPose, person_pose
from analyzers.object_detection import ObjectDetection
from analyzers.product_detection import PRODUCT_CLASSES, ProductDetection
from framework import AnalyzerInputs, Event, Track
from framework.scheduler import Placement


def shots(bounds: list[float]) -> dict[str, Track]:
    events = [Event(start=a, end=b, label="shot", data={"index": i}) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    return {"cut_analysis": Track(analyzer="cut_analysis", version="t", provides=["shots"], events=events)}


@pytest.fixture(scope="module")
def tiny_pt():
    return vf.tiny_yolo("detect")


def red_box_frames(n: int, fps: float, cut: int) -> list[np.ndarray]:
    """320x180 grey frames with a red box moving right; after frame ``cut`` it jumps elsewhere."""
    frames = []
    for i in range(n):
        f = np.full((180, 320, 3), 110, np.uint8)
        x = 30 + 6 * i if i < cut else 200 - 4 * (i - cut)
        y = 40 if i < cut else 90
        f[y:y + 60, x:x + 40] = (220, 20, 20)
        frames.append(f)
    return frames


class RedBoxDetector(ObjectDetection):
    """The tiny model's weights are random, so for the tracking test the network's output is
    replaced by a red-rectangle finder on the letterboxed batch; everything around it (letterbox,
    scaling back, ByteTrack, events) is the analyzer's real code."""

    def forward(self, batch):
        import torch

        x = batch.numpy().transpose(0, 2, 3, 1).astype(int)
        dets = []
        for img in x:
            mask = (img[..., 0] > 180) & (img[..., 1] < 60)
            ys, xs = np.nonzero(mask)
            rows = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 0.9, 0]] if len(xs) else []
            dets.append(torch.tensor(rows, dtype=torch.float32).reshape(-1, 6))
        return dets, tuple(batch.shape[2:])


def test_tiny_yolo_checkpoint_loads_and_runs_in_batches(tmp_path, tiny_pt):
    a = ObjectDetection({"imgsz": 160, "fps": 5, "batch_size": 4})
    a.placement = Placement(device="cpu")
    a.load("cpu", {"yolov8x": tiny_pt})
    try:
        assert a.yolo.task == "detect" and a.yolo.names[0] == "person" and a.yolo.precision == "fp32"
        spec = a.frame_specs()[0]
        stream = vf.stream_of(tmp_path, spec, red_box_frames(10, 5, 10))
        track = a.analyze(AnalyzerInputs(video=vf.meta(2.0, 320, 180), streams={spec: stream}))
    finally:
        a.unload()
    step = track.receipt["step"]
    assert step["items"] == 10 and step["batches"] == 3 and step["batch_sizes"] == [4, 2]
    assert track.data["frames"] == 10 and track.data["model"] == tiny_pt.name
    assert len(track.series_by_name("objects").values) == 10
    assert all(e.label == "object" and e.data["text"] == e.data["class"] for e in track.events)


@pytest.mark.parametrize("tracker", ["bytetrack", "botsort"])
def test_a_tracked_object_is_one_event_per_shot(tmp_path, tiny_pt, tracker):
    fps = 5.0
    a = RedBoxDetector({"imgsz": 320, "fps": fps, "batch_size": 4, "max_boxes": 4, "tracker": tracker})
    a.load("cpu", {"yolov8x": tiny_pt})
    spec = a.frame_specs()[0]
    stream = vf.stream_of(tmp_path, spec, red_box_frames(20, fps, cut=10))
    track = a.analyze(AnalyzerInputs(video=vf.meta(4.0, 320, 180), streams={spec: stream},
                                     upstream=shots([0.0, 2.0, 4.0])))
    first, second = track.events  # ByteTrack kept the moving box as one object; the cut reset it
    assert (first.data["class"], first.data["text"], first.data["shot"]) == ("person", "person", 0)
    assert first.start == 0.0 and first.end == pytest.approx(1.9, abs=0.11)
    assert second.data["shot"] == 1 and second.start == pytest.approx(1.9, abs=0.11) and second.end == 4.0
    assert first.data["frames"] == 10 and len(first.data["boxes"]) == 4
    t0, x1, y1, x2, y2 = first.data["boxes"][0]
    assert t0 == 0.0 and (x1, y1) == pytest.approx((30 / 320, 40 / 180), abs=0.02)
    assert (x2, y2) == pytest.approx((70 / 320, 100 / 180), abs=0.02)
    assert first.data["boxes"][-1][1] == pytest.approx((30 + 54) / 320, abs=0.02)  # it moved right
    assert track.data["classes"] == {"person": 2} and track.data["objects"] == 2
    assert track.series_by_name("objects").values == [1.0] * 20


def test_product_classes_filter_and_errors(tiny_pt):
    p = ProductDetection({"imgsz": 160})
    p.load("cpu", {"yolov8s": tiny_pt})
    assert {p.yolo.names[i] for i in p.class_filter} == set(PRODUCT_CLASSES)  # all are COCO classes
    assert p.model_ids() == ["yolov8s"]

    custom = ProductDetection({"weights": str(tiny_pt), "classes": ["bottle", "cup"]})
    assert custom.model_ids() == []  # custom weights: nothing to resolve from the manifest
    custom.load("cpu", {})
    assert sorted(custom.yolo.names[i] for i in custom.class_filter) == ["bottle", "cup"]
    assert custom._custom_ref.revision.startswith("sha256:")

    with pytest.raises(ValueError, match=r"classes \['sneaker'\] are not classes of yolov8n.pt"):
        ProductDetection({"classes": ["sneaker"]}).load("cpu", {"yolov8s": tiny_pt})


def test_pose_checkpoint_and_pose_rules(tmp_path):
    pose_pt = vf.tiny_yolo("pose")
    a = BodyPose({"imgsz": 160, "fps": 2})
    a.load("cpu", {"yolov8x-pose": pose_pt})
    assert a.yolo.kpt_shape == (17, 3)
    spec = a.frame_specs()[0]
    stream = vf.stream_of(tmp_path, spec, red_box_frames(4, 2, 4))
    track = a.analyze(AnalyzerInputs(video=vf.meta(2.0, 320, 180), streams={spec: stream}))
    assert track.status == "ok" and track.data["frames"] == 4 and len(track.series_by_name("people").values) == 4
    with pytest.raises(ValueError, match="not a pose model"):
        BodyPose().load("cpu", {"yolov8x-pose": vf.tiny_yolo("detect")})

    k = np.zeros((17, 3))
    k[:, 2] = 1.0
    k[0] = (50, 20, 1); k[1] = (45, 18, 1); k[2] = (55, 18, 1)  # noqa: E702 - nose between the eyes
    k[5:7] = [(40, 40, 1), (60, 40, 1)]    # shoulders
    k[9:11] = [(38, 10, 1), (62, 60, 1)]   # one wrist above its shoulder
    k[11:13] = [(42, 80, 1), (58, 80, 1)]  # hips
    k[13:15] = [(42, 120, 1), (58, 120, 1)]
    k[15:17] = [(42, 160, 1), (58, 160, 1)]
    assert person_pose(k, 0.5) == {"posture": "standing", "arms_raised": True, "facing_camera": True}
    sitting = k.copy()
    sitting[13:15, 1] = 85
    assert person_pose(sitting, 0.5)["posture"] == "sitting"
    assert person_pose(np.where(np.arange(17)[:, None] >= 11, 0, k), 0.5)["posture"] == "upper_body"


def test_tracking_needs_no_install_at_run_time(monkeypatch):
    """ultralytics' matching module imports lap and only when that fails calls check_requirements
    (which pip-installs). Executing the module afresh with check_requirements booby-trapped proves
    the pinned lap satisfies it."""
    import importlib.metadata

    import ultralytics.utils.checks as checks
    from ultralytics.trackers.utils import matching

    def trap(*args, **kwargs):
        raise AssertionError(f"ultralytics tried to install {args}")

    monkeypatch.setattr(checks, "check_requirements", trap)
    spec = importlib.util.spec_from_file_location("matching_fresh", matching.__file__)
    fresh = importlib.util.module_from_spec(spec)
    sys.modules["matching_fresh"] = fresh
    try:
        spec.loader.exec_module(fresh)
    finally:
        sys.modules.pop("matching_fresh", None)
    assert fresh.lap.__name__ == "lap"
    version = tuple(int(x) for x in importlib.metadata.version("lap").split(".")[:3])
    assert version >= (0, 5, 12)  # what ultralytics asks for


def _detections(yolo, frames, channels_last):
    import torch

    yolo.channels_last = channels_last  # (forced: on the CPU the parameter is not taken)
    yolo.net = yolo.net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    batch = yolo.letterbox_batch(frames, 160)
    assert batch.is_contiguous() != channels_last  # channels-last: the frames' own NHWC memory
    with torch.inference_mode():
        x = batch.to(yolo.device).to(next(yolo.net.parameters()).dtype) / 255.0  # (fp16 on a GPU)
        raw = yolo.net(x.contiguous(memory_format=torch.channels_last) if channels_last else x)[0]
    return raw, yolo.detections(yolo.forward(batch, 1e-4, 0.7, None, 300)[0])  # (random weights: scores 1e-5 to 2e-4)


def test_the_yolos_channels_last_path_detects_as_nchw(tiny_pt):
    """``channels_last`` (a GPU's, here forced on the CPU): the letterboxed batch stays the frames' NHWC memory,
    the network's output and the detections are the NCHW path's. On the CPU the parameter is not taken."""
    from analyzers._vision.yolo import load_yolo

    frames = red_box_frames(4, 5, 2)
    yolo = load_yolo(tiny_pt, "cpu", None, "object_detection", channels_last=True)
    assert not yolo.channels_last and ObjectDetection().params.channels_last  # (on by default; a GPU's only)
    raw_nchw, dets_nchw = _detections(yolo, frames, False)
    raw_nhwc, dets_nhwc = _detections(yolo, frames, True)
    assert raw_nchw.shape == raw_nhwc.shape and float((raw_nchw - raw_nhwc).abs().max()) < 1e-3
    assert len(dets_nchw) == len(dets_nhwc) == 4 and sum(len(d) for d in dets_nchw) > 0  # (random weights find boxes)
    for a, b in zip(dets_nchw, dets_nhwc):
        assert a.shape == b.shape and float((a - b).abs().max()) < 1e-2


@pytest.mark.gpu
def test_on_cuda_the_yolos_channels_last_parameter_gives_nhwc_weights_and_nchws_output(tiny_pt):
    """On a GPU the YOLOs run channels-last by default (bench/results/conv_layout_h200.md); the network's output is
    the NCHW layout's, and the parameter switches it off."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    a = ObjectDetection({"imgsz": 160})  # (on by default)
    a.placement = Placement(device="cuda")
    a.load("cuda", {"yolov8x": tiny_pt})
    conv = next(w for w in a.yolo.net.parameters() if w.dim() == 4)
    assert a.yolo.channels_last and conv.is_contiguous(memory_format=torch.channels_last)
    frames = red_box_frames(4, 5, 2)
    raw_nhwc, _ = _detections(a.yolo, frames, True)
    raw_nchw, _ = _detections(a.yolo, frames, False)
    assert raw_nchw.shape == raw_nhwc.shape
    assert float((raw_nchw.float() - raw_nhwc.float()).abs().max()) < 0.05 * float(raw_nchw.float().abs().max())
    a.unload()
    a = ObjectDetection({"imgsz": 160, "channels_last": False})
    a.placement = Placement(device="cuda")
    a.load("cuda", {"yolov8x": tiny_pt})
    assert not a.yolo.channels_last and next(w for w in a.yolo.net.parameters() if w.dim() == 4).is_contiguous()
