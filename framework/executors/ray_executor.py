"""``framework run --executor ray``: each video is a Ray task whose CPUs and GPUs come from its plan.

Without ``--address`` a local Ray starts in this process (no dashboard; ``--ray-cpus`` CPUs, default
all of this machine's); with one, the command joins that cluster. Then, per video:

- the driver (this process) probes the file and plans it with the scheduler for one node's GPUs
  (``framework.executors.resources.task_resources`` turns the plan into ``num_cpus``/``num_gpus``;
  a fraction of a GPU when the plan's largest wave fits in one, with that share as the task's VRAM
  budget);
- the task runs ``framework.runner.analyze`` on a worker into the same run folder a local run uses,
  so resume is the same: finished tracks are reused by key, also after a worker died mid-video;
- a task whose worker dies or that raises is retried once (Ray ``max_retries=1``), then reported
  as that video's error while the others go on; a file the worker cannot read is reported at once,
  naming the node (every worker must see the videos, the registry and the run folders at the same
  paths: shared storage is the user's);
- progress: each worker tells a small actor which analyzers finished; the driver draws one bar per
  video from it;
- the receipt (``ray_receipt.json`` in the output root) sums video-minutes per GPU-minute over the
  workers.

Ray is imported only here, when such a run starts.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, ConfigError, InputError
from ..hookspecs import hookimpl
from ..progress import console
from .resources import TaskResources, gpu_minutes, task_resources

logger = logging.getLogger(__name__)

RECEIPT_NAME = "ray_receipt.json"
#: environment variables a worker needs to see as the driver does (a cluster's workers have their own)
FORWARDED_ENV = ("FRAMEWORK_HOME", "FRAMEWORK_LIBRARY", "HF_HOME", "HF_HUB_OFFLINE", "HF_HUB_CACHE",
                 "TRANSFORMERS_OFFLINE", "XDG_CACHE_HOME")
#: how long a local Ray's workers may take to register (Ray's 60 s is missed on a busy 2-core machine)
LOCAL_START_ENV = {"RAY_worker_register_timeout_seconds": "180"}
#: a local Ray is started this many times before giving up: Ray 2.60's raylet aborts when its metrics agent
#: has not written its port within a fixed 15 s (slow imports on a busy machine, or Ray's modules
#: compiled on every start where no bytecode is written); the next try often finds them cached
LOCAL_START_ATTEMPTS = 3
#: a failed task is retried this many times (a worker that died, or an error raised in the run)
TASK_RETRIES = 1


class RayUnavailable(ConfigError):
    """Ray is not installed, or the cluster at ``--address`` cannot be reached."""


@dataclass
class TaskReport:
    """What the driver knows of one video's task (JSON-ready through ``as_dict``)."""

    video: str
    run_dir: str
    resources: TaskResources
    node: str | None = None
    pid: int | None = None
    gpu_ids: list[str] = field(default_factory=list)
    peak_vram_mb: dict[str, float] = field(default_factory=dict)  # per GPU of the task: the run receipt's
    wall_s: float | None = None
    video_s: float | None = None
    attempts: int | None = None  # counted through the progress hub (None: progress off, not known)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"video": self.video, "run_dir": self.run_dir, "num_cpus": self.resources.num_cpus,
                "num_gpus": self.resources.num_gpus, "vram_budget_mb": self.resources.vram_budget_mb,
                "planned_peak_vram_mb": round(self.resources.peak_vram_mb, 1),
                "gpu_analyzers": list(self.resources.gpu_analyzers), "node": self.node, "pid": self.pid,
                "gpu_ids": self.gpu_ids, "peak_vram_mb": self.peak_vram_mb, "wall_s": self.wall_s,
                "video_s": self.video_s, "attempts": self.attempts, "error": self.error}


# --- the cluster ---------------------------------------------------------------------------
def start_ray(address: str | None, num_cpus: int | None) -> Any:
    """Join the cluster at ``address``, or start a local Ray with ``num_cpus`` CPUs (default: all).

    :raises RayUnavailable: Ray is missing, or the cluster cannot be reached.
    """
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--executor ray needs Ray: pip install 'ray>=2.9' (the same version on "
                             "every node of the cluster)") from None
    if ray.is_initialized():  # started by the caller (a notebook, a test): used as it is, left running
        return ray
    try:
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            if num_cpus is not None and num_cpus < 1:
                raise ConfigError(f"--ray-cpus must be at least 1, got {num_cpus}")
            # a worker registering may miss Ray's deadline on a busy machine; a user's own setting wins
            for key, value in LOCAL_START_ENV.items():
                os.environ.setdefault(key, value)
            _start_local(ray, num_cpus or os.cpu_count() or 1)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError: all mean the same
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        hint = (" (is `ray start --head` running there, and is the port open?)" if address else
                f" after {LOCAL_START_ATTEMPTS} tries; Ray's own logs say why: /tmp/ray/session_latest/logs/raylet.out "
                "and dashboard_agent.log (an agent that cannot import its modules, e.g. a protobuf too old for "
                "googleapis-common-protos, stops every start)")
        raise RayUnavailable(f"--executor ray: cannot start {where}: {type(exc).__name__}: {first}{hint}") from None
    return ray


def _start_local(ray: Any, num_cpus: int, attempts: int = LOCAL_START_ATTEMPTS) -> None:
    """``ray.init`` a local Ray, again when it fails to start (see ``LOCAL_START_ATTEMPTS``)."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
            return
        except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception when its raylet aborts
            ray.shutdown()
            if attempt == attempts:
                raise
            logger.warning("a local Ray did not start (%s: %s); trying again (%d of %d)", type(exc).__name__,
                           str(exc).splitlines()[0] if str(exc) else "", attempt + 1, attempts)


@dataclass
class ClusterShape:
    """What the plans are made for: the largest node's CPUs and GPUs, and one GPU's VRAM budget."""

    max_node_cpus: int | None
    gpus_per_node: int
    gpu_budget_mb: float | None = None
    gpu_total_mb: float | None = None
    gpu_name: str | None = None


def cluster_shape(ray: Any, *, want_gpu: bool, vram_budget_mb: float | None) -> ClusterShape:
    """Read the nodes' resources; when a GPU may be used, ask one GPU worker for its card's memory."""
    cpus, gpus = [], []
    for node in ray.nodes():
        if not node.get("Alive", True):
            continue
        res = node.get("Resources", {})
        cpus.append(int(res.get("CPU", 0)))
        gpus.append(int(res.get("GPU", 0)))
    shape = ClusterShape(max(cpus, default=None), max(gpus, default=0))
    if not want_gpu or shape.gpus_per_node == 0:
        return shape
    from ..devices import RESERVE_FRACTION, RESERVE_MIN_MB

    try:
        free, total, name = ray.get(ray.remote(num_gpus=1, num_cpus=0)(_gpu_memory).remote(), timeout=300)
    except Exception as exc:  # noqa: BLE001 - planned as whole GPUs then
        logger.warning("could not read a GPU's memory on the cluster (%s): each GPU task takes a whole GPU", exc)
        return shape
    shape.gpu_total_mb, shape.gpu_name = total, name
    reserve = max(RESERVE_MIN_MB, RESERVE_FRACTION * total)
    shape.gpu_budget_mb = min(vram_budget_mb, total) if vram_budget_mb else max(0.0, total - reserve)
    return shape


def _gpu_memory() -> tuple[float, float, str]:
    """On a worker with one GPU: (free MB, total MB, name)."""
    import torch

    free, total = torch.cuda.mem_get_info(0)
    return free / 2**20, total / 2**20, torch.cuda.get_device_name(0)


# --- planning on the driver ----------------------------------------------------------------
def plan_resources(video: Path, *, registry: Any, host: Any, only: list[str] | None, skip: list[str] | None,
                   shape: ClusterShape, jobs: int | None, video_stream: int | None = None,
                   audio_stream: int | None = None) -> TaskResources:
    """Plan ``video`` as one node of the cluster would run it, and size its task from the plan.

    :raises InputError: the driver cannot probe the file (the caller falls back to a default).
    """
    from .. import media
    from ..runner import _configure, _Run, cpu_time_limit, default_run_dir
    from ..scheduler import plan

    registry, host, configured, selected = _configure(None, registry, host, True, only, skip)
    meta = media.probe(video, video_stream=video_stream, audio_stream=audio_stream, hash_content=False)  # planning
    #  needs the metadata, not the whole file read for its hash (the worker probes and hashes it itself)
    run = _Run(video, meta, default_run_dir(video), host, selected, configured, True, False, 1, None,
               offline=True, devices=["cpu"])
    demands = [run._demand(n) for n in run.analyzers]
    devices = [f"cuda:{i}" for i in range(shape.gpus_per_node)]
    p = plan(demands, shape.gpu_budget_mb, devices, cpu_time_limit_s=cpu_time_limit(meta.duration))
    return task_resources(p, gpu_budget_mb=shape.gpu_budget_mb, max_node_cpus=shape.max_node_cpus, jobs=jobs)


def default_resources(shape: ClusterShape, jobs: int | None) -> TaskResources:
    """For a video the driver cannot probe: CPU work only (the worker reports what is wrong with it)."""
    cpus = min(jobs or 1, shape.max_node_cpus or 1)
    return TaskResources(max(1, cpus), 0.0)


# --- the task ------------------------------------------------------------------------------
def unreadable_message(video: str, node: str, exc: OSError | None = None) -> str:
    """The error for a file a worker cannot read, naming the node and what to do."""
    why = "not found" if exc is None or isinstance(exc, FileNotFoundError) else (exc.strerror or str(exc))
    return (f"{video}: {why} on Ray worker node {node}; with --executor ray every node must see the "
            "videos, the registry and the run folder at the same paths (shared storage, e.g. an NFS mount)")


def analyze_task(video: str, run_dir: str, options: dict[str, Any], hub: Any = None, index: int = 0) -> dict[str, Any]:
    """What a Ray worker runs for one video: ``framework.runner.analyze`` into ``run_dir``.

    Returns ``{"outcome": VideoOutcome, "info": {...}}``. An input the worker cannot read comes
    back as the outcome's error (not retried); anything else raised goes back to Ray, which
    retries the task once (the retry reuses every track the first attempt finished).
    """
    from ..errors import EXIT_ANALYZER_FAILED
    from ..plugins import build_plugin_manager
    from ..registry import load_registry
    from ..runner import VideoOutcome, analyze

    node = socket.gethostname()
    info: dict[str, Any] = {"node": node, "pid": os.getpid(), "gpu_ids": _ray_gpu_ids()}
    logging.getLogger("framework").setLevel(logging.WARNING)
    try:
        with open(video, "rb"):
            pass
    except OSError as exc:
        return {"outcome": VideoOutcome(Path(video), error=unreadable_message(video, node, exc),
                                        exit_code=EXIT_INPUT), "info": info}
    registry_path = options.pop("registry_path", None)
    if registry_path is not None and not Path(registry_path).is_file():
        return {"outcome": VideoOutcome(Path(video), error=unreadable_message(registry_path, node),
                                        exit_code=EXIT_INPUT), "info": info}
    registry = load_registry(registry_path)
    host = build_plugin_manager(registry.plugin_dirs, load_entrypoints=options.pop("load_entrypoints", True))
    if hub is not None:
        host.pm.register(_ProgressForwarder(hub, index), name="framework-ray-progress")
    t0 = time.perf_counter()
    try:
        result = analyze(video, registry=registry, host=host, out_dir=run_dir, progress=False, **options)
    except InputError as exc:
        return {"outcome": VideoOutcome(Path(video), error=str(exc), exit_code=exc.exit_code), "info": info}
    info["wall_s"] = round(time.perf_counter() - t0, 3)
    info["video_s"] = result.timeline.video.duration
    info["peak_vram_mb"] = dict((result.timeline.run or {}).get("receipt", {}).get("peak_vram_mb") or {})
    code = EXIT_ANALYZER_FAILED if result.failed else EXIT_OK
    return {"outcome": VideoOutcome(Path(video), result=result, exit_code=code), "info": info}


def _ray_gpu_ids() -> list[str]:
    """The GPUs Ray gave this task (none outside a Ray worker: asking would start a Ray)."""
    if not _ray_running():
        return []
    import ray

    try:
        return [str(g) for g in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])]
    except Exception:  # noqa: BLE001 - an older Ray without accelerator ids
        return [str(g) for g in ray.get_gpu_ids()]


class _ProgressForwarder:
    """A plugin registered in the worker's host: tells the driver's hub when an analyzer finishes."""

    def __init__(self, hub: Any, index: int):
        self.hub, self.index = hub, index

    def _send(self, *args: Any) -> None:
        self.hub.update.remote(self.index, *args)

    @hookimpl
    def analysis_started(self, analyzers: list[str]) -> None:
        self._send("started", len(analyzers), socket.gethostname())

    @hookimpl
    def analyzer_finished(self, track: Any) -> None:
        self._send("finished", track.analyzer, track.status)

    @hookimpl
    def analyzer_failed(self, name: str) -> None:
        self._send("finished", name, "failed")


class ProgressHub:
    """The driver's view of every task's progress (a Ray actor; workers call ``update``)."""

    def __init__(self) -> None:
        self.state: dict[int, dict[str, Any]] = {}

    def update(self, index: int, kind: str, *args: Any) -> None:
        s = self.state.setdefault(index, {"total": 0, "done": 0, "node": None, "attempt": 0})
        if kind == "started":
            s["total"], s["node"], s["done"] = args[0], args[1], 0
            s["attempt"] += 1
        else:
            s["done"] += 1

    def snapshot(self) -> dict[int, dict[str, Any]]:
        return self.state


# --- the driver ----------------------------------------------------------------------------
def run_many_ray(videos: list[Path], *, address: str | None = None, num_cpus: int | None = None,
                 registry_path: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
                 strict: bool = False, finished: Any = None, only: list[str] | None = None,
                 skip: list[str] | None = None, jobs: int | None = None, vram_budget: str | None = None,
                 devices: list[str] | None = None, progress: bool = True, load_entrypoints: bool = True,
                 **kwargs: Any) -> tuple[list[Any], int, dict[str, Any]]:
    """``run_many`` with each video as a Ray task. Returns the outcomes (in input order), the exit
    code (the highest of the videos'), and the cluster receipt (also written as ``ray_receipt.json``).

    ``kwargs`` go to ``framework.runner.analyze`` on the workers (resume, keep_cache, offline, streams).
    """
    from ..errors import PluginFailure, RunInterrupted
    from ..plugins import build_plugin_manager
    from ..registry import find_registry, load_registry
    from ..runner import VideoOutcome, needed_analyzers, run_dirs
    from ..scheduler import parse_budget

    registry_file = find_registry(registry_path)
    registry = load_registry(registry_file)
    host = build_plugin_manager(registry.plugin_dirs, load_entrypoints=load_entrypoints)
    if strict and host.problems:
        raise PluginFailure("--strict: " + "; ".join(str(p) for p in host.problems))
    registry.configure(host.analyzers, names=needed_analyzers(host.analyzers, only, skip))
    try:
        budget = parse_budget(vram_budget if vram_budget is not None else registry.config.vram_budget_gb)
    except ValueError as exc:
        raise ConfigError(f"--vram-budget: {exc}") from None
    if devices and devices != ["cpu"]:
        raise ConfigError("--devices with --executor ray: Ray gives each task its GPUs; use --devices cpu "
                          "for none, or leave it out (limit the GPUs with CUDA_VISIBLE_DEVICES when starting Ray)")
    videos = [Path(v).absolute() for v in videos]
    targets = [t.absolute() for t in run_dirs(videos, out_dir)]
    outcomes: list[Any] = [None] * len(videos)
    todo: list[int] = []
    for i, (video, target) in enumerate(zip(videos, targets)):
        previous = finished(video, target) if finished is not None else None
        if previous is not None:
            outcomes[i] = VideoOutcome(video, result=previous, already_done=True)
        else:
            todo.append(i)
    receipt: dict[str, Any] = {"executor": "ray", "address": address or "local", "tasks": []}
    if todo:
        t0 = time.perf_counter()
        started_here = not _ray_running()
        ray = start_ray(address, num_cpus)
        try:
            want_gpu = devices != ["cpu"]
            shape = cluster_shape(ray, want_gpu=want_gpu and _any_gpu_analyzer(registry, host, only, skip),
                                  vram_budget_mb=budget if isinstance(budget, float) else None)
            reports = _run_tasks(ray, [(i, videos[i], targets[i]) for i in todo], outcomes, shape=shape,
                                 registry=registry, host=host, registry_file=registry_file, only=only, skip=skip,
                                 jobs=jobs, devices=devices, progress=progress, load_entrypoints=load_entrypoints,
                                 vram_budget=vram_budget, kwargs=kwargs)
        except KeyboardInterrupt:
            done = [o.video for o in outcomes if o is not None and o.result is not None]
            raise RunInterrupted(finished_videos=done) from None
        finally:
            if started_here:
                ray.shutdown()
        receipt.update(cluster_receipt(reports, time.perf_counter() - t0, shape))
        root = Path(out_dir) if out_dir is not None and len(videos) > 1 else targets[0].parent
        _write_receipt(root, receipt)
    if strict:  # as run_many: an analyzer from a plugin that failed is exit 6
        from ..errors import EXIT_PLUGIN

        for o in outcomes:
            if o.result is not None and any(not (o.result.timeline.tracks[n].plugin or "").startswith("builtin:")
                                            for n in o.result.failed):
                o.exit_code = EXIT_PLUGIN
    code = max((o.exit_code for o in outcomes), default=EXIT_OK)
    return outcomes, code, receipt


def _ray_running() -> bool:
    import sys

    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def forwarded_env() -> dict[str, str]:
    """The variables of ``FORWARDED_ENV`` set here, handed to every task (its ``runtime_env``)."""
    return {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}


def _any_gpu_analyzer(registry: Any, host: Any, only: list[str] | None, skip: list[str] | None) -> bool:
    from ..runner import needed_analyzers, select_analyzers

    names = needed_analyzers(host.analyzers, only, skip)
    configured = {c.name: c for c in registry.configure(host.analyzers, host, names=names)}
    return any(configured[n].cls.device != "cpu" and configured[n].device != "cpu"
               for n in select_analyzers(configured, only, skip, host.analyzers))


def _run_tasks(ray: Any, items: list[tuple[int, Path, Path]], outcomes: list[Any], *, shape: ClusterShape,
               registry: Any, host: Any, registry_file: Path | None, only: list[str] | None,
               skip: list[str] | None, jobs: int | None, devices: list[str] | None, progress: bool,
               load_entrypoints: bool, vram_budget: str | None, kwargs: dict[str, Any]) -> list[TaskReport]:
    stream_opts = {k: kwargs.get(k) for k in ("video_stream", "audio_stream")}
    hub = ray.remote(num_cpus=0)(ProgressHub).remote() if progress else None
    remote = ray.remote(analyze_task)
    pending: dict[Any, tuple[int, TaskReport]] = {}
    reports: list[TaskReport] = []
    for i, video, target in items:
        try:
            res = plan_resources(video, registry=registry, host=host, only=only, skip=skip, shape=shape, jobs=jobs,
                                 **stream_opts)
        except (InputError, OSError) as exc:
            logger.info("%s: not planned on this machine (%s); the worker will say what is wrong", video, exc)
            res = default_resources(shape, jobs)
        if devices == ["cpu"]:
            res = TaskResources(res.num_cpus, 0.0)
        options = dict(kwargs, registry_path=str(registry_file.absolute()) if registry_file else None,
                       only=only, skip=skip, jobs=res.num_cpus, load_entrypoints=load_entrypoints, devices=devices,
                       vram_budget=f"{res.vram_budget_mb:.0f}MB" if res.vram_budget_mb else vram_budget)
        report = TaskReport(str(video), str(target), res)
        logger.info("%s: task with %s", video, res.describe())
        env = forwarded_env()
        ref = remote.options(num_cpus=res.num_cpus, num_gpus=res.num_gpus, max_retries=TASK_RETRIES,
                             retry_exceptions=True, runtime_env={"env_vars": env} if env else None).remote(str(video), str(target), options, hub, i)
        pending[ref] = (i, report)
        reports.append(report)
    try:
        _collect(ray, pending, outcomes, hub, progress, items)
    except KeyboardInterrupt:  # Ctrl-C: the tasks still queued or running are cancelled, also on a cluster
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        raise
    if hub is not None:
        try:
            attempts = ray.get(hub.snapshot.remote(), timeout=5)
            for (i, _, _), report in zip(items, reports):
                report.attempts = report.attempts or attempts.get(i, {}).get("attempt") or None
        except Exception:  # noqa: BLE001 - the count is informative only
            pass
    return reports


def _collect(ray: Any, pending: dict[Any, tuple[int, "TaskReport"]], outcomes: list[Any], hub: Any, progress: bool,
             items: list[tuple[int, Path, Path]]) -> None:
    """Wait for every task, drawing the bars; each result goes to ``outcomes`` as it arrives."""
    from ..runner import VideoOutcome

    with _Bars(progress, [(i, v) for i, v, _ in items]) as bars:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            if hub is not None:
                try:
                    bars.update(ray.get(hub.snapshot.remote(), timeout=5))
                except Exception as exc:  # noqa: BLE001 - progress never stops the run
                    logger.debug("progress: %s", exc)
            for ref in ready:
                i, report = pending.pop(ref)
                try:
                    got = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the task failed twice: report it, go on
                    report.error = task_error_message(report.video, exc)
                    report.attempts = TASK_RETRIES + 1
                    logger.error("%s", report.error)
                    outcomes[i] = VideoOutcome(Path(report.video), error=report.error, exit_code=EXIT_INTERNAL)
                    bars.finish(i, "failed")
                    continue
                outcome, info = got["outcome"], got["info"]
                report.node, report.pid, report.gpu_ids = info.get("node"), info.get("pid"), info.get("gpu_ids", [])
                report.peak_vram_mb = info.get("peak_vram_mb") or {}
                report.wall_s, report.video_s = info.get("wall_s"), info.get("video_s")
                report.error = outcome.error
                outcomes[i] = outcome
                bars.finish(i, "error" if outcome.error else "done")


def task_error_message(video: str, exc: BaseException) -> str:
    """The one-line error of a task that failed on every attempt (a dead worker, or an exception)."""
    name = type(exc).__name__
    cause = getattr(exc, "cause", None)
    if name in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError") or "died" in str(exc).lower():
        why = f"its Ray worker died ({name})"
    elif cause is not None:
        why = f"{type(cause).__name__}: {cause}"
    else:
        why = f"{name}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    return (f"{video}: analysis failed on {TASK_RETRIES + 1} attempts: {why}; finished tracks are saved in "
            "its run folder and the same command resumes")


def cluster_receipt(reports: list[TaskReport], wall_s: float, shape: ClusterShape) -> dict[str, Any]:
    """Video-minutes per GPU-minute summed over every worker, and per task what it had and used."""
    tasks = [r.as_dict() for r in reports]
    done = [t for t in tasks if t["wall_s"]]
    video_s = sum(float(t["video_s"] or 0.0) for t in done)
    gpu_min = gpu_minutes(done)
    return {
        "videos": len(reports), "analyzed": len(done), "failed": sum(1 for r in reports if r.error),
        "video_s": round(video_s, 3), "wall_s": round(wall_s, 3),
        "video_s_per_wall_s": round(video_s / wall_s, 3) if wall_s > 0 else None,
        "gpu_minutes": round(gpu_min, 4),
        "video_min_per_gpu_min": round((video_s / 60.0) / gpu_min, 3) if gpu_min > 0 else None,
        "cluster": {"max_node_cpus": shape.max_node_cpus, "gpus_per_node": shape.gpus_per_node,
                    "gpu_name": shape.gpu_name, "gpu_total_mb": shape.gpu_total_mb,
                    "gpu_budget_mb": shape.gpu_budget_mb},
        "tasks": tasks,
    }


def receipt_line(receipt: dict[str, Any]) -> str:
    """``3 videos on Ray: 36.0 s of video in 20.1 s (1.8x real time); 4.2 video-min per GPU-min``."""
    if not receipt.get("analyzed"):
        return ""
    line = (f"{receipt['analyzed']} video(s) on Ray ({receipt['address']}): {receipt['video_s']:.1f} s of video "
            f"in {receipt['wall_s']:.1f} s")
    if receipt.get("video_s_per_wall_s"):
        line += f" ({receipt['video_s_per_wall_s']:.1f}x real time)"
    if receipt.get("video_min_per_gpu_min") is not None:
        line += f"; {receipt['video_min_per_gpu_min']:.1f} video-min per GPU-min over the workers"
    return line


def _write_receipt(root: Path, receipt: dict[str, Any]) -> None:
    import json

    from ..timeline import atomic_write_text

    try:
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(root / RECEIPT_NAME, json.dumps(receipt, indent=1))
        receipt["path"] = str(root / RECEIPT_NAME)
    except OSError as exc:
        logger.warning("could not write %s: %s", root / RECEIPT_NAME, exc)


class _Bars:
    """One rich progress bar per video on the driver (nothing when progress is off)."""

    def __init__(self, enabled: bool, items: list[tuple[int, Path]]):
        self.enabled, self.items = enabled, items
        self.bars: Any = None
        self.tasks: dict[int, Any] = {}

    def __enter__(self) -> "_Bars":
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bars = Progress(TextColumn("{task.description:<40}"), BarColumn(),
                                 TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console)
            self.bars.__enter__()
            self.tasks = {i: self.bars.add_task(f"{v.name} [queued]", total=1.0) for i, v in self.items}
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bars is not None:
            self.bars.__exit__(*exc)

    def update(self, snapshot: dict[int, dict[str, Any]]) -> None:
        if self.bars is None:
            return
        names = dict(self.items)
        for i, s in snapshot.items():
            if i in self.tasks and s.get("total"):
                where = f"on {s['node']}" + (f", attempt {s['attempt']}" if s.get("attempt", 1) > 1 else "")
                self.bars.update(self.tasks[i], completed=min(0.99, s["done"] / s["total"]),
                                 description=f"{names[i].name} [{where}]")

    def finish(self, i: int, status: str) -> None:
        if self.bars is not None and i in self.tasks:
            names = dict(self.items)
            self.bars.update(self.tasks[i], completed=1.0, description=f"{names[i].name} [{status}]")
