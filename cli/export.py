"""`framework export`: the files editors and players read, from a finished run."""
from __future__ import annotations

from pathlib import Path

import click

from . import main, user_errors

EXPORT_FORMATS = ("otio", "fcpxml", "fcp7", "edl", "chapters-vtt", "ffmetadata", "youtube")


@main.command("export")
@click.argument("run_folder", type=click.Path(path_type=Path))
@click.option("--format", "-f", "formats", multiple=True, metavar="FORMAT",
              help="What to write: otio, fcpxml, fcp7, edl, chapters-vtt, ffmetadata, youtube, or the name "
                   "of any other exporter (a plugin's too); repeat it or separate with commas "
                   "(default: those seven).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write into (default: RUN_FOLDER).")
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The analyzed video, if it moved since the run (its path goes into the timelines).")
@click.option("--registry", "registry_path", type=click.Path(path_type=Path), default=None,
              help="registry.yaml whose plugin_dirs to load (default: ./registry.yaml, then "
                   "$FRAMEWORK_HOME/registry.yaml).")
@user_errors
def export_cmd(run_folder: Path, formats: tuple[str, ...], out: Path | None, video: Path | None,
               registry_path: Path | None) -> None:
    """Write editor timelines and chapter files from RUN_FOLDER (a run's folder or its
    results.json) without running any analyzer: timeline.otio (OpenTimelineIO), timeline.fcpxml
    (Final Cut Pro X), timeline.fcp7.xml (FCP 7 XML for Premiere and Resolve), cuts.edl (CMX 3600),
    chapters.vtt (WebVTT chapters), chapters.ffmetadata (FFmpeg) and chapters.youtube.txt.
    Formats and their files are described in docs/exports.md.

    \b
    Examples:
      framework export runs/sample --format otio
      framework export runs/sample -f fcpxml,chapters-vtt --out /tmp/share
      framework export runs/sample/results.json --format edl --video ~/Videos/sample.mp4
    """
    from framework.errors import InputError
    from framework.outputs import rerender
    from framework.plugins import build_plugin_manager
    from framework.registry import find_registry, load_registry

    names = list(dict.fromkeys(n.strip() for f in formats for n in f.split(",") if n.strip())) or list(EXPORT_FORMATS)
    registry = load_registry(find_registry(registry_path))
    host = build_plugin_manager(registry.plugin_dirs)  # plugins may add formats
    unknown = [n for n in names if n not in host.exporters]
    if unknown:
        raise click.BadParameter(f"unknown format {', '.join(map(repr, unknown))}; valid: "
                                 f"{', '.join(sorted(host.exporters))}", param_hint="--format")
    written = rerender(run_folder, out, video=video, host=host, exporters=names)
    folder = out if out is not None else (run_folder if run_folder.is_dir() else run_folder.parent)
    files = sorted({p.relative_to(folder).parts[0] if p.is_relative_to(folder) else str(p) for p in written})
    if not files:
        raise InputError(f"{run_folder}: nothing to write for {', '.join(names)} (the log above says why; "
                         "e.g. chapters need a summary with chapters)")
    click.echo(f"wrote {len(files)} file(s) in {folder}: {', '.join(files)}")
