"""bench/gpu_samples.py: nvidia-smi's samples parsed and averaged over a run's phases (the text is
nvidia-smi's output format; the GPU machine runs the real command)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_samples as gs  # noqa: E402  (bench/gpu_samples.py)

T0 = time.mktime(time.strptime("2026/12/01 07:10:00", "%Y/%m/%d %H:%M:%S"))


def _util_text(values: list[int]) -> str:
    """One sample every 0.5 s from T0, as nvidia-smi --format=csv,noheader,nounits writes them."""
    lines = []
    for k, v in enumerate(values):
        t = T0 + 0.5 * k
        lines.append(time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}, {v}, 1000")
    return "\n".join(lines + ["garbage line", ""])


def _results() -> dict:
    track = lambda at, s, dev="cuda:0": {"receipt": {"analyze_at_s": at, "analyze_s": s, "device": dev}}  # noqa: E731
    return {"run": {"started_at": T0, "receipt": {"phases_s": {"plan": 1.0, "decode": 2.0}}},
            "tracks": {"qwen2_vl_temporal": track(1.5, 2.0), "object_detection": track(1.0, 1.5),
                       "cut_analysis": track(0.5, 0.5, "cpu"), "fusion": track(3.5, 0.5)}}


def test_samples_parse_and_average_over_the_runs_phases():
    # 0-1 s the plan: idle; 1-2 s the decode: half busy; 2.5-3.5 s the VLM beside YOLO: full; 3.5-4.5 s the VLM alone
    samples = gs.parse_util(_util_text([0, 0, 100, 0, 50, 100, 100, 100, 60, 60]))
    assert len(samples) == 10 and samples[2].util == 100 and abs(samples[3].t - samples[2].t - 0.5) < 1e-6
    windows = gs.run_windows(_results())
    labels = [w[0] for w in windows]
    assert labels == ["the plan (the early decode, imports, loads)", "the decode after the plan",
                      "the decode's end to qwen2_vl_temporal's start",
                      "qwen2_vl_temporal beside the other GPU analyzers", "qwen2_vl_temporal after the others' end",
                      "fusion"]
    means = {label: gs.mean_util(samples, a, b) for label, a, b in windows}
    assert means["the plan (the early decode, imports, loads)"][:2] == (0.0, 1.0)
    assert means["the decode after the plan"][0] == 50.0
    assert means["qwen2_vl_temporal beside the other GPU analyzers"][0] == 100.0
    assert means["qwen2_vl_temporal after the others' end"][0] == 80.0  # (3.5 s: 100, 4.0 s: 60)
    lines = "\n".join(gs.report_lines(samples, [], _results()))
    assert "| the decode after the plan | 1.0 | 2.0 | 50 | 50% | 2 |" in lines
    assert "   0s 05796" in lines  # each second's two samples: (0, 0), (100, 0), (50, 100), (100, 100), (60, 60)


def test_pmon_rows_by_the_headers_names_and_a_missing_sampler_says_so():
    text = ("#Date       Time        gpu         pid   type     sm    mem    enc    dec    jpg    ofa    command\n"
            "#YYYYMMDD   HH:MM:SS    Idx           #    C/G      %      %      %      %      %      %    name\n"
            " 20261201   07:10:01      0       4242     C     45     10      -      -      -      -    python3\n"
            " 20261201   07:10:02      0       4242     C      -      -      -      -      -      -    python3\n"
            " 20261201   07:10:02      0       4343     C     30      2      -      -      -      -    python3\n"
            " 20261201   07:10:03      0       4343     C     50      2      -      -      -      -    python3\n")
    rows = gs.parse_pmon(text)
    assert [(r["pid"], r["sm"], r["t"] - T0) for r in rows] == [(4242, 45.0, 1.0), (4242, 0.0, 2.0), (4343, 30.0, 2.0),
                                                                (4343, 50.0, 3.0)]
    results = _results()
    lines = "\n".join(gs.report_lines(gs.parse_util(_util_text([50, 50])), rows, results, main_pid=4242))
    # (the VLM's stretch beside the others runs from 2.5 to 3.5 s: 4343's third second is in it)
    assert "| 4242 | the run's process | 1 | 1 | 1 | 45 | 0 |" in lines and "| 4343 | python3 | 2 | 2 | 3 | 80 | 50 |" in lines
    results["tracks"]["object_detection"]["receipt"]["pid"] = 4343  # (an analyzer in a process of its own)
    lines = "\n".join(gs.report_lines(gs.parse_util(_util_text([50, 50])), rows, results, main_pid=4242))
    assert "| 4343 | object_detection | 2 | 2 | 3 | 80 | 50 |" in lines
    assert "No samples: nvidia-smi is not on PATH." in "\n".join(gs.report_lines([], [], {}, None, "nvidia-smi is not on PATH"))
