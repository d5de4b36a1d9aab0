"""Property tests of ``framework.scheduler.plan`` on simulated devices (hypothesis)."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.scheduler import Demand, Variant, group_for_batch, plan

PRECISIONS = ("bf16", "int8", "int4")


@st.composite
def demands(draw):
    n = draw(st.integers(1, 10))
    out = []
    for i in range(n):
        name = f"a{i}"
        deps = tuple(sorted(draw(st.sets(st.sampled_from([f"a{j}" for j in range(i)]), max_size=3)))) if i else ()
        device = draw(st.sampled_from(["cpu", "gpu", "auto"]))
        sizes = sorted(draw(st.lists(st.floats(100, 40_000), min_size=1, max_size=3)), reverse=True)
        variants = tuple(Variant(p, s) for p, s in zip(PRECISIONS, sizes))
        out.append(Demand(name, device, depends_on=deps, variants=variants,
                          cpu_fallback=draw(st.booleans()), forced=draw(st.booleans()),
                          cpu_seconds=draw(st.none() | st.floats(1, 10_000)),
                          item_vram_mb=draw(st.sampled_from([0.0, 50.0, 800.0])),
                          max_batch=draw(st.integers(1, 64)), stretch_batch=draw(st.sampled_from([0, 16, 128])),
                          # batches prefilled in groups: an item beyond the first group keeps only its KV
                          group_items=draw(st.sampled_from([0, 0, 4, 32])),
                          item_kv_mb=draw(st.sampled_from([0.0, 10.0, 150.0]))))
    return out


def _in_planned_groups(d, placement):
    """``d`` with the prefill group its placement has (the plan's ``fitted_group``), checked no larger than its own."""
    if placement.prefill_group is None:
        return d
    assert 0 < placement.prefill_group <= d.group_items
    return dataclasses.replace(d, group_items=placement.prefill_group)


def _working_mb(d, batch):
    """A batch's memory beyond the weights and one item, counted item by item: those of the first group (or
    all, when the batch is not prefilled in groups) at ``item_vram_mb``, the others at ``item_kv_mb``."""
    grouped = d.group_items > 0 and 0 < d.item_kv_mb < d.item_vram_mb
    return sum(d.item_vram_mb if not grouped or i < d.group_items else d.item_kv_mb for i in range(1, batch))


budgets = st.none() | st.floats(500, 80_000)
gpu_lists = st.sampled_from([[], ["cuda:0"], ["cuda:0", "cuda:1"], ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]])


@settings(max_examples=150, deadline=None)
@given(demands(), budgets, gpu_lists, st.none() | st.floats(10, 10_000))
def test_plan_invariants(ds, budget, gpus, limit):
    p = plan(ds, budget, gpus, cpu_time_limit_s=limit)
    names = {d.name for d in ds}
    by_name = {d.name: d for d in ds}

    # every analyzer is either scheduled or reported with a reason, never both
    assert set(p.placements) | set(p.unplanned) == names
    assert not set(p.placements) & set(p.unplanned)
    assert all(p.unplanned.values())

    # the budget is never exceeded on any device, and each wave's sum is what it says
    for w in p.waves:
        assert w.device in gpus
        assert abs(sum(p.placements[n].vram_mb for n in w.gpu) - w.vram_mb) < 1e-6
        if budget is not None:
            assert w.vram_mb <= budget + 1e-6
        else:
            assert len(w.gpu) == 1  # unknown size: one model at a time per GPU
    # the batches the caps allow (weights plus working memory, in the prefill groups the plan gave) fit the
    # budget together, wave by wave; a group is never larger than the analyzer's own
    for w in p.waves:
        if budget is not None:
            batches = sum(p.placements[n].vram_mb if not by_name[n].item_vram_mb else
                          next(v.vram_mb for v in by_name[n].all_variants if v.precision == p.placements[n].variant)
                          + _working_mb(_in_planned_groups(by_name[n], p.placements[n]), p.placements[n].max_batch)
                          for n in w.gpu)
            assert batches <= budget + 1e-6
        for n in w.gpu:
            assert p.placements[n].max_batch is None or p.placements[n].max_batch <= by_name[n].largest_batch
        # each batching analyzer's room (``batch_room_mb``): together within the budget; any batch up to the cap in
        # the prefill groups ``group_for_batch`` gives it fits its room, in groups no smaller than the plan's
        if budget is not None:
            rooms = {n: p.placements[n].batch_room_mb for n in w.gpu if by_name[n].item_vram_mb > 0}
            assert all(r is not None and r >= 0 for r in rooms.values())
            assert sum(p.placements[n].vram_mb if n not in rooms else
                       next(v.vram_mb for v in by_name[n].all_variants if v.precision == p.placements[n].variant)
                       + rooms[n] for n in w.gpu) <= budget + 1e-6
            for n, room in rooms.items():
                cap = p.placements[n].max_batch
                for batch in {1, max(1, cap // 2), cap}:
                    g = group_for_batch(by_name[n], room, batch)
                    shaped = dataclasses.replace(by_name[n], group_items=g)
                    assert batch == 1 or _working_mb(shaped, batch) <= room + 1e-6
                    if p.placements[n].prefill_group is not None:
                        assert g >= p.placements[n].prefill_group
        else:
            assert all(p.placements[n].batch_room_mb is None for n in w.gpu)
    # every GPU placement is in exactly one wave, on its device
    in_waves = [n for w in p.waves for n in w.gpu]
    assert sorted(in_waves) == sorted(n for n, pl in p.placements.items() if pl.is_gpu)
    wave_of = {n: w for w in p.waves for n in w.gpu}
    for n, w in wave_of.items():
        assert p.placements[n].device == w.device

    # dependencies: the order respects them; a GPU analyzer's wave follows its GPU ancestors' waves
    position = {n: i for i, n in enumerate(p.order)}
    for d in ds:
        if d.name not in position:
            continue
        for dep in d.depends_on:
            if dep in position:
                assert position[dep] < position[d.name]
            if d.name in wave_of and dep in wave_of:
                assert wave_of[dep].index < wave_of[d.name].index

    # CPU analyzers never get a GPU, no GPU without GPUs; a batch cap is at least 1
    for n, pl in p.placements.items():
        if by_name[n].device == "cpu":
            assert pl.device == "cpu"
        if not gpus:
            assert pl.device == "cpu"
        assert pl.max_batch is None or pl.max_batch >= 1
        if pl.is_gpu:  # the chosen variant is one it lists, and the best that fits
            fits = [v for v in by_name[n].all_variants if budget is None or v.vram_mb <= budget]
            assert pl.variant == fits[0].precision

    # an analyzer left out had no variant that fits, or no practical CPU path
    for n in p.unplanned:
        d = by_name[n]
        assert d.wants_gpu
        assert not gpus or (budget is not None and min(v.vram_mb for v in d.all_variants) > budget)


@pytest.mark.parametrize("supported, expect", [(None, "fp8"), (("bf16", "fp16", "fp32", "int8"), "int8"),
                                                (("bf16", "fp16", "fp32"), "2b")])
def test_the_original_gpu_set_fits_a_12_gb_card(supported, expect):
    """The original system's GPU analyzers at the manifest's estimates, planned for an RTX 3060:
    the 7B VLM runs in fp8 or int8 when the analyzer offers it (fp8 first), else the 2B model stands in."""
    from framework.models import load_manifest
    from framework.models.variants import model_variants

    m = load_manifest()

    def demand(name, model, deps=(), precisions=None):
        return Demand(name, "gpu", depends_on=deps, variants=tuple(model_variants(m, [model], precisions)))

    ds = [Demand("cut_analysis"),
          demand("qwen2_vl_temporal", "qwen2-vl-7b-instruct", ("cut_analysis",), supported),
          demand("object_detection", "yolov8x"), demand("speech_transcription", "whisper-base"),
          demand("content_quality", "clip-vit-base-patch32"),
          demand("background_segmentation", "segformer-b0-ade-512"),
          demand("speech_emotion", "wav2vec2-xlsr-speech-emotion")]
    assert all(d.variants for d in ds[1:]), "a model lost its VRAM estimate in the manifest"
    p = plan(ds, 12 * 1024, ["cuda:0"])
    assert not p.unplanned, p.unplanned
    assert all(w.vram_mb <= 12 * 1024 for w in p.waves)
    vlm = p.placements["qwen2_vl_temporal"]
    if expect in ("fp8", "int8"):
        assert vlm.variant == expect and not vlm.substitutes
    else:
        assert vlm.substitutes == (("qwen2-vl-7b-instruct", "qwen2-vl-2b-instruct"),) and vlm.variant == "bf16"
    assert "over the 12288 MB budget" in p.notes["qwen2_vl_temporal"]
    # and with 48 GB the 7B runs in bf16 beside the rest
    p = plan(ds, 48 * 1024, ["cuda:0"])
    assert p.placements["qwen2_vl_temporal"].variant == "bf16" and not p.placements["qwen2_vl_temporal"].substitutes


@pytest.mark.parametrize("model", ["segformer-b0-ade-512", "yolov8x", "yolov8s", "open-clip-vit-b-32", "ast-audioset",
                                   "wav2vec2-xlsr-speech-emotion", "vit-age-classifier", "whisper-base"])
def test_the_default_sets_torch_models_run_in_half_precision_on_a_gpu(model):
    """The plan gives a GPU analyzer the first precision its models list: a model whose manifest entry
    lists only fp32 ran in fp32 on a GPU, though its analyzer runs fp16 when given no precision
    (SegFormer did, beside the VLM, until the nineteenth session)."""
    from framework.models import load_manifest
    from framework.models.variants import model_variants

    best = model_variants(load_manifest(), [model])[0]
    assert best.precision in ("fp16", "bf16"), f"{model} would run in {best.precision} on a GPU"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([50.0, 600.0, 800.0]), st.sampled_from([0.0, 10.0, 150.0, 900.0]), st.integers(0, 64),
       st.integers(1, 64), st.sampled_from([0, 16, 128]), st.floats(0, 200_000))
def test_the_cap_is_the_largest_batch_whose_working_memory_fits(item, kv, group, wanted, stretch, room):
    """``batch_cap`` against ``batch_extra_mb`` and an item-by-item count: the cap's batch fits the room, and one
    more item would not (unless the cap is the largest batch the analyzer can use)."""
    from framework.scheduler import batch_cap, batch_extra_mb

    d = Demand("a", "gpu", item_vram_mb=item, max_batch=wanted, stretch_batch=stretch, group_items=group,
               item_kv_mb=kv)
    cap = batch_cap(d, room)
    assert 1 <= cap <= d.largest_batch
    assert abs(batch_extra_mb(d, cap) - _working_mb(d, cap)) < 1e-6
    assert cap == 1 or _working_mb(d, cap) <= room + 1e-6
    if cap < d.largest_batch:
        assert _working_mb(d, cap + 1) > room


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([50.0, 600.0, 800.0]), st.sampled_from([0.0, 10.0, 150.0, 900.0]), st.integers(0, 64),
       st.integers(1, 64), st.sampled_from([0, 16, 128]), st.floats(0, 200_000))
def test_a_fitted_prefill_group_never_gives_a_smaller_batch_and_its_batch_fits(item, kv, group, wanted, stretch, room):
    """``fitted_group``: never a larger group than the analyzer's, never below ``MIN_PREFILL_GROUP`` when it
    changes it, a batch at least as large as with its own group, which fits the room item by item; the group
    itself fits; and no smaller group down to the floor gives a larger batch."""
    from framework.scheduler import MIN_PREFILL_GROUP, batch_cap, fitted, fitted_group

    d = Demand("a", "gpu", item_vram_mb=item, max_batch=wanted, stretch_batch=stretch, group_items=group,
               item_kv_mb=kv)
    g = fitted_group(d, room)
    assert g <= group and (g == group or g >= MIN_PREFILL_GROUP)
    shaped = fitted(d, room)
    assert shaped.group_items == g
    cap = batch_cap(shaped, room)
    assert cap >= batch_cap(d, room)
    assert cap == 1 or _working_mb(shaped, cap) <= room + 1e-6
    if g != group:
        assert item * (g - 1) <= room
        smaller = [batch_cap(dataclasses.replace(d, group_items=s), room) for s in range(MIN_PREFILL_GROUP, g)]
        assert all(c <= cap for c in smaller)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 200), st.integers(0, 1000))
def test_an_even_batch_needs_no_more_batches_than_the_cap_and_is_the_smallest_that_does(size, items):
    from framework.scheduler import even_batch

    b = even_batch(size, items)
    assert 1 <= b <= size
    if items:
        batches = -(-items // size)
        assert -(-items // b) == batches
        assert b == 1 or -(-items // (b - 1)) > batches


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([50.0, 600.0, 800.0]), st.sampled_from([0.0, 10.0, 150.0]), st.integers(0, 64),
       st.integers(1, 160), st.floats(0, 100_000))
def test_a_batchs_prefill_group_is_the_largest_that_fits_it(item, kv, group, batch, room):
    """``group_for_batch``: no larger than the analyzer's own group; where any group down to
    ``MIN_PREFILL_GROUP`` fits the batch in the room, the largest such; else ``fitted_group``'s."""
    from framework.scheduler import MIN_PREFILL_GROUP, fitted_group

    d = Demand("a", "gpu", item_vram_mb=item, max_batch=batch, group_items=group, item_kv_mb=kv)
    g = group_for_batch(d, room, batch)
    assert g <= group
    fits = [s for s in range(MIN_PREFILL_GROUP, group + 1)
            if _working_mb(dataclasses.replace(d, group_items=s), batch) <= room + 1e-6]
    if 0 < kv < item and fits:
        assert g == max(fits)
    else:
        assert g == fitted_group(d, room)
