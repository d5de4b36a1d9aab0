"""``cli.table_of``: the tables of ``framework plan``, ``run``, ``analyzers list``, ``models list`` and ``library list``
on a narrow terminal (80 columns: what a pipe gets): names whole, nothing past the width, long words folded."""
from __future__ import annotations

import io

import pytest
from rich.console import Console

from cli import table_of


def _render(table, width: int) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 100, 200])
def test_names_stay_whole_and_the_table_fits_the_width(width):
    rows = [(str(i), name, "0:30.0", "17", title, f"/tmp/runs/{name}-results-folder") for i, (name, title) in enumerate([
        ("big_buck_bunny_0_30.webm", '"THE PEACH OPF": a 30-second video'),
        ("testvideo.mp4", '"Copyright @ 2013 Brandon Castellano": a 24-second video'),
        ("auto_editor_example.mp4", '"01:00:02:00": a 42-second video'), ("x.mp4", "A 13-second video in 1 scene")])]
    lines = _render(table_of("videos", ("#", "video", "length", "moments", "title", "run folder"), rows, names=1,
                             width=width), width)
    assert max(len(line) for line in lines) <= width
    assert all(line.rstrip()[-1] in "┓┃┩│┘" for line in lines[1:]), lines  # (no row cut off at the right edge)
    text = "\n".join(lines)
    for name in ("big_buck_bunny_0_30.webm", "auto_editor_example.mp4"):
        assert name in text  # (never "big_buck_bunny_…")
    assert "…" not in text
    # the long paths in the last column are folded, never cut: all of their characters are there, in order
    last = "".join(line.split("│")[-2].strip() for line in lines if line.startswith("│"))
    for _, name, *_ in rows:
        assert f"/tmp/runs/{name}-results-folder" in last, last


def test_a_column_that_is_dash_everywhere_is_left_out_unless_asked():
    rows = [("cut_analysis", "cpu", "-", "-", ""), ("speech_flow", "cpu", "-", "-", "a note")]
    cols = ("analyzer", "device", "VRAM (MB)", "max batch", "note")
    assert "VRAM" not in "\n".join(_render(table_of("plan", cols, rows, width=80), 80))
    assert "VRAM" in "\n".join(_render(table_of("plan", cols, rows, width=80, drop_empty=False), 80))
