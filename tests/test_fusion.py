"""The fusion analyzer: digests, salience and budgets, the extractive summary on generated media,
map-reduce over a two-hour timeline, fallbacks, and a tiny real transformers model."""
from __future__ import annotations

import json
import re

import pytest

from analyzers.fusion import Fusion
from analyzers.fusion.align import build_units
from analyzers.fusion.digest import DigestBuilder, fit_digests, score_salience
from analyzers.fusion.synthetic import synthetic_timeline
from framework import AnalyzerInputs, Event, Series, Track, VideoMeta, hookimpl
from framework.llm import LLMBackend, LLMError, estimate_tokens
from framework.testing.llm import make_tiny_chat_model
from framework.plugins import build_plugin_manager
from framework.summary import Summary
from framework.testing.synth import ShotSpec


def _run(timeline, params, host=None, progress=None):
    fusion = Fusion(params)
    inputs = AnalyzerInputs(video=timeline.video, upstream=dict(timeline.tracks),
                            host=host or build_plugin_manager(load_entrypoints=False), progress=progress)
    try:
        track = fusion.analyze(inputs)
    finally:
        fusion.unload()
    return track, Summary.from_track(track)


def _assert_evidence_is_real(summary, tracks):
    for item in [*summary.chapters, *summary.key_moments]:
        assert item.evidence, item
        for ev in item.evidence:
            if ev.event_index is None:  # a series (the loudness peak)
                assert tracks[ev.analyzer].series
                continue
            e = tracks[ev.analyzer].events[ev.event_index]
            assert (e.start, e.end, e.label) == (ev.start, ev.end, ev.label)


def _summary_text(s: Summary) -> str:
    return "\n".join([s.title, s.paragraph, s.detailed]
                     + [f"{c.start:.1f}-{c.end:.1f} {c.title} {c.summary}" for c in s.chapters]
                     + [f"{m.time:.1f} {m.text}" for m in s.key_moments])


# --- digests -------------------------------------------------------------------------------
def test_digests_cover_every_kind_of_track_including_unknown_ones():
    tl = synthetic_timeline(180.0, seed=3)
    tracks = dict(tl.tracks)
    # an analyzer nobody wrote a renderer for: it must show up through the generic renderer
    tracks["zebra_counter"] = Track(analyzer="zebra_counter", version="1", events=[
        Event(start=1.0, end=2.0, label="zebra"), Event(start=1.5, end=2.5, label="zebra")],
        series=[Series(name="stripes", times=[0.5, 1.0, 1.5], values=[0.25, 0.5, 0.75])])
    units = build_units(tracks, 180.0)
    assert units[0].source == "scene_segmentation"
    builder = DigestBuilder(tracks, 180.0, estimate_tokens, max_tokens=160)
    digests = [builder.build(u) for u in units]
    text = "\n".join(d.text for d in digests)
    for heading in ("visual:", "speech:", "on-screen text:", "object_detection:", "emotion:", "audio:",
                    "camera:", "shots:", "colour:", "acme_widgets:"):
        assert heading in text, heading
    assert "zebra_counter: zebra×2; stripes 0.5" in digests[0].text
    assert all(d.tokens <= 160 for d in digests)
    assert digests[0].text.startswith(f"[scene 1 | 0.0s-{units[0].end:.1f}s]")


def test_a_track_of_measurements_alone_is_not_counted_as_observed():
    """An OCR track that found no text still has its series (``text_lines 0``): the scene's line shows the
    measurement, but the summary's "Observed:" names only tracks that found something there."""
    from analyzers.fusion.align import TrackIndex
    from analyzers.fusion.extractive import extractive_paragraph

    tracks = {
        "text_overlay": Track(analyzer="text_overlay", version="1",
                              series=[Series(name="text_lines", times=[0.0, 5.0, 10.0], values=[0.0, 0.0, 0.0])]),
        "speech_rate": Track(analyzer="speech_rate", version="1",
                             events=[Event(start=1.0, end=4.0, label="speech_rate")]),
    }
    units = build_units(tracks, 12.0)
    builder = DigestBuilder(tracks, 12.0, estimate_tokens, max_tokens=160)
    digests = [builder.build(u) for u in units]
    assert "text_overlay: text_lines 0" in digests[0].text
    paragraph = extractive_paragraph(digests, {n: TrackIndex(t) for n, t in tracks.items()}, 12.0, sorted(tracks))
    assert "Observed: speech_rate in 1 of 1." in paragraph
    assert "text_overlay in" not in paragraph
    # and it comes after the lines that found something (a chapter's summary quotes the first ones)
    assert [ln.analyzer for ln in digests[0].lines] == ["speech_rate", "text_overlay"]


def test_the_paragraph_counts_every_transition_cuts_too_and_fades_by_direction():
    """testvideo.mp4 (PySceneDetect's): 5 shots, 3 cuts and a dissolve between them, and fades in and out within
    shots. The paragraph said "Transitions: 4 fades, 1 dissolve" beside "(5 shots)"; the cuts count too."""
    from analyzers.fusion.align import TrackIndex
    from analyzers.fusion.extractive import extractive_paragraph

    cuts = Track(analyzer="cut_analysis", version="1", events=[
        *(Event(start=t, end=t, label="cut") for t in (1.0, 6.0, 13.1)), Event(start=17.7, end=18.7, label="dissolve"),
        *(Event(start=t, end=t + 1.0, label="fade", data={"kind": k})
          for t, k in ((7.0, "in"), (11.0, "out"), (13.1, "in"), (22.1, "out")))])
    tracks = {"cut_analysis": cuts}
    builder = DigestBuilder(tracks, 24.0, estimate_tokens, max_tokens=160)
    digests = [builder.build(u) for u in build_units(tracks, 24.0)]
    paragraph = extractive_paragraph(digests, {"cut_analysis": TrackIndex(cuts)}, 24.0, ["cut_analysis"])
    assert "Transitions: 3 cuts, 1 dissolve, 4 fades (2 in, 2 out)." in paragraph, paragraph


def test_fit_digests_keeps_the_most_salient_in_full_within_budget():
    tl = synthetic_timeline(900.0, seed=1)
    units = build_units(tl.tracks, 900.0)
    builder = DigestBuilder(tl.tracks, 900.0, estimate_tokens)
    digests = [builder.build(u) for u in units]
    score_salience(digests)
    budget = sum(d.tokens for d in digests) // 3
    fitted = fit_digests(digests, budget)
    assert fitted.tokens <= budget and fitted.dropped == 0 and 0 < fitted.full < len(digests)
    full = [d for d in digests if d.text in fitted.texts]
    brief = [d for d in digests if d.brief in fitted.texts and d.text not in fitted.texts]
    assert min(d.salience for d in full) >= sorted(d.salience for d in brief)[len(brief) // 2]
    tiny = fit_digests(digests, 60)
    assert tiny.tokens <= 60 and tiny.dropped > 0


# --- the extractive summary ----------------------------------------------------------------
def test_extractive_summary_on_generated_media_has_chapters_at_the_scenes(video_factory, tmp_path):
    from framework.runner import analyze

    shots = [ShotSpec(1.5, "static", look=0), ShotSpec(1.5, "pan", look=0), ShotSpec(1.5, "static", look=1),
             ShotSpec(1.5, "tilt", look=1), ShotSpec(1.5, "static", look=2), ShotSpec(1.5, "zoom", look=2)]
    truth = video_factory("scenes.mp4", shots=shots, audio=False, text=None)
    reg = tmp_path / "registry.yaml"
    reg.write_text("analyzers:\n  cut_analysis: {enabled: true}\n  scene_segmentation: {enabled: true}\n"
                   "  camera_analysis: {enabled: true}\n  fusion: {enabled: true}\n")
    res = analyze(truth.path, registry_path=reg, out_dir=tmp_path / "run", progress=False, load_entrypoints=False)
    fusion = res.timeline.tracks["fusion"]
    assert fusion.status == "ok", fusion.reason
    s = Summary.from_track(fusion)
    assert s.extractive and s.backend == "extractive"
    assert any("without a language model" in n for n in s.notes)
    scene_starts = [0.0, 3.0, 6.0]
    assert len(s.chapters) == 3
    frame = 1 / truth.fps
    for ch, a, b in zip(s.chapters, scene_starts, scene_starts[1:] + [truth.duration]):
        assert abs(ch.start - a) <= 1.5 * frame and abs(ch.end - b) <= 1.5 * frame, (ch.start, ch.end)
        assert ch.evidence[0].analyzer == "scene_segmentation"
    _assert_evidence_is_real(s, res.timeline.tracks)
    assert "camera:" in s.detailed and s.tokens_used <= s.token_budget


def test_two_hour_timeline_extractive_summary_fits_the_budget():
    tl = synthetic_timeline(7200.0)
    track, s = _run(tl, {"token_budget": 3000, "max_chapters": 10, "max_key_moments": 8})
    assert s.tokens_used <= 3000
    assert estimate_tokens(_summary_text(s)) <= 3000
    assert len(s.chapters) == 10 and len(s.key_moments) == 8
    assert s.chapters[0].start == 0.0 and s.chapters[-1].end == 7200.0
    assert all(a.end == b.start for a, b in zip(s.chapters, s.chapters[1:]))
    spread = [m.time for m in s.key_moments]
    assert spread == sorted(spread) and spread[-1] - spread[0] > 3600  # spread over the film
    assert track.data["fusion"]["digests_left_out"] > 0  # it really had to choose
    _assert_evidence_is_real(s, tl.tracks)


# --- map-reduce with a backend registered by hook ------------------------------------------
class Parrot(LLMBackend):
    """A test backend that answers in the requested JSON shape, citing times it finds in the
    prompt's headers, and records every prompt's size."""

    name = "parrot"
    prompts: list[tuple[str, int]] = []

    class Options(LLMBackend.Options):
        context_window: int = 8192

    def generate(self, messages, max_new_tokens, temperature=0.0):
        user = messages[-1]["content"]
        kind = "chunk" if "Describe this part as JSON" in user else "final"
        Parrot.prompts.append((kind, self.count_messages(messages)))
        heads = re.findall(r"\[(?:scene|part) \d+ \| ([\d.]+)s-([\d.]+)s\]", user)
        spans = [(float(a), float(b)) for a, b in heads]
        chapters = [{"start": spans[0][0], "end": spans[len(spans) // 2][1], "title": "first half"},
                    {"start": spans[len(spans) // 2][1], "end": spans[-1][1], "title": "second half"}]
        moments = [{"time": spans[1][0] if len(spans) > 1 else spans[0][0], "text": "something starts"},
                   {"time": spans[-1][1] + 500.0, "text": "an invented moment"}]
        if kind == "chunk":
            return "Sure! " + json.dumps({"summary": f"{len(spans)} parts", "chapters": chapters,
                                          "key_moments": moments})
        return json.dumps({"title": "Parrot", "paragraph": "p", "detailed": "d", "chapters": chapters,
                           "key_moments": moments})


class ParrotPlugin:
    @hookimpl
    def register_llm_backends(self, register):
        register(Parrot)


def test_two_hour_map_reduce_keeps_every_prompt_within_the_budget():
    Parrot.prompts.clear()
    tl = synthetic_timeline(7200.0)
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[ParrotPlugin()])
    seen: list[float] = []
    track, s = _run(tl, {"backend": "parrot", "token_budget": 2500, "max_new_tokens": 400,
                         "chunk_new_tokens": 200}, host=host, progress=seen.append)
    stats = track.data["fusion"]
    assert stats["mode"] == "map-reduce" and stats["plan"]["chunks"] > 5
    kinds = [k for k, _ in Parrot.prompts]
    assert kinds.count("chunk") >= stats["plan"]["chunks"] and kinds[-1] == "final"
    assert max(n for _, n in Parrot.prompts) <= 2500 and s.tokens_used <= 2500
    assert stats["calls"] == len(Parrot.prompts)
    assert abs(stats["prompt_tokens"] - stats["plan"]["est_prompt_tokens"]) < 0.25 * stats["prompt_tokens"]
    assert not s.extractive and s.title == "Parrot" and s.backend == "parrot"
    assert len(s.chapters) == 2 and s.chapters[0].start == 0.0 and s.chapters[-1].end == 7200.0
    g = s.grounding
    assert g.dropped >= 1 and any("invented moment" in n for n in g.notes)
    assert g.checked == g.kept + g.snapped + g.dropped
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > stats["calls"]
    _assert_evidence_is_real(s, tl.tracks)


class BatchingParrot(Parrot):
    """Parrot's answers, given by ``generate_many`` for whole batches (as a local model does)."""

    name = "batching-parrot"
    batches: list[int] = []

    def generate_many(self, chats, max_new_tokens, temperature=0.0):
        BatchingParrot.batches.append(len(chats))
        return [self.generate(m, max_new_tokens, temperature) for m in chats]


class BatchingParrotPlugin:
    @hookimpl
    def register_llm_backends(self, register):
        register(BatchingParrot)


def test_map_prompts_and_each_merge_level_go_to_a_batching_backend_together():
    tl = synthetic_timeline(7200.0)
    params = {"token_budget": 2500, "max_new_tokens": 400, "chunk_new_tokens": 200}
    Parrot.prompts.clear()
    _track, one_by_one = _run(tl, {"backend": "parrot", **params},
                              host=build_plugin_manager(load_entrypoints=False, extra_plugins=[ParrotPlugin()]))
    sequential = list(Parrot.prompts)
    Parrot.prompts.clear()
    BatchingParrot.batches.clear()
    track, together = _run(tl, {"backend": "batching-parrot", **params},
                           host=build_plugin_manager(load_entrypoints=False, extra_plugins=[BatchingParrotPlugin()]))
    stats = track.data["fusion"]
    # the same prompts, in the same order, and the same summary
    assert Parrot.prompts == sequential and stats["calls"] == len(sequential)
    assert together.paragraph == one_by_one.paragraph and together.chapters == one_by_one.chapters
    # the map step's parts in one batch, then one batch per merge level; the final prompt alone
    merges = stats["merge_calls_per_level"]
    assert BatchingParrot.batches == [stats["plan"]["chunks"], *[n for n in merges if n > 1]]
    assert stats["plan"]["chunks"] > 5 and stats["calls"] == stats["plan"]["chunks"] + sum(merges) + 1
    # every backend call, batched or alone, in order; the largest batch is the receipt's, for the plan
    assert stats["batch_sizes"] == [stats["plan"]["chunks"], *[n for n in merges], 1]
    assert track.receipt["step"]["batch_sizes"] == stats["batch_sizes"]
    assert "step" not in _track.receipt and set(_track.data["fusion"]["batch_sizes"]) == {1}


class BrokenBatch(Parrot):
    """Answers the first two prompts of the map step's batch, then fails (as a server that goes
    down mid-batch: the answers before the failure come with the error)."""

    name = "broken-batch"

    def generate_many(self, chats, max_new_tokens, temperature=0.0):
        answers = [self.generate(m, max_new_tokens, temperature) for m in chats[:2]]
        exc = LLMError("the server went away")
        exc.partial_answers = answers
        raise exc


class BrokenBatchPlugin:
    @hookimpl
    def register_llm_backends(self, register):
        register(BrokenBatch)


def test_a_batch_that_fails_part_way_counts_the_prompts_answered_before_it():
    track, summary = _run(synthetic_timeline(7200.0), {"backend": "broken-batch", "token_budget": 2500,
                                                       "max_new_tokens": 400, "chunk_new_tokens": 200},
                          host=build_plugin_manager(load_entrypoints=False, extra_plugins=[BrokenBatchPlugin()]))
    assert summary.extractive and track.data["fusion"]["calls"] == 2
    assert "the broken-batch backend failed after 2 of ~" in track.data["llm_fallback_reason"]


def test_the_plan_sizes_the_summary_models_batch_from_the_vram_it_leaves(tmp_path):
    from analyzers.fusion import Fusion
    from framework.llm.transformers_backend import TransformersBackend
    from framework.scheduler import Demand, Placement, Variant, plan

    fusion = Fusion({"backend": "transformers"})
    assert fusion.max_batch_size() == 8 and fusion.item_vram_mb == 560
    assert Fusion({"backend": "transformers", "backend_options": {"max_batch": 3}}).max_batch_size() == 3
    demand = Demand("fusion", "auto", variants=(Variant("bf16", 4096.0),), item_vram_mb=fusion.item_vram_mb,
                    max_batch=fusion.max_batch_size())
    assert plan([demand], 6 * 1024, ["cuda:0"]).placements["fusion"].max_batch == 4  # 1 + 2048 // 560
    assert plan([demand], 24 * 1024, ["cuda:0"]).placements["fusion"].max_batch == 8
    fusion.placement = Placement("cuda:0", "bf16", max_batch=4)
    assert fusion.backend_options(TransformersBackend)["max_batch"] == 4
    asked = Fusion({"backend": "transformers", "backend_options": {"max_batch": 2}})
    asked.placement = Placement("cuda:0", "bf16", max_batch=4)
    assert asked.backend_options(TransformersBackend)["max_batch"] == 2  # the user's smaller batch stands
    fusion.placement = Placement("cpu")
    assert "max_batch" not in fusion.backend_options(TransformersBackend)


def test_language_reaches_the_prompt_and_the_extractive_summary_says_it_cannot_translate():
    Parrot.prompts.clear()
    tl = synthetic_timeline(60.0)
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[ParrotPlugin()])
    captured = []
    orig = Parrot.generate

    def spy(self, messages, max_new_tokens, temperature=0.0):
        captured.append(messages[0]["content"])
        return orig(self, messages, max_new_tokens, temperature)

    Parrot.generate = spy
    try:
        _, s = _run(tl, {"backend": "parrot", "language": "French"}, host=host)
    finally:
        Parrot.generate = orig
    assert s.language == "French" and "Write all text in French." in captured[0]
    _, s = _run(tl, {"language": "fr"})
    assert s.language == "en" and any("'fr' needs an LLM backend" in n for n in s.notes)


# --- fallbacks -----------------------------------------------------------------------------
def test_unavailable_backend_falls_back_to_extractive_and_says_why():
    tl = synthetic_timeline(60.0)
    _, s = _run(tl, {"backend": "transformers"})  # default model, not cached, HF_HUB_OFFLINE=1
    assert s.extractive and s.backend == "extractive"
    assert any("framework models pull qwen2.5-1.5b-instruct" in n for n in s.notes)

    from framework.runner import call_analyzer

    fusion = Fusion({"backend": "transformers", "fallback_to_extractive": False})
    track = call_analyzer(fusion, AnalyzerInputs(video=tl.video, upstream=dict(tl.tracks)), "cpu")
    assert track.status == "skipped"
    assert "framework models pull qwen2.5-1.5b-instruct" in track.reason


def test_failed_and_skipped_upstream_tracks_are_named_not_used():
    tl = synthetic_timeline(60.0)
    tracks = dict(tl.tracks)
    tracks["transcript"] = Track(analyzer="transcript", version="1", status="failed", reason="RuntimeError: boom")
    _, s = _run(tl.model_copy(update={"tracks": tracks}), {})
    assert any(n.startswith("Not used: transcript (failed: RuntimeError: boom)") for n in s.notes)
    assert "speech:" not in s.detailed


def test_params_are_validated_and_model_ids_follow_the_backend():
    with pytest.raises(ValueError):
        Fusion({"tokens": 5})
    assert Fusion({}).model_ids() == []
    assert Fusion({"backend": "transformers"}).model_ids() == ["qwen2.5-1.5b-instruct"]
    assert Fusion({"backend": "transformers", "model": "/models/mine"}).model_ids() == []
    assert Fusion({"backend": "transformers", "model": "Qwen/Qwen2.5-0.5B-Instruct"}).model_ids() == []  # not an id
    assert Fusion({"backend": "transformers", "backend_options": {"model": "qwen2.5-0.5b-instruct"}}).model_ids() \
        == ["qwen2.5-0.5b-instruct"]
    assert Fusion({"backend": "openai", "model": "qwen2.5:1.5b"}).model_ids() == []  # the server's model


def test_video_without_scenes_or_shots_uses_windows():
    meta = VideoMeta(path="a.mp4", content_hash="h", size_bytes=1, duration=95.0, has_video=False)
    speech = Track(analyzer="transcript", version="1",
                   events=[Event(start=40.0, end=44.0, label="speech", data={"text": "hello there"})])
    fusion = Fusion({"window_s": 30.0})
    track = fusion.analyze(AnalyzerInputs(video=meta, upstream={"transcript": speech}))
    s = Summary.from_track(track)
    assert [(round(c.start, 2), round(c.end, 2)) for c in s.chapters] == [(0.0, 23.75), (23.75, 47.5),
                                                                          (47.5, 71.25), (71.25, 95.0)]
    assert s.key_moments[0].time == 40.0 and s.key_moments[0].evidence[0].analyzer == "transcript"


# --- a real (tiny, random) transformers model ---------------------------------------------
def test_tiny_transformers_model_end_to_end_copes_with_gibberish(tmp_path):
    folder = make_tiny_chat_model(tmp_path / "tiny")
    tl = synthetic_timeline(90.0, seed=2)
    track, s = _run(tl, {"backend": "transformers", "model": str(folder), "token_budget": 1500,
                         "max_new_tokens": 32, "chunk_new_tokens": 24,
                         "backend_options": {"device": "cpu"}})
    stats = track.data["fusion"]
    assert s.backend == "transformers" and s.model == str(folder)
    assert stats["calls"] >= 1 and stats["max_prompt_tokens"] <= 1500 and s.tokens_used <= 1500
    # random weights write no usable JSON: the summary says what it fell back to, never pretends
    g = s.grounding
    assert g.checked == g.kept + g.snapped + g.dropped
    if stats["chapters_from"] == "extractive":
        assert any("No chapter the model wrote survived grounding" in n for n in s.notes)
    missing = next((n for n in s.notes if n.startswith("The model wrote no usable")), "")
    nothing_written = all(k in missing for k in ("title", "paragraph", "detailed"))
    assert s.extractive == (nothing_written and stats["chapters_from"] == stats["key_moments_from"] == "extractive")
    assert s.chapters and all(c.evidence for c in s.chapters)
    _assert_evidence_is_real(s, tl.tracks)


# --- what the input is ----------------------------------------------------------------------
def test_an_audio_only_input_is_described_as_audio(tmp_path):
    from framework.testing.llm import ScriptedLLM, backend_plugin
    from framework.runner import analyze
    from framework.testing.synth import make_audio_only

    audio = make_audio_only(tmp_path / "voice note.m4a", duration=11.0)
    reg = tmp_path / "registry.yaml"
    reg.write_text("analyzers:\n  audio_analysis: {enabled: true}\n  fusion: {enabled: true}\n")
    res = analyze(audio, registry_path=reg, out_dir=tmp_path / "run", progress=False, load_entrypoints=False)
    track = res.timeline.tracks["fusion"]
    assert track.status == "ok", track.reason
    s = Summary.from_track(track)
    assert track.data["fusion"]["medium"] == "audio"
    assert s.title == "11 seconds of audio"
    assert s.paragraph.startswith("11.0 s of audio in 1 part.")
    text = _summary_text(s) + (tmp_path / "run" / "summary.md").read_text()
    assert "video" not in _summary_text(s).lower() and "11-second" not in text

    # an LLM is told it is summarising audio, not a video
    llm = ScriptedLLM.scripted('{"title": "A voice note"}', name="listener")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[backend_plugin(llm)])
    upstream = {n: t for n, t in res.timeline.tracks.items() if n != "fusion"}
    Fusion({"backend": "listener"}).analyze(AnalyzerInputs(video=res.timeline.video, upstream=upstream, host=host))
    (call,) = llm.calls
    assert "Audio length: 11.0s" in call.user and "summarize audio recordings" in call.messages[0]["content"]
    assert "video" not in call.user.lower()


def test_a_run_plans_the_summary_models_batch(monkeypatch, tmp_path, sample_video):
    """Through the runner: fusion's demand carries its per-prompt memory, so a 6 GB GPU gives the
    1.5B summary model (4.0 GB for one prompt) batches of 4 prompts, a large one batches of 8."""
    import yaml

    from framework.devices import GPUs
    from framework.registry import load_registry
    from framework.runner import plan_video

    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({"analyzers": {"fusion": {"enabled": True, "params": {"backend": "transformers"}}}}))
    batches = {}
    for gb in (6, 80):
        monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True, gb=gb: GPUs(
            ["cuda:0"], {"cuda:0": gb * 1024.0}, {"cuda:0": gb * 1024.0}, {"cuda:0": "simulated"}))
        report = plan_video(sample_video.path, registry=load_registry(registry), load_entrypoints=False,
                            only=["fusion"])
        batches[gb] = report.plan.placements["fusion"].max_batch
    assert batches == {6: 4, 80: 8}


def test_the_extractive_title_is_the_on_screen_text_shown_longest():
    """A title card read half drawn first ("THE PEACH OPF", 0.5 s), then whole (2 s): the whole line is the title,
    not the first or the most often read; a text read in several short events adds their time up."""
    from analyzers.fusion.align import TrackIndex
    from analyzers.fusion.extractive import extractive_title

    def ocr(*spans):  # (start, end, text[, mean confidence])
        events = [Event(start=a, end=b, label="text", score=score[0] if score else None, data={"text": t})
                  for a, b, t, *score in spans]
        return Track(analyzer="text_overlay", version="1.1.0", events=events)

    card = ocr((20.25, 20.75, "THE PEACH OPF"), (20.75, 22.75, "THE PEACH OPEN MOVIE PROJECT"), (25.8, 26.3, "BOKY"))
    assert extractive_title({"t": TrackIndex(card)}, 30.0, 4, "scene") == \
        '"THE PEACH OPEN MOVIE PROJECT": a 30-second video'
    # a stylised title misread with little confidence, on screen longer: a surer reading is the title; alone, it is
    doubtful = ocr((20.75, 22.75, "THE PEACH OPEN MOVIE PROJECT", 0.94), (25.75, 29.25, "BOKY", 0.75))
    assert extractive_title({"t": TrackIndex(doubtful)}, 30.0, 4, "scene").startswith('"THE PEACH OPEN')
    assert extractive_title({"t": TrackIndex(ocr((25.75, 29.25, "BOKY", 0.75)))}, 30.0, 4, "scene").startswith('"BOKY"')
    repeated = ocr((0, 1, "Breaking"), (2, 3, "Breaking"), (4, 5, "Breaking"), (6, 8.5, "Weather"))
    assert extractive_title({"t": TrackIndex(repeated)}, 10.0, 1, "scene") == '"Breaking": a 10-second video'
