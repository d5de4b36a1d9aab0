"""``qwen2_vl_temporal``: shot-aware chunks, every family's real loading code on tiny models saved in the
real layout (through the runner's model resolution, a fake Hugging Face cache), a LoRA adapter applied
with peft, the skip for missing weights, batching through the device step, and context across chunks.

The tiny models have random weights: their words are gibberish, so the tests check loading, shapes,
times, prompts and plumbing, never what a description says.
"""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from vlm_fixtures import install, tiny_vlm  # noqa: F401  (tiny_vlm is a fixture)

from analyzers.vlm import SceneDescription
from analyzers.vlm.chunks import pick_frames, plan_chunks
from analyzers.vlm.families import GenerationOptions, Request, family_class
from analyzers.vlm.prompts import Context, times_mentioned
from framework.runner import analyze
from framework.testing.synth import ShotSpec, make_video

FAST = {"max_new_tokens": 4, "batch_size": 4}


def run(video, tmp_path, params, *, cuts=True, **kwargs):
    registry = tmp_path / "registry.yaml"
    # device: cpu: the plan would not put a 7B-class model id on a CPU unasked
    analyzers = {"qwen2_vl_temporal": {"enabled": True, "device": "cpu", "params": params}}
    if cuts:
        analyzers["cut_analysis"] = {"enabled": True}
    registry.write_text(yaml.safe_dump({"analyzers": analyzers}))
    result = analyze(video, registry_path=registry, out_dir=tmp_path / "run", progress=False,
                     load_entrypoints=False, **kwargs)
    return result.timeline.tracks["qwen2_vl_temporal"], result


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    """21 s with hard cuts at 3, 12 and 15.5 s: a 9 s shot to split, short and long ones."""
    shots = [ShotSpec(3.0, look=0), ShotSpec(9.0, "pan", look=1), ShotSpec(3.5, look=2), ShotSpec(5.5, "zoom", look=3)]
    return make_video(tmp_path_factory.mktemp("vlm") / "cuts.mp4", shots, fps=10.0, width=192, height=108,
                      audio=False, text=None)


# --- chunks ------------------------------------------------------------------------------------------
def test_long_shots_are_split_and_short_ones_merged():
    shots = [(0.0, 3.0), (3.0, 12.0), (12.0, 12.6), (12.6, 13.1), (13.1, 20.0)]
    chunks = plan_chunks(shots, 20.0, chunk_s=4.0, min_chunk_s=1.0)
    # the 9 s and 6.9 s shots split into equal windows; each flash shot joins a neighbour that has room
    assert [(c.start, c.end) for c in chunks] == [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0), (9.0, 12.6), (12.6, 16.55),
                                                   (16.55, 20.0)]
    assert [c.shots for c in chunks] == [(0,), (1,), (1,), (1, 2), (3, 4), (4,)]
    assert chunks[1].split and not chunks[0].split
    fixed = plan_chunks(shots, 20.0, chunk_s=6.0, mode="fixed")
    assert [(c.start, c.end) for c in fixed] == [(0.0, 6.0), (6.0, 12.0), (12.0, 18.0), (18.0, 20.0)]
    assert [(c.start, c.end) for c in plan_chunks(shots, 20.0, mode="whole")] == [(0.0, 20.0)]


def test_frames_are_picked_by_time_and_thinned():
    times = np.arange(0, 10, 0.5)
    assert pick_frames(times, 2.0, 4.0, 16) == [4, 5, 6, 7]
    assert pick_frames(times, 0.0, 10.0, 5) == [0, 5, 10, 14, 19]
    assert pick_frames(times, 3.1, 3.3, 4) == [6]  # nothing inside: the frame nearest the middle


def test_context_keeps_the_newest_descriptions_under_the_cap():
    ctx = Context(max_tokens=12, count=lambda s: len(s.split()))
    ctx.add(0, 5, "a man opens a door")
    ctx.add(5, 10, "he walks into a bright kitchen")
    assert ctx.lines() == ["[5.0-10.0 s] he walks into a bright kitchen"]
    assert times_mentioned("at 12.5 s he waves, then at 1:05 and 0:01:10 again") == [12.5, 65, 70]


def test_chunks_follow_the_cuts_of_generated_media(cut_video, tiny_vlm, tmp_path):
    """Through the real pipeline: cut_analysis finds the cuts; no chunk crosses one; none is longer
    than chunk_s; the frames each chunk saw lie inside it."""
    install(tiny_vlm("qwen2-vl"), "qwen2-vl-2b-instruct")
    track, _ = run(cut_video.path, tmp_path, {"model": "qwen2-vl-2b-instruct", "chunk_s": 4.0, **FAST})
    assert track.status == "ok", track.reason
    cuts = [f / cut_video.fps for f in cut_video.cut_frames]
    events = track.events
    assert [e.label for e in events] == ["description"] * len(events) and len(events) == 7
    for e in events:
        assert e.end - e.start <= 4.0 + 1e-6
        assert not any(e.start + 0.05 < c < e.end - 0.05 for c in cuts), (e.start, e.end, cuts)
        assert all(e.start - 1e-3 <= t < e.end for t in e.data["frame_times"])
        assert e.data["model"] == "qwen2-vl-2b-instruct" and isinstance(e.data["text"], str)
    assert events[0].start == 0.0 and abs(events[-1].end - cut_video.duration) < 0.15
    assert all(a.end == pytest.approx(b.start, abs=1e-3) for a, b in zip(events, events[1:]))
    assert track.provides == ["descriptions"] and track.models[0].revision is not None
    assert track.data["chunking"] == "shots" and track.data["family"] == "qwen2_vl"
    step = track.receipt["step"]
    assert step["items"] == 7 and max(step["batch_sizes"]) == 4 and step["batches"] >= 2



def test_prefill_rows_reaches_the_family_and_says_where_it_applies(cut_video, tiny_vlm, tmp_path):
    """The analyzer's parameter is the family's option; on a CPU (no graphed loop) the batches are prefilled whole
    and the track says so."""
    install(tiny_vlm("qwen2-vl"), "qwen2-vl-2b-instruct")
    track, _ = run(cut_video.path, tmp_path, {"model": "qwen2-vl-2b-instruct", "chunk_s": 4.0, "prefill_rows": 2,
                                              **FAST})
    assert track.status == "ok", track.reason
    assert track.data["model_info"]["prefill_rows"] == {"most": 2, "joint_batches": 0, "groups_per_batch": []}
    assert any(n.startswith("prefill_rows: only the graphed greedy loop on CUDA") for n in track.data["notes"])


@pytest.mark.parametrize("params,device,stretch", [
    ({}, "cuda:0", 128), ({}, "cpu", 8), ({"batch_size": 32}, "cuda:0", 32), ({"prefill_rows": 0}, "cuda:0", 64),
    ({"context": True}, "cuda:0", 1), ({"cuda_graphs": False}, "cuda:0", 64),
    ({"model": "smolvlm2-256m-video-instruct"}, "cuda:0", 64), ({"prefill_rows": 32}, "cuda:0", 128)])
def test_on_a_gpu_the_batch_may_stretch_to_gpu_batch_with_room_where_groups_prefill(params, device, stretch):
    """Qwen2-VL in the graphed loop on a GPU asks the plan to grow its batch to GPU_BATCH_WITH_ROOM from spare
    memory (its batch then prefilled in groups); a set batch, context, no graphs, no groups, a family that
    cannot split its rows, or a CPU keep the batch they ask for."""
    from analyzers.vlm.analyzer import GPU_BATCH_WITH_ROOM
    from framework.scheduler import Placement

    a = SceneDescription(params)
    a.placement = Placement(device)
    assert GPU_BATCH_WITH_ROOM == 128 and a.stretch_batch_size() == stretch
    a.placement = Placement(device, max_batch=100)  # the plan's cap: what the run uses
    assert a.planned_batch_size() == min(stretch, 100)


def test_the_plan_stretches_the_vlms_batch_only_where_a_gpu_has_room(cut_video, tmp_path, monkeypatch):
    """Through the runner's plan (a simulated Hopper GPU): 135 GB leave room for a batch of 128 beyond the 64
    it reserves; so do 75 GB (an 80 GB card), the chunks beyond the first group of 64 counted at their KV
    (``prefill_group``, ``item_kv_mb``); at 24 GB no group of 64 fits beside the 7B: the plan prefills in small
    groups (``placement.prefill_group``), which the analyzer then uses, and the batch is what fits that way,
    larger than prefilled whole."""
    from framework.devices import GPUs
    from framework.registry import load_registry
    from framework.runner import plan_video

    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({"analyzers": {"qwen2_vl_temporal": {"enabled": True,
                                                                            "params": {"chunking": "fixed"}}}}))
    placed = {}
    for gb in (135, 75, 24):
        monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True, mb=gb * 1024.0: GPUs(
            ["cuda:0"], {"cuda:0": mb}, {"cuda:0": mb}, {"cuda:0": "simulated"}, {"cuda:0": (9, 0)}))
        report = plan_video(cut_video.path, registry=load_registry(registry), load_entrypoints=False,
                            only=["qwen2_vl_temporal"])
        placed[gb] = report.plan.placements["qwen2_vl_temporal"]
    assert placed[135].max_batch == 128 and placed[135].vram_mb < 135 * 1024 / 2  # reserved: for 64
    assert placed[75].max_batch == 128 and placed[75].vram_mb == placed[135].vram_mb
    assert placed[24].max_batch < 64 and placed[24].vram_mb <= 24 * 1024
    assert placed[135].prefill_group == placed[75].prefill_group == 64
    assert 4 <= placed[24].prefill_group < 16 and placed[24].max_batch > 2 * placed[24].prefill_group
    a = SceneDescription({"chunking": "fixed"})
    a.placement, a._device = placed[24], "cuda:0"
    assert a.prefill_group() == a._prefill_rows() == placed[24].prefill_group
    # a smaller batch than the cap (batches evened out, a run's last) is prefilled in larger groups, in the same room
    cap, room = placed[24].max_batch, placed[24].batch_room_mb
    assert a.group_for_rows(cap) == placed[24].prefill_group
    half = a.group_for_rows(cap // 2)
    assert half > placed[24].prefill_group and 600 * (half - 1) + 150 * (cap // 2 - half) <= room


@pytest.mark.parametrize("params,device,group", [
    ({}, "cuda:0", 64), ({"prefill_rows": 32}, "cuda:0", 32), ({"batch_size": 128}, "cuda:0", 64),
    ({"prefill_rows": 0}, "cuda:0", 0), ({"context": True}, "cuda:0", 0), ({"cuda_graphs": False}, "cuda:0", 0),
    ({}, "cpu", 0), ({"model": "smolvlm2-256m-video-instruct"}, "cuda:0", 0)])
def test_the_plan_learns_which_batches_are_prefilled_in_groups(params, device, group):
    """``prefill_group`` where a batch above ``prefill_rows`` is prefilled in groups (Qwen-VL in the graphed loop on
    a GPU, an explicit batch too), with the KV a chunk keeps (``item_kv_mb``); 0 elsewhere."""
    from framework.scheduler import Placement

    a = SceneDescription(params)
    a.placement = Placement(device)
    assert a.prefill_group() == group
    assert a.item_kv_mb == (150.0 if a.family_name.startswith("qwen") else 0.0)


@pytest.mark.parametrize("device,given,used", [("cuda:0", None, 64), ("cuda:0", 0, None), ("cuda:0", 32, 32),
                                               ("cpu", None, None), ("cpu", 8, 8)])
def test_prefill_rows_defaults_to_gpu_batch_on_cuda_and_zero_turns_it_off(device, given, used):
    """By default a batch above GPU_BATCH on CUDA is prefilled in groups of GPU_BATCH; 0 prefills each batch
    whole; on a CPU only an explicit value is passed on (the family then says that it does not apply there)."""
    from analyzers.vlm.analyzer import GPU_BATCH

    a = SceneDescription({} if given is None else {"prefill_rows": given})
    a._device = device
    assert GPU_BATCH == 64 and a._prefill_rows() == used
# --- every family's real loading code, through the runner's resolution --------------------------------
@pytest.mark.parametrize("kind,model,family", [
    ("qwen2.5-vl", "qwen2.5-vl-3b-instruct", "qwen2_5_vl"),
    ("smolvlm", "smolvlm2-256m-video-instruct", "smolvlm"),
    ("llava-next-video", "llava-next-video-7b", "llava_next_video"),
])
def test_each_family_loads_from_the_hf_cache_and_describes(kind, model, family, cut_video, tiny_vlm, tmp_path):
    install(tiny_vlm(kind), model)
    track, _ = run(cut_video.path, tmp_path, {"model": model, "chunking": "fixed", "chunk_s": 7.0, **FAST},
                   cuts=False)
    assert track.status == "ok", track.reason
    assert track.data["family"] == family and track.data["model_info"]["parameters"] > 0
    assert len(track.events) == 3 and all(e.data["new_tokens"] >= 1 for e in track.events)
    assert track.data["model_info"]["attention"] == "sdpa"


def test_the_lora_adapter_is_applied_with_peft_and_changes_the_model(cut_video, tiny_vlm, tmp_path):
    base, lora = tiny_vlm("llava-next-video"), tiny_vlm("llava-lora")
    frames = np.random.default_rng(0).integers(0, 255, (4, 56, 100, 3), dtype=np.uint8)
    req = Request(0, 0.0, 2.0, [0.0, 0.5, 1.0, 1.5], frames, "Describe.")
    logits = []
    for adapter in (None, lora):
        fam = family_class("llava_next_video")(GenerationOptions(max_new_tokens=2))
        fam.load(base, "cpu", "fp32", adapter)
        prepared = fam.prepare([req])
        import torch

        with torch.inference_mode():
            logits.append(fam.model(**prepared["inputs"]).logits[0, -1])
    assert not np.allclose(logits[0].numpy(), logits[1].numpy(), atol=1e-4)

    # and through the runner: the manifest's adapter entry requires its base model; both are resolved
    install(base, "llava-next-video-7b")
    install(lora, "llava-next-video-genai-ft")
    track, _ = run(cut_video.path, tmp_path, {"model": "llava-next-video-genai-ft", "chunking": "whole", **FAST},
                   cuts=False)
    assert track.status == "ok", track.reason
    assert [m.id for m in track.models] == ["llava-next-video-genai-ft", "llava-next-video-7b"]
    assert track.data["adapter"] == "llava-next-video-genai-ft"
    assert any("applied with peft" in n for n in track.data["notes"])


def test_missing_weights_offline_are_a_skip_naming_the_pull_command(cut_video, tmp_path):
    track, _ = run(cut_video.path, tmp_path, {"model": "smolvlm2-2.2b-instruct"}, cuts=False, offline=True)
    assert track.status == "skipped"
    assert "`framework models pull smolvlm2-2.2b-instruct`" in track.reason


# --- what the model is given --------------------------------------------------------------------------
def test_every_family_is_told_the_real_times_of_its_frames(tiny_vlm):
    frames = np.zeros((3, 56, 100, 3), dtype=np.uint8)
    req = Request(0, 61.0, 64.0, [61.0, 62.5, 63.5], frames, "Describe.")
    for kind, family, expected in [("qwen2-vl", "qwen2_vl", "are at 61.0, 62.5, 63.5 s"),
                                   ("smolvlm", "smolvlm", "Frame from 01:02:"),
                                   ("llava-next-video", "llava_next_video", "from 61.0 s to 64.0 s")]:
        fam = family_class(family)(GenerationOptions(max_new_tokens=2))
        fam.load(tiny_vlm(kind), "cpu", None)
        assert expected in fam.prepare([req])["texts"][0], family
    fam = family_class("qwen2_5_vl")(GenerationOptions())
    fam.load(tiny_vlm("qwen2.5-vl"), "cpu", None)
    sec = fam.prepare([req])["inputs"]["second_per_grid_ts"]
    assert float(sec[0]) == pytest.approx(2 / (2 / 2.5))  # 2 frames per temporal patch at the real 0.8 fps


def test_the_video_processor_can_run_where_the_model_is(tiny_vlm):
    """On CUDA ``prepare`` asks the processor to work on the model's GPU (``videos_kwargs``'
    ``device``); here, on the CPU, that the processors take the option and give the same patches."""
    torch = pytest.importorskip("torch")
    frames = np.random.default_rng(2).integers(0, 255, (4, 56, 100, 3), dtype=np.uint8)
    req = Request(0, 0.0, 2.0, [0.0, 0.5, 1.0, 1.5], frames, "Describe.")
    for kind, family in [("qwen2-vl", "qwen2_vl"), ("llava-next-video", "llava_next_video")]:
        fam = family_class(family)(GenerationOptions(max_new_tokens=2))
        fam.load(tiny_vlm(kind), "cpu", None)
        assert fam.video_kwargs() == {}  # on the CPU: the processor's defaults
        plain = fam.prepare([req])["inputs"]
        text = fam.prepare([req])["texts"][0]
        placed = fam.processor(text=[text], videos=[frames], padding=True, return_tensors="pt",
                               videos_kwargs={"device": "cpu"})
        assert placed["pixel_values_videos"].shape == plain["pixel_values_videos"].shape, family
        assert torch.equal(placed["pixel_values_videos"], plain["pixel_values_videos"]), family
        fam.device = "cuda:0"
        assert fam.video_kwargs() == {"videos_kwargs": {"device": "cuda:0"}}


def test_a_transformers_that_copies_kv_heads_at_each_step_is_named(tiny_vlm, monkeypatch):
    import sys
    import types

    import transformers

    from analyzers.vlm.families.hf import repeats_kv_heads

    fam = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=2))
    fam.load(tiny_vlm("qwen2-vl"), "cpu", None)
    text = fam.model.config.text_config
    assert text.num_key_value_heads < text.num_attention_heads  # the tiny model has grouped-query attention
    real = sys.modules["transformers.integrations.sdpa_attention"]
    assert repeats_kv_heads(fam.model, transformers) == (not hasattr(real, "pack_gqa"))
    monkeypatch.setitem(sys.modules, "transformers.integrations.sdpa_attention", types.ModuleType("old_sdpa"))
    assert repeats_kv_heads(fam.model, transformers)  # a transformers before 5.23
    monkeypatch.setattr(text, "num_key_value_heads", text.num_attention_heads)
    assert not repeats_kv_heads(fam.model, transformers)  # no grouped heads: nothing is copied


def test_context_carries_earlier_descriptions_one_chunk_at_a_time(cut_video, tiny_vlm, tmp_path):
    install(tiny_vlm("qwen2-vl"), "qwen2-vl-2b-instruct")
    track, _ = run(cut_video.path, tmp_path, {"model": "qwen2-vl-2b-instruct", "context": True, "chunk_s": 7.0,
                                              "context_tokens": 64, **FAST}, cuts=False)
    assert track.status == "ok", track.reason
    assert track.data["context"] is True and track.receipt["step"]["batch_sizes"] == [1]
    assert [e.data["context_items"] for e in track.events][:2] == [0, 1]


def test_the_processor_loads_first_so_the_first_batch_is_prepared_while_the_model_loads(tiny_vlm, monkeypatch):
    """Qwen2-VL's processor loads before its model (``load_processor``): ``prepare`` works with no model yet and
    gives what it gives after the whole load, which keeps that processor; the analyzer says so to the executor
    (``preprocess_ready``) from inside its load, and no longer once unloaded (not with ``context``)."""
    torch = pytest.importorskip("torch")
    frames = np.random.default_rng(3).integers(0, 255, (4, 56, 100, 3), dtype=np.uint8)
    req = Request(0, 0.0, 2.0, [0.0, 0.5, 1.0, 1.5], frames, "Describe.")
    fam = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=2))
    assert fam.load_processor(tiny_vlm("qwen2-vl"), "cpu") and fam.model is None
    early = fam.prepare([req])
    processor = fam.processor
    fam.load(tiny_vlm("qwen2-vl"), "cpu", None)
    assert fam.processor is processor and fam.model is not None
    late = fam.prepare([req])
    assert early["texts"] == late["texts"]
    assert all(torch.equal(early["inputs"][k], late["inputs"][k]) for k in late["inputs"])
    assert not family_class("smolvlm")().load_processor(tiny_vlm("smolvlm"), "cpu")  # loads all at once

    from analyzers.vlm.families.qwen import Qwen2VL
    for context, expected in ((False, [True]), (True, [False])):
        a = SceneDescription({"model": "qwen2-vl-2b-instruct", "context": context, **FAST})
        seen = []
        real = Qwen2VL.load_model

        def spied(self, *args, _a=a, _seen=seen, _real=real, **kw):
            _seen.append(_a.preprocess_ready())  # asked while the model loads
            return _real(self, *args, **kw)

        monkeypatch.setattr(Qwen2VL, "load_model", spied)
        assert not a.preprocess_ready()
        a.load("cpu", {"qwen2-vl-2b-instruct": tiny_vlm("qwen2-vl")})
        assert seen == expected
        a.unload()
        assert not a.preprocess_ready()
        monkeypatch.undo()


def test_the_static_cache_gives_the_same_answers(tiny_vlm):
    rng = np.random.default_rng(1)
    reqs = [Request(0, 0.0, 2.0, [0.0, 0.5, 1.0, 1.5], rng.integers(0, 255, (4, 56, 100, 3), dtype=np.uint8), "Describe."),
            Request(1, 2.0, 3.0, [2.0, 2.5], rng.integers(0, 255, (2, 56, 100, 3), dtype=np.uint8), "Describe.")]
    texts = []
    for static in (False, True):
        fam = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=6, static_cache=static))
        fam.load(tiny_vlm("qwen2-vl"), "cpu", None)
        prepared = fam.prepare(reqs)  # two chunks of different lengths: left padding
        assert fam.tokenizer.padding_side == "left" and int(prepared["inputs"]["attention_mask"][1, 0]) == 0
        texts.append([a.text for a in fam.decode(fam.generate(prepared), prepared)])
        assert fam.notes == []  # no fallback: the model took the static cache
    assert texts[0] == texts[1]


def test_params_are_checked():
    with pytest.raises(ValueError, match="base_url"):
        SceneDescription.Params(backend="openai")
    a = SceneDescription({"model": "smolvlm2-256m-video-instruct"})
    assert a.frame_specs()[0].fps == 1.0 and a.model_ids() == ["smolvlm2-256m-video-instruct"]
    assert SceneDescription({"backend": "openai", "base_url": "http://x/v1"}).model_ids() == []
    assert SceneDescription({"context": True}).max_batch_size() == 1


def test_the_default_batch_is_what_the_vram_plan_allows_on_a_gpu_and_eight_elsewhere():
    """By default the plan sizes the batch (end to end on an H200 the former default of 8 cut 114
    chunks into 15 batches); a CPU and a server get 8; a configured batch_size is kept."""
    from framework.scheduler import Demand, Placement, plan
    from analyzers.vlm.analyzer import CPU_BATCH, GPU_BATCH

    a = SceneDescription({})
    assert a.max_batch_size() == GPU_BATCH == 64  # planning: the demand asks for a full batch
    demand = Demand("qwen2_vl_temporal", "gpu", 18432.0, item_vram_mb=a.item_vram_mb, max_batch=a.max_batch_size())
    assert plan([demand], 24 * 1024, ["cuda:0"]).placements["qwen2_vl_temporal"].max_batch == 11  # what fits
    assert plan([demand], 135_000, ["cuda:0"]).placements["qwen2_vl_temporal"].max_batch == 64
    a.placement = Placement("cuda:0", max_batch=11)
    assert a.max_batch_size() == 64  # the device step caps it with the placement's 11
    a.placement = Placement("cpu")
    assert a.max_batch_size() == CPU_BATCH == 8
    assert SceneDescription({"batch_size": 16}).max_batch_size() == 16
    assert SceneDescription({"backend": "openai", "base_url": "http://x/v1"}).max_batch_size() == CPU_BATCH
