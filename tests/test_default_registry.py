"""The shipped registry.yaml: it enables what the original system enabled, and the plan decides what of it
runs on the machine (issue 12's "what runs by default")."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from framework.plugins import build_plugin_manager
from framework.registry import load_registry

REPO = Path(__file__).resolve().parents[1]


def _shipped_plan(sample_video, monkeypatch, gb: float | None):
    """``framework plan`` of the sample with the shipped registry on a simulated Hopper GPU of ``gb`` (None: no GPU)."""
    from framework.devices import GPUs
    from framework.runner import plan_video

    if gb is None:
        gpus = GPUs([], {}, {}, {}, {})
    else:
        mb = gb * 1024.0
        gpus = GPUs(["cuda:0"], {"cuda:0": mb}, {"cuda:0": mb}, {"cuda:0": "simulated"}, {"cuda:0": (9, 0)})
    monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True: gpus)
    return plan_video(sample_video.path, registry=load_registry(REPO / "registry.yaml"), load_entrypoints=False)


def test_the_shipped_registry_enables_what_the_original_enabled():
    host = build_plugin_manager(load_entrypoints=False)
    registry = load_registry(REPO / "registry.yaml")
    enabled = {c.name for c in registry.configure(host.analyzers) if c.enabled}
    active = {n for n, cls in host.analyzers.items() if getattr(cls, "original_status", None) == "active"}
    assert active <= enabled, sorted(active - enabled)
    assert not {n for n in enabled if getattr(host.analyzers[n], "original_status", None) == "disabled"}
    # with no file at all the classes' defaults say the same
    defaults = {c.name for c in load_registry(None).configure(host.analyzers) if c.enabled}
    assert active <= defaults, sorted(active - defaults)


def test_on_a_12_gb_gpu_the_shipped_registry_plans_the_vlm_in_a_variant_that_fits(sample_video, monkeypatch):
    report = _shipped_plan(sample_video, monkeypatch, 12)
    plan = report.plan
    vlm = plan.placements["qwen2_vl_temporal"]
    assert vlm.is_gpu and vlm.variant == "fp8", (vlm, plan.notes.get("qwen2_vl_temporal"))
    assert "over the 12288 MB budget" in plan.notes["qwen2_vl_temporal"]
    assert vlm.max_batch <= 64 and vlm.prefill_group is None  # (a batch of one group: prefilled whole, no groups)
    assert all(w.vram_mb <= 12 * 1024 for w in plan.waves)
    assert not [n for n, why in plan.unplanned.items() if "budget" in why or "VRAM" in why], plan.unplanned


def test_without_a_gpu_the_vlm_is_left_out_with_the_reason_and_the_cpu_analyzers_run(sample_video, monkeypatch):
    """A laptop: the 7B description model is not planned (so never fetched), with the reason; Whisper and the
    other model analyzers with a practical CPU path are planned on the CPU."""
    plan = _shipped_plan(sample_video, monkeypatch, None).plan
    assert "qwen2_vl_temporal" not in plan.placements
    assert "no GPU here" in plan.unplanned["qwen2_vl_temporal"]
    for name in ("cut_analysis", "speech_transcription", "object_detection", "text_overlay"):
        assert plan.placements[name].device == "cpu", name


@pytest.mark.parametrize("gb", [24, 80])
def test_on_larger_gpus_the_vlm_runs_in_bf16(sample_video, monkeypatch, gb):
    vlm = _shipped_plan(sample_video, monkeypatch, gb).plan.placements["qwen2_vl_temporal"]
    assert vlm.is_gpu and vlm.variant == "bf16" and not vlm.substitutes


def test_framework_plan_keeps_the_table_short_and_prints_each_reason_whole(sample_video, monkeypatch):
    """The table's note cell is the reason's first words; the whole reason follows the table, one line each."""
    from click.testing import CliRunner

    from cli import main, short_note
    from framework.devices import GPUs

    assert short_note("will not run: no GPU here; on the CPU ...") == "will not run…"
    assert short_note("no GPU here") == "no GPU here" and short_note("") == ""
    assert short_note("x" * 80) == "x" * 39 + "…"
    monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True: GPUs([], {}, {}, {}, {}))
    monkeypatch.chdir(REPO)  # (the shipped registry.yaml, as a user in a clone finds it)
    result = CliRunner().invoke(main, ["plan", str(sample_video.path)], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    table, _, below = result.output.partition("plan for ")[2].partition("notes in full:")  # (after the logs)
    assert "will not run…" in table and "set `device: cpu`" not in table
    line = next(x for x in below.splitlines() if x.strip().startswith("qwen2_vl_temporal:"))
    assert "will not run: no GPU here" in line and "set `device: cpu` for it in registry.yaml" in line


@pytest.mark.parametrize("gpu", [False, True])
def test_framework_plan_on_80_columns_never_cuts_an_analyzers_name(sample_video, monkeypatch, gpu):
    """Piped, a table is 80 columns wide: every analyzer's name stays whole (four of them begin ``speech``), the
    other columns wrap or shrink, and on a machine without a GPU the columns that are ``-`` in every row (VRAM,
    batch) are left out."""
    from click.testing import CliRunner

    from cli import main
    from framework.devices import GPUs

    gpus = GPUs(["cuda:0"], {"cuda:0": 12288}, {"cuda:0": 12288}, {"cuda:0": "simulated"}, {"cuda:0": (8, 6)}) \
        if gpu else GPUs([], {}, {}, {}, {})
    monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True: gpus)
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["plan", str(sample_video.path), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    names = [*plan["analyzers"], *plan["unplanned"]]
    assert sum(n.startswith("speech") for n in names) >= 3
    if gpu:  # (each batching GPU analyzer's room for its batches; none on the CPU)
        rooms = {n: a["batch_room_mb"] for n, a in plan["analyzers"].items()}
        assert rooms["qwen2_vl_temporal"] > 0 and all(r is None for n, r in rooms.items()
                                                       if plan["analyzers"][n]["device"] == "cpu")
    result = CliRunner().invoke(main, ["plan", str(sample_video.path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    table = result.output.partition("plan for ")[2].partition("notes in full:")[0]
    assert max(len(line) for line in table.splitlines()) <= 80
    cells = [line.replace("│", " ").split() for line in table.splitlines()]
    rows = {c[0] for c in cells if c and c[0].isidentifier()}
    assert set(names) <= rows, set(names) - rows
    assert ("VRAM" in table) == gpu and ("bes…" not in table)
