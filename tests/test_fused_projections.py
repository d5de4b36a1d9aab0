"""``framework.generation.fused_projections``: a decoder layer's q/k/v projections as one product and its MLP's
gate/up projections as one compute transformers' outputs (fusion's summary model, the Qwen-VL decoders);
the parameters stay where the state_dict says, as views of the stacked weights; others are left. On CUDA:
tests/test_fused_norm.py's GPU test, for both fusions."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from framework.generation import fused_projections  # noqa: E402
from test_fused_norm import _chat_model, chat_answers_alike_after, vl_answers_alike_after  # noqa: E402


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_fused_projections_give_the_models_logits_and_tokens_and_keep_its_state_dict(tmp_path):
    model = _chat_model(tmp_path)
    state = _state(model)
    assert fused_projections.install(model) == {"qkv": 0, "gate_up": 0, "joint_rotary": 0}  # on the CPU: as they are
    layers = model.config.num_hidden_layers
    done = chat_answers_alike_after(model, lambda m: fused_projections.install(m, force=True))
    assert done == {"qkv": layers, "gate_up": layers, "joint_rotary": layers}
    after = model.state_dict()
    assert list(after) == list(state) and all(torch.equal(after[k], v) for k, v in state.items())
    attention = model.model.layers[0].self_attn
    q, k, v = attention.q_proj, attention.k_proj, attention.v_proj
    # one storage: the three weights are views of the stacked one (no memory added)
    assert q.weight.untyped_storage().data_ptr() == k.weight.untyped_storage().data_ptr() == \
        v.weight.untyped_storage().data_ptr()
    assert k.weight.data_ptr() == q.weight.data_ptr() + q.weight.numel() * q.weight.element_size()


def test_a_key_or_value_projection_of_another_input_is_its_own_product(tmp_path):
    model = _chat_model(tmp_path)
    attention = model.model.layers[0].self_attn
    x, y = torch.randn(2, 3, model.config.hidden_size), torch.randn(2, 3, model.config.hidden_size)
    with torch.inference_mode():
        want = [torch.nn.functional.linear(t, p.weight, p.bias)
                for t, p in ((x, attention.q_proj), (y, attention.k_proj), (x, attention.v_proj))]
        fused_projections.install(model, force=True)
        got = [attention.q_proj(x), attention.k_proj(y), attention.v_proj(x)]  # k: not the input q_proj had
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        got = [attention.v_proj(x), attention.k_proj(x)]  # v first: nothing held, each computes its own
        torch.testing.assert_close(got[0], want[2], rtol=1e-5, atol=1e-5)


def test_other_layers_and_a_switched_off_environment_are_left_as_they_are(tmp_path):
    assert fused_projections.install(_chat_model(tmp_path), force=True,
                                     env={"FRAMEWORK_FUSED_PROJECTIONS": "0"}) == {"qkv": 0, "gate_up": 0,
                                                                                   "joint_rotary": 0}
    model = _chat_model(tmp_path)
    mlp = model.model.layers[0].mlp
    mlp.up_proj = torch.nn.Sequential(mlp.up_proj)  # not a plain Linear any more (as an adapter's wrapper)
    done = fused_projections.install(model, force=True)
    layers = model.config.num_hidden_layers
    assert done == {"qkv": layers, "gate_up": layers - 1, "joint_rotary": layers}
    done = fused_projections.install(_chat_model(tmp_path), force=True, env={"FRAMEWORK_JOINT_ROTARY": "0"})
    assert done == {"qkv": layers, "gate_up": layers, "joint_rotary": 0}


@pytest.mark.parametrize("batch,positions", [(1, 1), (3, 1), (2, 7)])
def test_the_joint_rotary_embedding_is_transformers_own_element_by_element(batch, positions):
    """Over the query and key heads of one fused output (as the fused q_proj leaves them) the joint rotary
    embedding gives exactly transformers' values, one computation for both; anything else goes to transformers'."""
    from transformers.models.qwen2 import modeling_qwen2

    original = getattr(modeling_qwen2.apply_rotary_pos_emb, "joint_of", modeling_qwen2.apply_rotary_pos_emb)
    joint = fused_projections.joint_rotary(original)
    hq, hk, d = 4, 2, 8
    out = torch.randn(batch, positions, (hq + 2 * hk) * d, dtype=torch.bfloat16)  # q, k, v side by side
    q = out[..., :hq * d].view(batch, positions, hq, d).transpose(1, 2)
    k = out[..., hq * d:(hq + hk) * d].view(batch, positions, hk, d).transpose(1, 2)
    cos, sin = torch.randn(2, batch, positions, d, dtype=torch.bfloat16)
    want = original(q, k, cos, sin)
    calls = []
    counted = fused_projections.joint_rotary(lambda *a, **kw: calls.append(a) or original(*a, **kw))
    got = counted(q, k, cos, sin)
    assert calls == []  # the joint computation, not transformers'
    assert all(torch.equal(g, w) and g.shape == w.shape for g, w in zip(got, want))
    assert all(torch.equal(g, w) for g, w in zip(joint(q, k, cos, sin), want))
    k_alone = k.clone()  # another buffer (an unfused k_proj): transformers' own
    assert all(torch.equal(g, w) for g, w in zip(counted(q, k_alone, cos, sin), original(q, k_alone, cos, sin)))
    assert len(calls) == 1


@pytest.mark.parametrize("kind", ["qwen2-vl", "qwen2.5-vl"])
def test_the_qwen_vl_decoders_projections_are_fused_and_answer_alike(tiny_vlm, kind):  # noqa: F811
    done, model = vl_answers_alike_after(tiny_vlm, kind, lambda m: fused_projections.install(m, force=True))
    layers = model.config.text_config.num_hidden_layers
    assert done["qkv"] == layers and done["gate_up"] >= layers  # (Qwen2.5-VL: the tower's MLPs too)


from vlm_fixtures import tiny_vlm  # noqa: E402,F401  (a fixture)
