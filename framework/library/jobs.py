"""A queue of analyses with live progress, for ``framework serve`` and the MCP server.

``JobQueue.submit_path / submit_url / submit_file`` add a job; one worker thread takes them in
order (an analysis already uses every core): it downloads a URL into the library's
``downloads/``, analyzes the video into ``<library>/runs/<name>-<id>/`` (resuming a finished or
interrupted run there), and adds it to the library. ``Job.progress`` (0..1) and ``Job.stage``
follow the run through the ``analysis_started`` / ``analyzer_finished`` / ``analyzer_failed``
observer hooks of a plugin registered on that run's host only.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import FrameworkError
from ..hookspecs import hookimpl
from .fetch import DEFAULT_MAX_BYTES, SubmitError, check_url, download, safe_filename
from .store import Library

logger = logging.getLogger(__name__)

Status = Literal["queued", "downloading", "analyzing", "indexing", "done", "failed"]


@dataclass
class Job:
    """One submitted video and how far its analysis is."""

    id: int
    kind: Literal["path", "url", "upload"]
    source: str
    status: Status = "queued"
    stage: str = "waiting for the jobs before it"
    progress: float = 0.0
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    video: str | None = None
    run_dir: str | None = None
    video_id: int | None = None
    error: str | None = None
    note: str | None = None   # e.g. the analyzers that failed in a run that still finished
    analyzers_total: int = 0
    analyzers_done: int = 0

    @property
    def active(self) -> bool:
        return self.status not in ("done", "failed")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["active"] = self.active
        return d


class _Progress:
    """Observer plugin: turns a run's hook calls into its job's progress."""

    def __init__(self, job: Job):
        self.job = job

    @hookimpl
    def analysis_started(self, video, analyzers, run_dir):  # noqa: ANN001 - hook signature
        self.job.analyzers_total = len(analyzers)
        self.job.stage = f"decoding and running {len(analyzers)} analyzer(s)"
        self.job.progress = 0.05

    def _one_more(self, name: str) -> None:
        j = self.job
        j.analyzers_done += 1
        total = max(j.analyzers_total, j.analyzers_done)
        j.progress = 0.05 + 0.9 * j.analyzers_done / total
        j.stage = f"{j.analyzers_done}/{total} analyzers finished ({name})"

    @hookimpl
    def analyzer_finished(self, track):  # noqa: ANN001
        self._one_more(track.analyzer)

    @hookimpl
    def analyzer_failed(self, name, error, track):  # noqa: ANN001
        self._one_more(f"{name} failed")


class JobQueue:
    """Analyses run one at a time in a background thread; the library is updated after each.

    :param registry_path: the ``registry.yaml`` to run with (default as ``framework run``).
    :param only: / :param skip: analyzer names, as ``framework run --only/--skip``.
    :param max_bytes: the largest download accepted.
    :param vram_budget: / :param devices: as ``framework run --vram-budget/--devices``.
    """

    def __init__(self, library: Library, registry_path: str | os.PathLike | None = None,
                 only: list[str] | None = None, skip: list[str] | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, offline: bool = False,
                 vram_budget: str | float | None = None, devices: list[str] | None = None):
        self.library = library
        self.registry_path, self.only, self.skip = registry_path, only, skip
        self.max_bytes, self.offline = max_bytes, offline
        self.vram_budget, self.devices = vram_budget, devices
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._work, name="framework-jobs", daemon=True)
        self._thread.start()

    # --- submitting -------------------------------------------------------------------------------
    def _add(self, kind: str, source: str) -> Job:
        with self._lock:
            job = Job(next(self._ids), kind, source)  # type: ignore[arg-type]
            self._jobs[job.id] = job
        self._queue.put(job)
        logger.info("job %d queued: %s %s", job.id, kind, source)
        return job

    def submit_path(self, path: str | os.PathLike) -> Job:
        """Analyze a file on this machine (checked when the job runs, so its error shows in the job)."""
        return self._add("path", str(Path(os.path.expanduser(str(path)))))

    def submit_url(self, url: str) -> Job:
        """Download and analyze ``url`` (http/https only: ``SubmitError`` otherwise, at once)."""
        return self._add("url", check_url(url))

    def submit_file(self, path: str | os.PathLike) -> Job:
        """Analyze a file already saved in the library's ``uploads/``."""
        return self._add("upload", str(path))

    # --- reading --------------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        """Every job, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: -j.id)

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def wait(self, job_id: int, timeout: float | None = None) -> Job | None:
        """Block until the job is done or failed (or ``timeout`` seconds pass); the job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                job = self._jobs.get(job_id)
                if job is None or not job.active:
                    return job
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return job
                self._changed.wait(left if left is not None else 1.0)

    def close(self, wait_s: float = 0.0) -> None:
        """Stop after the running job (queued ones are dropped); wait up to ``wait_s`` seconds for that (and for
        the queue's MPS server, if it has one, to be told to quit). A daemon left by a queue that did not get
        that far is told to quit by the next run or queue that starts one (``framework.mps``)."""
        self._queue.put(None)
        if wait_s > 0:
            self._thread.join(wait_s)

    # --- working --------------------------------------------------------------------------------
    def _work(self) -> None:
        """Run the jobs in order; when registry.yaml says ``mps: true``, all of them as clients of one MPS server
        of the queue's own, started before the first job and told to quit when the queue closes
        (``framework.mps``, as ``framework run --mps``). A server that does not start fails every job with its
        message, which says what to change."""
        try:
            with self._gpu_sharing():
                self._take_jobs(None)
        except FrameworkError as exc:  # (only the server's start or stop gets here: each job catches its own)
            logger.error("the queue's MPS server: %s", exc)
            self._take_jobs(f"{exc} (the jobs' registry.yaml says mps: true: set mps: false there to run them "
                            "without MPS, and restart)")

    def _gpu_sharing(self) -> Any:
        """``framework.mps.for_run`` for the registry the jobs will read (nothing when it cannot be read now:
        each job then says why)."""
        from .. import mps as gpu_sharing
        from ..registry import find_registry, load_registry

        try:
            config = load_registry(find_registry(self.registry_path)).config
        except FrameworkError:
            return contextlib.nullcontext()
        return gpu_sharing.for_run(config.mps, self.devices, config.device)

    def _take_jobs(self, refuse: str | None) -> None:
        """Run the queued jobs until ``close``; with ``refuse``, fail each with that message instead."""
        while True:
            job = self._queue.get()
            if job is None:
                return
            job.started = time.time()
            try:
                if refuse is not None:
                    raise FrameworkError(refuse)
                self._run(job)
                job.status, job.progress, job.stage = "done", 1.0, "done"
            except FrameworkError as exc:
                job.status, job.error, job.stage = "failed", str(exc), "failed"
                logger.error("job %d failed: %s", job.id, exc)
            except Exception as exc:  # noqa: BLE001 - one job's bug must not stop the queue
                job.status, job.error, job.stage = "failed", f"{type(exc).__name__}: {exc}", "failed"
                logger.exception("job %d failed", job.id)
            job.finished = time.time()
            with self._changed:
                self._changed.notify_all()

    def _run(self, job: Job) -> None:
        if job.kind == "url":
            job.status, job.stage = "downloading", "downloading"

            def report(fraction: float | None, text: str) -> None:
                job.stage = text
                if fraction is not None:
                    job.progress = min(0.99, fraction) * 0.3  # the download is the first 30 %

            video = download(job.source, self.library.folder / "downloads", self.max_bytes, report)
        else:
            video = Path(job.source)
            if not video.is_file():
                raise SubmitError(f"{video}: no such file" if not video.exists() else f"{video}: not a file")
        job.video = str(video)
        self._analyze(job, video)

    def run_dir_for(self, video: Path) -> Path:
        """``<library>/runs/<name>-<8 hex of the resolved path>``: one folder per file, reused on resubmit."""
        tag = hashlib.sha1(str(video.resolve()).encode("utf-8")).hexdigest()[:8]
        return self.library.folder / "runs" / f"{safe_filename(video.stem, 'video')}-{tag}"

    def _analyze(self, job: Job, video: Path) -> None:
        from ..plugins import build_plugin_manager
        from ..registry import find_registry, load_registry
        from ..runner import analyze
        from .batch import FinishedRuns

        run_dir = self.run_dir_for(video)
        job.run_dir = str(run_dir)
        job.status, job.stage = "analyzing", "probing"
        finished = FinishedRuns(self.registry_path, self.only, self.skip, devices=self.devices,
                                vram_budget=self.vram_budget)
        result = finished.check(video, run_dir)
        if result is None:
            registry = load_registry(find_registry(self.registry_path))
            host = build_plugin_manager(registry.plugin_dirs)
            host.pm.register(_Progress(job), name=f"job-{job.id}-progress")
            result = analyze(video, registry=registry, host=host, out_dir=run_dir, only=self.only, skip=self.skip,
                             progress=False, offline=self.offline, vram_budget=self.vram_budget, devices=self.devices)
            finished.mark(result)
            if result.failed:
                job.note = f"failed analyzers: {', '.join(result.failed)} (see the report)"
        else:
            job.note = "finished before and unchanged since: not analyzed again"
        job.status, job.stage, job.progress = "indexing", "adding to the library", 0.97
        record = self.library.add_run(result.run_dir, timeline=result.timeline)  # just written: not read back
        job.video_id = record.id
