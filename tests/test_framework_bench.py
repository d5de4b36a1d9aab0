"""`framework bench`: the anchors quote docs/benchmarks.md, cut scoring, and a real --quick run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from framework.benchmark import compare, load_anchors, match_cuts, prf

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def test_every_anchor_quotes_a_line_of_docs_benchmarks_holding_its_value():
    text = DOCS.read_text(encoding="utf-8")
    anchors = load_anchors()
    assert {"decode_fps", "cut_f1", "whole_cpu_set", "analyzer:cut_analysis"} <= {a["id"] for a in anchors}
    for a in anchors:
        assert a["source"] in text, a["id"]
        given = a.get("analyze_s", a["value"])
        assert f"{float(given):.2f}".rstrip("0").rstrip(".") in a["source"].replace(".00", ""), a["id"]
        assert a["conditions"] and a["unit"]
    cut = next(a for a in anchors if a["id"] == "analyzer:cut_analysis")
    assert cut["value"] == pytest.approx(60 / 0.32, abs=0.1)  # seconds of video per second, from the time


def test_cut_matching_is_one_to_one_and_closest_first():
    assert match_cuts([10, 11, 50], [10, 30], 1) == (1, 2, 1)  # 11 cannot take 10's cut a second time
    assert match_cuts([29, 31], [30], 1) == (1, 1, 0)
    assert match_cuts([], [], 0) == (0, 0, 0) and prf(0, 0, 0)["f1"] == 1.0
    assert prf(*match_cuts([], [5], 0)) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert prf(3, 1, 1)["f1"] == pytest.approx(0.75)


def test_compare_reports_only_what_was_measured_with_the_ratio():
    receipt = {"decode": [{"fps": 526.5}], "cuts": [{"exact": {"f1": 0.9}}, {"exact": {"f1": 1.0}}],
               "analyzers": {"rows": [{"analyzer": "cut_analysis", "video_s_per_s": 93.75},
                                      {"analyzer": "no_anchor", "video_s_per_s": 3.0}]}}
    rows = {r["id"]: r for r in compare(receipt, load_anchors())}
    assert set(rows) == {"decode_fps", "cut_f1", "analyzer:cut_analysis"}
    assert rows["decode_fps"]["ratio"] == 0.5 and rows["cut_f1"]["ours"] == 0.9  # the worst clip counts
    assert rows["analyzer:cut_analysis"]["ratio"] == 0.5
    six = ["cut_analysis", "scene_segmentation", "color_analysis", "camera_analysis", "audio_analysis", "fusion"]
    receipt["analyzers"]["together"] = {"analyzers": six + ["temporal_flow"], "video_s_per_s": 10.6}
    assert "whole_cpu_set" not in {r["id"] for r in compare(receipt, load_anchors())}  # not the anchor's set
    receipt["analyzers"]["together"]["analyzers"] = list(reversed(six))
    rows = {r["id"]: r for r in compare(receipt, load_anchors())}
    assert rows["whole_cpu_set"]["ratio"] == 0.5


def test_bench_quick_measures_this_machine_and_writes_its_receipt(tmp_path):
    out = tmp_path / "bench"
    r = CliRunner().invoke(main, ["bench", "--quick", "--analyzers", "cut_analysis", "--out", str(out),
                                  "--work", str(tmp_path / "media"), "--json"])
    assert r.exit_code == 0, r.output
    receipt = json.loads(r.stdout)
    assert json.loads((out / "bench.json").read_text())["decode"] == receipt["decode"]
    assert "## Cut detection" in (out / "bench.md").read_text()
    (decode,) = receipt["decode"]
    assert decode["frames"] == 180 and decode["fps"] > 0
    (cuts,) = receipt["cuts"]
    assert cuts["analyzer"] == "cut_analysis" and cuts["true_cuts"] >= 2
    assert cuts["exact"]["f1"] >= 0.8 and cuts["within_1_frame"]["f1"] >= cuts["exact"]["f1"]
    (row,) = receipt["analyzers"]["rows"]
    assert row["analyzer"] == "cut_analysis" and row["status"] == "ok" and row["exit_code"] == 0
    assert row["video_s_per_s"] > 0 and row["peak_rss_mb"] > 30 and row["peak_vram_mb"] is None
    ids = {a["id"] for a in receipt["anchors"]}
    assert {"decode_fps", "cut_f1", "analyzer:cut_analysis"} <= ids
    assert receipt["machine"]["cpus"] >= 1 and "load_average" in receipt["machine"]


def test_bench_names_an_unknown_analyzer(tmp_path):
    r = CliRunner().invoke(main, ["bench", "--quick", "--analyzers", "cut_analysys", "--out", str(tmp_path)])
    assert r.exit_code == 4 and "cut_analysys" in r.output and "cut_analysis" in r.output
