"""bench/prefill_padding.py: the description batch's prefill padding by grouping, from a run's cut list."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import prefill_padding  # noqa: E402  (bench/prefill_padding.py)


def test_the_table_gives_each_groupings_padding_from_the_runs_shots(tmp_path, capsys):
    bounds = [0.0]
    for length in [4.0, 7.0, 10.0, 5.0, 13.0, 16.0, 6.0, 12.0] * 8:  # the e2e clip's shots, 584 s
        bounds.append(bounds[-1] + length)
    shots = [{"start": a, "end": b, "label": "shot"} for a, b in zip(bounds, bounds[1:])]
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"video": {"duration": bounds[-1]}, "tracks": {"cut_analysis": {"events": shots}}}))
    assert prefill_padding.main([str(results), "--costs", "0,3000"]) == 0
    out = capsys.readouterr().out
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in out.splitlines() if line.startswith("| ")}
    fewest, free = rows["the fewest groups of at most 64"], rows["prefill_group_tokens 0"]
    assert fewest[1] == "2" and int(fewest[3]) > 0  # two groups, padded
    assert int(free[3]) == 0 and int(free[1]) > 2  # a group per prompt length: no padding
    assert int(fewest[3]) > int(rows["prefill_group_tokens 3000"][3]) >= 0
    lengths = prefill_padding.chunk_tokens([(a, b) for a, b in zip(bounds, bounds[1:])], bounds[-1], fps=2.0, width=448,
                                           height=252, text=60, chunk_s=10.0, min_chunk_s=2.0, max_frames=768)
    assert min(lengths) == 4 * 144 + 60 and max(lengths) == 10 * 144 + 60  # a 4 s shot: 8 frames, 4 pairs of 144
