"""bench/end_to_end_gpu.py: the whole default set as one real ``framework run``, on its CPU path with tiny
models (the GPU machine runs the same script at real size)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import end_to_end_gpu as e2e  # noqa: E402  (bench/end_to_end_gpu.py)


def _classes():
    from framework.plugins import build_plugin_manager

    return build_plugin_manager(load_entrypoints=False).analyzers


def test_the_set_is_the_originally_active_classes_what_they_depend_on_and_fusion():
    names, deps, _status = e2e.analyzer_set()
    classes = _classes()
    active = {n for n, c in classes.items() if getattr(c, "original_status", None) == "active"}
    assert active and active <= set(names)
    assert not {n for n in names if getattr(classes[n], "original_status", None) == "disabled"}
    extra = set(names) - active
    assert "fusion" in extra and names[-1] == "fusion"
    for name in extra - {"fusion"}:  # only what an active analyzer reads (voice_activity for the speech ones)
        assert any(name in deps[a] for a in active), name
    assert {"qwen2_vl_temporal", "speech_transcription", "object_detection", "text_overlay", "voice_activity"} <= set(names)


def test_a_track_that_did_not_run_names_the_missing_package_of_it_or_of_its_upstream():
    prep = {"depends_on": {"speech_rate": ["voice_activity"], "voice_activity": [], "cut_analysis": []},
            "packages": [{"module": "silero_vad", "ok": False, "analyzers": ["voice_activity"]},
                         {"module": "ultralytics", "ok": False, "analyzers": ["object_detection"]},
                         {"module": "av", "ok": True, "analyzers": ["* (decoding)"]}]}
    assert e2e.missing_packages_of("speech_rate", prep) == ["silero_vad"]
    assert e2e.missing_packages_of("voice_activity", prep) == ["silero_vad"]
    assert e2e.missing_packages_of("cut_analysis", prep) == []
    prep["packages"][2]["ok"] = False  # without av nothing runs
    assert e2e.missing_packages_of("cut_analysis", prep) == ["av"]


@pytest.mark.slow
def test_tiny_cpu_run_of_the_whole_set_through_the_real_cli(tmp_path):
    out, numbers = tmp_path / "report.md", tmp_path / "numbers.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    common = [sys.executable, str(ROOT / "bench" / "end_to_end_gpu.py"), "--tiny", "--device", "cpu", "--minutes",
              "0.25", "--width", "640", "--height", "360", "--work", str(tmp_path / "work")]
    # in two steps, as on the GPU machine: the preparation, then the timed command reusing it
    proc = subprocess.run(common + ["--prepare-only"], capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0 and (tmp_path / "work" / "prepare.json").is_file(), proc.stderr[-3000:]
    proc = subprocess.run(common + ["--reuse", "--out", str(out), "--json-out", str(numbers),
                                    "--env", "FRAMEWORK_BENCH_MARK=seen", "--high-priority", "qwen2_vl_temporal"],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[1/3] prepare" in proc.stdout and "prepared in" in proc.stdout
    data = json.loads(numbers.read_text())
    prep, run, rows = data["prepare"], data["run"], {r["analyzer"]: r for r in data["rows"]}

    # the real CLI ran in its own process, timed from outside, and wrote results.json
    assert run["cmd"][1:4] == ["-m", "cli", "run"] and "--offline" in run["cmd"] and run["rc"] == 0
    results = json.loads((Path(run["run_dir"]) / "results.json").read_text())
    assert set(results["tracks"]) == set(prep["analyzers"]) == set(rows)
    assert (run["peak_rss_time"] or 0) > 50 * 2**20 or (run["peak_rss_poll"] or 0) > 50 * 2**20

    # every analyzer ran, or was skipped for a reason the report ties to a package missing here
    missing = {p["module"] for p in prep["packages"] if not p["ok"]}
    for name, row in rows.items():
        if row["status"] != "ok":
            assert row["status"] == "skipped" and row["missing_packages"], (name, row["status"], row["reason"])
            assert set(row["missing_packages"].split(", ")) <= missing
    # each seeded model was loaded from where the seeding put it: its analyzer's track is ok and names it
    seeded = {m for m, v in prep["models"].items() if "path" in v}
    assert {"qwen2-vl-7b-instruct", "whisper-base", "ast-audioset", "qwen2.5-1.5b-instruct"} <= seeded
    for name in prep["analyzers"]:
        track = results["tracks"][name]
        for model in track["models"]:
            if model["id"] in seeded and not rows[name]["missing_packages"]:
                assert track["status"] == "ok", (name, track["status"], track["reason"])
    assert rows["qwen2_vl_temporal"]["status"] == "ok" and rows["qwen2_vl_temporal"]["items"] >= 1
    assert results["tracks"]["fusion"]["data"]["fusion"].get("auto", "").startswith("auto chose the local instruct model")

    # the receipt was read from the run
    receipt = data["receipt"]
    assert receipt == results["run"]["receipt"]
    assert receipt["video_s"] == pytest.approx(prep["clip"]["seconds"], abs=0.2)
    assert receipt["wall_s"] > 0 and receipt["video_min_per_gpu_min"] is None  # no GPU on this path
    assert rows["object_detection"]["busy_s"] is not None and rows["object_detection"]["batches"]

    # the markdown
    text = out.read_text()
    assert "## Analyzers (from results.json" in text and "## Run receipt" in text and "whole command" in text
    assert f"| qwen2_vl_temporal | {rows['qwen2_vl_temporal']['status']} |" in text
    assert json.dumps(receipt, indent=1) in text
    assert "; FRAMEWORK_BENCH_MARK=seen)" in text and "- timed run 1 in this work folder" in text
    assert re.search(r"^- machine: .*; CPU probe [\d.]+ ms before", text, re.M)  # (which machine, which moment)
    assert "; this run's variant of it: keys qwen2_vl_temporal.gpu_stream_priority: high" in text
    around = re.search(r"^Around the runner's wall: ([\d.]+) s from the command's start .* and ([\d.]+) s from the "
                       r"runner's end", text, re.M)  # (the whole command = before + the runner's wall + after)
    assert around and float(around[1]) + receipt["wall_s"] + float(around[2]) == pytest.approx(run["wall_s"], abs=0.3)
    # bench/e2e_compare.py reads the report's numbers back
    import e2e_compare

    row = e2e_compare.row(out)
    assert row["order"] == "1" and float(row["runner"]) == pytest.approx(receipt["wall_s"], abs=0.05)
    assert row["vlm"].startswith(f"{rows['qwen2_vl_temporal']['analyze_s']:.2f} (")


def test_the_timed_command_can_reuse_a_preparation_from_an_earlier_call(tmp_path):
    """One GPU call (10 minutes) is too short for preparing and timing a 10-minute 720p clip:
    ``--prepare-only --work DIR`` then ``--reuse --work DIR``. Without a preparation it says so."""
    with pytest.raises(SystemExit):
        e2e.main(["--reuse", "--device", "cpu", "--tiny"])  # no --work: argparse's error
    out = tmp_path / "report.md"
    assert e2e.main(["--reuse", "--device", "cpu", "--tiny", "--work", str(tmp_path / "w"), "--out", str(out)]) == 2
    assert "run --prepare-only first" in out.read_text()


def test_at_the_deadline_the_command_is_interrupted_and_the_report_reads_the_tracks_it_saved(tmp_path):
    """The timed command gets SIGINT (a user's Ctrl-C) at the deadline; the runner saves finished tracks
    in ``tracks/`` as they finish, and the report lists them instead of an empty table."""
    fake = tmp_path / "fake-python"
    # stands in for `python -m cli run`: saves one track, then runs until interrupted
    fake.write_text("#!/bin/sh\nmkdir -p run/tracks\n"
                    "echo '{\"key\": \"k\", \"track\": {\"status\": \"ok\", \"events\": [{}, {}]}}' "
                    "> run/tracks/cut_analysis.json\ntrap 'echo stopped >&2; exit 130' INT\n"
                    "while true; do sleep 0.1; done\n")
    fake.chmod(0o755)
    args = e2e.argparse.Namespace(python=str(fake), device="cpu", vram_budget="auto", deadline=1.0,
                                  profile=None)
    run = e2e.run_cli(args, tmp_path, "clip.mp4", "registry.yaml", dict(os.environ), timeout=1.0)
    assert run["rc"].startswith("interrupted after 1 s") and "stopped" in run["stderr"]
    tracks = e2e.saved_tracks(Path(run["run_dir"]))
    assert set(tracks) == {"cut_analysis"}
    rows = {r["analyzer"]: r for r in e2e.track_rows({"tracks": tracks}, ["cut_analysis", "qwen2_vl_temporal"])}
    assert rows["cut_analysis"]["status"] == "ok" and rows["cut_analysis"]["events"] == 2
    assert rows["qwen2_vl_temporal"]["status"] == "absent" and "stopped before results.json" in rows["qwen2_vl_temporal"]["reason"]


def test_the_report_rows_carry_the_vlms_account_of_its_prefill_groups():
    groups = {"most": 64, "joint_batches": 1, "memory_gb": [{"after": "prefill 1", "allocated": 30.1, "peak": 40.2}]}
    tracks = {"qwen2_vl_temporal": {"status": "ok", "data": {"model_info": {"prefill_rows": groups},
                                                             "prompt_tokens": 95256, "padding_tokens": 5616}},
              "cut_analysis": {"status": "ok", "data": {}}}
    rows = {r["analyzer"]: r for r in e2e.track_rows({"tracks": tracks}, ["cut_analysis", "qwen2_vl_temporal"])}
    assert rows["qwen2_vl_temporal"]["prefill_rows"] == groups and rows["cut_analysis"]["prefill_rows"] is None
    assert (rows["qwen2_vl_temporal"]["prompt_tokens"], rows["qwen2_vl_temporal"]["padding_tokens"]) == (95256, 5616)


def test_a_reused_preparation_names_the_versions_this_call_imports():
    machine = "vm: 16 CPUs, torch 2.11.0+cu130, transformers 5.17.0, NVIDIA H200"
    rows = [{"module": "transformers", "version": "5.23.0"}, {"module": "torch", "version": "2.11.0+cu130"},
            {"module": "whisper", "version": "20250625"}, {"module": "mediapipe", "version": None}]
    assert e2e.with_versions(machine, rows) == "vm: 16 CPUs, torch 2.11.0+cu130, transformers 5.23.0, NVIDIA H200"
    assert e2e.with_versions(machine, [{"module": "transformers", "version": None}]) == machine


def test_the_whole_commands_time_outside_the_runner_is_split_into_before_and_after():
    run = {"started_epoch": 1000.0, "ended_epoch": 1033.5}
    results = {"run": {"started_at": 1001.5, "receipt": {"wall_s": 29.5}}}
    text = e2e.around_runner(run, results)
    assert text.startswith("1.5 s from the command's start to the runner's") and "2.5 s from the runner's end" in text
    assert e2e.around_runner(run, {"tracks": {}}) is None and e2e.around_runner({"wall_s": 3}, results) is None


def test_each_timed_run_in_a_work_folder_knows_its_order(tmp_path):
    assert [e2e.count_timed_run(tmp_path) for _ in range(3)] == [1, 2, 3]


def test_an_environment_setting_must_be_name_equals_value(tmp_path):
    with pytest.raises(SystemExit):
        e2e.main(["--reuse", "--device", "cpu", "--tiny", "--work", str(tmp_path), "--env", "OMP_NUM_THREADS"])


# (a backslash at a line's end joins it to the next, as the report's one-line summary is)
REPORT = """# End to end: the default set as one `framework run` (real-size random weights, cuda)

- machine: vm: 16 CPUs; Intel(R) Xeon(R) Processor; load before 1.00 / 1.00 / 1.00, after 9.00 / 2.00 / 1.00; \
CPU probe 31.5 ms before (one core compiling fixed Python source: lower is faster)
- timed command: `python -m cli run clip.mp4` (cwd: the work folder; HF_HUB_OFFLINE=1; OMP_NUM_THREADS=4)
- timed run {order} in this work folder (on a fresh machine: its first runs have been its slowest)

**whole command {whole} s wall (exit 0) for 600 s of video; peak RSS 1 MiB (GNU time -v); video-min per GPU-min 16.67 \
(runner's receipt; target >= 20); video-min per wall-min of the whole command 15.87; cuda:0 busy 74%; runner's wall \
{runner} s, plan 4.1 s, decode 9.8 s, analyzers 31.9 s; 22/24 analyzers ok**

| analyzer | status | device | variant | models | load from s | waited for its turn s | load s | analyze from s | analyze s | busy s |
|---|---|---|---|---|---|---|---|---|---|---|
| cut_analysis | ok | cpu (own process) | - | - | 0.0 | - | 0.01 | 6.1 | 0.94 | - |
| qwen2_vl_temporal | ok | cuda:0 | bf16 | qwen2-vl-7b-instruct | 0.1 | 1.7 | 5.26 | 7.0 | 19.97 | 18.86 |
| fusion | ok | cuda:0 | bf16 | qwen2.5-1.5b-instruct | 0.1 | 15.9 | 2.69 | 27.0 | 4.89 | - |

CUDA graphs (the tracks' own account): qwen2_vl_temporal: {{'used': True, 'prefill_s': 11.961, 'loop_s': 6.888}}; \
fusion: {{'used': True, 'prefill_s': 0.2, 'loop_s': 4.1}}

Load turns (who: began-ended s from the plan's end, waited s): import transformers.modeling_utils -5.4-2.5 (0.0); \
qwen2_vl_temporal 2.5-8.4 (2.4); import open_clip 8.4-9.0 (0.0)
"""


def test_the_comparison_reads_each_report_and_the_median_of_each_variant(tmp_path, capsys):
    import e2e_compare

    for name, order, whole, runner in (("on_1", 2, 35.8, 33.8), ("off_1", 3, 38.5, 36.2), ("on_2", 5, 36.8, 34.5),
                                       ("off_2", 4, 37.0, 35.0), ("warmup", 1, 40.0, 38.0)):
        (tmp_path / f"e2e_{name}.md").write_text(REPORT.format(order=order, whole=whole, runner=runner))
    row = e2e_compare.row(tmp_path / "e2e_on_1.md")
    assert row == {"report": "on_1", "whole": "35.8", "per_gpu_min": "16.67", "runner": "33.8", "plan": "4.1",
                   "decode": "9.8", "ok": "22", "of": "24", "order": "2", "cpu_probe": "31.5", "vlm": "19.97 (7.0-27.0)",
                   "prefill_loop": "11.961 / 6.888", "cut_list_at": "7.0", "vlm_model_at": "7.1",
                   "fusion_from": "27.0", "first_load_at": "2.5", "gpu_busy": "-"}
    assert e2e_compare.main(sorted(str(p) for p in tmp_path.glob("*.md"))) == 0
    text = capsys.readouterr().out
    assert ("| on_1 | 2 | 31.5 | 35.8 | 16.67 | 33.8 | 4.1 | 9.8 | 2.5 | 19.97 (7.0-27.0) | 11.961 / 6.888 | 7.0 | 7.1 | "
            "27.0 | - | 22/24 |") in text
    assert "- on: median runner's wall 34.1 s over 2 runs (33.8, 34.5)" in text  # (34.15 to one decimal)
    older = tmp_path / "older" / "e2e_old_1.md"  # a report from before the probe
    older.parent.mkdir()
    older.write_text(re.sub(r"; CPU probe [^\n]*", "", REPORT).format(order=1, whole=35.8, runner=33.8))
    assert "CPU probe" not in older.read_text() and e2e_compare.row(older)["cpu_probe"] == "-"
    assert "- off: median runner's wall 35.6 s over 2 runs" in text and "warmup:" not in text
    # a second table: each named analyzer's analyze / busy seconds per report (- where a report has none)
    assert e2e_compare.main([str(tmp_path / "e2e_on_1.md"), "--analyzers", "qwen2_vl_temporal,no_such"]) == 0
    second = capsys.readouterr().out.split("\n\n")[-1]
    assert "| report | qwen2_vl_temporal analyze / busy s | no_such analyze / busy s |" in second
    cells = e2e_compare.analyzer_cells(REPORT.format(order=2, whole=35.8, runner=33.8), "qwen2_vl_temporal")
    assert f"| on_1 | {cells['analyze s']} / {cells['busy s']} | - |" in second


def test_the_comparison_reads_the_gpus_load_in_the_plan_the_decode_and_after():
    """``--gpu-samples``' phases: the plan's and the decode's mean utilization as they are, the phases after the decode
    weighted by their length (10 s at 70 % and 30 s at 90 %: 85 %); the CPU table below it is not read."""
    import e2e_compare

    section = """## The GPU's load (nvidia-smi, sampled from outside the command)

| phase | from s | to s | mean utilization % | samples at 0 % | samples |
|---|---|---|---|---|---|
| the plan (the early decode, imports, loads) | 0.0 | 4.0 | 0 | 100% | 40 |
| the decode after the plan | 4.0 | 10.0 | 3 | 52% | 60 |
| the decode's end to qwen2_vl_temporal's start | 10.0 | 20.0 | 70 | 0% | 100 |
| qwen2_vl_temporal beside the other GPU analyzers | 20.0 | 50.0 | 90 | 0% | 300 |

## The CPUs' load (psutil, sampled from outside the command every 0.2 s)

| process | a | b | c | d |
|---|---|---|---|---|
| the run's process | 1.0 | 2.0 | 3.0 | 50% | 7 |
"""
    assert e2e_compare.gpu_busy(section) == "0 / 3 / 85"
    assert e2e_compare.gpu_busy("no such section") == "-"
