"""Exporters: the files people read, written into the run folder after ``results.json``.

Built-in exporters (each registered through the same ``register_exporters`` hook a plugin uses):

================  ========================================================================
``markdown``      ``summary.md``: the summary, chapters, key moments and what each analyzer did
``subtitles``     ``transcript.srt`` and ``transcript.vtt`` (only when there is a transcript)
``cuts``          ``cuts.csv``, one row per shot
``edl``           ``cuts.edl``: the shots as a CMX 3600 EDL, markers as locators (OpenTimelineIO)
``otio``          ``timeline.otio``: the shots and markers as an OpenTimelineIO timeline
``fcpxml``        ``timeline.fcpxml``: the same for Final Cut Pro X (OpenTimelineIO's adapter)
``fcp7``          ``timeline.fcp7.xml``: the same as FCP 7 XML, for Premiere and Resolve
``chapters-vtt``  ``chapters.vtt``: the summary's chapters as WebVTT chapters
``ffmetadata``    ``chapters.ffmetadata``: the chapters as FFmpeg metadata, to mux into the video
``youtube``       ``chapters.youtube.txt``: the chapters as YouTube description lines
``thumbnails``    ``thumbs/*.jpg``: one small JPEG per shot, cached for ``framework report``
``html``          ``report.html``: one self-contained page with the player, lanes and thumbnails
================  ========================================================================

The registry's ``exports:`` (``Registry.select_exporters``) or ``framework export --format`` picks
some of them; by default a run writes them all (see docs/exports.md).

``write_outputs`` runs them all; ``rerender`` does the same from a ``results.json`` (the
``framework report`` command) without running any analyzer.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from ..errors import InputError
from ..hookspecs import hookimpl
from ..timeline import Timeline
from ..warm_imports import warm_up_imports
from .base import Cue, ExportContext, Exporter, Shot, atomic_write_bytes, clock, summary_track_of

if TYPE_CHECKING:
    from ..plugins import PluginHost
    from ..summary import Summary
    from ..timeline import Track

logger = logging.getLogger(__name__)

__all__ = ["Cue", "ExportContext", "Exporter", "Shot", "atomic_write_bytes", "builtin_exporters", "clock",
           "load_results", "rerender", "resolve_video", "select", "warm_up_imports", "write_outputs"]


def builtin_exporters() -> list[type[Exporter]]:
    """The built-in exporter classes, in the order they run."""
    from .chapters import ChaptersVttExporter, FfmetadataExporter, YoutubeExporter
    from .cuts import CutsExporter
    from .editorial import EdlExporter, Fcp7Exporter, FcpxmlExporter, OtioExporter
    from .html import HtmlExporter
    from .markdown import MarkdownExporter
    from .subtitles import SubtitlesExporter
    from .thumbnails import ThumbnailsExporter

    return [MarkdownExporter, SubtitlesExporter, CutsExporter, EdlExporter, OtioExporter, FcpxmlExporter,
            Fcp7Exporter, ChaptersVttExporter, FfmetadataExporter, YoutubeExporter, ThumbnailsExporter,
            HtmlExporter]


def select(classes: list[type[Exporter]], names: list[str] | None, what: str = "export format") -> list[type[Exporter]]:
    """The classes named in ``names`` (in the order of ``classes``), or all of them for ``None``.

    :raises InputError: a name that no exporter has; the message lists the valid names.
    """
    if names is None:
        return list(classes)
    by_name = {getattr(c, "name", c.__name__): c for c in classes}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InputError(f"unknown {what} {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(by_name))}")
    wanted = set(names)
    return [c for n, c in by_name.items() if n in wanted]


@hookimpl
def register_exporters(register):
    for cls in builtin_exporters():
        register(cls)


def resolve_video(timeline: Timeline, video_path: str | Path | None = None,
                  search_dirs: tuple[Path, ...] = ()) -> tuple[Path | None, str]:
    """Find the analyzed video now: ``(path, "")`` if reachable, else ``(None, why)``.

    Tries ``video_path`` (trusted as given), then ``timeline.video.path`` as recorded (absolute, or
    relative to the current folder), then that name inside each of ``search_dirs``. A file whose size
    differs from the analyzed one is not taken for it.
    """
    if video_path is not None:
        path = Path(video_path)
        if path.is_file():
            return path.resolve(), ""
        return None, f"the video {path} is not reachable"
    recorded = Path(timeline.video.path)
    candidates = [recorded]
    for folder in search_dirs:
        if not recorded.is_absolute():
            candidates.append(folder / recorded)
        candidates.append(folder / recorded.name)
    wrong_size = None
    for candidate in candidates:
        if candidate.is_file():
            size = candidate.stat().st_size
            if timeline.video.size_bytes and size != timeline.video.size_bytes:
                wrong_size = candidate
                continue
            return candidate.resolve(), ""
    if wrong_size is not None:
        return None, (f"{wrong_size} is not the analyzed video (its size differs); "
                      f"pass the original with --video")
    return None, f"the video {recorded} is not reachable from here; pass it with --video"


def _read_summary(track: Track | None) -> Summary | None:
    """``Summary.from_track(track)``; the summary models load only when there is a summary to read
    (a run without fusion, e.g. ``--only cut_analysis``, never builds them)."""
    if track is None:
        return None
    from ..summary import Summary

    return Summary.from_track(track)


def write_outputs(timeline: Timeline, run_dir: str | Path, host: "PluginHost | None" = None,
                  video_path: str | Path | None = None, *,
                  thumb_sources: tuple[Path, ...] = (), exporters: list[str] | None = None) -> list[Path]:
    """Run every exporter (``host.exporters``, or the built-ins) and return the files written.

    One failing exporter is logged and the others still run.

    :param video_path: the video, if known; else ``timeline.video.path`` is tried.
    :param thumb_sources: other ``thumbs/`` folders whose cached thumbnails may be reused.
    :param exporters: names of the exporters to run (the registry's ``exports:``); ``None``: all.
    :raises InputError: ``exporters`` names one that is not registered.
    """
    run_dir = Path(run_dir)
    classes = select(list(host.exporters.values()) if host is not None else builtin_exporters(), exporters)
    run_dir.mkdir(parents=True, exist_ok=True)
    video, note = resolve_video(timeline, video_path, (run_dir,))
    if video is None:
        logger.info("no video for the report: %s", note)
    summary_track = summary_track_of(timeline)
    try:
        summary = _read_summary(summary_track)
    except ValidationError as exc:
        logger.warning("the summary in track %s is not readable (%s); writing the outputs without it",
                       summary_track.analyzer if summary_track else "?", str(exc).splitlines()[0])
        summary = None
    context = ExportContext(timeline=timeline, run_dir=run_dir, video_path=video, video_note=note,
                            summary=summary, thumb_sources=tuple(thumb_sources),
                            exporters=tuple(getattr(c, "name", c.__name__) for c in classes))
    written: list[Path] = []
    for cls in classes:
        name = getattr(cls, "name", cls.__name__)
        try:
            paths = cls().export(timeline, run_dir, context) or []
        except Exception as exc:  # noqa: BLE001 - one exporter must not stop the others
            plugin = getattr(cls, "plugin", None)
            logger.error("exporter %s%s failed: %s: %s; the other outputs are still written", name,
                         f" (plugin {plugin})" if plugin else "", type(exc).__name__, exc,
                         exc_info=logger.isEnabledFor(logging.DEBUG))
            continue
        written.extend(Path(p) for p in paths)
    return written


def load_results(path: str | Path) -> Timeline:
    """Read a run's ``results.json`` (or a run folder holding one).

    :raises InputError: missing, not JSON, written by an incompatible version, or not a timeline;
        the message names the file and what to do.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    hint = "re-run `framework run VIDEO` to write it again"
    if not path.is_file():
        raise InputError(f"{path}: no such file; pass a run's results.json (e.g. runs/sample/results.json)")
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a valid results.json ({exc}); {hint}") from None
    if not isinstance(raw, dict) or "video" not in raw:
        raise InputError(f"{path}: not a framework results.json (no 'video' key); {hint}")
    try:
        return Timeline.from_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InputError(f"{path}: invalid results.json at {where or 'top level'}: {first.get('msg')}; "
                         f"{hint}") from None
    except ValueError as exc:  # schema_version mismatch
        raise InputError(f"{path}: {exc}") from None


def rerender(results: str | Path, out_dir: str | Path | None = None, *, video: str | Path | None = None,
             host: "PluginHost | None" = None, exporters: list[str] | None = None) -> list[Path]:
    """Re-write every output (or the ``exporters`` named) from ``results.json`` without running
    any analyzer.

    :param out_dir: where to write (default: the folder of ``results.json``).
    :param video: the analyzed video, if it moved since the run.
    """
    results = Path(results)
    timeline = load_results(results)
    results_dir = results if results.is_dir() else results.parent
    out = Path(out_dir) if out_dir is not None else results_dir
    if video is None:
        found, _ = resolve_video(timeline, None, (results_dir, out))
        video = found
    sources = (results_dir / "thumbs",) if out.resolve() != results_dir.resolve() else ()
    return write_outputs(timeline, out, host=host, video_path=video, thumb_sources=sources, exporters=exporters)
