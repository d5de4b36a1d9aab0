"""Cut-speed ratio on real footage alone, beside the combined one, read from a bench_cuts results file.

bench_cuts.py's "all files" row sums every file, and its 60 s synthetic clip (x264 ultrafast: no
deblocking, no B-frames, CAVLC) has most of the frames. This script re-adds the speed table's rows
without it: the third-party files together, and testvideo.mp4 (the only camera footage) alone.
Seconds per file are frames / fps of the fastest runs, as in the "all files" row.

Usage:
    python bench/real_footage_ratio.py bench/results/bench_cuts.md [more results files...]
"""
from __future__ import annotations

import sys
from pathlib import Path

SYNTHETIC = "synthetic"


def speed_rows(text: str) -> dict[str, tuple[int, float, float, float]]:
    """file -> (frames, ours fps, content fps, adaptive fps) from the speed table."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or not cells[1].isdigit() or cells[0].startswith("**"):
            continue
        try:
            rows[cells[0]] = (int(cells[1]), float(cells[2]), float(cells[4]), float(cells[5]))
        except ValueError:
            continue
    return rows


def ratios(rows: dict[str, tuple[int, float, float, float]], names: list[str]) -> tuple[int, float, float]:
    """(frames, PySceneDetect content s / ours s, adaptive s / ours s) summed over ``names``."""
    frames = sum(rows[n][0] for n in names)
    ours = sum(rows[n][0] / rows[n][1] for n in names)
    content = sum(rows[n][0] / rows[n][2] for n in names)
    adaptive = sum(rows[n][0] / rows[n][3] for n in names)
    return frames, content / ours, adaptive / ours


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    print("| results file | files | frames | ours / content | ours / adaptive |\n|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        rows = speed_rows(Path(arg).read_text())
        real = [n for n in rows if SYNTHETIC not in n]
        groups = [("all files (as bench_cuts prints)", list(rows)),
                  ("third-party files: " + ", ".join(real), real)]
        groups += [(f"{n} alone (camera footage)", [n]) for n in real if n.startswith("testvideo")]
        for label, names in groups:
            if names:
                frames, c, a = ratios(rows, names)
                print(f"| {Path(arg).name} | {label} | {frames} | {c:.2f}x | {a:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
