"""`framework bench`: measure this machine on generated media, against the published anchors."""
from __future__ import annotations

import json
from pathlib import Path

import click

from . import console, main, user_errors


@main.command("bench")
@click.option("--quick", is_flag=True, help="A 6 s 320x180 clip, one pass of each measure: a check in seconds, not a benchmark.")
@click.option("--analyzers", default=None, metavar="LIST",
              help="Comma list of analyzers to time, e.g. --analyzers cut_analysis,color_analysis (default: the enabled ones).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/bench"),
              show_default=True, help="Folder for bench.json (the receipt) and bench.md (the tables).")
@click.option("--minutes", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Length of the generated 1280x720 clip, e.g. --minutes 2 (ignored with --quick).")
@click.option("--registry", "registry_path", type=click.Path(path_type=Path),
              help="registry.yaml whose analyzers and params to use (default: ./registry.yaml, then $FRAMEWORK_HOME/registry.yaml).")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the generated clips are kept between runs (default: a folder in the system's temp directory).")
@click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON on stdout.")
@user_errors
def bench_cmd(quick: bool, analyzers: str | None, out_dir: Path, minutes: float, registry_path: Path | None,
              work: Path | None, as_json: bool) -> None:
    """Measure what this machine does, in a few minutes, on media it generates: decoding speed,
    the cut detector's F1 and speed on clips with known cuts, and each analyzer's throughput
    (seconds of video per second, peak memory, peak VRAM on CUDA), compared with the figures
    published in docs/benchmarks.md.

    \b
    Examples:
      framework bench
      framework bench --quick
      framework bench --analyzers cut_analysis,audio_analysis --minutes 2 --out bench-results/
    """
    from framework.benchmark import BenchOptions, markdown, run_bench

    from .run import _names

    opts = BenchOptions(out=out_dir, minutes=minutes, quick=quick, analyzers=_names(analyzers),
                        registry_path=registry_path, work=work)
    with console.status("framework bench") as status:
        receipt = run_bench(opts, on_step=lambda s: status.update(f"framework bench: {s}"))
    if as_json:
        click.echo(json.dumps(receipt, indent=1, default=str))
        return
    from rich.markdown import Markdown

    console.print(Markdown("\n".join(markdown(receipt))))
    console.print(f"receipt: {out_dir / 'bench.json'} (tables: {out_dir / 'bench.md'})", highlight=False)
