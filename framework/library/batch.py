"""Many videos in one command: skip the finished ones cheaply, and sum up at the end.

A run that finished with every analyzer ``ok`` (or skipped only because the file has no audio or no
video stream) leaves ``.finished.json`` in its run folder: the video's path, size and modification
time, the ``results.json`` it wrote, and a fingerprint of what ran (framework version, each selected
analyzer's version, params and plugin, the chosen streams, the models lock file's time). When the same command runs again, a video
whose marker still matches is not probed, hashed, decoded or written again: its saved results are
read back. Anything else (a changed file, registry, plugin or option; a failed or skipped track;
``--no-resume``; a model pulled or pruned since) goes through the runner, which still reuses every
unchanged track by its key.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runner import RunResult, VideoOutcome

logger = logging.getLogger(__name__)

MARKER = ".finished.json"
_INPUT_REASONS = ("the video has no audio stream", "the file has no video stream")


class FinishedRuns:
    """Decides whether a video's run folder is complete for this command (``check``) and marks the
    ones that are (``mark``). Options are those of ``framework run``.

    The fingerprint of a run is computed from its tracks when it is marked (each analyzer's name,
    version, params hash and plugin: no plugin host is built, so a fresh run pays nothing) and from
    the configured analyzers when a marker is checked (the plugin host is built once per command,
    only if some run folder has a marker). It also holds the framework version, the stream options
    and the modification time of ``$FRAMEWORK_HOME/models.lock.json``, which every ``framework
    models pull`` or ``prune`` rewrites: a model fetched since makes the runner look again. The
    GPU options (``--devices``, ``--vram-budget``) are in it too: they decide which model variant
    the plan picks (a 12 GB budget describes with a smaller model than 24 GB), so a run under other
    ones is not finished; its tracks whose model did not change are still reused.
    """

    def __init__(self, registry_path: str | os.PathLike | None = None, only: list[str] | None = None,
                 skip: list[str] | None = None, video_stream: int | None = None, audio_stream: int | None = None,
                 load_entrypoints: bool = True, devices: list[str] | None = None,
                 vram_budget: str | float | None = None):
        self.registry_path, self.only, self.skip = registry_path, only, skip
        self.streams = [video_stream, audio_stream]
        self.gpus = [sorted(devices) if devices else None, None if vram_budget is None else str(vram_budget)]
        self.load_entrypoints = load_entrypoints
        self._configured: str | None = None

    def _fingerprint(self, analyzers: dict[str, list[Any]]) -> str:
        from .. import __version__
        from ..models.lockfile import LOCK_FILENAME
        from ..models.roots import framework_home

        try:
            lock = (framework_home() / LOCK_FILENAME).stat().st_mtime_ns
        except OSError:
            lock = None
        payload = {"framework": __version__, "analyzers": analyzers, "streams": self.streams, "models_lock": lock}
        if self.gpus != [None, None]:  # the defaults leave the fingerprints of earlier markers as they were
            payload["gpus"] = self.gpus
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]

    def configured_fingerprint(self) -> str:
        """What this command would run (built once, only when some marker is found)."""
        if self._configured is None:
            from ..runner import _configure

            _, host, configured, selected = _configure(self.registry_path, None, None, self.load_entrypoints,
                                                       self.only, self.skip)
            parts = {}
            for name in selected:
                a = configured[name].instantiate()
                parts[name] = [a.version, a.params_hash(), host.analyzers[name].plugin]
            self._configured = self._fingerprint(parts)
        return self._configured

    def run_fingerprint(self, result: "RunResult") -> str:
        """What ``result`` ran, read from its tracks."""
        return self._fingerprint({n: [t.version, t.params_hash, t.plugin] for n, t in result.timeline.tracks.items()})

    def check(self, video: Path, run_dir: Path) -> "RunResult | None":
        """The saved result when ``run_dir`` holds a finished, unchanged run of ``video``, else None."""
        from ..runner import RunResult
        from ..timeline import Timeline

        try:
            saved = json.loads((run_dir / MARKER).read_text(encoding="utf-8"))
            st = video.stat()
            results = run_dir / "results.json"
            same = (saved.get("video") == str(video.resolve()) and saved.get("size") == st.st_size
                    and saved.get("mtime_ns") == st.st_mtime_ns
                    and saved.get("results_mtime_ns") == results.stat().st_mtime_ns)
        except (OSError, ValueError, AttributeError):
            return None
        if not same or saved.get("fingerprint") != self.configured_fingerprint():
            return None
        try:
            timeline = Timeline.read(results)
        except (OSError, ValueError):
            return None
        outputs = [run_dir / name for name in saved.get("outputs", []) if (run_dir / name).exists()]
        logger.info("%s: finished in %s and unchanged since; not analyzed again", video, run_dir)
        return RunResult(video, run_dir, timeline, reused=list(timeline.tracks), outputs=outputs,
                         skipped=[n for n, t in timeline.tracks.items() if t.status == "skipped"])

    def mark(self, result: "RunResult") -> bool:
        """Write the marker if the run is complete (nothing failed, nothing skipped that may run later)."""
        from ..timeline import atomic_write_text

        tracks = result.timeline.tracks.values()
        if any(t.status == "failed" or (t.status == "skipped" and (t.reason or "") not in _INPUT_REASONS)
               for t in tracks):
            (result.run_dir / MARKER).unlink(missing_ok=True)
            return False
        try:
            st = Path(result.video).stat()
            if st.st_size != result.timeline.video.size_bytes:
                return False  # the file changed while it was analyzed
            payload = {"video": str(Path(result.video).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                       "content_hash": result.timeline.video.content_hash,
                       "results_mtime_ns": result.results_path.stat().st_mtime_ns,
                       "fingerprint": self.run_fingerprint(result),
                       "outputs": [os.path.relpath(p, result.run_dir) for p in result.outputs]}
            atomic_write_text(result.run_dir / MARKER, json.dumps(payload, indent=1))
        except OSError as exc:
            logger.debug("no finished marker in %s: %s", result.run_dir, exc)
            return False
        return True


def summary_rows(outcomes: list["VideoOutcome"]) -> list[dict[str, Any]]:
    """One row per video for the table printed after a multi-video run."""
    rows = []
    for o in outcomes:
        if o.result is None:
            rows.append({"video": str(o.video), "result": "error", "ok": 0, "skipped": 0, "failed": 0,
                         "seconds": None, "run_dir": "", "note": o.error or ""})
            continue
        tracks = o.result.timeline.tracks.values()
        counts = {s: sum(t.status == s for t in tracks) for s in ("ok", "skipped", "failed")}
        if getattr(o, "already_done", False):
            result, note = "already done", "finished before and unchanged"
        elif counts["failed"]:
            result, note = "failed analyzers", ", ".join(o.result.failed)
        else:
            result = "done"
            note = f"{len(o.result.reused)} track(s) reused" if o.result.reused else ""
        rows.append({"video": str(o.video), "result": result, **counts,
                     "seconds": None if getattr(o, "already_done", False) else o.result.timeline.run.get("duration_s"),
                     "run_dir": str(o.result.run_dir), "note": note})
    return rows


def add_to_library(outcomes: list["VideoOutcome"], library: str | os.PathLike | None = None) -> list[int | None]:
    """Add every finished run to the library; its number per outcome (None: an error, or it could not
    be added, which is logged and never fails the run)."""
    import sqlite3

    from .store import Library, LibraryError

    ids: list[int | None] = []
    lib: Library | None = None
    for o in outcomes:
        if o.result is None:
            ids.append(None)
            continue
        try:
            lib = lib or Library.open(library)
            # the timeline in memory is the one just written: not read back (nor indexed again when
            # the library has the run as its results.json is now: a video skipped as finished)
            record = lib.add_run(o.result.run_dir, timeline=o.result.timeline)
        except (LibraryError, sqlite3.Error, OSError) as exc:
            logger.warning("%s: not added to the library: %s", o.video, exc)
            ids.append(None)
            continue
        if record.moved_from:
            logger.info("library: %s was analyzed before as %s (same content); entry #%d updated",
                        o.video, record.moved_from, record.id)
        elif not record.copy_at:
            logger.info("library: %s is #%d (%d searchable moments) in %s", record.name, record.id,
                        record.moments, lib.path)
        ids.append(record.id)
    return ids
