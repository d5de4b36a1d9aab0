"""Measured peaks and speeds: recorded under FRAMEWORK_HOME after a run, preferred by the next plan."""
from __future__ import annotations

import json
import os

from framework.devices import GPUs
from framework.measurements import Measurements, measurement_key
from framework.models.roots import ultralytics_settings_file, ultralytics_weights_dir
from framework.plugins import build_plugin_manager
from framework.registry import load_registry
from framework.runner import analyze, plan_video
from framework.testing.devices import SimulatedGPUs, StandIn
from framework.testing.plugins import analyzers_plugin


def test_record_merges_and_counts_runs(tmp_path):
    m = Measurements(tmp_path)
    key = measurement_key("vlm", "1.0", ["b", "a"], "bf16", "cuda:1")
    assert key == "vlm@1.0|a,b|bf16|cuda"
    m.record({key: {"peak_vram_mb": 1000.0, "seconds_per_video_s": None}})
    m.record({key: {"seconds_per_video_s": 0.5}})
    again = Measurements(tmp_path).get(key)
    assert again["peak_vram_mb"] == 1000.0 and again["seconds_per_video_s"] == 0.5 and again["runs"] == 2


def test_an_unreadable_file_is_ignored_with_a_warning(tmp_path, caplog):
    (tmp_path / "measurements.json").write_text("{not json")
    assert Measurements(tmp_path).get("x") is None
    assert "ignoring unreadable" in caplog.text


def _one_simulated_gpu(monkeypatch, gpus):
    monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True: GPUs(
        ["cuda:0"], {"cuda:0": 20_000.0}, {"cuda:0": 24_000.0}, {"cuda:0": "simulated"}))
    monkeypatch.setattr("framework.executor.TorchMemory", lambda: gpus)


def test_a_measured_peak_replaces_the_manifest_estimate_in_the_next_plan(tmp_path, monkeypatch, sample_video):
    # a stand-in declaring yolov8n (manifest: fp16 0.4 GB) whose real footprint is 3000 MB + 200 per item
    gpus = SimulatedGPUs({"cuda:0": 24_000.0})
    _one_simulated_gpu(monkeypatch, gpus)
    Heavy = StandIn.make("t_heavy", gpus, {"fp16": 3000.0, "fp32": 3000.0}, item_mb=200.0, n_items=4, batch_size=2)
    Heavy.models = ("yolov8n",)
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "yolov8n.pt").write_bytes(b"stand-in weights")  # the stand-in never reads them
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo"))
    settings = ultralytics_settings_file(os.environ)  # YOLO_CONFIG_DIR/Ultralytics/settings.json
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"weights_dir": str(weights)}))
    assert ultralytics_weights_dir(os.environ) == weights

    Plugin = analyzers_plugin(Heavy)

    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text("analyzers:\n  t_heavy: {}\n")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Plugin])
    before = plan_video(sample_video.path, registry=load_registry(registry_file), host=host)
    assert before.plan.placements["t_heavy"].variant == "fp16"
    estimate = before.plan.placements["t_heavy"].vram_mb  # the manifest's 0.4 GB (+ the batch's items)

    result = analyze(sample_video.path, registry=load_registry(registry_file), host=host,
                     out_dir=tmp_path / "run", progress=False, offline=True)
    track = result.timeline.tracks["t_heavy"]
    assert track.status == "ok", track.reason
    assert track.receipt["measured_alone"] is True and track.receipt["peak_vram_mb"] == 3000 + 2 * 200
    stored = json.loads(Measurements().path.read_text())  # under the test's FRAMEWORK_HOME
    key = measurement_key("t_heavy", Heavy.version, ["yolov8n"], "fp16", "cuda:0")
    assert stored[key]["peak_vram_mb"] == 3400.0 and stored[key]["peak_batch"] == 2
    assert "peak_group" not in stored[key]  # (only where batches are prefilled in groups)

    after = plan_video(sample_video.path, registry=load_registry(registry_file), host=host)
    assert after.plan.placements["t_heavy"].vram_mb > estimate
    assert after.plan.placements["t_heavy"].vram_mb >= 3400.0
    assert os.environ["FRAMEWORK_HOME"]  # the conftest's per-test home: nothing leaks between tests


def test_a_gpu_analyzer_loads_while_its_cpu_upstream_runs_and_reads_its_track(tmp_path, monkeypatch, sample_video):
    gpus = SimulatedGPUs({"cuda:0": 24_000.0})
    _one_simulated_gpu(monkeypatch, gpus)
    seen = {}

    class PerShot(StandIn.make("t_per_shot", gpus, {}, n_items=2, depends_on=("cut_analysis",))):
        def finish(self, results, inputs):
            seen["shots"] = sum(e.label == "shot" for e in inputs.upstream["cut_analysis"].events)
            return super().finish(results, inputs)

    Plugin = analyzers_plugin(PerShot)

    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text("analyzers:\n  t_per_shot: {}\n  cut_analysis: {}\n")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Plugin])
    result = analyze(sample_video.path, registry=load_registry(registry_file), host=host,
                     out_dir=tmp_path / "run", progress=False)
    track = result.timeline.tracks["t_per_shot"]
    assert track.status == "ok", track.reason
    assert track.receipt["device"] == "cuda:0" and seen["shots"] >= len(sample_video.cut_frames) + 1


def test_a_peak_measured_at_a_large_batch_is_not_counted_twice_by_the_next_plan():
    """The plan reserves weights + one item + the batch's other items; a peak measured at a batch of 64
    read as "weights + one item" would reserve the batch twice (a 7B VLM measured on an H200 would no
    longer fit 24 GB)."""
    import types

    from framework.runner import measured_one_item_mb

    vlm = types.SimpleNamespace(item_vram_mb=300.0)
    assert measured_one_item_mb({"peak_vram_mb": 3400.0}, vlm, 500.0) == 3400.0  # no batch recorded: as measured
    assert measured_one_item_mb({"peak_vram_mb": 3400.0, "peak_batch": 1}, vlm, 500.0) == 3400.0
    # 16.6 GB of weights + 64 chunks of 300 MB, measured: the plan reads 16.9 GB for weights + one chunk
    assert measured_one_item_mb({"peak_vram_mb": 35_800.0, "peak_batch": 64}, vlm, 18_432.0) == 35_800.0 - 63 * 300.0
    # the per-item estimate is far above this model's real need: the manifest's figure is kept
    big_items = types.SimpleNamespace(item_vram_mb=600.0)
    assert measured_one_item_mb({"peak_vram_mb": 35_800.0, "peak_batch": 64}, big_items, 18_432.0) == 18_432.0
    assert measured_one_item_mb({"peak_vram_mb": 900.0, "peak_batch": 8}, types.SimpleNamespace(), 500.0) == 900.0
    # a batch prefilled in groups of 32: the chunks beyond the first group held their KV (100 MB) only
    grouped = types.SimpleNamespace(item_vram_mb=300.0, item_kv_mb=100.0, prefill_group=lambda: 32)
    assert measured_one_item_mb({"peak_vram_mb": 35_800.0, "peak_batch": 64}, grouped, 18_432.0) == \
        35_800.0 - 31 * 300.0 - 32 * 100.0
    # measured in the plan's smaller groups (4: a 24 GB GPU), not the analyzer's own 32: read with the group it ran in
    assert measured_one_item_mb({"peak_vram_mb": 22_000.0, "peak_batch": 30, "peak_group": 4}, grouped, 18_432.0) == \
        22_000.0 - 3 * 300.0 - 26 * 100.0
