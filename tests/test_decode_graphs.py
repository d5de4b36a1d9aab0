"""Decoding steps replayed as CUDA graphs (``framework/generation/decode_graphs.py``).

On the CPU, a stand-in for the capture runs the step when the graph is "captured" and again at
every replay, so what is checked here is our side: which calls are decoding steps, that every step
copies its own inputs into the graph's buffers (stale inputs would change the tokens), that the
output the graph writes is what ``generate`` reads, that a failed capture falls back with a note,
and that the graph is dropped after each ``generate``. The real capture runs in the ``gpu`` test.
"""
from __future__ import annotations

import numpy as np
import pytest
from vlm_fixtures import tiny_vlm  # noqa: F401  (a fixture)

from analyzers.vlm.families import GenerationOptions, Request, family_class
from framework.generation import decode_graphs
from framework.generation.decode_graphs import DecodeGraphs, is_decoding_step
from framework.testing.plugins import analyzers_plugin
from graph_fixtures import RunAtReplay

torch = pytest.importorskip("torch")


STATIC = type("StaticCache", (), {"is_compileable": True})()  # what the tests' steps pass as the cache


class FailingCapture(DecodeGraphs):
    def __init__(self, *args, error=RuntimeError("operation not permitted when stream is capturing"), **kw):
        super().__init__(*args, **kw)
        self.error = error

    def capture(self, run):
        raise self.error


def requests():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 255, (4, 56, 100, 3), dtype=np.uint8)
    return [Request(0, 0.0, 2.0, [0.0, 0.5, 1.0, 1.5], frames, "Describe."),
            Request(1, 2.0, 3.0, [2.0, 2.5], frames[:2], "Describe the scene in detail.")]


def describe(folder, graphs_class=None, new_tokens=8, min_new_tokens=None, loop=False, family="qwen2_vl",
             **generation):
    """Token ids from the tiny Qwen2-VL: plain ``generate``, or with ``graphs_class`` in front of
    its forward (static cache, as on CUDA), in transformers' loop or (``loop``) in greedy_loop's.
    ``generation``: settings of the model's generation config (a repetition penalty, its end tokens)."""
    fam = family_class(family)(GenerationOptions(
        max_new_tokens=new_tokens, min_new_tokens=new_tokens if min_new_tokens is None else min_new_tokens,
        static_cache=graphs_class is not None))
    fam.load(folder, "cpu", None)
    for key, value in generation.items():
        setattr(fam.model.generation_config, key, value)
    if graphs_class is not None:
        fam.graphs = graphs_class(fam.model.forward, fam.notes, unused=fam.decode_unused)
        fam.model.forward = fam.graphs
        fam._loop_ok = loop
    prepared = fam.prepare(requests())
    outs = [fam.generate(prepared) for _ in range(2)]  # two batches: a new cache each time
    return fam, outs


@pytest.fixture(scope="module")
def plain(tiny_vlm):  # noqa: F811
    return describe(tiny_vlm("qwen2-vl"))[1]


def test_replayed_steps_give_the_tokens_of_plain_generate(tiny_vlm, plain):  # noqa: F811
    fam, outs = describe(tiny_vlm("qwen2-vl"), RunAtReplay)  # transformers' loop, each forward replayed
    for got, want in zip(outs, plain):
        assert torch.equal(got, want)
    g = fam.graphs
    # per batch of 8 new tokens: the prefill gives the first, 7 decoding steps follow; the first
    # runs as is, the second is captured (and run), 5 more replay
    assert g.captures == 2 and g.replays == 2 * 6
    assert g._graph is None  # released after each generate: no hold on the old cache
    assert fam.notes == [] and g.enabled
    assert fam.gen_kwargs()["disable_compile"] is True  # transformers' own compile stays off


def test_a_failed_capture_falls_back_to_the_plain_step_and_says_so(tiny_vlm, plain):  # noqa: F811
    fam, outs = describe(tiny_vlm("qwen2-vl"), FailingCapture)
    for got, want in zip(outs, plain):
        assert torch.equal(got, want)
    assert not fam.graphs.enabled and fam.graphs.replays == 0
    assert len(fam.notes) == 1 and "without CUDA graphs: capturing failed (RuntimeError" in fam.notes[0]


def test_out_of_memory_while_capturing_is_raised_for_the_device_step_to_split_the_batch():
    oom = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    cache = STATIC
    g = FailingCapture(lambda **kw: "step", [], error=oom)
    step = {"input_ids": torch.zeros(2, 1, dtype=torch.long), "past_key_values": cache}
    assert g(**step) == "step"  # first step of the shape: as is
    with pytest.raises(RuntimeError, match="out of memory"):
        g(**step)
    assert g.enabled and g.notes == []  # not given up: a smaller batch captures again


def test_only_one_token_steps_on_a_static_cache_are_decoding_steps():
    static = STATIC
    dynamic = type("Dynamic", (), {"is_compileable": False})()
    one, many = torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long)
    assert is_decoding_step({"input_ids": one, "past_key_values": static})
    assert not is_decoding_step({"input_ids": many, "past_key_values": static})  # the prefill
    assert not is_decoding_step({"input_ids": one, "past_key_values": dynamic})
    assert not is_decoding_step({"input_ids": one, "past_key_values": static, "pixel_values_videos": one})
    assert not is_decoding_step({"input_ids": None, "inputs_embeds": one, "past_key_values": static})


def test_inputs_that_change_shape_at_every_step_stop_the_capturing():
    static = STATIC
    notes: list[str] = []
    g = RunAtReplay(lambda **kw: kw["attention_mask"].shape[1], notes)
    for n in range(1, decode_graphs.MAX_SHAPE_CHANGES + 3):  # a 2-D mask growing by one at each step
        assert g(input_ids=torch.zeros(2, 1, dtype=torch.long), past_key_values=static,
                 attention_mask=torch.ones(2, n)) == n
    assert not g.enabled and g.captures == 0
    assert notes == ["decoding steps run without CUDA graphs: the inputs change shape at every step"]


def test_the_family_puts_the_graphs_in_front_only_on_cuda(tiny_vlm):  # noqa: F811
    fam = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=2))
    fam.load(tiny_vlm("qwen2-vl"), "cpu", None)
    assert fam.graphs is None and "cache_implementation" not in fam.gen_kwargs()


@pytest.mark.gpu
@pytest.mark.parametrize("settings", [{}, {"repetition_penalty": 1.6}])
def test_real_cuda_graphs_give_the_tokens_of_plain_generate(tiny_vlm, settings):  # noqa: F811
    """On CUDA: the graphed greedy loop, and transformers' loop with each forward replayed, give
    the tokens of plain ``generate`` (two batches each)."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    runs = {}
    for way in ("plain", "loop", "per step"):
        fam = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=12, min_new_tokens=12,
                                                         cuda_graphs=way != "plain"))
        fam.load(tiny_vlm("qwen2-vl"), "cuda", "fp32")
        for key, value in settings.items():
            setattr(fam.model.generation_config, key, value)
        fam._loop_ok = way == "loop"
        prepared = fam.prepare(requests())
        runs[way] = [fam.generate(prepared).cpu() for _ in range(2)]
        if way != "plain":
            g = fam.graphs
            # transformers 5.17 adds a note advising 5.23 (it copies the key/value heads); any other
            # note says the graphs or the loop were given up
            graph_notes = [n for n in fam.notes if "copies the key/value heads" not in n]
            assert g is not None and g.enabled and graph_notes == [], fam.notes
            # loop: 3 tokens from transformers, 9 in the loop (1 as is, 8 replayed); per step: 11
            # decoding steps (1 as is, then 10 replayed)
            assert (g.captures, g.replays) == ((2, 16) if way == "loop" else (2, 20)), way
    for way in ("loop", "per step"):
        for got, want in zip(runs[way], runs["plain"]):
            assert torch.equal(got, want), way


def test_while_other_analyzers_share_the_gpu_the_steps_run_as_is_and_the_capture_waits():
    import contextlib
    import types

    static = STATIC
    state = {"alone": False}
    g = RunAtReplay(lambda **kw: types.SimpleNamespace(logits=kw["input_ids"].float() * 10), [],
                    lambda: contextlib.nullcontext(state["alone"]))
    outs = []
    for step in range(6):
        state["alone"] = step >= 3  # the other analyzers finish after the third step
        ids = torch.full((2, 1), step, dtype=torch.long)
        outs.append(g(input_ids=ids, past_key_values=static).logits[0, 0].item())
    assert outs == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]  # every step saw its own input
    assert g.shared_steps == 2 and g.captures == 1 and g.replays == 3 and g.enabled


def test_the_stop_check_is_read_one_step_late_only_inside_the_block_and_its_thread():
    import threading
    import types

    from transformers.generation.utils import DeferredStopCheck

    from framework.generation.decode_graphs import stop_check_one_step_late

    cuda, mps = types.SimpleNamespace(type="cuda"), types.SimpleNamespace(type="mps")
    assert not DeferredStopCheck.is_supported(cuda, None, False, False)
    with stop_check_one_step_late() as available:
        assert available
        assert DeferredStopCheck.is_supported(cuda, None, False, False)
        assert not DeferredStopCheck.is_supported(cuda, None, True, False)  # a cache handed back: not here
        assert not DeferredStopCheck.is_supported(cuda, None, False, True)  # an assistant model
        elsewhere = []
        t = threading.Thread(target=lambda: elsewhere.append(DeferredStopCheck.is_supported(cuda, None, False, False)))
        t.start()
        t.join()
        assert elsewhere == [False]  # another thread's generate is left as transformers decides
    assert not DeferredStopCheck.is_supported(cuda, None, False, False)
    assert DeferredStopCheck.is_supported(mps, None, False, False)  # transformers' own rule is kept


@pytest.mark.gpu
@pytest.mark.parametrize("stream_local", [False, True])
def test_on_a_shared_gpu_the_vlm_captures_only_beside_stream_local_work_and_nobody_fails(tiny_vlm, tmp_path,  # noqa: F811
                                                                                         monkeypatch, stream_local):
    """The end-to-end run on an H200 failed product_detection (ultralytics synchronized the device at
    every batch) while the VLM captured a graph. Here a GPU analyzer that synchronizes all the time
    runs beside the VLM. When it synchronizes the whole device (and does not declare
    ``cuda_stream_local``), the VLM's steps run as is while they share the GPU; when it waits only
    for its own stream and says so, the VLM captures beside it. Both finish either way, and the
    VLM's words are those of a run without graphs: in fp32 (a manifest that offers only fp32). In bf16,
    the random weights' near ties made one token of 80 differ between two graphed runs on an H200
    (twenty-second session): the runs' CUDA streams, and with them cuBLAS' workspaces, are not the same."""
    import time as _time

    import yaml
    from vlm_fixtures import install

    from framework import Analyzer
    from framework.models.manifest import default_manifest_path
    from framework.plugins import build_plugin_manager
    from framework.registry import load_registry
    from framework.runner import analyze
    from framework.testing.synth import ShotSpec, make_video

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")

    class Syncer(Analyzer):
        name = "t_syncer"
        version = "1"
        device = "gpu"
        cuda_stream_local = stream_local

        def analyze(self, inputs):
            x = torch.ones(256, 256, device=self.placement.device)
            end = _time.monotonic() + 6.0
            while _time.monotonic() < end:
                x = (x @ x).clamp(max=1.0)
                if stream_local:
                    torch.cuda.current_stream().synchronize()  # its own work stream only
                else:
                    torch.cuda.synchronize()
            return self.track()

    Plugin = analyzers_plugin(Syncer)

    video = make_video(tmp_path / "clip.mp4", [ShotSpec(4.0, look=0), ShotSpec(4.0, "pan", look=1)], fps=10.0,
                       width=192, height=108, audio=False, text=None)
    manifest = yaml.safe_load(default_manifest_path().read_text())
    manifest["models"]["qwen2-vl-2b-instruct"]["vram_gb"] = {"fp32": 1.0}
    (tmp_path / "fp32_manifest.yaml").write_text(yaml.safe_dump(manifest))
    monkeypatch.setenv("FRAMEWORK_MANIFEST", str(tmp_path / "fp32_manifest.yaml"))
    install(tiny_vlm("qwen2-vl"), "qwen2-vl-2b-instruct")
    vlm = {"model": "qwen2-vl-2b-instruct", "chunking": "fixed", "chunk_s": 1.0, "batch_size": 2,
           "max_new_tokens": 10, "min_new_tokens": 10}
    runs = {}
    for name, graphs, others in [("shared", True, True), ("alone", True, False), ("plain", False, False)]:
        analyzers = {"qwen2_vl_temporal": {"enabled": True, "device": "gpu", "params": {**vlm, "cuda_graphs": graphs}}}
        if others:
            analyzers["t_syncer"] = {"enabled": True}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({"analyzers": analyzers}))
        host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Plugin])
        res = analyze(video.path, registry=load_registry(tmp_path / f"{name}.yaml"), host=host,
                      out_dir=tmp_path / name, progress=False, resume=False, offline=True)
        for track in res.timeline.tracks.values():
            assert track.status == "ok", (name, track.name, track.reason)
        runs[name] = res.timeline.tracks["qwen2_vl_temporal"]
        assert runs[name].receipt["variant"] == "fp32", runs[name].receipt
        if others:
            syncer = res.timeline.tracks["t_syncer"].receipt
    vlm = runs["shared"].receipt
    assert (vlm["analyze_at_s"] < syncer["analyze_at_s"] + syncer["analyze_s"]
            and syncer["analyze_at_s"] < vlm["analyze_at_s"] + vlm["analyze_s"])  # they did analyze side by side
    shared = runs["shared"].data["model_info"]["cuda_graphs"]
    alone = runs["alone"].data["model_info"]["cuda_graphs"]
    if stream_local:
        assert shared["steps_while_gpu_shared"] == 0 and shared["captures"] >= 4
    else:
        assert shared["steps_while_gpu_shared"] > 0 and shared["used"]
    assert alone["captures"] >= 4 and alone["steps_while_gpu_shared"] == 0  # 8 chunks, batches of 2
    texts = {name: [e.data["text"] for e in t.events] for name, t in runs.items()}
    assert texts["shared"] == texts["alone"] == texts["plain"], texts


# --- greedy_loop: the whole step as one graph -----------------------------------------------------
@pytest.mark.parametrize("kind,family", [("qwen2-vl", "qwen2_vl"), ("qwen2.5-vl", "qwen2_5_vl"),
                                         ("smolvlm", "smolvlm"), ("llava-next-video", "llava_next_video")])
def test_the_graphed_greedy_loop_gives_the_tokens_of_plain_generate(tiny_vlm, kind, family):  # noqa: F811
    plain = describe(tiny_vlm(kind), family=family)[1]
    fam, outs = describe(tiny_vlm(kind), RunAtReplay, loop=True, family=family)
    for got, want in zip(outs, plain):
        assert torch.equal(got, want)
    g = fam.graphs
    # per batch of 8: transformers takes 3 tokens (2 decoding steps), the loop 5: the first as is,
    # then one capture and 4 replays
    assert fam.notes == [] and g.captures == 2 and g.replays == 2 * 4 and g.shared_steps == 0


@pytest.mark.parametrize("case", ["repetition penalty", "an end token", "an end token after min_new_tokens"])
def test_the_loop_does_what_transformers_does_for_greedy_search(tiny_vlm, case):  # noqa: F811
    folder = tiny_vlm("qwen2-vl")
    settings, min_new = {}, None
    if case == "repetition penalty":
        settings = {"repetition_penalty": 1.6}
    else:  # a token the model does emit, in row 0 at the 6th new token, is made the end token
        n_prompt = describe(folder, new_tokens=12)[0].prepare(requests())["inputs"]["input_ids"].shape[1]
        first = describe(folder, new_tokens=12)[1][0]
        settings = {"eos_token_id": int(first[0, n_prompt + 5])}
        min_new = 0 if case == "an end token" else 9
    want = describe(folder, new_tokens=12, min_new_tokens=min_new, **settings)[1]
    fam, got = describe(folder, RunAtReplay, new_tokens=12, min_new_tokens=min_new, loop=True, **settings)
    assert fam.notes == [] and fam.graphs.captures == 2
    for g, w in zip(got, want):
        assert torch.equal(g, w), (g[:, -12:], w[:, -12:])
    if case == "an end token":
        assert want[0].shape[1] < n_prompt + 12 or bool((want[0][:, n_prompt:] == settings["eos_token_id"]).any())


def test_decoding_the_loop_cannot_do_stays_in_transformers_loop_and_says_why(tiny_vlm, plain, monkeypatch):  # noqa: F811
    from framework.generation import greedy_loop

    fam, outs = describe(tiny_vlm("qwen2-vl"), RunAtReplay, loop=True, no_repeat_ngram_size=3)
    assert fam.notes == ["decoding in transformers' loop (each forward still a CUDA graph): no_repeat_ngram_size=3"]
    assert fam._loop_ok is False and fam.graphs.replays > 0  # per-step graphs instead

    monkeypatch.setattr(greedy_loop, "learn", lambda *a: "input_ids is not the new token")
    fam, outs = describe(tiny_vlm("qwen2-vl"), RunAtReplay, loop=True)
    for got, want in zip(outs, plain):
        assert torch.equal(got, want)  # the batch is generated again, in transformers' loop
    assert fam.notes == ["decoding in transformers' loop (each forward still a CUDA graph): input_ids is not the "
                         "new token"]


def test_the_rule_is_learned_from_two_steps_and_refuses_what_it_does_not_know():
    from framework.generation.greedy_loop import advance, learn, same_inputs

    cache = object()
    mask1 = torch.zeros(2, 1, 1, 8, dtype=torch.bool)
    mask1[..., :5] = True
    mask1[1, ..., :2] = False  # row 1 is padded on the left
    mask2 = mask1.clone()
    mask2[..., 5] = True
    first = {"input_ids": torch.tensor([[7], [8]]), "position_ids": torch.tensor([[[4], [2]]] * 3),
             "attention_mask": {"full_attention": mask1}, "mm_token_type_ids": torch.zeros(2, 1, dtype=torch.long),
             "past_key_values": cache, "use_cache": True}
    second = {**first, "input_ids": torch.tensor([[3], [9]]), "position_ids": first["position_ids"] + 1,
              "attention_mask": {"full_attention": mask2}}
    rule = learn(first, second, torch.tensor([3, 9]))
    assert rule.kinds == {"input_ids": "token", "position_ids": "plus_one", "attention_mask.full_attention": "unmask",
                          "mm_token_type_ids": "same"} and rule.columns == {"attention_mask.full_attention": 5}
    assert same_inputs(advance(rule, first, torch.tensor([3, 9]), 1), second)
    third = advance(rule, second, torch.tensor([1, 1]), 2)
    assert bool(third["attention_mask"]["full_attention"][..., 6].all()) and not bool(
        third["attention_mask"]["full_attention"][..., 7].any())
    assert learn(first, {**second, "position_ids": first["position_ids"] + 2}, torch.tensor([3, 9])) == \
        "position_ids changes in a way the loop does not know"
    assert learn(first, {**second, "use_cache": False}, torch.tensor([3, 9])) == "a non-tensor input changes between steps"
    assert learn(first, second, torch.tensor([3, 3])) == "input_ids is not the new token"


def test_inputs_read_only_for_positions_are_dropped_from_steps_that_carry_positions():
    """transformers 5.17 hands Qwen2-VL's decoding steps ``mm_token_type_ids`` whole, one column
    longer each time: dropped (the family names it), the steps keep one shape and are captured."""
    import types

    static = STATIC
    keys = []

    def forward(**kw):
        keys.append(sorted(kw))
        return types.SimpleNamespace(logits=kw["input_ids"].float())

    g = RunAtReplay(forward, [], unused=("mm_token_type_ids", "video_grid_thw"))
    for n in range(4):
        g(input_ids=torch.full((2, 1), n), past_key_values=static, position_ids=torch.full((3, 2, 1), 10 + n),
          mm_token_type_ids=torch.zeros(2, 20 + n, dtype=torch.long), video_grid_thw=torch.ones(2, 3))
    assert g.enabled and g.captures == 1 and g.replays == 3
    assert all(k == ["input_ids", "past_key_values", "position_ids"] for k in keys)


def test_graphs_are_on_by_default_only_for_the_families_checked_on_a_gpu():
    for family, default in [("qwen2_vl", True), ("qwen2_5_vl", True), ("smolvlm", False),
                            ("llava_next_video", False), ("video_llava", False)]:
        assert family_class(family)(GenerationOptions()).wants_graphs() is default, family
        assert family_class(family)(GenerationOptions(cuda_graphs=True)).wants_graphs() is True
        assert family_class(family)(GenerationOptions(cuda_graphs=False)).wants_graphs() is False
