"""docs/writing-analyzers.md, section 5: the device-step example runs through the real pipeline.

The page's untargeted Python block (``PeopleCounter``) is loaded as a plugin and run by
``framework.testing.run_analyzer`` on a generated video, with a tiny random-weight YOLO saved in
ultralytics' own ``.pt`` format where the ultralytics model source looks for ``yolov8n.pt``: its
real loader, the plan (no GPU here: the CPU, since the model is small), the device step's batches
and the receipt. Random weights count nothing real: only shapes, batches and plumbing are checked.
"""
from __future__ import annotations

import json
import os

import pytest
from plugin_helpers import REPO, code_blocks

from framework import hookimpl
from framework.testing.plugins import run_analyzer

pytest.importorskip("ultralytics")


def _example_module():
    import types

    (block,) = [b for b in code_blocks((REPO / "docs" / "writing-analyzers.md").read_text(encoding="utf-8"))
                if b.lang == "python" and b.target is None]
    module = types.ModuleType("doc_people_counter")
    exec(compile(block.text, "writing-analyzers.md#5", "exec"), module.__dict__)  # noqa: S102 - our own page
    return module


def test_the_device_step_example_runs_through_the_pipeline(tmp_path, monkeypatch, video_factory):
    from ultralytics import YOLO

    from framework.models.roots import ultralytics_settings_file, ultralytics_weights_dir
    from framework.testing.synth import default_shots

    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo"))
    # YOLO_CONFIG_DIR/Ultralytics/settings.json, where ultralytics and our model source look (a file
    # elsewhere leaves the default ./weights: the checkout's folder, which outlived the test)
    settings = ultralytics_settings_file(os.environ)
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"weights_dir": str(tmp_path / "weights")}))
    weights = ultralytics_weights_dir(os.environ)
    assert weights == tmp_path / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    YOLO("yolov8n.yaml").save(str(weights / "yolov8n.pt"))  # random weights, the real file format

    module = _example_module()

    class Plugin:
        @hookimpl
        def register_analyzers(self, register):
            register(module.PeopleCounter)

    video = video_factory("people.mp4", shots=default_shots(3.0))
    track = run_analyzer(Plugin(), video.path, tmp_path / "run", "people_counter", offline=True)
    assert track.status == "ok", track.reason
    people = track.series_by_name("people")
    assert len(people.times) == len(people.values) == pytest.approx(2.0 * video.duration, abs=1)
    step = track.receipt["step"]
    assert track.receipt["device"] == "cpu" and step["items"] == len(people.times)
    assert step["batches"] >= 1 and max(step["batch_sizes"]) <= 16
    assert track.models[0].id == "yolov8n" and track.models[0].revision
