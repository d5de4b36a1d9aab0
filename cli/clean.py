"""`framework clean`: remove decoded-frame caches left behind by killed runs."""
from __future__ import annotations

from pathlib import Path

import click

from . import console, main, user_errors


@main.command("clean")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default="runs")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--kept", "include_kept", is_flag=True, help="Also remove caches kept with `run --keep-cache`.")
@user_errors
def clean_cmd(folder: Path, dry_run: bool, include_kept: bool) -> None:
    """Remove the frame caches (<run folder>/.cache/) of runs that are no longer running.

    A run deletes its cache when it ends; a run killed with kill -9, by the OOM killer or a
    power cut cannot, and its cache can take hundreds of MB. FOLDER (default runs/) is a run
    folder or a folder of run folders (two levels deep). A cache whose run is still going is
    never removed. The next `framework run` into the same output folder does this too.

    \b
    Examples:
      framework clean                  # runs/
      framework clean results/ --dry-run
    """
    from framework.cache_owner import human_size, sweep

    if not folder.is_dir():
        console.print(f"nothing to clean: {folder} does not exist", highlight=False)
        return
    report = sweep(folder, depth=2, dry_run=dry_run, include_kept=include_kept)
    verb = "would remove" if dry_run else "removed"
    for v in report.removed:
        if dry_run:  # the sweep logs each removal itself
            console.print(f"{verb} {v.path} ({human_size(v.size_bytes)}): {v.why}", highlight=False)
    for v in report.left:
        console.print(f"left {v.path}: {v.why}", highlight=False)
    console.print(f"{verb} {len(report.removed)} stale cache(s) under {folder}, "
                  f"{human_size(report.freed_bytes)} {'to free' if dry_run else 'freed'}", highlight=False)
