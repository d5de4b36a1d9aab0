"""``framework.generation.fused_norm``: the standard RMSNorm layers of fusion's summary model and of the
Qwen-VL decoders as ``F.rms_norm`` (one kernel on CUDA) compute transformers' output; others are left. The GPU
test covers ``fused_projections`` too (tests/test_fused_projections.py has its CPU tests)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from framework.generation import fused_norm  # noqa: E402


def _norms(model):
    return [m for m in model.modules() if type(m).__name__.endswith("RMSNorm")]


def _chat_model(tmp_path, dtype=torch.float32):
    from transformers import AutoModelForCausalLM

    from framework.testing.llm import make_tiny_chat_model

    model = AutoModelForCausalLM.from_pretrained(make_tiny_chat_model(tmp_path / "tiny"), local_files_only=True,
                                                 dtype=dtype).eval()
    torch.manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)  # (norm weights too: not all ones)
    return model


def chat_answers_alike_after(model, install):
    """The tiny chat model's logits and greedy tokens before and after ``install(model)``: the same (fp32);
    ``install``'s result."""
    ids = torch.tensor([[5, 9, 14, 3, 7, 22, 8, 30, 2]])
    kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        logits, tokens = model(ids).logits, model.generate(**kw)
        done = install(model)
        torch.testing.assert_close(model(ids).logits, logits, rtol=1e-5, atol=1e-5)
        assert torch.equal(model.generate(**kw), tokens)
    return done


def test_fused_norms_give_the_models_logits_and_tokens(tmp_path):
    model = _chat_model(tmp_path)
    assert fused_norm.install(model) == 0  # on the CPU: left as they are
    count = chat_answers_alike_after(model, lambda m: fused_norm.install(m, force=True))
    assert count == len(_norms(model)) == 2 * model.config.num_hidden_layers + 1
    assert all(m.forward.__func__ is fused_norm._fused_forward for m in _norms(model))


def test_in_bfloat16_a_fused_norm_is_within_a_rounding_step(tmp_path):
    model = _chat_model(tmp_path, torch.bfloat16)
    norm = _norms(model)[0]
    x = torch.randn(4, 7, norm.weight.shape[0], dtype=torch.bfloat16)
    want = norm(x)
    fused_norm.install(model, force=True)
    got = norm(x)
    assert got.dtype == want.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.float(), rtol=2 ** -7, atol=1e-6)  # bfloat16's 8 bits: one step
    assert norm(x.float()).dtype == torch.float32  # another dtype than the weight's: transformers' own forward


def test_other_norms_and_a_switched_off_environment_are_left_as_they_are(tmp_path):
    class GemmaRMSNorm(torch.nn.Module):  # weight * (1 + ...): not the standard formula
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(8))
            self.variance_epsilon = 1e-6

    model = torch.nn.Sequential(GemmaRMSNorm(), torch.nn.LayerNorm(8))
    assert fused_norm.install(model, force=True) == 0
    assert fused_norm.install(_chat_model(tmp_path), force=True, env={"FRAMEWORK_FUSED_RMS_NORM": "0"}) == 0


def vl_answers_alike_after(tiny_vlm, kind, install):  # noqa: F811
    """A tiny Qwen-VL model's logits and vision features before and after ``install(model)``: the same (fp32);
    ``install``'s result and the model."""
    from test_vlm_vision_attention import features, tower

    model, visual = tower(tiny_vlm(kind), kind)
    ids = torch.tensor([[3, 8, 12, 5, 9, 2]])
    with torch.inference_mode():
        before = model(input_ids=ids).logits
        seen = features(visual, [[2, 4, 4]])  # (Qwen2.5-VL's tower has RMSNorm layers and gate/up MLPs too)
        done = install(model)
        torch.testing.assert_close(model(input_ids=ids).logits, before, rtol=1e-5, atol=1e-5)
        for a, b in zip(seen, features(visual, [[2, 4, 4]])):
            if a is not None:
                torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    return done, model


@pytest.mark.parametrize("kind", ["qwen2-vl", "qwen2.5-vl"])
def test_the_qwen_vl_decoders_norms_are_fused_and_answer_alike(tiny_vlm, kind):  # noqa: F811
    done, model = vl_answers_alike_after(tiny_vlm, kind, lambda m: fused_norm.install(m, force=True))
    standard = [m for m in model.modules() if type(m).__name__ in fused_norm.STANDARD]  # (2.5: the tower's too)
    assert len(standard) >= model.config.text_config.num_hidden_layers * 2 + 1
    assert done == len(standard)


@pytest.mark.gpu
@pytest.mark.parametrize("variable,attribute,key", [
    ("FRAMEWORK_FUSED_RMS_NORM", "fused_norms", "fused_rms_norms"),  # (framework.generation.fused_norm)
    ("FRAMEWORK_FUSED_PROJECTIONS", "fused_projections", "fused_projections"),  # (.fused_projections)
])
def test_on_cuda_the_summary_model_is_fused_and_answers_as_unfused(tmp_path, monkeypatch, variable, attribute, key):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from framework.llm.transformers_backend import TransformersBackend
    from framework.testing.llm import make_tiny_chat_model

    folder = make_tiny_chat_model(tmp_path / "tiny")
    chats = [[{"role": "user", "content": "Scene " + "hello " * n + "Summarize."}] for n in (1, 9)]
    answers = {}
    for switch in ("0", "1"):
        monkeypatch.setenv(variable, switch)
        backend = TransformersBackend({"model": str(folder), "device": "cuda", "dtype": "float32"})
        backend.load()
        try:
            done = getattr(backend, attribute)
            assert (any(done.values()) if isinstance(done, dict) else done > 0) == (switch == "1")
            torch.manual_seed(3)
            with torch.no_grad():
                for p in backend.model.parameters():
                    p.normal_(0, 0.5)  # (in place: fused projections' stacked weights see it through their views)
            answers[switch] = [backend.generate(c, max_new_tokens=12) for c in chats]
            assert (key in backend.cuda_graphs) == (switch == "1")
        finally:
            backend.close()
    assert answers["1"] == answers["0"]


from vlm_fixtures import tiny_vlm  # noqa: E402,F401  (a fixture)
