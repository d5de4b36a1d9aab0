"""The description analyzer's BLIP, BLIP-2 and Video-LLaVA families, and the original system's
analyzers built on them (``streaming_dense_captioning``, ``blip2_video_analyzer``, ``video_llava``):
tiny models saved in the real layout with their processors, installed in a fake Hugging Face cache
at the manifest's pins, loaded by the real code through the runner, on a generated clip.

Random weights: what the models write is gibberish, so the tests check loading, shapes, chunks,
times and that the text is what the model generated, never what it says.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from framework.runner import analyze
from framework.testing.synth import ShotSpec, make_video

CORPUS = ["a man walks a dog in a park. a woman reads a book on a bench. Question: what is shown? Answer:",
          "USER: ASSISTANT: This part runs from 12.0 s to 22.0 s of the video; its 4 frames are at 0123456789 s.",
          "Describe what happens in this part of the video: the setting, the people and objects, their actions."]
FAST = {"max_new_tokens": 4, "min_new_tokens": 2, "frame_width": 64}


def _tokenizer(specials, eos, pad):
    from framework.testing.llm import tiny_bpe_tokenizer

    return tiny_bpe_tokenizer(CORPUS, specials, eos=eos, pad=pad, vocab=300)


def make_blip(folder):
    """BLIP captioning: BERT-style special tokens ([DEC] starts a caption, [SEP] ends it), 32 px images."""
    import torch
    import transformers as tf

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    tok = _tokenizer(specials, "[SEP]", "[PAD]")
    tok.bos_token, tok.sep_token, tok.cls_token, tok.unk_token, tok.mask_token = "[DEC]", "[SEP]", "[CLS]", "[UNK]", "[MASK]"
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    tf.BlipProcessor(image_processor=tf.BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = tf.BlipConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=ids["[DEC]"],
                         pad_token_id=ids["[PAD]"], sep_token_id=ids["[SEP]"], eos_token_id=ids["[SEP]"]),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8), projection_dim=32)
    tf.BlipForConditionalGeneration(cfg).save_pretrained(folder)
    return folder


def make_blip2(folder):
    """BLIP-2 with a 2-layer OPT, 4 query tokens and the processor's ``<image>`` token (as the
    current snapshots have)."""
    import torch
    import transformers as tf

    tok = _tokenizer(["<pad>", "</s>", "<unk>"], "</s>", "<pad>")
    tok.bos_token = "</s>"
    proc = tf.Blip2Processor(image_processor=tf.BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok,
                             num_query_tokens=4)
    proc.save_pretrained(folder)
    tok = proc.tokenizer
    torch.manual_seed(0)
    cfg = tf.Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        qformer_config=dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, encoder_hidden_size=32),
        text_config=dict(model_type="opt", vocab_size=len(tok), hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                         num_attention_heads=2, word_embed_proj_dim=32, bos_token_id=tok.convert_tokens_to_ids("</s>"),
                         eos_token_id=tok.convert_tokens_to_ids("</s>"), pad_token_id=tok.convert_tokens_to_ids("<pad>")),
        num_query_tokens=4, image_token_index=tok.convert_tokens_to_ids("<image>"))
    tf.Blip2ForConditionalGeneration(cfg).save_pretrained(folder)
    return folder


def make_blip2_old(folder, blip2):
    """``blip2`` as a snapshot from before transformers' processor change: no image token in its config."""
    import shutil

    shutil.copytree(blip2, folder, dirs_exist_ok=True)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.pop("image_token_index", None)
    cfg.pop("image_token_id", None)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def make_video_llava(folder):
    """Video-LLaVA: a 2-layer Llama, a CLIP tower on 28 px crops (4 tokens a frame)."""
    import torch
    import transformers as tf

    specials = ["<unk>", "<s>", "</s>", "<image>", "<video>"]
    tok = _tokenizer(specials, "</s>", "<unk>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    size, crop = {"shortest_edge": 28}, {"height": 28, "width": 28}
    tf.VideoLlavaProcessor(image_processor=tf.VideoLlavaImageProcessor(size=size, crop_size=crop),
                           video_processor=tf.VideoLlavaVideoProcessor(size=size, crop_size=crop), tokenizer=tok,
                           patch_size=14, vision_feature_select_strategy="default",
                           num_additional_image_tokens=1).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = tf.VideoLlavaConfig(
        text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, pad_token_id=ids["<unk>"]),
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=28, patch_size=14, projection_dim=32),
        image_token_index=ids["<image>"], video_token_index=ids["<video>"], vision_feature_select_strategy="default",
        vision_feature_layer=-1, pad_token_id=ids["<unk>"])
    model = tf.VideoLlavaForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = ids["</s>"]
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm_more")
    built = {}

    def get(kind):
        if kind not in built:
            folder = root / kind
            folder.mkdir()
            {"blip": make_blip, "blip2": make_blip2, "video-llava": make_video_llava,
             "blip2-old": lambda f: make_blip2_old(f, get("blip2"))}[kind](folder)
            built[kind] = folder
        return built[kind]

    return get


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3.5 s with a hard cut at 2 s."""
    shots = [ShotSpec(2.0, look=0), ShotSpec(1.5, "pan", look=1)]
    return make_video(tmp_path_factory.mktemp("vlm_more_clip") / "cut.mp4", shots, fps=10.0, width=128, height=72,
                      audio=False, text=None)


def install(folder, manifest_id):
    from vlm_fixtures import install as install_model

    return install_model(folder, manifest_id)


def run(video, tmp_path, name, params, *, cuts=False, **kwargs):
    analyzers = {name: {"enabled": True, "device": "cpu", "params": params}}
    if cuts:
        analyzers["cut_analysis"] = {"enabled": True}
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({"analyzers": analyzers}))
    result = analyze(video, registry_path=registry, out_dir=tmp_path / "run", progress=False,
                     load_entrypoints=False, **kwargs)
    return result.timeline.tracks


def documented_outputs(name):
    """The labels, event data keys, track data keys and series (name -> unit) that docs/analyzers.md's
    ``### Outputs`` section of ``name`` documents: test_docs_analyzers.outputs()'s reading of its tables,
    without importing that module (which loads the models manifest once per analyzer at import)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "analyzers.md").read_text(encoding="utf-8")
    section = doc.split(f"## `{name}` (version", 1)[1].split("\n## `", 1)[0].split("### Outputs", 1)[1]
    labels, event_keys, track_keys, series, kind = set(), {}, set(), {}, ""
    for line in section.split("\n"):
        if not line.startswith("|"):
            kind = ""
            continue
        if set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("event label", "event data key", "track data key", "series"):
            kind = cells[0]
            continue
        names = re.findall(r"`([^`]*)`", cells[0])
        if kind == "event label":
            labels.update(names)
        elif kind == "event data key":
            carriers = {"*"} if cells[1] == "all" else set(re.findall(r"`([^`]*)`", cells[1]))
            for key in names:
                event_keys.setdefault(key, set()).update(carriers)
        elif kind == "track data key":
            track_keys.update(names)
        elif kind == "series":
            series.update({n: "" if cells[1] == "none" else re.findall(r"`([^`]*)`", cells[1])[0] for n in names})
    return labels, event_keys, track_keys, series


def assert_documented(track, name):
    """What the track holds is documented in docs/analyzers.md under ``name`` (as test_docs_analyzers checks
    for the analyzers that run without downloaded weights)."""
    labels, event_keys, track_keys, series = documented_outputs(name)
    assert {e.label for e in track.events} <= labels, name
    for e in track.events:
        for key in e.data:
            assert "*" in event_keys.get(key, set()) or e.label in event_keys.get(key, set()), (name, e.label, key)
    wild = {k.removesuffix(".*") for k in track_keys if k.endswith(".*")}
    produced = set(track.data) | {f"{k}.{sub}" for k, v in track.data.items() if isinstance(v, dict) for sub in v}
    missing = {k for k in produced if k not in track_keys and not ("." in k and k.split(".")[0] in wild)}
    assert not missing, (name, sorted(missing))
    assert all(series.get(s.name) == s.unit for s in track.series), name


# --- the families, against the model run by hand ---------------------------------------------------
def test_blip_families_caption_each_frame_with_what_the_model_generates(tiny_models):
    import torch
    import transformers as tf

    from analyzers.vlm.families import GenerationOptions, Request, family_class
    from analyzers.vlm.prompts import DEFAULT_PROMPT

    frames = np.random.default_rng(0).integers(0, 255, (2, 40, 64, 3), dtype=np.uint8)
    reqs = [Request(0, 0.0, 2.0, [0.0, 1.0], frames, DEFAULT_PROMPT),
            Request(1, 2.0, 3.0, [2.0], frames[:1], DEFAULT_PROMPT)]
    for kind, family, model_cls in (("blip", "blip", tf.BlipForConditionalGeneration),
                                    ("blip2", "blip2", tf.Blip2ForConditionalGeneration)):
        folder = tiny_models(kind)
        fam = family_class(family)(GenerationOptions(max_new_tokens=4, min_new_tokens=4))
        fam.load(folder, "cpu", "fp32")
        prepared = fam.prepare(reqs)
        assert prepared["inputs"]["pixel_values"].shape[0] == 3  # one image per frame
        answers = fam.decode(fam.generate(prepared), prepared)
        # by hand: the processor and generate on each frame alone, the caption decoded
        proc = tf.AutoProcessor.from_pretrained(folder)
        model = model_cls.from_pretrained(folder).eval()
        by_hand = []
        for f in (frames[0], frames[1], frames[0]):
            kw = {"text": [""]} if kind == "blip2" else {}
            inputs = proc(images=[f], return_tensors="pt", **kw)
            with torch.inference_mode():
                out = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
            start = inputs["input_ids"].shape[1] if kind == "blip2" else 1
            by_hand.append(proc.tokenizer.decode(out[0, start:], skip_special_tokens=True).strip())
        assert [c["text"] for c in answers[0].extra["captions"]] == by_hand[:2], kind
        assert answers[1].text == by_hand[2] and answers[0].new_tokens == 8
        assert [c["time"] for c in answers[0].extra["captions"]] == [0.0, 1.0]
        if by_hand[0] != by_hand[1]:
            assert answers[0].text.startswith("[0.0 s] ") and " [1.0 s] " in answers[0].text
        assert any("captions single images" in n for n in fam.notes)
    # BLIP-2 is asked a custom prompt in its question format (the default prompt gives captions)
    asked = fam.prepare([Request(0, 0.0, 1.0, [0.0], frames[:1], "Is it raining?")])
    assert fam.tokenizer.decode(asked["inputs"]["input_ids"][0], skip_special_tokens=True).strip() == \
        "Question: Is it raining? Answer:"


def test_captions_are_joined_with_their_times():
    from analyzers.vlm.families.base import Answer
    from analyzers.vlm.families.blip import join_captions

    caps = [(0.0, Answer("a dog", 1, 2)), (1.0, Answer("a dog", 1, 2)), (2.5, Answer("a cat.", 1, 3))]
    joined = join_captions(caps)
    assert joined.text == "[0.0 s] a dog. [2.5 s] a cat."
    assert joined.new_tokens == 7 and len(joined.extra["captions"]) == 3
    assert join_captions(caps[2:]).text == "a cat."


def test_a_blip2_snapshot_without_the_image_token_is_refused(tiny_models):
    from analyzers.vlm.families import GenerationOptions, family_class
    from framework import AnalyzerUnavailable

    fam = family_class("blip2")(GenerationOptions())
    with pytest.raises(AnalyzerUnavailable, match="framework models pull blip2-opt-2.7b"):
        fam.load(tiny_models("blip2-old"), "cpu", "fp32")


# --- the original system's analyzers, by name, through the runner -----------------------------------
def test_streaming_dense_captioning_gives_one_caption_per_sampled_frame(clip, tiny_models, tmp_path):
    install(tiny_models("blip"), "blip-image-captioning-base")
    track = run(clip.path, tmp_path, "streaming_dense_captioning", {"fps": 2.0, "batch_size": 4, **FAST})[
        "streaming_dense_captioning"]
    assert track.status == "ok", track.reason
    events = track.events
    assert len(events) == 7 and [e.label for e in events] == ["description"] * 7
    for k, e in enumerate(events):
        assert (e.start, e.end) == (pytest.approx(0.5 * k), pytest.approx(min(0.5 * (k + 1), clip.duration), abs=0.11))
        assert len(e.data["frame_times"]) == 1 and e.start - 1e-3 <= e.data["frame_times"][0] < e.end
        assert isinstance(e.data["text"], str) and e.data["new_tokens"] >= 2
        assert e.data["model"] == "blip-image-captioning-base"
    assert track.data["family"] == "blip" and track.data["chunking"] == "fixed"
    assert track.data["model_info"]["class"] == "BlipForConditionalGeneration"
    assert track.provides == ["descriptions"] and track.models[0].revision is not None
    assert track.receipt["step"]["items"] == 7 and max(track.receipt["step"]["batch_sizes"]) == 4
    assert_documented(track, "qwen2_vl_temporal")  # its page says its outputs are the description analyzer's


def test_blip2_video_analyzer_captions_the_frames_of_each_shot(clip, tiny_models, tmp_path):
    install(tiny_models("blip2"), "blip2-opt-2.7b")
    tracks = run(clip.path, tmp_path, "blip2_video_analyzer", {"fps": 2.0, "frames_per_chunk": 3, "min_chunk_s": 0.5, **FAST},
                 cuts=True)
    track = tracks["blip2_video_analyzer"]
    assert track.status == "ok", track.reason
    cut = 2.0
    assert [(e.start, e.end) for e in track.events] == [(0.0, pytest.approx(cut, abs=0.05)),
                                                        (pytest.approx(cut, abs=0.05), pytest.approx(clip.duration, abs=0.11))]
    for e in track.events:
        assert 1 <= len(e.data["frame_times"]) <= 3
        assert all(e.start - 1e-3 <= t < e.end for t in e.data["frame_times"])
        assert e.data["new_tokens"] >= 2 * len(e.data["frame_times"])  # one caption per frame
        assert e.data["times_outside_chunk"] == []
    assert track.data["family"] == "blip2" and track.data["model"] == "blip2-opt-2.7b"
    assert_documented(track, "qwen2_vl_temporal")


def test_video_llava_describes_each_chunk_from_eight_frames(clip, tiny_models, tmp_path):
    install(tiny_models("video-llava"), "video-llava-7b-hf")
    track = run(clip.path, tmp_path, "video_llava", {"chunking": "fixed", "chunk_s": 2.0, **FAST})["video_llava"]
    assert track.status == "ok", track.reason
    assert len(track.events) == 2 and all(e.data["new_tokens"] >= 2 for e in track.events)
    assert track.data["family"] == "video_llava"
    assert track.data["model_info"]["class"] == "VideoLlavaForConditionalGeneration"
    # the model saw 8 frames per chunk: 8 x 4 video tokens in every prompt
    assert all(e.data["prompt_tokens"] > 32 for e in track.events)
    assert_documented(track, "qwen2_vl_temporal")


def test_video_llava_prepares_eight_frames_where_the_model_is(tiny_models, monkeypatch):
    """Video-LLaVA shares LLaVA-NeXT-Video's ``prepare``: every video stretched to 8 frames, and on CUDA the
    processor asked (``videos_kwargs``' ``device``) to prepare them on the model's GPU. Here, with no GPU, the
    call made for ``cuda:0`` is recorded and run with the CPU in its place: the same patches as the plain call."""
    import torch

    from analyzers.vlm.families import GenerationOptions, Request, family_class

    fam = family_class("video_llava")(GenerationOptions(max_new_tokens=2))
    fam.load(tiny_models("video-llava"), "cpu", None)
    frames = np.random.default_rng(3).integers(0, 255, (3, 56, 100, 3), dtype=np.uint8)
    reqs = [Request(0, 0.0, 1.5, [0.0, 0.5, 1.0], frames, "Describe."),
            Request(1, 1.5, 2.0, [1.5], frames[:1], "Describe.")]
    assert fam.video_kwargs() == {}
    plain = fam.prepare(reqs)["inputs"]
    assert tuple(plain["pixel_values_videos"].shape[:2]) == (2, 8)

    asked, processor = [], fam.processor

    def on_the_cpu_instead(*args, **kwargs):
        asked.append(kwargs.get("videos_kwargs"))
        return processor(*args, **{**kwargs, "videos_kwargs": {**kwargs.get("videos_kwargs", {}), "device": "cpu"}})

    fam.device, fam.processor = "cuda:0", on_the_cpu_instead
    monkeypatch.setattr(fam, "pin", dict)  # pinned host memory needs CUDA
    placed = fam.prepare(reqs)["inputs"]
    assert asked == [{"device": "cuda:0"}]
    assert torch.equal(placed["pixel_values_videos"], plain["pixel_values_videos"])
    assert torch.equal(placed["input_ids"], plain["input_ids"])


def test_video_llava_in_the_authors_layout_is_a_skip_naming_the_hf_model(clip, tmp_path):
    folder = tmp_path / "video-llava-authors"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llava", "architectures": ["LlavaLlamaForCausalLM"]}))
    install(folder, "video-llava-7b")
    track = run(clip.path, tmp_path, "video_llava", {"model": "video-llava-7b", "chunking": "whole"})["video_llava"]
    assert track.status == "skipped"
    assert "video-llava-7b-hf" in track.reason and "framework models pull video-llava-7b-hf" in track.reason


def test_missing_weights_offline_are_skips_naming_the_pull_command(clip, tmp_path):
    registry = tmp_path / "registry.yaml"
    names = ("streaming_dense_captioning", "blip2_video_analyzer", "video_llava")
    registry.write_text(yaml.safe_dump({"analyzers": {n: {"enabled": True, "device": "cpu",
                                                          "params": {"chunking": "fixed"} if n != names[0] else {}}
                                                      for n in names}}))
    tracks = analyze(clip.path, registry_path=registry, out_dir=tmp_path / "run", progress=False,
                     load_entrypoints=False, offline=True).timeline.tracks
    for name, model in zip(names, ("blip-image-captioning-base", "blip2-opt-2.7b", "video-llava-7b-hf")):
        assert tracks[name].status == "skipped", name
        assert f"`framework models pull {model}`" in tracks[name].reason


def test_the_analyzers_are_found_by_name_and_share_the_description_code():
    from analyzers import analyzer_classes
    from analyzers.streaming_dense_captioning import StreamingDenseCaptioning
    from analyzers.vlm import SceneDescription

    by_name = {c.name: c for c in analyzer_classes()}
    for name, model in (("streaming_dense_captioning", "blip-image-captioning-base"),
                        ("blip2_video_analyzer", "blip2-opt-2.7b"), ("video_llava", "video-llava-7b-hf")):
        cls = by_name[name]
        assert issubclass(cls, SceneDescription) and not cls.enabled_by_default
        assert cls().model_ids() == [model] and "original system" in cls.description
    dense = StreamingDenseCaptioning({"fps": 4})
    assert dense.params.chunk_s == 0.25 and dense.max_frames() == 1 and dense.depends_on == ()
    for bad in ({"chunking": "shots"}, {"frames_per_chunk": 2}, {"context": True}, {"chunk_s": 3.0}):
        with pytest.raises(ValueError):
            StreamingDenseCaptioning(bad)
