"""`framework report`: re-render every output of a run from its results.json."""
from __future__ import annotations

from pathlib import Path

import click

from . import main, user_errors


@main.command("report")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write into (default: the folder of RESULTS).")
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The analyzed video, if it moved since the run (for the player and thumbnails).")
@click.option("--registry", "registry_path", type=click.Path(path_type=Path), default=None,
              help="registry.yaml whose plugin_dirs to load (default: ./registry.yaml, then "
                   "$FRAMEWORK_HOME/registry.yaml).")
@user_errors
def report_cmd(results: Path, out: Path | None, video: Path | None, registry_path: Path | None) -> None:
    """Re-write summary.md, report.html, subtitles and cut lists from RESULTS (a run's
    results.json, or its folder) without running any analyzer. Exporters of installed plugins
    and of the registry's plugin_dirs write their files too.

    \b
    Example:
      framework report runs/sample/results.json
      framework report runs/sample --out /tmp/share --video ~/Videos/sample.mp4
    """
    from framework.outputs import rerender
    from framework.plugins import build_plugin_manager
    from framework.registry import find_registry, load_registry

    registry = load_registry(find_registry(registry_path))
    host = build_plugin_manager(registry.plugin_dirs)  # third-party exporters render too
    written = rerender(results, out, video=video, host=host)
    folder = out if out is not None else (results if results.is_dir() else results.parent)
    files = sorted({p.relative_to(folder).parts[0] if p.is_relative_to(folder) else str(p) for p in written})
    click.echo(f"wrote {len(files)} outputs in {folder}: {', '.join(files)}")
