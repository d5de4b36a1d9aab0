"""`framework run`, `framework analyzers list`, `framework sample`."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console

from . import console, main, print_full_notes, short_note, table_of, user_errors


@main.command("sample")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path), default="sample.mp4")
@click.option("--duration", type=float, default=12.0, show_default=True, help="Length in seconds.")
@click.option("--size", default="640x360", show_default=True, help="WIDTHxHEIGHT.")
@click.option("--fps", type=float, default=30.0, show_default=True)
@user_errors
def sample_cmd(out: Path, duration: float, size: str, fps: float) -> None:
    """Generate a sample video with known shots, a fade, a dissolve, speech-like audio and a caption.

    \b
    Example:
      framework sample demo.mp4 --duration 20 --size 1280x720
    """
    from framework.testing.synth import default_shots, make_video

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{size!r} is not WIDTHxHEIGHT, e.g. 640x360", param_hint="--size") from None
    truth = make_video(out, default_shots(duration), fps=fps, width=width, height=height)
    click.echo(f"wrote {out} ({truth.duration:.1f} s, {width}x{height} @ {fps:g} fps); "
               f"hard cuts at {', '.join(f'{f / fps:.2f}s' for f in truth.cut_frames)}")


def _names(value: str | None) -> list[str] | None:
    return [n.strip() for n in value.split(",") if n.strip()] if value else None


def gpu_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--vram-budget`` and ``--devices``, as every command that starts analyses takes them (a wrong
    budget is refused before anything starts)."""

    def budget(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        from framework.scheduler import parse_budget

        try:
            parse_budget(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        return value

    fn = click.option("--devices", "devices", default=None, metavar="LIST",
                      help="GPUs to use, e.g. --devices cuda:0,cuda:1 (default: all visible), or --devices cpu "
                           "for none.")(fn)
    return click.option("--vram-budget", "vram_budget", default=None, metavar="SIZE|auto", callback=budget,
                        help="GPU memory the loaded models may use together, per GPU: e.g. --vram-budget 12GB, "
                             "800MB, or auto (free memory minus a reserve; the default). The allocator is capped "
                             "to it.")(fn)


@main.command("run")
@click.argument("videos", nargs=-1, required=True,  # readable=False: the framework checks each file,
                type=click.Path(path_type=Path, readable=False))  # so one bad file does not stop the rest
@click.option("--registry", "registry_path", type=click.Path(path_type=Path),
              help="registry.yaml to use (default: ./registry.yaml, then $FRAMEWORK_HOME/registry.yaml).")
@click.option("--only", help="Comma list: run only these analyzers (and what they depend on).")
@click.option("--skip", help="Comma list: do not run these analyzers.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder (default runs/<video name>/); with several videos, one subfolder each.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary of each run on stdout.")
@click.option("--no-resume", is_flag=True, help="Recompute every track instead of reusing finished ones.")
@click.option("--strict", is_flag=True, help="Fail (exit 6) if any plugin failed to load or an analyzer from a plugin failed.")
@click.option("--keep-cache", is_flag=True, help="Keep the decoded frame cache in the run folder.")
@click.option("--jobs", type=int, default=None, help="Analyzers run in parallel on the CPU (default: cores, max 4).")
@gpu_options
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--video-stream", "video_stream", type=click.IntRange(min=0), default=None, metavar="N",
              help="Container index of the video stream to analyze (default: FFmpeg's choice, the "
                   "default-marked then largest one), e.g. --video-stream 3; results.json lists every stream.")
@click.option("--audio-stream", "audio_stream", type=click.IntRange(min=0), default=None, metavar="N",
              help="Container index of the audio stream to analyze (default: the default-marked, then "
                   "the one with most channels), e.g. --audio-stream 1.")
@click.option("--offline", is_flag=True,
              help="Never download a model (as HF_HUB_OFFLINE=1 does): an analyzer whose model is not cached is "
                   "skipped with the `framework models pull ID` command. Without it a missing model is "
                   "fetched on first use.")
@click.option("--library", "library", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="Add each finished run to this library database (default: $FRAMEWORK_LIBRARY, else "
                   "$FRAMEWORK_HOME/library/library.db), e.g. --library ~/videos/library.db.")
@click.option("--no-library", is_flag=True, help="Do not add the runs to the library (`framework search` will not find them).")
@click.option("-v", "--verbose", is_flag=True,
              help="Print the saved traceback of each failed analyzer (as does `framework -v run`).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: videos one after the other in this process; ray: each video a Ray task with the CPUs "
                   "and GPUs its plan needs, e.g. --executor ray (see docs/scale-out.md).")
@click.option("--address", default=None, metavar="HOST:PORT",
              help="With --executor ray: join this Ray cluster, e.g. --address 10.0.0.5:6379 (default: start a "
                   "local Ray). Every node must see the videos and run folders at the same paths.")
@click.option("--ray-cpus", "ray_cpus", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --executor ray and no --address: CPUs of the local Ray, e.g. --ray-cpus 8 (default: all).")
@click.option("--profile", "profile", default=None, metavar="NAMES",
              help="Comma list: sample where these analyzers spend their time in the run and write it to "
                   "<run folder>/profiles/NAME.txt and NAME.folded (a flame graph's input), e.g. "
                   "--profile speech_transcription. They are run again even when finished.")
@click.option("--mps/--no-mps", "mps", default=None,
              help="On an NVIDIA GPU: run the analyzers' GPU processes side by side as clients of one MPS server "
                   "the run starts and stops itself (needs nvidia-cuda-mps-control, from the driver's utilities), "
                   "instead of taking turns on the GPU; analyzers with gpu_stream_priority: low get below-normal "
                   "priority there. Default: registry.yaml's mps (false), e.g. framework run film.mkv --mps")
@user_errors
def run_cmd(videos: tuple[Path, ...], registry_path: Path | None, only: str | None, skip: str | None,
            out_dir: Path | None, as_json: bool, no_resume: bool, strict: bool, keep_cache: bool,
            jobs: int | None, vram_budget: str | None, devices: str | None, no_progress: bool,
            video_stream: int | None, audio_stream: int | None, offline: bool, library: Path | None,
            no_library: bool, verbose: bool, executor: str = "local", address: str | None = None,
            ray_cpus: int | None = None, profile: str | None = None, mps: bool | None = None) -> None:
    """Analyze one or more videos with the analyzers enabled in registry.yaml.

    VIDEOS are files, folders (searched recursively for video and audio files) and glob
    patterns. A video whose last run finished and that did not change since is not analyzed
    again; every finished run is added to the library (`framework search` looks there).

    Results go to runs/<video name>/: results.json, summary.md, report.html, subtitles and
    cut lists (two inputs with one name get runs/<name>/ and runs/<name>-2/). A rerun reuses
    every finished track whose inputs did not change; after Ctrl-C, the same command resumes.

    \b
    Examples:
      framework run video.mp4
      framework run a.mp4 b.mp4 --only cut_analysis,scene_segmentation --out results/
      framework run video.mp4 --registry my-registry.yaml --json
      framework run two-angles.mp4 --video-stream 3 --audio-stream 4
      framework run footage/ "clips/**/*.mov" --library ~/videos/library.db
      framework run footage/ --executor ray --address 10.0.0.5:6379
      framework run film.mkv --profile speech_transcription,qwen2_vl_temporal
      framework run film.mkv --mps
    """
    from framework.library.batch import FinishedRuns
    from framework.library.inputs import expand_inputs
    from framework.runner import run_many

    inputs = expand_inputs(videos)
    done = FinishedRuns(registry_path, _names(only), _names(skip), video_stream, audio_stream,
                        devices=_names(devices), vram_budget=vram_budget)
    if executor != "ray" and (address or ray_cpus):
        raise click.UsageError("--address and --ray-cpus need --executor ray")
    if executor == "ray" and mps:
        raise click.UsageError("--mps works with the local executor only (start MPS on the Ray nodes yourself)")
    extra = {"mps": mps} if executor != "ray" else {}
    many = run_many
    _ray_receipts: list = []
    if executor == "ray":  # the same call, each video a Ray task; the cluster receipt is printed at the end
        from framework.executors.ray_executor import run_many_ray

        def many(*args, **kw):
            outcomes, code, receipt = run_many_ray(*args, address=address, num_cpus=ray_cpus, **kw)
            _ray_receipts.append(receipt)
            return outcomes, code
    outcomes, code = many(inputs, registry_path=registry_path, only=_names(only),
                          finished=None if no_resume or profile else done.check, skip=_names(skip), out_dir=out_dir,
                          resume=not no_resume, strict=strict,
                          keep_cache=keep_cache, jobs=jobs, vram_budget=vram_budget, devices=_names(devices),
                          video_stream=video_stream, audio_stream=audio_stream, offline=offline,
                          progress=not no_progress and not as_json, profile=_names(profile), **extra)
    report = []
    for o in outcomes:
        if o.result is None:
            console.print(f"[bold red]error:[/] {o.error}", highlight=False)
            report.append({"video": str(o.video), "error": o.error, "exit_code": o.exit_code})
            continue
        r = o.result
        tracks = {n: {"status": t.status, "reason": t.reason, "reused": t.reused, "duration_s": t.duration_s,
                      "failed_phase": t.failed_phase, "traceback_file": t.traceback_file}
                  for n, t in r.timeline.tracks.items()}
        report.append({"video": str(o.video), "run_dir": str(r.run_dir.resolve()),
                       "results": str(r.results_path.resolve()), "outputs": [str(p.resolve()) for p in r.outputs], "tracks": tracks, "exit_code": o.exit_code})
        report[-1]["already_done"] = o.already_done
        if not o.already_done:
            done.mark(r)
        if o.already_done and not as_json:
            console.print(f"{o.video}: finished before and unchanged since; results in {r.results_path} "
                          "(--no-resume analyzes it again)", highlight=False)
        elif not as_json:
            _print_run(r)
        if verbose or click.get_current_context().find_root().params.get("verbose"):
            _print_tracebacks(r)
    if not no_library:
        from framework.library.batch import add_to_library

        for entry, video_id in zip(report, add_to_library(outcomes, library)):
            if video_id is not None:
                entry["library_id"] = video_id
    if len(outcomes) > 1 and not as_json:
        _print_summary(outcomes)
    if _ray_receipts and not as_json:
        from framework.executors.ray_executor import receipt_line

        line = receipt_line(_ray_receipts[0])
        if line:
            console.print(line + (f" (receipt: {_ray_receipts[0]['path']})" if "path" in _ray_receipts[0] else ""),
                          highlight=False)
    if as_json:
        click.echo(json.dumps(report if len(report) > 1 else report[0], indent=2))
    sys.exit(code)


def _print_summary(outcomes) -> None:
    """The table after a multi-video run: one row per video."""
    from rich.table import Table

    from framework.library.batch import summary_rows

    rows = summary_rows(outcomes)
    table = Table(title=f"{len(rows)} videos", title_justify="left")
    for col in ("video", "result", "ok", "skipped", "failed", "time", "run folder / note"):
        table.add_column(col)
    colours = {"done": "green", "already done": "cyan", "failed analyzers": "red", "error": "bold red"}
    for r in rows:
        seconds = f"{r['seconds']:.1f}s" if r["seconds"] is not None else ""
        where = " · ".join(x for x in (r["run_dir"], r["note"]) if x)
        table.add_row(r["video"], f"[{colours[r['result']]}]{r['result']}[/]", str(r["ok"]), str(r["skipped"]),
                      str(r["failed"]), seconds, where)
    console.print(table)


def _print_run(r) -> None:
    notes, rows = {}, []
    for name, t in r.timeline.tracks.items():
        colour = {"ok": "green", "skipped": "yellow", "failed": "red"}[t.status]
        notes[name] = t.reason or ("reused from the last run" if t.reused else "")
        rows.append((name, f"[{colour}]{t.status}[/]", f"{t.duration_s or 0:.2f}s", str(len(t.events)),
                     short_note(notes[name])))
    console.print(table_of(f"{r.video}", ("analyzer", "status", "time", "events", "note"), rows))
    print_full_notes(notes)
    for w in r.timeline.run.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    console.print(f"results: [bold]{r.results_path}[/]" + (
        f"  (also {', '.join(p.name for p in r.outputs)})" if r.outputs else ""), highlight=False)


def _print_tracebacks(r) -> None:
    """The saved traceback of each failed track (on stderr, so ``--json`` output stays parseable)."""
    err = Console(stderr=True, highlight=False)
    for name, t in r.timeline.tracks.items():
        if t.status != "failed" or not t.traceback_file:
            continue
        file = r.run_dir / t.traceback_file
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            err.print(f"{name}: traceback {file} cannot be read ({exc.strerror})")
            continue
        err.print(f"--- {name} failed in {t.failed_phase}(); traceback saved in {file}:", soft_wrap=True)
        err.print(text.rstrip(), markup=False, soft_wrap=True)


@main.group("analyzers")
def analyzers_group() -> None:
    """Inspect the analyzers that are installed.

    \b
    Example:
      framework analyzers list
    """


@analyzers_group.command("list")
@click.option("--registry", "registry_path", type=click.Path(path_type=Path), help="registry.yaml to read.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@user_errors
def analyzers_list_cmd(registry_path: Path | None, as_json: bool) -> None:
    """List every analyzer: enabled or not, its models, its plugin, and whether it can run here
    (its own check, and which of its models are missing from the local cache, with the
    `framework models pull` command that fetches them).

    \b
    Example:
      framework analyzers list --registry registry.yaml
    """
    from framework.inventory import analyzer_inventory

    rows, problems = analyzer_inventory(registry_path)
    if as_json:
        click.echo(json.dumps({"analyzers": rows, "plugin_problems": problems}, indent=2))
        return
    out = Console()
    out.print(table_of("analyzers", ("name", "enabled", "version", "device", "models", "plugin", "can run here"),
                       [(r["name"], "yes" if r["enabled"] else "no", r["version"], r["device"],
                         ", ".join(r["models"]) or "-", r["plugin"], r["run_note"]) for r in rows], width=out.width))
    for p in problems:
        console.print(f"[yellow]warning:[/] {p}", highlight=False)
