"""The ``register_models`` hook: a plugin ships manifest entries for its own models."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import main
from framework import Analyzer, hookimpl
from framework.models import ModelSpec, load_manifest
from framework.models.manifest import ManifestError
from framework.plugins import DuplicateNameError, build_plugin_manager
from framework.runner import analyze

ENTRY = {"id": "acme-detector", "source": "url", "locator": "https://example.invalid/acme/detector.onnx",
         "size_bytes": 12_000_000, "license": "mit", "task": "object-detection", "vram_gb": {"fp16": 0.5}}


class AcmeModels:
    @hookimpl
    def register_models(self, register):
        register(ENTRY)  # a dict of the manifest's fields, plus id
        register(ModelSpec(id="acme-base", source="bundled", locator="json", paths=("decoder.py",),
                           license="psf", task="test"))


class AcmeDetector(Analyzer):
    name = "acme_detector"
    models = ("acme-detector",)

    def analyze(self, inputs):
        return self.track()


class AcmeAnalyzers:
    @hookimpl
    def register_analyzers(self, register):
        register(AcmeDetector)


def test_hook_register_models(tmp_path, sample_video):
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[AcmeModels(), AcmeAnalyzers()])
    assert not [p for p in host.problems if "Acme" in str(p)], host.problems
    assert set(host.models) == {"acme-detector", "acme-base"}
    assert host.model_plugins["acme-detector"] == "AcmeModels-0"
    manifest = load_manifest(host=host)  # the built-in file plus the plugin's entries
    assert manifest["acme-detector"].filename == "detector.onnx" and manifest["acme-detector"].vram_mb() == 512
    assert manifest.origin("acme-detector") == "plugin AcmeModels-0"
    assert manifest.origin("yolov8n").startswith(str(manifest.path))
    # the runner resolves a plugin's model like a manifest one: offline and uncached, it says how to pull
    reg = tmp_path / "registry.yaml"
    reg.write_text("analyzers:\n  acme_detector: {enabled: true}\n")
    res = analyze(sample_video.path, registry_path=reg, host=host, out_dir=tmp_path / "run", progress=False)
    track = res.timeline.tracks["acme_detector"]
    assert track.status == "skipped" and "`framework models pull acme-detector`" in track.reason


def test_plugin_models_appear_in_models_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "acme.py").write_text(
        "from framework import hookimpl\n\n"
        f"@hookimpl\ndef register_models(register):\n    register({ENTRY!r})\n")
    (tmp_path / "registry.yaml").write_text("plugin_dirs: [plugins]\nanalyzers: {}\n")
    result = CliRunner().invoke(main, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.stdout)["models"]}
    assert rows["acme-detector"]["origin"].startswith("plugin acme") and not rows["acme-detector"]["cached"]


def test_a_model_id_the_manifest_already_has_is_an_error_naming_the_plugin():
    class Clash:
        @hookimpl
        def register_models(self, register):
            register({**ENTRY, "id": "yolov8n"})

    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Clash()])
    with pytest.raises(ManifestError, match=r"plugin Clash-0 registers model 'yolov8n', which .*models_manifest"
                                            r"\.yaml:\d+ already defines"):
        load_manifest(host=host)


def test_two_plugins_registering_one_model_id_is_an_error_naming_both():
    class One:
        @hookimpl
        def register_models(self, register):
            register(ENTRY)

    class Two(One):
        pass

    with pytest.raises(DuplicateNameError, match=r"'acme-detector' is registered twice: by plugin One-0 and by "
                                                  r"plugin Two-1"):
        build_plugin_manager(load_entrypoints=False, extra_plugins=[One(), Two()])


def test_an_invalid_entry_is_a_problem_of_its_plugin_only():
    class Broken:
        @hookimpl
        def register_models(self, register):
            register({**ENTRY, "id": "broken", "source": "ftp"})

    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Broken(), AcmeModels()])
    (problem,) = [p for p in host.problems if p.plugin == "Broken-0"]
    assert "model 'broken': source" in problem.error
    assert "acme-detector" in host.models and "broken" not in host.models


def test_a_plugin_that_fails_half_way_registers_none_of_its_models():
    class HalfBroken:
        @hookimpl
        def register_models(self, register):
            register({**ENTRY, "id": "half-good"})  # valid, but the plugin raises right after
            raise RuntimeError("could not read the second entry")

    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[HalfBroken(), AcmeModels()])
    (problem,) = [p for p in host.problems if p.plugin == "HalfBroken-0"]
    assert "could not read the second entry" in problem.error and "none of its models" in problem.error
    assert "half-good" not in host.models and "acme-detector" in host.models


def test_a_plugin_entry_requiring_an_unknown_model_is_an_error():
    class Needy:
        @hookimpl
        def register_models(self, register):
            register({**ENTRY, "requires": ["nowhere"]})

    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Needy()])
    with pytest.raises(ManifestError, match=r"plugin Needy-0: model 'acme-detector' requires unknown model id"):
        load_manifest(host=host)
