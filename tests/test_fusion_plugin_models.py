"""The fusion step declares the model of a plugin's LLM backend (one that loads a model folder),
so the runner resolves it and `framework models prune` keeps it."""
from __future__ import annotations

from pathlib import Path

from framework.analyzer import AnalyzerInputs
from framework.models.listing import open_models
from framework.plugins import build_plugin_manager
from framework.registry import load_registry
from framework.testing.llm import ScriptedLLM, backend_plugin
from framework.timeline import VideoMeta

MODEL = "qwen2.5-0.5b-instruct"


class FolderLLM(ScriptedLLM):
    """A scripted backend that, like the transformers one, loads the folder the runner resolves."""

    class Options(ScriptedLLM.Options):
        model_path: str | None = None


def _registry(tmp_path: Path, backend: str) -> Path:
    reg = tmp_path / "registry.yaml"
    reg.write_text(f"analyzers:\n  fusion: {{params: {{backend: {backend}, model: {MODEL}}}}}\n")
    return reg


def test_a_plugin_backend_model_is_declared_and_reaches_the_backend(tmp_path):
    llm = FolderLLM.scripted('{"title": "A video"}', name="folder_llm")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[backend_plugin(llm)])
    configured = {c.name: c for c in load_registry(_registry(tmp_path, "folder_llm")).configure(host.analyzers, host)}
    fusion = configured["fusion"].instantiate()
    assert fusion.model_ids() == [MODEL]
    # the folder the runner resolved for it is handed to the plugin's backend
    folder = tmp_path / "snapshot"
    fusion.load("cpu", {MODEL: folder})
    try:
        video = VideoMeta(path="v.mp4", content_hash="0", size_bytes=1, duration=10.0, has_video=True)
        fusion.analyze(AnalyzerInputs(video=video, upstream={}, host=host))
        assert fusion.backend.options.model == MODEL and fusion.backend.options.model_path == str(folder)
    finally:
        fusion.unload()


def test_a_plugin_backend_without_a_model_folder_declares_none(tmp_path):
    llm = ScriptedLLM.scripted("{}", name="server_llm")  # takes a model name only, like the openai one
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[backend_plugin(llm)])
    registry = load_registry(_registry(tmp_path, "server_llm"))
    (fusion,) = [c.instantiate() for c in registry.configure(host.analyzers, host) if c.name == "fusion"]
    assert fusion.model_ids() == []


def test_prune_keeps_the_model_of_a_plugin_backend(tmp_path):
    llm = FolderLLM.scripted("{}", name="folder_llm")
    ctx = open_models(_registry(tmp_path, "folder_llm"), extra_plugins=[backend_plugin(llm)], scan=False)
    assert ctx.usage.enabled.get(MODEL) == ["fusion"]
    assert MODEL in ctx.usage.in_use(ctx.manifest)
