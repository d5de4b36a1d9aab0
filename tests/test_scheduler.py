from __future__ import annotations

import dataclasses

import pytest

from framework.scheduler import (CycleError, Demand, Variant, parse_budget, plan, resolve_device, spare_shares,
                                 topological_order)


def test_topological_order_respects_dependencies_and_input_order():
    order = topological_order({"fusion": ("a", "b"), "b": ("a",), "a": (), "c": ()})
    assert order.index("a") < order.index("b") < order.index("fusion")
    assert set(order) == {"a", "b", "c", "fusion"}


def test_cycle_is_reported_with_the_chain():
    with pytest.raises(CycleError, match="x -> y -> x"):
        topological_order({"x": ("y",), "y": ("x",)})


def _waves_of(p):
    return {n: (w.device, w.index) for w in p.waves for n in w.gpu}


def test_gpu_waves_never_exceed_the_budget():
    demands = [Demand("vlm", "gpu", 9000), Demand("yolo", "gpu", 1500), Demand("whisper", "gpu", 2500),
               Demand("ocr", "gpu", 1200), Demand("cuts", "cpu")]
    p = plan(demands, 11000, ["cuda:0"])
    for wave in p.waves:
        assert wave.vram_mb <= 11000
        assert sum(d.vram_mb for d in demands if d.name in wave.gpu) == wave.vram_mb
    assert sorted(p.order) == sorted(d.name for d in demands)
    assert p.device["cuts"] == "cpu" and p.device["vlm"] == "cuda:0"


def test_over_budget_model_falls_back_to_cpu_and_says_so():
    p = plan([Demand("vlm", "gpu", 3000)], 2000, ["cuda:0"])
    assert p.device["vlm"] == "cpu" and "over the 2000 MB budget" in p.notes["vlm"]
    p = plan([Demand("vlm", "gpu", 3000, cpu_fallback=False)], 2000, ["cuda:0"])
    assert "vlm" in p.unplanned and "vlm" not in p.device
    assert "--vram-budget 3GB" in p.unplanned["vlm"]


def test_a_big_model_without_a_cpu_time_estimate_is_not_sent_to_the_cpu():
    p = plan([Demand("vlm", "gpu", 17000)], None, [])
    assert "vlm" in p.unplanned
    assert "needs a GPU" in p.unplanned["vlm"] and "device: cpu" in p.unplanned["vlm"]
    forced = plan([Demand("vlm", "gpu", 17000, forced=True)], None, [])
    assert forced.device == {"vlm": "cpu"}


def test_the_cpu_is_used_when_the_estimate_says_it_is_practical():
    quick = Demand("asr", "gpu", 1000, cpu_seconds=60)
    slow = Demand("vlm", "gpu", 9000, cpu_seconds=7200)
    p = plan([quick, slow], None, [], cpu_time_limit_s=600)
    assert p.device == {"asr": "cpu"} and "about 60 s" in p.notes["asr"]
    assert "would take about 120 min" in p.unplanned["vlm"]


def test_no_gpu_runs_small_gpu_analyzers_on_cpu():
    p = plan([Demand("vlm", "gpu", 2000), Demand("cuts", "cpu")], None, 0)
    assert p.device == {"vlm": "cpu", "cuts": "cpu"}
    assert "none is available" in p.notes["vlm"]


def test_the_best_variant_that_fits_is_chosen_and_said():
    v = (Variant("bf16", 18000), Variant("int8", 10000), Variant("int4", 6000))
    assert plan([Demand("vlm", "gpu", variants=v)], 48000, ["cuda:0"]).placements["vlm"].variant == "bf16"
    p = plan([Demand("vlm", "gpu", variants=v)], 12000, ["cuda:0"])
    assert p.placements["vlm"].variant == "int8" and "using int8" in p.notes["vlm"]
    p = plan([Demand("vlm", "gpu", variants=v, cpu_fallback=False)], 4000, ["cuda:0"])
    assert "even as int4" in p.unplanned["vlm"] and "--vram-budget 6GB" in p.unplanned["vlm"]


def test_a_smaller_model_stands_in_when_no_precision_fits():
    v = (Variant("bf16", 18000), Variant("bf16", 5500, (("qwen2-vl-7b", "qwen2-vl-2b"),)))
    p = plan([Demand("vlm", "gpu", variants=v)], 12000, ["cuda:0"])
    assert p.placements["vlm"].substitutes == (("qwen2-vl-7b", "qwen2-vl-2b"),)
    assert "qwen2-vl-2b for qwen2-vl-7b" in p.notes["vlm"]


def test_dependent_gpu_analyzer_goes_in_a_later_wave():
    p = plan([Demand("a", "gpu", 100), Demand("b", "gpu", 100, ("a",))], 10000, ["cuda:0"])
    assert _waves_of(p)["b"][1] > _waves_of(p)["a"][1]


def test_within_a_wave_the_longest_measured_analyzer_is_admitted_and_loaded_first():
    """Loads take turns, so the lane's order is when each can start: end to end on an H200 Whisper,
    the longest analyzer, loaded last of nine (alphabetical) and started 25 s into the run."""
    demands = [Demand("audio_env", "gpu", 900, gpu_seconds=6.0), Demand("emotion", "gpu", 1000),
               Demand("vlm", "gpu", 18000, gpu_seconds=69.0), Demand("whisper", "gpu", 1000, gpu_seconds=72.0),
               Demand("yolo", "gpu", 1500, gpu_seconds=39.0), Demand("late", "gpu", 900, ("whisper",), gpu_seconds=99.0)]
    p = plan(demands, 135_000, ["cuda:0"])
    assert [w.gpu for w in p.waves] == [["whisper", "vlm", "yolo", "audio_env", "emotion"], ["late"]]
    assert p.lanes() == {"cuda:0": ["whisper", "vlm", "yolo", "audio_env", "emotion", "late"]}
    unmeasured = plan([Demand(d.name, "gpu", d.vram_mb, d.depends_on) for d in demands], 135_000, ["cuda:0"])
    assert unmeasured.lanes()["cuda:0"] == ["audio_env", "emotion", "vlm", "whisper", "yolo", "late"]  # as given


def test_two_gpus_share_the_work_with_a_budget_check_each():
    demands = [Demand(f"m{i}", "gpu", 7000) for i in range(4)]
    p = plan(demands, 12000, ["cuda:0", "cuda:1"])
    devices = [p.device[d.name] for d in demands]
    assert devices.count("cuda:0") == 2 and devices.count("cuda:1") == 2
    assert all(w.vram_mb <= 12000 for w in p.waves)


def test_batch_caps_come_from_the_memory_left_in_the_wave():
    p = plan([Demand("vlm", "gpu", 8000, item_vram_mb=500, max_batch=64)], 12000, ["cuda:0"])
    assert p.placements["vlm"].max_batch == 1 + 4000 // 500
    p = plan([Demand("vlm", "gpu", 8000, item_vram_mb=500, max_batch=4)], 12000, ["cuda:0"])
    assert p.placements["vlm"].max_batch == 4


def test_a_stretch_batch_grows_only_into_memory_nobody_reserved():
    """The plan reserves room for ``max_batch``; ``stretch_batch`` takes what the wave leaves spare, and never
    the room another analyzer needs to share the wave."""
    vlm = Demand("vlm", "gpu", 17000, item_vram_mb=600, max_batch=64, stretch_batch=128)
    others = [Demand("yolo", "gpu", 3000, item_vram_mb=100, max_batch=16), Demand("asr", "gpu", 2000)]
    roomy = plan([vlm, *others], 135000, ["cuda:0"])
    assert len(roomy.waves) == 1 and roomy.placements["vlm"].max_batch == 128
    assert roomy.placements["vlm"].vram_mb == 17000 + 63 * 600  # reserved: the asked-for batch only
    assert roomy.placements["yolo"].max_batch == 16
    assert roomy.notes["vlm"] == "a batch of up to 128 (reserves 64; the rest from memory no analyzer reserved)"
    assert "yolo" not in roomy.notes
    tight = plan([vlm, *others], 75000, ["cuda:0"])  # an 80 GB GPU: everyone still in one wave
    assert len(tight.waves) == 1
    spare = 75000 - (17000 + 63 * 600) - (3000 + 15 * 100) - 2000
    assert tight.placements["vlm"].max_batch == 64 + int(spare // 600) < 128
    without = plan([Demand("vlm", "gpu", 17000, item_vram_mb=600, max_batch=64), *others], 135000, ["cuda:0"])
    assert without.placements["vlm"].max_batch == 64


def test_a_batch_prefilled_in_groups_counts_the_items_beyond_its_first_group_at_their_kv():
    """A VLM that prefills 64 chunks at a time and decodes the batch as one: a chunk beyond the first group keeps
    only its KV (150 MB), not a prefill's working memory (600 MB). Alone on an 80 GB GPU it stretches to 128 where
    it reached 97 counted whole. At 48 GB and 24 GB not even the first group fits whole: the plan then prefills in
    smaller groups (``fitted_group``), which leave room for more chunks that keep only their KV: 128 in groups of
    27 where 52 fitted whole, 38 in groups of 4 where 12 did."""
    from framework.scheduler import batch_cap, batch_extra_mb

    grouped = Demand("vlm", "gpu", 17000, item_vram_mb=600, max_batch=64, stretch_batch=128, group_items=64,
                     item_kv_mb=150)
    whole = Demand("vlm", "gpu", 17000, item_vram_mb=600, max_batch=64, stretch_batch=128)
    assert batch_extra_mb(grouped, 64) == batch_extra_mb(whole, 64) == 63 * 600
    assert batch_extra_mb(grouped, 128) == 63 * 600 + 64 * 150 < batch_extra_mb(whole, 128) == 127 * 600
    assert batch_cap(grouped, 63 * 600 + 10 * 150 + 149) == 74 and batch_cap(grouped, 63 * 600 - 1) == 63
    assert batch_cap(grouped, None) == 64
    for budget, caps, group in ((75000, (128, 1 + (75000 - 17000) // 600), 64), (48000, (128, 52), 27),
                                (24000, (38, 12), 4)):
        planned = plan([grouped], budget, ["cuda:0"])
        got = tuple(plan([d], budget, ["cuda:0"]).placements["vlm"].max_batch for d in (grouped, whole))
        assert got == caps, budget
        assert planned.placements["vlm"].prefill_group == group
        assert (f"groups of {group} items" in (planned.notes.get("vlm") or "")) == (group != 64)
        assert plan([whole], budget, ["cuda:0"]).placements["vlm"].prefill_group is None
    # the room 24 GB leaves, item by item: 4 chunks prefilled at 600 MB, 34 more keeping 150 MB
    assert 3 * 600 + 34 * 150 <= 24000 - 17000 < 3 * 600 + 35 * 150
    roomy = plan([grouped], 75000, ["cuda:0"])
    assert roomy.placements["vlm"].vram_mb == 17000 + 63 * 600  # reserved: the 64 asked for
    # not a cheaper item than a prefill's: counted whole (the KV is part of an item's working memory)
    assert plan([dataclasses.replace(grouped, item_kv_mb=700)], 75000, ["cuda:0"]).placements["vlm"].max_batch == 97


def test_spare_memory_left_by_one_analyzer_goes_to_the_others():
    assert spare_shares({"a": 100.0, "b": 10_000.0, "c": 0.0}, 3000.0) == {"c": 0.0, "a": 100.0, "b": 2900.0}
    assert spare_shares({"a": 5000.0, "b": 5000.0}, 3000.0) == {"a": 1500.0, "b": 1500.0}
    assert spare_shares({}, 3000.0) == {}


@pytest.mark.parametrize("text, mb", [("12GB", 12288), ("12", 12288), ("800MB", 800), ("1.5GiB", 1536),
                                      ("auto", "auto"), (None, None), (6, 6144)])
def test_parse_budget(text, mb):
    assert parse_budget(text) == mb


@pytest.mark.parametrize("bad", ["twelve", "-1GB", "0", "12TB"])
def test_parse_budget_says_what_to_write(bad):
    with pytest.raises(ValueError, match="12GB|above 0"):
        parse_budget(bad)


@pytest.mark.parametrize("preferred, configured, device, says", [
    ("gpu", None, "gpu", None), ("gpu", "auto", "gpu", None), ("gpu", "gpu", "gpu", None),
    ("gpu", "cpu", "cpu", "device: cpu in registry.yaml"), ("auto", "cpu", "cpu", "device: cpu"),
    ("auto", "gpu", "gpu", "device: gpu"), ("cpu", "gpu", "cpu", "runs only on the CPU"),
    ("cpu", "auto", "cpu", None)])
def test_resolve_device_lets_the_registry_override_the_class(preferred, configured, device, says):
    got, note = resolve_device(preferred, configured)
    assert got == device
    assert (note is None) if says is None else (says in note)


def test_the_configured_device_note_is_in_the_plan():
    p = plan([Demand("vlm", "cpu", 4000, note="device: cpu in registry.yaml: running on the CPU")], 8000, ["cuda:0"])
    assert p.device == {"vlm": "cpu"} and "registry.yaml" in p.notes["vlm"]
    p = plan([Demand("vlm", "gpu", 2000, note="device: gpu in registry.yaml")], 8000, [])
    assert p.device == {"vlm": "cpu"} and p.notes["vlm"].startswith("device: gpu in registry.yaml; needs a GPU")


def test_without_a_gpu_driver_torch_is_not_asked_for_gpus(monkeypatch):
    """``framework plan`` on a laptop imported torch (seconds) just to learn there is no GPU."""
    import sys
    import types

    from framework import devices

    assert devices.gpu_driver_present("Darwin") is False
    assert devices.gpu_driver_present("Linux", exists=lambda p: False) is False
    assert devices.gpu_driver_present("Linux", exists=lambda p: p == "/dev/nvidia0") is True
    assert devices.gpu_driver_present("Linux", exists=lambda p: p == "/dev/kfd") is True  # ROCm
    assert devices.gpu_driver_present("Windows") is True  # not known without asking torch

    asked = []
    fake = types.ModuleType("torch")
    fake.cuda = types.SimpleNamespace(is_available=lambda: asked.append(1) or False, device_count=lambda: 0)
    monkeypatch.setitem(sys.modules, "torch", fake)
    monkeypatch.setattr(devices, "gpu_driver_present", lambda: False)
    assert devices.discover(None, "auto").devices == [] and asked == []
    monkeypatch.setattr(devices, "gpu_driver_present", lambda: True)
    assert devices.discover(None, "auto").devices == [] and asked == [1]
    asked.clear()
    monkeypatch.setattr(devices, "gpu_driver_present", lambda: False)
    with pytest.raises(Exception, match="no such GPU"):
        devices.discover(["cuda:0"], "auto")  # asked for by name: torch says whether it exists
    assert asked == [1]


def test_half_a_batch_is_reserved_where_that_saves_a_whole_wave():
    """The default set at 48 GB put the 7B alone in a second wave, after every other GPU analyzer (its batch of
    64 did not fit beside them). Where half of each batch would let the GPU run in fewer waves, the batching
    analyzers reserve half, say so, and their batch grows into what the wave leaves; where it would not, they
    keep their whole batch."""
    vlm = Demand("vlm", "gpu", 17000, item_vram_mb=600, max_batch=64, group_items=64, item_kv_mb=150)
    others = [Demand(f"model{i}", "gpu", 4000) for i in range(4)]
    p = plan([vlm, *others], 48000, ["cuda:0"])
    assert len(p.waves) == 1 and "reserves half its batch" in p.notes["vlm"]
    assert "one wave, not 2 waves" in p.notes["vlm"]
    assert p.placements["vlm"].max_batch >= 32 and p.waves[0].vram_mb <= 48000
    from framework.scheduler import batch_extra_mb

    assert batch_extra_mb(dataclasses.replace(vlm, group_items=p.placements["vlm"].prefill_group or 64),
                          p.placements["vlm"].max_batch) + 17000 + 16000 <= 48000
    # at 30 GB not even half fits beside them: two waves, the whole batch, no such note
    p = plan([vlm, *others], 30000, ["cuda:0"])
    assert len(p.waves) == 2 and "half" not in (p.notes.get("vlm") or "")
    assert p.placements["vlm"].max_batch == 64
