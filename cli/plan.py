"""`framework plan`: what a run would load where, without running anything."""
from __future__ import annotations

import json
from pathlib import Path

import click

from . import console, main, print_full_notes, short_note, table_of, user_errors


@main.command("plan")
@click.argument("video", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--registry", "registry_path", type=click.Path(path_type=Path),
              help="registry.yaml to use (default: ./registry.yaml, then $FRAMEWORK_HOME/registry.yaml).")
@click.option("--only", help="Comma list: plan only these analyzers (and what they depend on).")
@click.option("--skip", help="Comma list: leave these analyzers out.")
@click.option("--vram-budget", "vram_budget", default=None, metavar="SIZE|auto",
              help="GPU memory the models may use together, per GPU, e.g. --vram-budget 12GB (default: auto).")
@click.option("--devices", default=None, metavar="LIST", help="GPUs to plan for, e.g. --devices cuda:0,cuda:1, or cpu.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@user_errors
def plan_cmd(video: Path, registry_path: Path | None, only: str | None, skip: str | None,
             vram_budget: str | None, devices: str | None, as_json: bool) -> None:
    """Show the plan for VIDEO: waves per GPU, devices, model variants, estimated VRAM and time,
    and why any analyzer will not run. Nothing is decoded, loaded or downloaded.

    Estimated times come from earlier runs on this machine ($FRAMEWORK_HOME/measurements.json);
    "?" means none has been measured yet.

    \b
    Examples:
      framework plan video.mp4
      framework plan video.mp4 --vram-budget 12GB --json
      framework plan video.mp4 --devices cuda:0,cuda:1
    """
    from framework.errors import ConfigError
    from framework.runner import plan_video

    from .run import _names

    try:
        report = plan_video(video, registry_path=registry_path, only=_names(only), skip=_names(skip),
                            vram_budget=vram_budget, devices=_names(devices))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    _print_plan(report)


def _print_plan(report) -> None:
    plan = report.plan
    gpus = report.gpus
    if gpus.devices:
        for d in gpus.devices:
            console.print(f"{d} ({gpus.names.get(d)}): budget {gpus.budgets[d] / 1024:.1f} GB of "
                          f"{gpus.total_mb.get(d, 0) / 1024:.1f} GB", highlight=False)
    else:
        console.print("no GPU: GPU analyzers run on the CPU only where that is practical", highlight=False)
    wave_of = {n: w.index for w in plan.waves for n in w.gpu}
    notes, rows = {}, []
    for name, p in plan.placements.items():
        secs = plan.seconds.get(name)
        note = report.cannot_run.get(name) or plan.notes.get(name) or ""
        if name in report.cannot_run:
            note = f"will be skipped: {note}"
        notes[name] = note
        device = f"{p.device} (own process)" if name in report.own_process else p.device
        rows.append((name, device, str(wave_of[name]) if name in wave_of else "beside",
                     p.variant or "-", f"{p.vram_mb:.0f}" if p.is_gpu else "-",
                     str(p.max_batch) if p.max_batch else "-", f"{secs:.0f} s" if secs is not None else "?",
                     short_note(note)))
    for name, why in plan.unplanned.items():
        notes[name] = f"will not run: {why}"
        rows.append((name, "-", "-", "-", "-", "-", "-", short_note(notes[name])))
    table = table_of(f"plan for {report.video.path} ({report.video.duration or 0:.1f} s)",
                     ("analyzer", "device", "wave", "variant", "VRAM (MB)", "max batch", "est. time", "note"), rows)
    console.print(table)
    print_full_notes(notes)
    for w in plan.waves:
        console.print(f"wave {w.index} on {w.device}: {', '.join(w.gpu)} (~{w.vram_mb:.0f} MB)"
                      + (f"; beside it on the CPU: {', '.join(w.cpu)}" if w.cpu else ""), highlight=False)
