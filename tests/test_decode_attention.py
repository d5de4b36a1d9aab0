"""``framework.generation.decode_attention``: a decoding step's attention as two matrix products per
key/value head gives SDPA's output (bool and additive masks, batches, grouped heads); anything but a
one-token step is SDPA's; a model switched to it decodes the same tokens."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from framework.generation import decode_attention  # noqa: E402


class Module(torch.nn.Module):
    """What SDPA's forward reads of an attention module."""

    def __init__(self, groups: int):
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = True


def sdpa(*args, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(*args, **kwargs)[0]


@pytest.mark.parametrize("batch,heads,kv_heads,mask", [(1, 12, 2, "bool"), (3, 4, 2, "bool"), (2, 8, 8, "float"),
                                                       (2, 6, 3, None), (4, 4, 1, "bool")])
def test_a_one_token_step_attends_as_sdpa_does(batch, heads, kv_heads, mask):
    torch.manual_seed(0)
    keys, dim = 37, 16
    q = torch.randn(batch, heads, 1, dim)
    k, v = torch.randn(batch, kv_heads, keys, dim), torch.randn(batch, kv_heads, keys, dim)
    m = None
    if mask is not None:  # a static cache: the filled columns let through, per row, as the masks do
        filled = torch.arange(keys)[None, :] < torch.tensor([keys - 5 * i for i in range(batch)])[:, None]
        m = filled[:, None, None, :]
        if mask == "float":
            m = torch.zeros(m.shape).masked_fill(~m, torch.finfo(torch.float32).min)
    module = Module(heads // kv_heads)
    out, weights = decode_attention.attention(module, q, k, v, m, scaling=0.3)
    assert weights is None and out.shape == (batch, 1, heads, dim)
    assert torch.allclose(out, sdpa(module, q, k, v, m, scaling=0.3), atol=1e-5)


def test_anything_but_a_one_token_step_is_sdpas():
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    module = Module(2)
    out, _ = decode_attention.attention(module, q, k, v, None, is_causal=True)
    assert torch.equal(out, sdpa(module, q, k, v, None, is_causal=True))
    # a one-token step with what only SDPA's path knows (a logit soft cap: it refuses it) is SDPA's too
    with pytest.raises(ValueError, match="softcap"):
        decode_attention.attention(module, q[:, :, :1], k, v, None, softcap=30.0)


def test_a_model_switched_to_it_decodes_the_tokens_sdpa_decodes(tmp_path):
    """A tiny Qwen2 (grouped heads) over a static cache, greedy: the same tokens with either attention."""
    from decode_fixtures import tiny_decoder

    model, ids, mask = tiny_decoder(tmp_path / "tiny", torch.float32)
    kw = dict(max_new_tokens=12, do_sample=False, cache_implementation="static", pad_token_id=0)
    with torch.inference_mode():
        before = model.generate(input_ids=ids, attention_mask=mask, **kw)
        assert decode_attention.install(model) is None
        assert model.config._attn_implementation == decode_attention.NAME
        calls = []
        real = decode_attention.attention

        def counted(module, query, *args, **kwargs):
            calls.append(query.shape[2])
            return real(module, query, *args, **kwargs)

        from transformers import AttentionInterface

        AttentionInterface.register(decode_attention.NAME, counted)
        try:
            after = model.generate(input_ids=ids, attention_mask=mask, **kw)
        finally:
            decode_attention.register()
    assert torch.equal(after, before)
    assert calls.count(1) == 2 * 11 and calls[0] == 7  # (2 layers) the prefill, then 11 one-token steps


def test_a_model_not_on_sdpa_is_left_as_it_is():
    class Config:
        _attn_implementation = "eager"

    class Model:
        config = Config()

    assert decode_attention.install(Model()) is None and Model.config._attn_implementation == "eager"


@pytest.mark.gpu
def test_on_cuda_the_summary_model_answers_as_with_sdpa(tmp_path, monkeypatch):
    """On CUDA (float32, graphs on): fusion's backend switches to it and answers, alone and batched,
    as it does with SDPA's attention."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from framework.llm.transformers_backend import TransformersBackend
    from framework.testing.llm import make_tiny_chat_model

    folder = make_tiny_chat_model(tmp_path / "tiny")
    chats = [[{"role": "user", "content": "Scene " + "hello " * n + "Summarize."}] for n in (1, 9, 4)]
    answers = {}
    for switched in (False, True):
        if not switched:
            monkeypatch.setattr(decode_attention, "install", lambda model: None)
        else:
            monkeypatch.undo()
        backend = TransformersBackend({"model": str(folder), "device": "cuda", "dtype": "float32", "max_batch": 2})
        backend.load()
        try:
            torch.manual_seed(3)
            with torch.no_grad():
                for p in backend.model.parameters():
                    p.normal_(0, 0.5) if p.dim() > 1 else None
            answers[switched] = ([backend.generate(c, max_new_tokens=12) for c in chats],
                                 backend.generate_many(chats, max_new_tokens=12))
            assert backend.decode_attention is switched and backend.notes == []
            assert backend.cuda_graphs["replayed_steps"] > 0
        finally:
            backend.close()
    assert answers[True] == answers[False] and len(set(answers[True][0])) > 1
