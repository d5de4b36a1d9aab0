"""The vision analyzers through the real runner: manifest ids resolved to local files in each
source's own cache layout (tiny models saved in the real formats), and offline without weights a
``skipped`` track naming the ``framework models pull`` command."""
from __future__ import annotations

import json

import numpy as np
import pytest
import vision_fixtures as vf

from framework.models import load_manifest
from framework.models.roots import CacheRoots
from framework.runner import analyze

MODEL_ANALYZERS = {
    "object_detection": "yolov8x",
    "product_detection": "yolov8s",
    "body_pose": "yolov8x-pose",
    "background_segmentation": "segformer-b0-ade-512",
    "content_quality": "open-clip-vit-b-32",
    "composition_analysis": "open-clip-vit-b-32",
}


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty model caches: ultralytics' weights folder pinned to tmp (not ./weights), HF offline."""
    home = tmp_path / "caches"
    vf.offline_env(monkeypatch, home)
    settings = CacheRoots.from_env().framework_home.parent / "yolo" / "Ultralytics" / "settings.json"
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(settings.parent.parent))
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"weights_dir": str(home / "yolo-weights")}))
    return CacheRoots.from_env()


def test_missing_weights_offline_skip_with_the_pull_command(tmp_path, sample_video, caches):
    analyzers = {name: {} for name in MODEL_ANALYZERS}
    analyzers["text_overlay"] = {"backend": "easyocr", "languages": ["en"]}
    result = analyze(sample_video.path, registry_path=vf.registry(tmp_path, analyzers), out_dir=tmp_path / "run",
                     progress=False, load_entrypoints=False, offline=True)
    tracks = result.timeline.tracks
    for name, model in MODEL_ANALYZERS.items():
        assert tracks[name].status == "skipped", (name, tracks[name].status, tracks[name].reason)
        assert f"framework models pull {model}" in tracks[name].reason
    assert tracks["text_overlay"].status == "skipped"
    assert "framework models pull easyocr-craft" in tracks["text_overlay"].reason


def test_tiny_models_resolved_from_their_caches_run_through_the_runner(tmp_path, sample_video, caches):
    manifest = load_manifest()
    placed = vf.seed_vision_models(caches)  # YOLO .pt in torch hub checkpoints, HF snapshots at the pinned commits
    assert placed["yolov8x"].parent == caches.torch_checkpoints
    analyzers = {
        "cut_analysis": {},
        "object_detection": {"fps": 2, "imgsz": 160},
        "product_detection": {"fps": 1, "imgsz": 160},
        "body_pose": {"fps": 1, "imgsz": 160},
        "background_segmentation": {"fps": 1, "size": 64},
        "content_quality": {"fps": 1, "image_size": 32, "measure_width": 160},
        "composition_analysis": {"fps": 1, "image_size": 32, "measure_width": 160},
        "eye_tracking": {"fps": 1, "width": 320},
    }
    result = analyze(sample_video.path, registry_path=vf.registry(tmp_path, analyzers), out_dir=tmp_path / "run",
                     progress=False, load_entrypoints=False, offline=True)
    tracks = result.timeline.tracks
    for name in analyzers:
        assert tracks[name].status == "ok", (name, tracks[name].status, tracks[name].reason)
    assert tracks["object_detection"].models[0].revision.startswith("sha256:")
    assert tracks["background_segmentation"].models[0].revision == manifest["segformer-b0-ade-512"].revision
    assert tracks["content_quality"].models[0].revision == manifest["open-clip-vit-b-32"].revision
    shots = [e for e in tracks["cut_analysis"].events if e.label == "shot"]
    quality = tracks["content_quality"]
    assert len(quality.events) == len(quality.data["shot_embeddings"]["times"]) <= len(shots)
    assert [e.start for e in quality.events] == [t for t, _ in quality.data["shot_embeddings"]["times"]]
    assert len(tracks["background_segmentation"].series_by_name("foreground_ratio").values) == 12
    assert tracks["product_detection"].models[0].id == "yolov8s" and tracks["body_pose"].data["frames"] == 12
    for name in ("object_detection", "background_segmentation", "content_quality", "composition_analysis"):
        assert tracks[name].receipt["step"]["items"] > 0
    assert tracks["eye_tracking"].data["faces_max"] == 0  # a synthetic video has no faces



def _segformer_on(device):
    from analyzers.background_segmentation import BackgroundSegmentation
    from framework.scheduler import Placement

    a = BackgroundSegmentation(BackgroundSegmentation.Params(size=64))
    a.placement = Placement(device=device, variant="fp32")
    a.load(device, {"segformer-b0-ade-512": vf.tiny_segformer()})
    rng = np.random.default_rng(0)
    items = [(float(t), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for t in range(8)]
    return a, items


def _class_maps(a, items, channels_last):
    import torch

    a.channels_last = channels_last
    a.model = a.model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return a.forward(a.preprocess(items))


def test_background_segmentations_channels_last_path_segments_as_nchw():
    """The channels-last path (a GPU's) gives the NCHW path's class maps; on the CPU it is not taken."""
    a, items = _segformer_on("cpu")
    assert not a.channels_last and a.params.channels_last  # (the parameter is on; the CPU does not take it)
    nchw, nhwc = _class_maps(a, items, False), _class_maps(a, items, True)
    assert nhwc.shape == nchw.shape == (8, 16, 16) and float(np.mean(nhwc == nchw)) > 0.99


@pytest.mark.gpu
def test_on_cuda_background_segmentation_runs_channels_last_and_segments_as_in_nchw():
    """On a GPU the SegFormer and its batches are channels-last (cuDNN's NHWC kernels: 4x faster on an
    H200, bench/results/segformer_step_h200.md); the class maps are those of the NCHW layout."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    a, items = _segformer_on("cuda")
    convolution = next(w for w in a.model.parameters() if w.dim() == 4)  # (names differ across transformers)
    assert a.channels_last and convolution.is_contiguous(memory_format=torch.channels_last)
    nhwc, nchw = _class_maps(a, items, True), _class_maps(a, items, False)
    assert nhwc.shape == nchw.shape and float(np.mean(nhwc == nchw)) > 0.99
    a.params.channels_last = False  # the parameter switches it off (to compare, or around a cuDNN problem)
    a.load("cuda", {"segformer-b0-ade-512": vf.tiny_segformer()})
    assert not a.channels_last
