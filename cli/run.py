"""`framework run`, `framework analyzers list`, `framework sample`."""
from __future__ import annotations

from pathlib import Path

import click

from . import main, user_errors


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
    from framework.synth import default_shots, make_video

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{size!r} is not WIDTHxHEIGHT, e.g. 640x360", param_hint="--size") from None
    truth = make_video(out, default_shots(duration), fps=fps, width=width, height=height)
    click.echo(f"wrote {out} ({truth.duration:.1f} s, {width}x{height} @ {fps:g} fps); "
               f"hard cuts at {', '.join(f'{f / fps:.2f}s' for f in truth.cut_frames)}")
