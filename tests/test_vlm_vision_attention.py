"""The vision tower's grouped attention (analyzers/vlm/families/vision_attention.py) computes what
transformers' per-group loop computes, on tiny Qwen2-VL and Qwen2.5-VL towers."""
from __future__ import annotations

import pytest

from analyzers.vlm.families import vision_attention
from vlm_fixtures import tiny_vlm  # noqa: F401  (a fixture)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CLASSES = {"qwen2-vl": "Qwen2VLForConditionalGeneration", "qwen2.5-vl": "Qwen2_5_VLForConditionalGeneration"}


def tower(folder, kind):
    model = getattr(transformers, CLASSES[kind]).from_pretrained(folder, attn_implementation="sdpa").eval()
    return model, model.model.visual


def features(visual, grid):
    """The tower's output for random patches of the videos ``grid`` (t, h, w per video)."""
    g = torch.tensor(grid)
    patches = int((g[:, 0] * g[:, 1] * g[:, 2]).sum())
    torch.manual_seed(1)
    pixels = torch.randn(patches, 3 * 2 * 14 * 14)
    with torch.no_grad():
        out = visual(pixels, grid_thw=g)
    return getattr(out, "pooler_output", None) if not torch.is_tensor(out) else out, getattr(out, "last_hidden_state", out)


@pytest.mark.parametrize("kind", ["qwen2-vl", "qwen2.5-vl"])
@pytest.mark.parametrize("grid", [[[6, 4, 4]], [[2, 4, 4], [3, 4, 4]], [[2, 4, 4], [2, 4, 6]]])
def test_grouped_attention_gives_the_towers_own_output(tiny_vlm, kind, grid):  # noqa: F811
    model, visual = tower(tiny_vlm(kind), kind)
    before = features(visual, grid)
    assert vision_attention.install(model) == 2  # both layers' attention
    after = features(visual, grid)
    for a, b in zip(before, after):
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_the_lengths_are_read_once_per_forward_and_unequal_groups_take_the_loop(tiny_vlm, monkeypatch):  # noqa: F811
    model, visual = tower(tiny_vlm("qwen2-vl"), "qwen2-vl")
    vision_attention.install(model)
    equal = model._grouped_vision_lengths
    batched = []
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def counting(q, *args, **kwargs):
        batched.append(q.shape[0])
        return real_sdpa(q, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    features(visual, [[6, 4, 4]])
    assert equal.reads == 1  # two layers, one read of the lengths
    assert batched == [6, 6]  # each layer one call over the 6 frame groups (transformers': 6 calls of 1)
    batched.clear()
    features(visual, [[2, 4, 4], [2, 4, 6]])  # groups of 16 and 24 patches: transformers' loop
    assert equal.reads == 2
    assert batched and set(batched) == {1}


def test_the_family_installs_it_and_says_so(tiny_vlm):  # noqa: F811
    from analyzers.vlm.families import GenerationOptions, family_class

    family = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=4))
    family.load(tiny_vlm("qwen2-vl"), "cpu", "fp32")
    assert family.describe_model()["vision_attention"] == {"grouped_modules": 2, "length_reads": 0}
    assert not any("vision attention" in n for n in family.notes)


def test_a_model_without_such_modules_is_left_as_it_is():
    layer = torch.nn.Linear(2, 2)
    forward = layer.forward
    assert vision_attention.install(layer) == 0
    assert layer.forward == forward


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_on_cuda_the_grouped_attention_gives_the_towers_own_output(tiny_vlm, dtype):  # noqa: F811
    """On CUDA (SDPA's flash or memory-efficient kernels, as the run picks them): within float32's
    rounding, and within bf16's for a bf16 tower."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from framework.devices import attention_without_cudnn

    attention_without_cudnn(torch)
    model, visual = tower(tiny_vlm("qwen2-vl"), "qwen2-vl")
    model.to("cuda", getattr(torch, dtype))
    grid = torch.tensor([[8, 6, 8]], device="cuda")
    torch.manual_seed(2)
    pixels = torch.randn(int(grid.prod()), 3 * 2 * 14 * 14, device="cuda", dtype=getattr(torch, dtype))
    with torch.no_grad():
        before = visual(pixels, grid_thw=grid)
        vision_attention.install(model)
        after = visual(pixels, grid_thw=grid)
    before, after = (getattr(o, "last_hidden_state", o).float() for o in (before, after))
    error = float((after - before).norm() / before.norm())
    assert model._grouped_vision_lengths.reads == 1
    assert error < (1e-5 if dtype == "float32" else 1e-2), error
