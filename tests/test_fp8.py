"""FP8 weights (``analyzers._fp8``): the layer's arithmetic, which layers are quantized, the description
analyzer's fp8 variant loaded from a saved model by the real loader, and the plan choosing it.

Random weights: the checks are how far outputs move from the unquantized layer or model (relative
error, cosine similarity of the next-token logits), never what a model would describe.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from vlm_fixtures import tiny_vlm  # noqa: F401  (a fixture)

from analyzers._fp8 import fp8_linear_class, quantize_linears, quantize_rows, quantize_rows_fused


def relative_error(out, ref) -> float:
    out, ref = out.detach().float(), ref.detach().float()
    return float((out - ref).norm() / ref.norm())


def test_rows_are_scaled_to_the_fp8_range_and_back():
    x = torch.randn(5, 64) * torch.tensor([1e-3, 1.0, 30.0, 500.0, 0.0]).unsqueeze(1)
    q, scale = quantize_rows(x)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (5, 1)
    # every non-zero row uses the top of the range, so small and large rows keep the same precision
    top = q.float().abs().amax(dim=1)
    assert torch.allclose(top[:4], torch.full((4,), 448.0))
    back = q.float() * scale
    for i in range(4):
        assert relative_error(back[i], x[i]) < 0.05
    assert torch.equal(back[4], torch.zeros(64))  # an all-zero row stays zero (no division by zero)


@pytest.mark.parametrize("path", ["scaled_mm", "widen"])
def test_an_fp8_layer_stays_within_a_few_percent_of_the_original(path):
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 512)
    torch.nn.init.normal_(linear.weight, std=0.02)
    x = torch.randn(3, 7, 256)
    layer = fp8_linear_class()(linear, "cpu", native=path == "scaled_mm")
    assert layer.path == path
    out = layer(x)
    assert out.shape == (3, 7, 512) and out.dtype == x.dtype
    err = relative_error(out, linear(x))
    # e4m3 keeps 3 mantissa bits: a few percent, and far from the error of a wrong scale or transpose
    assert 0.001 < err < 0.08, err
    assert layer.weight.shape == linear.weight.shape  # code that inspects .weight still sees the layout


def test_a_wrong_scale_would_be_caught():
    """The error bound above is not loose: a layer whose per-row scales are swapped fails it."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 64, bias=False)
    torch.nn.init.normal_(linear.weight, std=0.02)
    with torch.no_grad():
        linear.weight[:32] *= 10  # rows of two magnitudes
    layer = fp8_linear_class()(linear, "cpu")
    x = torch.randn(4, 64)
    assert relative_error(layer(x), linear(x)) < 0.08
    layer.weight_scale = layer.weight_scale.flip(1)
    assert relative_error(layer(x), linear(x)) > 0.5


def test_the_output_head_vision_tower_and_odd_sizes_stay_as_they_were():
    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList([torch.nn.Linear(64, 128), torch.nn.Linear(128, 64)])
    model.visual = torch.nn.Linear(64, 64)
    model.odd = torch.nn.Linear(64, 100)
    model.lm_head = torch.nn.Linear(64, 320)
    done = quantize_linears(model, "cpu")
    cls = fp8_linear_class()
    assert [type(m) is cls for m in model.layers] == [True, True]
    assert type(model.visual) is torch.nn.Linear and type(model.lm_head) is torch.nn.Linear
    assert type(model.odd) is torch.nn.Linear
    assert done["layers"] == 2 and done["bytes_saved"] == (64 * 128 + 128 * 64) * 3  # fp32 -> 1 byte each
    assert done["path"] in ("scaled_mm", "widen")


def test_the_description_model_loads_in_fp8_from_its_saved_folder(tiny_vlm):  # noqa: F811
    """The real loader (``from_pretrained`` on the saved tiny Qwen2-VL, then quantization): its decoder's
    linear layers become FP8, the vision tower and head do not, it generates, and its next-token logits
    stay close to the unquantized model's."""
    from analyzers.vlm.families import GenerationOptions, Request, family_class

    rng = np.random.default_rng(1)
    reqs = [Request(0, 0.0, 2.0, [0.0, 0.5, 1.0, 1.5], rng.integers(0, 255, (4, 56, 100, 3), dtype=np.uint8),
                    "Describe.")]
    logits = {}
    for precision in (None, "fp8"):
        fam = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=4, min_new_tokens=4))
        fam.load(tiny_vlm("qwen2-vl"), "cpu", precision)
        prepared = fam.prepare(reqs)
        with torch.inference_mode():
            logits[precision] = fam.model(**prepared["inputs"]).logits[:, -1].float()
        answers = fam.decode(fam.generate(prepared), prepared)
        assert len(answers) == 1
        if precision == "fp8":
            cls = fp8_linear_class()
            names = [n for n, m in fam.model.named_modules() if type(m) is cls]
            assert len(names) == 2 * 7  # two decoder layers: q, k, v, o, gate, up, down
            assert not any("visual" in n or "lm_head" in n for n in names)
            assert fam.describe_model()["fp8"]["layers"] == 14
            assert any(note.startswith("fp8: 14 linear layers") for note in fam.notes)
    cos = torch.nn.functional.cosine_similarity(logits[None], logits["fp8"]).item()
    assert cos > 0.99, cos
    assert not torch.equal(logits[None], logits["fp8"])  # quantized: not the same arithmetic


def test_the_plan_takes_the_7b_in_fp8_where_bf16_does_not_fit_and_always_when_asked():
    from analyzers.vlm import SceneDescription
    from framework.models import load_manifest
    from framework.models.variants import model_variants
    from framework.scheduler import Demand, plan

    def variants(params):
        return model_variants(load_manifest(), ["qwen2-vl-7b-instruct"], SceneDescription(params).supported_precisions())

    def placed(params, gb):
        demand = Demand("qwen2_vl_temporal", "gpu", variants=tuple(variants(params)), item_vram_mb=300, max_batch=64)
        p = plan([demand], gb * 1024, ["cuda:0"])
        return p.placements.get("qwen2_vl_temporal"), p.notes.get("qwen2_vl_temporal", "")

    assert [(v.precision, v.substitutes) for v in variants({})] == [
        ("bf16", ()), ("fp8", ()), ("bf16", (("qwen2-vl-7b-instruct", "qwen2-vl-2b-instruct"),))]
    assert placed({}, 24)[0].variant == "bf16"
    twelve, note = placed({}, 12)
    assert (twelve.variant, twelve.substitutes, twelve.max_batch) == ("fp8", (), 2)  # room for two chunks
    assert "using fp8" in note
    assert placed({}, 8)[0].substitutes  # the 2B, where not even fp8 fits
    # precision: fp8 takes it wherever it fits, and only it
    asked = variants({"precision": "fp8"})
    assert [(v.precision, v.substitutes) for v in asked] == [("fp8", ())] and asked[0].vram_mb == 11.5 * 1024
    assert placed({"precision": "fp8"}, 24)[0].variant == "fp8"


@pytest.mark.parametrize("capability, variant", [((9, 0), "fp8"), ((8, 6), "bf16")])
def test_a_run_offers_fp8_on_its_own_only_on_gpus_with_fp8_units(capability, variant, monkeypatch, tmp_path,
                                                                  sample_video):
    """At 12 GB on a Hopper GPU the plan takes the 7B in fp8; on an RTX 3060's Ampere (no FP8 units:
    every product would widen the weights) it takes the 2B in bf16, as before fp8 existed; asked
    for with ``precision: fp8``, fp8 is taken there too."""
    from framework.devices import GPUs
    from framework.registry import load_registry
    from framework.runner import plan_video

    monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True: GPUs(
        ["cuda:0"], {"cuda:0": 12 * 1024.0}, {"cuda:0": 12 * 1024.0}, {"cuda:0": "simulated"},
        {"cuda:0": capability}))
    registry = tmp_path / "registry.yaml"

    def placed(params):
        registry.write_text(yaml.safe_dump({"analyzers": {"qwen2_vl_temporal": {"enabled": True, "params": params}}}))
        report = plan_video(sample_video.path, registry=load_registry(registry), load_entrypoints=False,
                            only=["qwen2_vl_temporal"])
        return report.plan.placements["qwen2_vl_temporal"]

    chosen = placed({"chunking": "fixed"})
    assert chosen.variant == variant and bool(chosen.substitutes) == (variant == "bf16")
    assert placed({"chunking": "fixed", "precision": "fp8"}).variant == "fp8"


@pytest.mark.gpu
def test_on_a_gpu_with_fp8_units_the_product_is_one_fp8_matmul():
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("needs an NVIDIA Hopper or newer GPU")
    torch.manual_seed(0)
    linear = torch.nn.Linear(3584, 512, device="cuda", dtype=torch.bfloat16)
    torch.nn.init.normal_(linear.weight, std=0.02)
    layer = fp8_linear_class()(linear, "cuda")
    assert layer.path == "scaled_mm"
    x = torch.randn(60, 3584, device="cuda", dtype=torch.bfloat16)
    assert relative_error(layer(x), linear(x)) < 0.08


@pytest.mark.gpu
def test_on_a_gpu_the_fused_quantization_matches_the_plain_one():
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("needs an NVIDIA Hopper or newer GPU")
    torch.manual_seed(0)
    for rows, cols in ((1, 3584), (21, 3584), (60, 18944), (4099, 512)):
        x = torch.randn(rows, cols, device="cuda", dtype=torch.bfloat16) * torch.rand(rows, 1, device="cuda") * 10
        q, scale = quantize_rows_fused(x)
        q0, scale0 = quantize_rows(x)
        assert q.dtype == torch.float8_e4m3fn and scale.shape == (rows, 1)
        assert torch.allclose(scale, scale0, rtol=1e-2)
        back, back0 = q.float() * scale, q0.float() * scale0
        assert relative_error(back, x) < 0.05 and relative_error(back, back0) < 0.05
        assert (q.float().abs().amax(dim=1) == 448).all()
    layer = fp8_linear_class()(torch.nn.Linear(512, 512, device="cuda", dtype=torch.bfloat16), "cuda")
    assert layer.quantize is quantize_rows_fused and "fused" in repr(layer)
