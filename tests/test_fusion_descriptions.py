"""Fusion with the VLM's descriptions, and the ``auto`` backend.

- chapters and key moments cite the descriptions that cover them, a chapter the LLM left without a
  summary quotes one, and the times the LLM writes are kept, snapped to a description's (or any
  event's) boundary, or dropped when nothing supports them;
- ``backend: auto`` (the default) uses a cached instruction-tuned model that fits (a tiny random
  Qwen2 saved as ``qwen2.5-0.5b-instruct`` in the test's Hugging Face cache) through the runner's
  resolution, else writes the extractive summary, and the summary says which wrote it and why.
"""
from __future__ import annotations

import json

import pytest
import yaml

from analyzers.fusion import Fusion
from framework import AnalyzerInputs, Event, Timeline, Track, VideoMeta
from framework.plugins import build_plugin_manager
from framework.summary import Summary
from framework.testing.llm import ScriptedLLM, backend_plugin, install_in_hf_cache, make_tiny_chat_model

DESCRIPTIONS = ["A man in a red coat opens a wooden door.", "He walks into a bright kitchen and fills a kettle.",
                "A woman at the table reads a newspaper.", "They sit by the window drinking tea as rain falls."]


def _timeline() -> Timeline:
    """40 s: four shots of 10 s (a cut track) and one description per shot (a VLM track)."""
    shots = [Event(start=10.0 * i, end=10.0 * (i + 1), label="shot", data={"first_frame": 250 * i,
                                                                               "last_frame": 250 * i + 249})
             for i in range(4)]
    cuts = Track(analyzer="cut_analysis", version="1", provides=["shots"], events=shots)
    vlm = Track(analyzer="qwen2_vl_temporal", version="2", provides=["descriptions"],
                events=[Event(start=10.0 * i, end=10.0 * (i + 1), label="description", data={"text": t})
                        for i, t in enumerate(DESCRIPTIONS)])
    video = VideoMeta(path="x.mp4", content_hash="0", size_bytes=1, duration=40.0, has_video=True, width=320,
                      height=180, fps=25.0)
    return Timeline(framework_version="test", video=video, tracks={"cut_analysis": cuts, "qwen2_vl_temporal": vlm})


def _answer(call) -> str:
    return json.dumps({
        "title": "Tea on a rainy day", "paragraph": "A man comes home and makes tea.", "detailed": "d",
        "chapters": [{"start": 0.0, "end": 20.4, "title": "Arrival"},             # 20.4 snaps to the cut at 20
                     {"start": 20.4, "end": 40.0, "title": "Tea", "summary": "They drink tea."}],
        "key_moments": [{"time": 10.3, "text": "he enters the kitchen"},           # snapped to 10.0
                        {"time": 26.0, "text": "an explosion"},                    # nothing there: dropped
                        {"time": 30.0, "text": "they sit down"}]})                 # kept


def test_chapters_and_moments_cite_and_quote_the_descriptions_and_unsupported_times_are_dropped():
    scripted = ScriptedLLM.scripted(_answer, name="desc_scripted")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[backend_plugin(scripted)])
    tl = _timeline()
    fusion = Fusion(Fusion.Params(backend="desc_scripted", fallback_to_extractive=False))
    try:
        track = fusion.analyze(AnalyzerInputs(video=tl.video, upstream=dict(tl.tracks), host=host))
    finally:
        fusion.unload()
    s = Summary.from_track(track)
    assert "A man in a red coat opens a wooden door." in scripted.calls[0].user  # the model read them
    assert [(c.start, c.end) for c in s.chapters] == [(0.0, 20.0), (20.0, 40.0)]
    first = s.chapters[0]
    assert first.summary == f'visual: "{DESCRIPTIONS[0]}"'  # no summary from the model: a description's words
    assert s.chapters[1].summary == "They drink tea."
    cited = [(e.analyzer, e.event_index) for e in first.evidence if e.label == "description"]
    assert cited == [("qwen2_vl_temporal", 0), ("qwen2_vl_temporal", 1)]
    assert [(m.time, m.text) for m in s.key_moments] == [(10.0, "he enters the kitchen"), (30.0, "they sit down")]
    for m in s.key_moments:
        covering = [e for e in m.evidence if e.label == "description"]
        assert covering and covering[0].start <= m.time < covering[0].end
    g = s.grounding
    assert (g.dropped, g.snapped) == (1, 3) and any("26.0 s" in n for n in g.notes)
    assert track.data["fusion"]["backend"] == {"requested": "desc_scripted", "used": "desc_scripted"}


def test_the_extractive_summary_quotes_the_descriptions():
    tl = _timeline()
    fusion = Fusion(Fusion.Params(backend="extractive"))
    try:
        track = fusion.analyze(AnalyzerInputs(video=tl.video, upstream=dict(tl.tracks),
                                              host=build_plugin_manager(load_entrypoints=False)))
    finally:
        fusion.unload()
    s = Summary.from_track(track)
    assert all(DESCRIPTIONS[i][:30] in c.summary for i, c in enumerate(s.chapters))
    assert any(e.label == "description" for e in s.chapters[0].evidence)
    assert any(DESCRIPTIONS[0][:30] in m.text for m in s.key_moments)


# --- auto ---------------------------------------------------------------------------------------------
def _run_fusion(tmp_path, sample_video, params=None):
    from framework.runner import analyze

    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({"analyzers": {"cut_analysis": {"enabled": True},
                                                      "fusion": {"enabled": True, "params": params or {}}}}))
    res = analyze(sample_video.path, registry_path=registry, out_dir=tmp_path / "run", progress=False,
                  load_entrypoints=False)
    return res.timeline.tracks["fusion"]


def test_auto_without_a_cached_model_writes_the_extractive_summary_and_says_why(tmp_path, sample_video):
    assert Fusion().params.backend == "auto" and Fusion().model_ids() == []
    track = _run_fusion(tmp_path, sample_video)
    s = Summary.from_track(track)
    assert track.status == "ok" and s.extractive and s.backend == "extractive"
    assert any("auto found no local summary model" in n and "framework models pull qwen2.5-1.5b-instruct" in n
               for n in s.notes)
    assert track.data["fusion"]["backend"] == {"requested": "auto", "used": "extractive"}


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory):
    return make_tiny_chat_model(tmp_path_factory.mktemp("auto_llm") / "tiny-chat")


def test_auto_uses_a_cached_instruct_model_through_the_runner(tmp_path, sample_video, tiny_chat):
    from framework.models import load_manifest
    from framework.models.roots import CacheRoots

    spec = load_manifest()["qwen2.5-0.5b-instruct"]
    install_in_hf_cache(tiny_chat, spec.locator, CacheRoots.from_env().hf_hub, commit=spec.revision)
    assert Fusion().model_ids() == ["qwen2.5-0.5b-instruct"]
    assert Fusion({"auto_max_gb": 0.5}).model_ids() == []  # 0.9 GB at least: over the limit
    track = _run_fusion(tmp_path, sample_video, {"max_new_tokens": 16, "chunk_new_tokens": 16})
    s = Summary.from_track(track)
    assert track.status == "ok", track.reason
    assert (s.backend, s.model) == ("transformers", "qwen2.5-0.5b-instruct")
    assert track.models[0].id == "qwen2.5-0.5b-instruct" and track.models[0].revision == spec.revision
    assert any("auto chose the local instruct model qwen2.5-0.5b-instruct" in n for n in s.notes)
    assert any(n.startswith("Written by transformers (qwen2.5-0.5b-instruct)") for n in s.notes)
    assert track.data["fusion"]["backend"] == {"requested": "auto", "used": "transformers"}
