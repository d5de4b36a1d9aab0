"""LLM backends: registration, the transformers backend on a tiny chat model saved on disk, loaded
from the folder the runner hands over (and from nowhere else), refusals, a damaged model, and the
openai backend against a real ``transformers serve`` process."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from framework.analyzer import AnalyzerUnavailable
from framework.llm import LLMError, LLMUnavailable, estimate_tokens, make_backend
from framework.llm.openai_backend import OpenAIBackend
from framework.testing.llm import install_in_hf_cache, make_tiny_chat_model
from framework.llm.transformers_backend import TransformersBackend
from framework.plugins import build_plugin_manager
from framework.models import load_manifest

MESSAGES = [{"role": "system", "content": "You summarize videos."},
            {"role": "user", "content": "Scene 1 [0.0-4.0 s] speech: hello. Summarize."}]


#: prompts of different lengths (they pad differently in a batch)
CHATS = [[{"role": "user", "content": "Scene " + "hello " * n + "Summarize."}] for n in (1, 9, 4)]


def spread_weights(backend: TransformersBackend) -> None:
    """Weights far from the tiny model's near-uniform start, so that prompts lead to different answers."""
    import torch

    torch.manual_seed(3)
    with torch.no_grad():
        for p in backend.model.parameters():
            p.normal_(0, 0.5) if p.dim() > 1 else None


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_chat_model(tmp_path_factory.mktemp("llm") / "tiny-chat")


def test_builtin_backends_are_registered_through_the_hook():
    host = build_plugin_manager(load_entrypoints=False)
    assert {"transformers", "openai", "extractive"} <= set(host.llm_backends)
    assert host.llm_backends["openai"].plugin == "builtin:framework.llm"
    assert "fusion" in host.analyzers


def test_estimate_tokens_is_conservative_for_english():
    text = "The man walks into the kitchen and opens the window. " * 20
    # a real BPE tokenizer gives ~1 token per English word here; the estimate must not be lower
    assert estimate_tokens(text) >= len(text.split())
    assert estimate_tokens("") == 0


def test_make_backend_names_bad_options_and_valid_choices():
    with pytest.raises(LLMError) as exc:
        make_backend("openai", {"base_url": "http://x/v1", "bogus": 1})
    assert "bogus" in str(exc.value) and "base_url" in str(exc.value)
    with pytest.raises(LLMError, match="registered backends: extractive, openai, transformers"):
        make_backend("nope", {})


def test_transformers_backend_on_a_local_snapshot_folder(tiny_model):
    backend = TransformersBackend({"model": str(tiny_model), "device": "cpu"})
    assert backend.check_available() is None
    backend.load()
    try:
        assert backend.context_window == 8192  # from config.max_position_embeddings
        prompt = backend.render_prompt(MESSAGES)
        assert prompt.startswith("<|im_start|>system\nYou summarize videos.<|im_end|>")
        assert prompt.endswith("<|im_start|>assistant\n")  # the chat template with a generation prompt
        ids = backend.tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        assert backend.count_messages(MESSAGES) == len(ids)
        assert backend.count_tokens("hello world") == len(backend.tokenizer("hello world")["input_ids"])
        out = backend.generate(MESSAGES, max_new_tokens=8)
        assert isinstance(out, str)
        with pytest.raises(LLMError, match="exceeds the context window"):
            backend.generate([{"role": "user", "content": "x " * 9000}], max_new_tokens=8)
    finally:
        backend.close()


def test_independent_chats_are_generated_in_padded_batches_with_the_answers_of_one_at_a_time(tiny_model):
    """``generate_many``: prompts of different lengths, left-padded into batches of ``max_batch``,
    give (greedy, float32) the answers each prompt gets alone, in order."""
    backend = TransformersBackend({"model": str(tiny_model), "device": "cpu", "max_batch": 2})
    backend.load()
    try:
        import torch

        spread_weights(backend)
        chats = CHATS
        alone = [backend.generate(c, max_new_tokens=10) for c in chats]
        assert len(set(alone)) > 1  # the prompts lead to different answers: a mix-up would show
        calls = []
        generate = backend.model.generate
        backend.model.generate = lambda **kw: calls.append(kw["input_ids"].shape) or generate(**kw)
        assert backend.generate_many(chats, max_new_tokens=10) == alone
        assert [shape[0] for shape in calls] == [2, 1]  # batches of at most max_batch
        with pytest.raises(LLMError, match="exceeds the context window"):
            backend.generate_many([chats[0], [{"role": "user", "content": "x " * 9000}]], max_new_tokens=8)

        def short_of_memory(**kw):  # a batch of more than one prompt does not fit
            calls.append(kw["input_ids"].shape)
            if kw["input_ids"].shape[0] > 1:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return generate(**kw)

        calls.clear()
        backend.model.generate = short_of_memory
        assert backend.generate_many(chats, max_new_tokens=10) == alone  # each half in turn, down to one
        assert [shape[0] for shape in calls] == [2, 1, 1, 1] and backend.oom_splits == 1
    finally:
        backend.close()


def test_on_a_gpu_decoding_steps_replay_as_cuda_graphs_with_the_answers_of_plain_decoding(tiny_model):
    """Off a GPU no graphs are installed. With the capture stand-in in front of the forward (as on a
    GPU), greedy answers, alone and batched, are those of plain decoding, in the graphed greedy loop
    and in transformers' loop; every generate drops its graph (a new cache each time)."""
    from graph_fixtures import RunAtReplay

    backend = TransformersBackend({"model": str(tiny_model), "device": "cpu", "max_batch": 2})
    backend.load()
    try:
        assert backend.graphs is None and backend.cuda_graphs is None
        spread_weights(backend)
        chats = CHATS
        alone = [backend.generate(c, max_new_tokens=10) for c in chats]
        batched = backend.generate_many(chats, max_new_tokens=10)
        assert len(set(alone)) > 1

        backend.graphs = RunAtReplay(backend.model.forward, backend.notes, backend._capture_gate)
        backend.model.forward = backend.graphs
        assert [backend.generate(c, max_new_tokens=10) for c in chats] == alone
        assert backend.generate_many(chats, max_new_tokens=10) == batched
        info = backend.cuda_graphs
        # the loop's wall time, up to its first own step and in its steps (summed over the calls)
        assert info.pop("prefill_s") > 0 and info.pop("loop_s") > 0, info
        # per generate (3 alone, 2 batches): transformers takes 3 tokens, the loop 7: one as is,
        # then 6 replayed from one capture
        assert info == {"used": True, "captures": 5, "replayed_steps": 5 * 6, "steps_while_gpu_shared": 0,
                        "greedy_loop_calls": 5}, info
        assert backend.graphs._graph is None and backend.notes == []

        backend._loop_ok = False  # transformers' loop, each forward replayed
        assert [backend.generate(c, max_new_tokens=10) for c in chats] == alone
        assert backend.cuda_graphs["captures"] == 8 and backend.cuda_graphs["greedy_loop_calls"] == 5
        assert backend.notes == []
    finally:
        backend.close()


@pytest.mark.gpu
def test_real_cuda_graphs_give_the_answers_of_plain_decoding(tiny_model):
    """On CUDA (float32): the summary model's answers, alone and batched, are the same with and
    without graphs, and the graphs were captured and replayed in the greedy loop."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    chats = CHATS
    answers, info = {}, None
    for graphs in (False, True):
        backend = TransformersBackend({"model": str(tiny_model), "device": "cuda", "dtype": "float32",
                                       "max_batch": 2, "cuda_graphs": graphs})
        backend.load()
        try:
            spread_weights(backend)
            answers[graphs] = ([backend.generate(c, max_new_tokens=12) for c in chats],
                               backend.generate_many(chats, max_new_tokens=12))
            info = backend.cuda_graphs
            assert backend.notes == []
        finally:
            backend.close()
    assert answers[True] == answers[False]
    assert info is not None and info["greedy_loop_calls"] == 5 and info["captures"] == 5 and info["replayed_steps"] == 5 * 8


def test_a_model_that_refuses_the_static_cache_decodes_without_it_and_says_so(tiny_model, monkeypatch):
    from graph_fixtures import RunAtReplay

    backend = TransformersBackend({"model": str(tiny_model), "device": "cpu"})
    backend.load()
    try:
        plain = backend.generate(MESSAGES, max_new_tokens=6)
        backend.graphs = RunAtReplay(backend.model.forward, backend.notes, backend._capture_gate)
        backend.model.forward = backend.graphs
        generate = backend.model.generate

        def no_static(**kw):
            if kw.get("cache_implementation") == "static":
                raise ValueError("this model does not support a static cache (simulated)")
            return generate(**kw)

        backend.model.generate = no_static
        assert backend.generate(MESSAGES, max_new_tokens=6) == plain
        assert "static KV cache not supported" in backend.notes[-1]  # after the graphed loop failed too
        noted = len(backend.notes)
        assert backend.generate(MESSAGES, max_new_tokens=6) == plain and len(backend.notes) == noted  # asked once
    finally:
        backend.close()


def _hub_cache() -> Path:
    """The Hugging Face hub cache the test's environment points at (conftest sets ``HF_HOME``)."""
    return Path(os.environ["HF_HOME"]) / "hub"


def _install_default_model(tiny_model: Path) -> Path:
    """The tiny model in the HF cache as the default summary model, at the commit the manifest pins."""
    pin = load_manifest()["qwen2.5-1.5b-instruct"].revision  # a pull fetches the pinned commit
    return install_in_hf_cache(tiny_model, "Qwen/Qwen2.5-1.5B-Instruct", _hub_cache(), commit=pin)


def test_transformers_backend_loads_the_folder_it_is_handed_and_looks_nothing_up(tiny_model):
    snap = _install_default_model(tiny_model)
    # the model is in the cache, but the backend does not look for it: the runner hands folders over
    lookup = TransformersBackend({"device": "cpu"})  # the default manifest id, no folder
    assert lookup.options.model == "qwen2.5-1.5b-instruct"
    assert "`framework models pull qwen2.5-1.5b-instruct`" in (lookup.check_available() or "")
    with pytest.raises(LLMUnavailable, match="handed the fusion step no folder"):
        lookup.load()
    backend = TransformersBackend({"device": "cpu", "model_path": str(snap)})
    assert backend.check_available() is None
    backend.load()
    try:
        assert backend.folder == snap and backend.model_name == "qwen2.5-1.5b-instruct"
        assert isinstance(backend.generate(MESSAGES, max_new_tokens=4), str)
    finally:
        backend.close()


def test_the_runner_hands_fusion_the_cached_manifest_model(tiny_model, tmp_path, monkeypatch):
    """End to end: the runner resolves fusion's manifest id to the cached snapshot and the
    transformers backend loads exactly that folder."""
    from framework.runner import analyze
    from framework.summary import Summary
    from framework.testing.synth import make_audio_only

    snap = _install_default_model(tiny_model)
    handed: list[str | None] = []
    original = TransformersBackend.load

    def spy(self):
        handed.append(self.options.model_path)
        return original(self)

    monkeypatch.setattr(TransformersBackend, "load", spy)
    audio = make_audio_only(tmp_path / "talk.m4a", duration=3.0)
    reg = tmp_path / "registry.yaml"
    reg.write_text("analyzers:\n  audio_analysis: {enabled: true}\n  fusion:\n    enabled: true\n"
                   "    params: {backend: transformers, token_budget: 1500, max_new_tokens: 16, chunk_new_tokens: 16,"
                   " backend_options: {device: cpu}}\n")
    res = analyze(audio, registry_path=reg, out_dir=tmp_path / "run", progress=False, load_entrypoints=False)
    track = res.timeline.tracks["fusion"]
    assert track.status == "ok", track.reason
    assert handed == [str(snap)]
    assert track.data["llm_fallback_reason"] is None
    summary = Summary.from_track(track)
    assert summary.backend == "transformers" and summary.model == "qwen2.5-1.5b-instruct"
    assert [m.id for m in track.models] == ["qwen2.5-1.5b-instruct"]


def test_missing_model_offline_names_the_pull_command():
    backend = TransformersBackend({"model": "qwen2.5-1.5b-instruct"})
    reason = backend.check_available()
    assert reason is not None and "`framework models pull qwen2.5-1.5b-instruct`" in reason
    with pytest.raises(LLMUnavailable) as exc:
        backend.load()
    assert isinstance(exc.value, AnalyzerUnavailable)  # the runner turns it into "skipped"
    assert "framework models pull qwen2.5-1.5b-instruct" in str(exc.value)
    assert not any(_hub_cache().glob("models--*"))  # nothing was downloaded


def test_fusion_falls_back_when_the_model_weights_are_damaged(tiny_model, tmp_path):
    from analyzers.fusion import Fusion
    from analyzers.fusion.synthetic import synthetic_timeline
    from framework import AnalyzerInputs
    from framework.runner import call_analyzer
    from framework.summary import Summary

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_model, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])  # a download cut short
    fusion = Fusion({"backend": "transformers", "backend_options": {"device": "cpu"}})
    tl = synthetic_timeline(30.0)
    fusion_inputs = AnalyzerInputs(video=tl.video, upstream=dict(tl.tracks))
    fusion.load("cpu", {"qwen2.5-1.5b-instruct": damaged})  # what the runner hands over
    try:
        track = fusion.analyze(fusion_inputs)
    finally:
        fusion.unload()
    reason = track.data["llm_fallback_reason"]
    assert reason and reason.startswith("the transformers backend could not start") and "Error" in reason
    summary = Summary.from_track(track)
    assert summary.extractive and any("this summary is extractive" in n for n in summary.notes)
    # and through the runner's wrapper, the track is ok, not failed
    assert call_analyzer(Fusion({"backend": "transformers", "backend_options": {"device": "cpu"}}),
                         fusion_inputs, "cpu", None, {"qwen2.5-1.5b-instruct": damaged}).status == "ok"


def test_dialogpt_and_gpt2_are_refused_unless_allowed(tmp_path):
    backend = TransformersBackend({"model": "dialogpt-medium"})
    with pytest.raises(LLMError, match="cannot follow a summarization instruction"):
        backend.load()
    gpt2 = make_tiny_chat_model(tmp_path / "tiny-gpt2", model_type="gpt2", chat_template=None)
    with pytest.raises(LLMError, match=r"base language model|allow_base_model"):
        TransformersBackend({"model": str(gpt2), "device": "cpu"}).load()
    allowed = TransformersBackend({"model": str(gpt2), "device": "cpu", "allow_base_model": True})
    allowed.load()
    try:
        assert allowed.render_prompt(MESSAGES).endswith("Assistant:")
        assert isinstance(allowed.generate(MESSAGES, max_new_tokens=4), str)
    finally:
        allowed.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_openai_backend_reports_an_unreachable_server():
    port = _free_port()
    backend = OpenAIBackend({"base_url": f"http://127.0.0.1:{port}/v1", "connect_timeout_s": 1})
    reason = backend.check_available()
    assert reason is not None and f"127.0.0.1:{port}" in reason and "base_url" in reason
    with pytest.raises(LLMUnavailable, match="cannot reach"):
        backend.generate(MESSAGES, max_new_tokens=4)


def test_openai_backend_needs_the_named_key_variable(monkeypatch):
    monkeypatch.delenv("MY_LLM_KEY", raising=False)
    backend = OpenAIBackend({"base_url": "http://127.0.0.1:9/v1", "api_key_env": "MY_LLM_KEY"})
    assert "MY_LLM_KEY" in (backend.check_available() or "")


@pytest.fixture
def serve(tiny_model, tmp_path):
    """``transformers serve`` on the tiny local model, CPU, offline; stopped in a finally."""
    exe = Path(sys.executable).parent / "transformers"
    if not exe.exists():
        pytest.skip("the transformers CLI is not installed in this environment")
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "HF_HOME": str(tmp_path / "hf")}
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([str(exe), "serve", str(tiny_model), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu", "--log-level", "info"], stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    try:
        import httpx

        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"transformers serve exited with {proc.returncode}:\n{log.read()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"transformers serve was not ready after 180 s:\n{log.read()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", str(tiny_model)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_openai_backend_against_transformers_serve(serve):
    base_url, model = serve
    backend = OpenAIBackend({"base_url": base_url, "model": model, "timeout_s": 120})
    assert backend.check_available() is None
    backend.load()
    out = backend.generate(MESSAGES, max_new_tokens=8)
    assert isinstance(out, str)
    # the server is pinned to this model: asking for another is an HTTP error we report with its body
    other = OpenAIBackend({"base_url": base_url, "model": "someone/else", "timeout_s": 60})
    with pytest.raises(LLMError, match="HTTP 4"):
        other.generate(MESSAGES, max_new_tokens=4)
    backend.close()
    other.close()

    # and the whole fusion step through it
    from analyzers.fusion import Fusion
    from analyzers.fusion.synthetic import synthetic_timeline
    from framework import AnalyzerInputs
    from framework.summary import Summary

    tl = synthetic_timeline(40.0)
    fusion = Fusion({"backend": "openai", "base_url": base_url, "model": model, "token_budget": 1500,
                     "max_new_tokens": 24, "chunk_new_tokens": 16,
                     "backend_options": {"context_window": 8192, "timeout_s": 120}})
    track = fusion.analyze(AnalyzerInputs(video=tl.video, upstream=tl.tracks, host=build_plugin_manager(load_entrypoints=False)))
    fusion.unload()
    summary = Summary.from_track(track)
    assert summary.backend == "openai" and summary.model == model
    assert track.data["fusion"]["calls"] >= 1
    assert summary.tokens_used <= 1500
    g = summary.grounding
    assert g.checked == g.kept + g.snapped + g.dropped


def test_fusion_with_a_local_model_is_placed_by_the_plan_and_its_model_loads_there(tiny_model, monkeypatch, tmp_path):
    """fusion's device is auto: with a local summary model the plan puts it on a GPU (or the CPU when the
    registry says `device: cpu`), and the backend loads the model where the plan put it. Before, fusion was
    planned as a CPU analyzer while the transformers backend took any GPU it saw."""
    from analyzers.fusion import Fusion
    from framework.scheduler import Demand, plan, resolve_device

    with_model = Fusion({"backend": "transformers"})
    assert with_model.device == "auto" and with_model.model_ids() == ["qwen2.5-1.5b-instruct"]
    demand = Demand("fusion", with_model.device, 4000.0, ("cut_analysis",))
    placed = plan([Demand("cut_analysis"), demand], 12_000.0, ["cuda:0"])
    assert placed.placements["fusion"].device == "cuda:0"
    forced, note = resolve_device(with_model.device, "cpu")
    assert forced == "cpu" and "device: cpu" in note
    extractive = Demand("fusion", Fusion({"backend": "extractive"}).device, 0.0)  # no model: nothing to place
    assert plan([extractive], 12_000.0, ["cuda:0"]).placements["fusion"].device == "cpu"

    seen = {}
    monkeypatch.setattr(TransformersBackend, "load", lambda self: seen.setdefault("device", self.options.device))
    for device in ("cuda:1", "cpu"):
        seen.clear()
        fusion = Fusion({"backend": "transformers"})
        fusion.load(device, {"qwen2.5-1.5b-instruct": tiny_model})
        assert seen["device"] == device
    fusion = Fusion({"backend": "transformers", "backend_options": {"device": "cpu"}})  # the user's choice wins
    fusion.load("cuda:0", {"qwen2.5-1.5b-instruct": tiny_model})
    assert fusion.backend.options.device == "cpu"


def test_without_a_gpu_fusion_runs_on_the_cpu_however_long_it_took_there_before(tmp_path, sample_video, monkeypatch):
    """fusion is `auto` now, but unlike a VLM it is never left out for its CPU time: a summary is always
    wanted (it always ran on the CPU before, and it falls back to an extractive one)."""
    import json as _json

    from analyzers.fusion import Fusion
    from framework.devices import GPUs
    from framework.measurements import Measurements, measurement_key
    from framework.registry import load_registry
    from framework.runner import plan_video

    monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True: GPUs([], {}, {}, {}))
    registry = tmp_path / "registry.yaml"
    registry.write_text("analyzers:\n  fusion:\n    params: {backend: transformers}\n")
    key = measurement_key("fusion", Fusion.version, ["qwen2.5-1.5b-instruct"], "bf16", "cpu")
    m = Measurements()
    m.path.parent.mkdir(parents=True, exist_ok=True)
    m.path.write_text(_json.dumps({key: {"seconds_per_video_s": 1000.0, "runs": 1}}))  # hours on the CPU
    report = plan_video(sample_video.path, registry=load_registry(registry), load_entrypoints=False)
    assert "fusion" not in report.plan.unplanned, report.plan.unplanned
    assert report.plan.placements["fusion"].device == "cpu"
    assert Fusion.cpu_always_practical and report.plan.seconds["fusion"] > 1000


def test_a_random_models_greedy_words_are_its_tokenizers_word_pieces():
    """``words_only``: the benchmarks' real-size random models get small tokenizers; their greedy words must be
    that tokenizer's word pieces, or the text decodes to nothing (empty scene descriptions) or re-encodes into
    more tokens than were generated."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from framework.testing.llm import _CORPUS, tiny_bpe_tokenizer, words_only

    tok = tiny_bpe_tokenizer(_CORPUS, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], eos="<|im_end|>",
                             pad="<|endoftext|>")
    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(vocab_size=3000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    prompt = torch.tensor([[5, 17, 42, 99, 7]])
    kw = dict(max_new_tokens=40, min_new_tokens=40, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        before = model.generate(prompt, **kw)[0, 5:].tolist()
        kept = words_only(model, tok)
        after = model.generate(prompt, **kw)[0, 5:].tolist()
    assert max(before) >= len(tok)  # (most of a random model's words lie beyond a small tokenizer)
    assert 0 < kept < len(tok) and len(after) == 40 and max(after) < len(tok)
    text = tok.decode(after)
    assert text.strip() and all(c.isalpha() or c in " .," for c in text)
    assert abs(len(tok(text, add_special_tokens=False)["input_ids"]) - 40) <= 6  # (about as many tokens again)
