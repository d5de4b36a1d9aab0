"""One row per end-to-end report (``bench/end_to_end_gpu.py --out``): the numbers to compare runs by.

For each report: the whole command, video-min per GPU-min, the runner's wall and its plan and decode
phases, when the VLM analysed (from-to) and its prefill / decoding-loop seconds (its CUDA graphs
account), the two things the VLM's start waits for (the cut list: cut_analysis's end; its model:
its load's end, after its wait for a load turn), when the first model's load began (the load turns: what the
import warm-up held before it), when fusion started, how many analyzers were ok, the GPU's mean
utilization in the plan, in the decode after it and in the rest of the run (``--gpu-samples``' phases), and the run's order in its work folder (a fresh machine's first runs have been its slowest). Then, for names that share a prefix before
``_`` and a number (``on_1``, ``on_2``, ``off_1``...), the median runner's wall per prefix.

    python bench/e2e_compare.py $OUT/e2e_*.md
    python bench/e2e_compare.py $OUT/e2e_*.md --analyzers voice_activity,qwen2_vl_temporal   # and their seconds
    bash bench/device_end_to_end.sh ab 2 on "--env OMP_NUM_THREADS=4" off ""   # prints this table at its end
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

SUMMARY = re.compile(r"\*\*whole command ([\d.]+) s wall.*?video-min per GPU-min ([\d.]+|-)"
                     r".*?runner's wall ([\d.]+|-) s"
                     r"(?:, plan ([\d.]+) s)?(?:, decode ([\d.]+) s)?.*?; (\d+)/(\d+) analyzers ok")
GRAPHS = re.compile(r"qwen2_vl_temporal: \{[^}]*'prefill_s': ([\d.]+), 'loop_s': ([\d.]+)")
ORDER = re.compile(r"^- timed run (\d+) in this work folder", re.M)
PROBE = re.compile(r"; CPU probe ([\d.]+) ms before")
TURNS = re.compile(r"^Load turns \([^)]*\): (.*)$", re.M)
TURN = re.compile(r"^(.*) (-?[\d.]+)-(-?[\d.]+) \((-?[\d.]+)\)$")
HEADER = ("| report | order | CPU probe ms | whole command s | video-min per GPU-min | runner's wall s | plan s | decode s | "
          "first load at s | qwen2_vl_temporal analyze (from-to) | its prefill / loop s | cut list at s | "
          "VLM's model at s | fusion from s | GPU busy % plan / decode / after | ok |")
GPU_SECTION = re.compile(r"^## The GPU's load.*?(?=^## |\Z)", re.M | re.S)
GPU_PHASE = re.compile(r"^\| ([^|]*?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| [^|]* \| \d+ \|$", re.M)


def analyzer_cells(text: str, name: str) -> dict[str, str] | None:
    """The report's analyzers table row of ``name``, by column title (None: not in the table)."""
    header = re.search(r"^\| analyzer \| status \|.*$", text, re.M)
    row = re.search(rf"^\| {re.escape(name)} \|.*$", text, re.M)
    if header is None or row is None:
        return None
    titles = [c.strip() for c in header.group(0).strip("|").split("|")]
    return dict(zip(titles, (c.strip() for c in row.group(0).strip("|").split("|"))))


def ended_at(cells: dict[str, str] | None, *columns: str) -> str:
    """The sum of ``columns`` of an analyzers table row (when a phase ended), '-' where one is missing."""
    try:
        return f"{sum(float(cells[c]) for c in columns):.1f}"  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return "-"


def span(cells: dict[str, str] | None) -> str:
    try:
        start, seconds = float(cells["analyze from s"]), float(cells["analyze s"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return "-"
    return f"{seconds:.2f} ({start:.1f}-{start + seconds:.1f})"


def first_load_at(text: str) -> str:
    """When the first model's load began (s from the plan's end), from the report's load turns: the import
    warm-up's turns before it are what it waited for ('-': no turns in the report)."""
    m = TURNS.search(text)
    for item in m.group(1).split("; ") if m else []:
        turn = TURN.match(item.strip())
        if turn and not turn.group(1).startswith("import "):
            return turn.group(2)
    return "-"


def gpu_busy(text: str) -> str:
    """The GPU's mean utilization (%) in the plan, in the decode after it and in the rest of the run (each
    later phase weighted by its length), from the report's ``--gpu-samples`` section; '-' without it."""
    plan = decode = None
    after: list[tuple[float, float]] = []
    section = GPU_SECTION.search(text)
    for name, start, end, mean in GPU_PHASE.findall(section.group(0) if section else ""):
        if name.startswith("the plan"):
            plan = mean
        elif name == "the decode after the plan":
            decode = mean
        else:
            after.append((float(end) - float(start), float(mean)))
    length = sum(seconds for seconds, _ in after)
    rest = f"{sum(s * m for s, m in after) / length:.0f}" if length > 0 else "-"
    return "-" if plan is None and decode is None and rest == "-" else f"{plan or '-'} / {decode or '-'} / {rest}"


def row(path: Path) -> dict[str, str]:
    """The numbers of one report ('-' where it has none)."""
    text = path.read_text(encoding="utf-8")
    out = {"report": path.stem.removeprefix("e2e_")}
    m = SUMMARY.search(text)
    keys = ("whole", "per_gpu_min", "runner", "plan", "decode", "ok", "of")
    out.update({k: (v or "-") for k, v in zip(keys, m.groups())} if m else dict.fromkeys(keys, "-"))
    order = ORDER.search(text)
    out["order"] = order.group(1) if order else "-"
    probe = PROBE.search(text)
    out["cpu_probe"] = probe.group(1) if probe else "-"
    vlm = analyzer_cells(text, "qwen2_vl_temporal")
    out["vlm"] = span(vlm)
    out["cut_list_at"] = ended_at(analyzer_cells(text, "cut_analysis"), "analyze from s", "analyze s")
    out["vlm_model_at"] = ended_at(vlm, "load from s", "waited for its turn s", "load s")
    out["first_load_at"] = first_load_at(text)
    g = GRAPHS.search(text)
    out["prefill_loop"] = f"{g.group(1)} / {g.group(2)}" if g else "-"
    fusion = analyzer_cells(text, "fusion")
    out["fusion_from"] = fusion.get("analyze from s", "-") if fusion else "-"
    out["gpu_busy"] = gpu_busy(text)
    return out


def table(rows: list[dict[str, str]]) -> list[str]:
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for r in rows:
        lines.append(f"| {r['report']} | {r['order']} | {r['cpu_probe']} | {r['whole']} | {r['per_gpu_min']} | {r['runner']} | "
                     f"{r['plan']} | {r['decode']} | {r['first_load_at']} | {r['vlm']} | {r['prefill_loop']} | "
                     f"{r['cut_list_at']} | "
                     f"{r['vlm_model_at']} | {r['fusion_from']} | {r['gpu_busy']} | {r['ok']}/{r['of']} |")
    return lines


def medians(rows: list[dict[str, str]]) -> list[str]:
    """The median runner's wall of each variant named ``NAME_<number>`` (two or more runs)."""
    groups: dict[str, list[float]] = {}
    for r in rows:
        m = re.fullmatch(r"(.+)_(\d+)", r["report"])
        if m and r["runner"] != "-":
            groups.setdefault(m.group(1), []).append(float(r["runner"]))
    return [f"- {name}: median runner's wall {statistics.median(v):.1f} s over {len(v)} runs "
            f"({', '.join(f'{x:.1f}' for x in v)})" for name, v in sorted(groups.items()) if len(v) > 1]


def analyzer_table(paths: list[Path], names: list[str]) -> list[str]:
    """Per report, each of ``names``' analyze / busy seconds (``-``: not in the report, or no device steps)."""
    lines = ["| report | " + " | ".join(f"{n} analyze / busy s" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for path in paths:
        text = path.read_text(encoding="utf-8")
        cells = [analyzer_cells(text, n) for n in names]
        lines.append(f"| {path.stem.removeprefix('e2e_')} | " + " | ".join(
            f"{c.get('analyze s', '-')} / {c.get('busy s', '-')}" if c else "-" for c in cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/e2e_compare.py /tmp/e2e_out/e2e_*.md")
    ap.add_argument("reports", nargs="+", type=Path, help="markdown reports of bench/end_to_end_gpu.py")
    ap.add_argument("--analyzers", default="", help="comma list: a second table of these analyzers' analyze and "
                    "busy seconds per report (e.g. voice_activity,qwen2_vl_temporal)")
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.reports if not p.is_file()]
    if missing:
        ap.error(f"no such report: {', '.join(missing)}")
    rows = [row(p) for p in args.reports]
    names = [n.strip() for n in args.analyzers.split(",") if n.strip()]
    second = ["", *analyzer_table(args.reports, names)] if names else []
    print("\n".join(table(rows) + [""] + medians(rows) + second))
    return 0


if __name__ == "__main__":
    sys.exit(main())
