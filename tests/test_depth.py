"""``depth_estimation``: the statistics on disparity maps with known answers, and the analyzer's real
loading code (``AutoModelForDepthEstimation`` / ``AutoImageProcessor`` on a Hugging Face snapshot
the runner resolves) on a tiny Depth Anything saved in the real layout, run on a generated clip.

The tiny model has random weights: its depth maps mean nothing, so the end-to-end test checks
loading, shapes, times, shots and ranges, and that the numbers come from the model's maps; the
known answers are checked on maps made by hand.
"""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from framework.runner import analyze
from framework.testing.synth import ShotSpec, make_video
from test_vlm_families_more import assert_documented

MODEL = "depth-anything-v2-small"


def make_tiny_depth_anything(folder):
    """A 4-layer Depth Anything (DINOv2 backbone, DPT head) with ``DPTImageProcessor`` settings
    like the real snapshot's (keep aspect, multiple of 14, ImageNet normalisation), 56 px."""
    import torch
    import transformers as tf

    cfg = tf.DepthAnythingConfig(
        backbone_config=dict(model_type="dinov2", hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                             intermediate_size=64, image_size=56, patch_size=14,
                             out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False),
        reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8,
        depth_estimation_type="relative")
    torch.manual_seed(0)
    model = tf.DepthAnythingForDepthEstimation(cfg)
    with torch.no_grad():  # random maps with some spread (a fresh head outputs ~0 everywhere)
        for p in model.head.parameters():
            p.normal_(0.0, 0.5)
        model.head.conv3.bias.fill_(1.0)
    model.save_pretrained(folder)
    tf.DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                         do_pad=False, resample=3, image_mean=[0.485, 0.456, 0.406],
                         image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_depth(tmp_path_factory):
    return make_tiny_depth_anything(tmp_path_factory.mktemp("depth") / "depth-anything")


@pytest.fixture(scope="module")
def shot_clip(tmp_path_factory):
    shots = [ShotSpec(2.0, look=0), ShotSpec(2.0, "pan", look=1), ShotSpec(2.0, look=2)]
    return make_video(tmp_path_factory.mktemp("depthclip") / "shots.mp4", shots, fps=10.0, width=160, height=90,
                      audio=False, text=None)


def install(folder, manifest_id=MODEL):
    from framework.models import load_manifest
    from framework.models.roots import CacheRoots
    from framework.testing.llm import install_in_hf_cache

    spec = load_manifest()[manifest_id]
    return install_in_hf_cache(folder, spec.locator, CacheRoots.from_env().hf_hub, commit=spec.revision)


def run(video, tmp_path, params=None, **kwargs):
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({"analyzers": {
        "cut_analysis": {"enabled": True},
        "depth_estimation": {"enabled": True, "device": "cpu", "params": params or {}}}}))
    result = analyze(video, registry_path=registry, out_dir=tmp_path / "run", progress=False,
                     load_entrypoints=False, **kwargs)
    return result.timeline.tracks


# --- the statistics, on maps with known answers --------------------------------------------------
def test_statistics_of_maps_with_known_answers():
    import torch

    from analyzers.depth_estimation import STATS, depth_stats

    d = torch.ones(3, 20, 50)
    d[0, :, :20] = 10.0         # 40% of the frame ten times nearer than the rest
    d[1] = 3.0                  # one distance everywhere: flat
    d[2] = torch.linspace(1.0, 5.0, 50).expand(20, 50)  # a ramp from far (1) to near (5)
    s = dict(zip(STATS, depth_stats(d)[0].tolist()))
    assert s["near_share"] == pytest.approx(0.4) and s["far_share"] == pytest.approx(0.6)
    assert s["mean_depth"] == pytest.approx(0.6)
    assert s["depth_range"] == pytest.approx(1 - 1 / 10)          # 1 - z_near / z_far
    assert s["foreground_distance"] == pytest.approx(1 / 10)      # median pixel 10x farther than the nearest tenth
    assert depth_stats(d)[1].tolist() == pytest.approx([0.5, 0.0, 0.0, 0.0, 1.0])
    ramp = dict(zip(STATS, depth_stats(d)[2].tolist()))
    assert ramp["mean_depth"] == pytest.approx(0.5, abs=0.02)
    assert ramp["near_share"] == pytest.approx(ramp["far_share"], abs=0.05) and 0.25 < ramp["near_share"] < 0.4
    q05, q95 = np.quantile(d[2].numpy().ravel(), [0.05, 0.95])
    assert ramp["depth_range"] == pytest.approx(1 - q05 / q95, abs=1e-4)
    # the per-row quantiles (by sorting, no size limit) are torch.quantile's
    from analyzers.depth_estimation import QUANTILES, quantiles

    rows = torch.rand(4, 1001, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(quantiles(rows, QUANTILES), torch.quantile(rows, torch.tensor(QUANTILES), dim=1).T, atol=1e-6)
    # nearer things bigger: less depth range
    d2 = torch.ones(1, 20, 50)
    d2[0, :, :20] = 2.0
    assert depth_stats(d2)[0, 3] < depth_stats(d)[0, 3]


# --- the real loading code, through the runner's resolution ---------------------------------------
def test_depth_per_shot_from_a_tiny_model_loaded_from_the_hf_cache(shot_clip, tiny_depth, tmp_path):
    install(tiny_depth)
    tracks = run(shot_clip.path, tmp_path, {"batch_size": 4, "fps": 2.0, "size": 56})
    track = tracks["depth_estimation"]
    assert track.status == "ok", track.reason
    shots = [e for e in tracks["cut_analysis"].events if e.label == "shot"]
    assert len(shots) == 3
    assert [e.label for e in track.events] == ["depth"] * 3
    assert [(e.start, e.end) for e in track.events] == [(pytest.approx(s.start, abs=1e-3), pytest.approx(s.end, abs=1e-3))
                                                        for s in shots]
    series = {s.name: s for s in track.series}
    assert set(series) == {"mean_depth", "near_share", "depth_range", "foreground_distance"}
    times = series["mean_depth"].times
    assert len(times) == 12 and times == sorted(times) and times[-1] < shot_clip.duration
    assert sum(e.data["frames"] for e in track.events) == len(times)
    for e in track.events:
        for k in ("mean_depth", "near_share", "far_share", "depth_range"):
            assert 0.0 <= e.data[k] <= 1.0
        assert 0.0 < e.data["foreground_distance"] <= 1.0
        assert e.data["near_share"] + e.data["far_share"] <= 1.0 + 1e-6
        assert e.data["layout"] in ("shallow", "medium", "deep") and e.data["layout"] in e.data["text"]
    # the numbers come from the model's maps: not the flat-map values, and they differ between frames
    assert len({round(v, 4) for v in series["mean_depth"].values}) > 1
    assert any(v > 0 for v in series["depth_range"].values)
    assert track.models[0].id == MODEL and track.models[0].revision is not None
    assert track.data["model"] == MODEL and track.data["frames"] == 12
    step = track.receipt["step"]
    assert step["items"] == 12 and max(step["batch_sizes"]) == 4
    assert_documented(track, "depth_estimation")


def test_statistics_match_the_model_run_directly(tiny_depth):
    """The analyzer's device step gives what the model and ``depth_stats`` give on the same frames."""
    import torch
    import transformers as tf

    from analyzers.depth_estimation import DepthEstimation, depth_stats

    frames = [np.random.default_rng(i).integers(0, 255, (56, 100, 3), dtype=np.uint8) for i in range(3)]
    a = DepthEstimation({"batch_size": 2})
    a.load("cpu", {MODEL: tiny_depth})
    got = a.postprocess(a.forward(a.preprocess(list(zip([0.0, 0.5, 1.0], frames)))), list(zip([0.0, 0.5, 1.0], frames)))
    model = tf.AutoModelForDepthEstimation.from_pretrained(tiny_depth)
    proc = tf.AutoImageProcessor.from_pretrained(tiny_depth)
    with torch.no_grad():
        want = depth_stats(model(**proc(images=frames, return_tensors="pt")).predicted_depth).numpy()
    assert np.allclose(np.array([r[1] for r in got]), want, atol=1e-5)
    assert [r[0] for r in got] == [0.0, 0.5, 1.0]


def test_missing_weights_offline_are_a_skip_naming_the_pull_command(shot_clip, tmp_path):
    track = run(shot_clip.path, tmp_path, offline=True)["depth_estimation"]
    assert track.status == "skipped"
    assert f"`framework models pull {MODEL}`" in track.reason


def test_params_are_checked():
    from analyzers.depth_estimation import DepthEstimation

    with pytest.raises(ValueError):
        DepthEstimation({"near": 0.8, "far": 0.2})
    assert DepthEstimation().model_ids() == [MODEL]
    assert DepthEstimation({"model": "dpt-hybrid-midas"}).model_ids() == ["dpt-hybrid-midas"]
