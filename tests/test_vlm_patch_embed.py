"""Qwen2-VL's patch embedding as a matrix product (analyzers/vlm/families/patch_embed.py) computes what
the 3-D convolution computes, on tiny Qwen2-VL and Qwen2.5-VL towers, and leaves the weights as they are."""
from __future__ import annotations

import pytest

from analyzers.vlm.families import patch_embed
from test_vlm_vision_attention import CLASSES, features, tower
from vlm_fixtures import tiny_vlm  # noqa: F401  (a fixture)

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_the_matrix_product_gives_the_towers_own_output_and_keeps_its_weights(tiny_vlm, kind):  # noqa: F811
    model, visual = tower(tiny_vlm(kind), kind)
    keys = list(model.state_dict())
    before = features(visual, [[4, 4, 6]])
    assert patch_embed.install(model) == 1
    after = features(visual, [[4, 4, 6]])
    for a, b in zip(before, after):
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    assert list(model.state_dict()) == keys  # the checkpoint's names: saving and adapters see the convolution
    assert isinstance(visual.patch_embed.proj, torch.nn.Conv3d)


def test_overlapping_or_other_convolutions_are_left_as_they_are():
    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = torch.nn.Module()
            self.patch_embed.proj = torch.nn.Conv3d(3, 4, kernel_size=(2, 4, 4), stride=(2, 2, 2))  # overlapping

    model = Tower()
    forward = model.patch_embed.forward
    assert patch_embed.install(model) == 0 and model.patch_embed.forward == forward
    assert patch_embed.install(torch.nn.Linear(2, 2)) == 0


def test_the_family_installs_it_says_so_and_a_parameter_switches_it_off(tiny_vlm):  # noqa: F811
    from analyzers.vlm.families import GenerationOptions, family_class

    family = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=4))
    family.load(tiny_vlm("qwen2-vl"), "cpu", "fp32")
    assert family.linear_patch_embeds == 1 and family.describe_model()["patch_embed"] == "matrix product"
    # the analyzer's patch_embed_product: false keeps transformers' convolution
    family = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=4, patch_embed_product=False))
    family.load(tiny_vlm("qwen2-vl"), "cpu", "fp32")
    assert family.linear_patch_embeds == 0 and family.describe_model()["patch_embed"] == "transformers' own"
    assert isinstance(family.model.model.visual.patch_embed.forward.__self__, torch.nn.Module)  # its own forward


@pytest.mark.gpu
def test_on_cuda_in_bf16_the_matrix_product_gives_the_convolutions_output(tiny_vlm):  # noqa: F811
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model, visual = tower(tiny_vlm("qwen2-vl"), "qwen2-vl")
    model.to("cuda", torch.bfloat16)
    torch.manual_seed(3)
    pixels = torch.randn(4096, 3 * 2 * 14 * 14, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        before = visual.patch_embed(pixels).float()
        patch_embed.install(model)
        after = visual.patch_embed(pixels).float()
    assert float((after - before).norm() / before.norm()) < 1e-2
