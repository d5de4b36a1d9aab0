"""One video: plan, decode once, run the analyzers, write results; resume from finished tracks.

``analyze(video)`` is the API behind ``framework run``. The run folder holds:

- ``results.json``: the Timeline (written atomically at the end);
- ``tracks/<analyzer>.json``: each finished track, written atomically the moment it finishes,
  with the key it was computed under (video content hash, analyzer version, params, models,
  upstream keys). A rerun reuses every track whose key is unchanged, so a killed run loses
  no finished track;
- ``tracks/<analyzer>.traceback.txt``: the traceback of a failed track (``Track.traceback_file``);
- ``.cache/``: the decoded frame streams and audio, with ``owner.json`` naming the run's process
  (removed after the run unless kept; a killed run's cache is removed by the next run in the same
  output root, or by ``framework clean``; see ``framework.cache_owner``).

Ctrl-C stops a run cleanly: analyzers not started never start, running ones stop at their next
progress report (or finish), finished tracks stay saved, and ``RunInterrupted`` says what was kept.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from . import __version__, cache_owner, decode_process, media, own_process, thread_settings
from . import mps as gpu_sharing
from .analyzer import Analyzer, AnalyzerInputs
from .callinfo import AnalyzerCall, call_analyzer  # noqa: F401 - call_analyzer also public here, as before
from .executor import Executor, Job, LoadTurns, gil_switch_interval
from .own_process import ProcessCall
from .errors import ConfigError, InputError, RunInterrupted
from .plugins import PluginHost, build_plugin_manager
from .registry import ConfiguredAnalyzer, Registry, find_registry, load_registry
from .scheduler import (CycleError, Demand, Placement, Plan, Variant, batch_extra_mb, parse_budget, plan,
                        resolve_device, without_precision)
from .outputs import select as select_exporters, write_outputs
from .outputs.thumbnails import thumbnail_spec, thumbnails_from_stream
from .stack_sampler import run_start
from .streams import AudioTrack, FrameSpec
from .devices import gpu_driver_present
from .warm_imports import import_before_threads, warm_up_imports
from .timeline import ModelRef, Timeline, Track, VideoMeta, atomic_write_text
from .work_streams import asked_for, switched_on

logger = logging.getLogger(__name__)

ALL_UPSTREAM = "*"
SUMMARY = "summary"  # the capability of the track that reads all the others (fusion)
THUMB_SPEC = thumbnail_spec()


@dataclass
class RunResult:
    """What one ``analyze`` call produced."""

    video: Path
    run_dir: Path
    timeline: Timeline
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    @property
    def results_path(self) -> Path:
        return self.run_dir / "results.json"


def default_run_dir(video: Path) -> Path:
    """``runs/<file name without extension>``."""
    return Path("runs") / video.stem


def run_dirs(videos: list[Path], out_dir: str | os.PathLike | None = None) -> list[Path]:
    """One run folder per video, never two alike: ``runs/clip``, then ``runs/clip-2``, ...

    Deterministic (in command-line order), so rerunning the same command resumes each video in
    its own folder. With ``out_dir`` and one video, ``out_dir`` is the run folder itself; with
    several, each gets a subfolder of it.
    """
    if out_dir is not None and len(videos) == 1:
        return [Path(out_dir)]
    root = Path(out_dir) if out_dir is not None else Path("runs")
    taken: set[str] = set()
    folders: list[Path] = []
    for video in videos:
        name, n = video.stem, 1
        while name.casefold() in taken:  # casefold: clip.mp4 and CLIP.mov clash on macOS and Windows
            n += 1
            name = f"{video.stem}-{n}"
        taken.add(name.casefold())
        folders.append(root / name)
    return folders


def _with_the_runs_threads(run: Callable[..., RunResult]) -> Callable[..., RunResult]:
    """``run`` with the run's torch threads (``thread_settings.run_torch_threads``), what a library's import or
    an analyzer's load changes put back after it, and the program's own threads after the run."""
    @functools.wraps(run)
    def with_threads(*args: Any, **kwargs: Any) -> RunResult:
        try:
            threads = thread_settings.run_torch_threads()
        except ValueError as e:
            raise ConfigError(str(e)) from None
        with thread_settings.for_a_run(threads):
            return run(*args, **kwargs)
    return with_threads


@_with_the_runs_threads
def analyze(video: str | os.PathLike, *, registry_path: str | os.PathLike | None = None,
            registry: Registry | None = None, host: PluginHost | None = None,
            out_dir: str | os.PathLike | None = None, only: list[str] | None = None,
            skip: list[str] | None = None, resume: bool = True, progress: bool = True,
            load_entrypoints: bool = True, keep_cache: bool = False, jobs: int | None = None,
            vram_budget_gb: float | None = None, vram_budget: str | float | None = None,
            devices: list[str] | None = None, video_stream: int | None = None,
            audio_stream: int | None = None, offline: bool = False, profile: list[str] | None = None) -> RunResult:
    """Analyze one video with the enabled analyzers and write its run folder.

    ``offline``: never download a model (also when ``HF_HUB_OFFLINE=1``); an analyzer whose model
    is not cached is ``skipped`` with the ``framework models pull ID`` command. Otherwise a
    missing model is fetched on first use, as ``framework models pull`` fetches it.

    ``video_stream`` / ``audio_stream``: container indices of the streams to analyze (default:
    the ones FFmpeg would pick); probe and decode both use them (``VideoMeta.video_stream``).

    ``vram_budget``: per GPU, ``"12GB"``, a number of GiB, or ``"auto"`` (free memory minus a
    reserve; the default, also when registry.yaml's ``vram_budget_gb`` is null). ``devices``: the
    GPUs to use (``["cuda:0", "cuda:1"]``; default all). See ``framework.devices``.

    ``profile``: analyzers whose ``analyze()`` is sampled (``framework.stack_sampler``; the report in
    ``<run folder>/profiles/``); they are run again even when a finished track could be reused.

    :raises framework.errors.InputError: the file cannot be analyzed (missing, empty, not media).
    :raises framework.errors.ConfigError: registry.yaml or ``only``/``skip`` name unknown analyzers.
    """
    path = Path(video)
    registry, host, configured, selected = _configure(registry_path, registry, host, load_entrypoints, only, skip)
    for name in profile or ():
        if name not in selected:
            raise ConfigError(f"--profile {name}: not an analyzer of this run (it runs: {', '.join(selected)}); "
                              "check the name, --only/--skip and registry.yaml")
    exports = registry.select_exporters(host.exporters)  # registry.yaml's exports: (checked before decoding)
    import_before_threads()  # (scipy: its first import from two analyzers' threads at once failed one)
    warm_up_imports(select_exporters(list(host.exporters.values()), exports))  # e.g. OpenTimelineIO, while decoding

    try:
        meta = media.probe(path, video_stream=video_stream, audio_stream=audio_stream)
    except OSError as exc:  # readable by its permissions, yet the read failed (ACL, I/O error)
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc}); check the file and its "
                         "permissions") from None
    run_dir = Path(out_dir) if out_dir is not None else default_run_dir(path)
    budget = vram_budget if vram_budget is not None else (
        vram_budget_gb if vram_budget_gb is not None else registry.config.vram_budget_gb)
    run = _Run(path, meta, run_dir, host, selected, configured, resume, progress,
               jobs or min(4, os.cpu_count() or 1), budget, offline=offline, devices=devices, exports=exports,
               profile=profile)
    cache_owner.sweep(run_dir.resolve().parent)  # caches of killed runs in this output root
    cache_owner.claim(run.cache_dir)
    try:
        return run.execute(keep_cache)
    except KeyboardInterrupt as exc:
        raise RunInterrupted(run_dir, saved=run.saved_tracks(), video=path,
                             abandoned=getattr(exc, "abandoned", None)) from None
    finally:
        if keep_cache:
            cache_owner.mark_kept(run.cache_dir)
        else:
            shutil.rmtree(run.cache_dir, ignore_errors=True)


@dataclass
class PlanReport:
    """What ``framework plan`` shows: the plan for one video, and why some analyzers will not run."""

    video: VideoMeta
    plan: Plan
    gpus: Any
    cannot_run: dict[str, str] = field(default_factory=dict)  # planned, but skipped at run time (no audio, model missing)
    own_process: list[str] = field(default_factory=list)  # analyzers that will run in a process of their own

    def as_dict(self) -> dict[str, Any]:
        return {"video": {"path": self.video.path, "duration": self.video.duration},
                "gpus": {d: {"name": self.gpus.names.get(d), "budget_mb": round(self.gpus.budgets[d], 1),
                             "total_mb": round(self.gpus.total_mb.get(d, 0.0), 1),
                             "capability": _capability(self.gpus, d)} for d in self.gpus.devices},
                **self.plan.as_dict(), "cannot_run": self.cannot_run, "own_process": self.own_process}


def _prefill_group(analyzer: Any) -> int:
    """``analyzer.prefill_group()`` (``BatchedAnalyzer``'s: the items of a batch prefilled at once), 0 without one."""
    method = getattr(analyzer, "prefill_group", None)
    return int(method()) if method is not None else 0


def measured_one_item_mb(measured: dict[str, Any], analyzer: Analyzer, estimate_mb: float) -> float:
    """A measured peak as the plan reads a variant's memory: the weights and one item's working memory.

    A peak measured at a batch of ``b`` held ``b - 1`` more items (``item_vram_mb`` each, estimated);
    read whole it would be counted again under the next plan's batch reservation, and a 7B VLM
    measured at a batch of 64 on a large GPU would no longer "fit" a 24 GB one. When the per-item
    estimate is too high for this model (the rest would be under a quarter of the peak), the
    manifest's ``estimate_mb`` is kept. A batch prefilled in groups is read with the group it ran in
    (``peak_group``: the plan's, where smaller than the analyzer's own).
    """
    peak = float(measured["peak_vram_mb"])
    batch = int(measured.get("peak_batch") or 1)
    item = float(getattr(analyzer, "item_vram_mb", 0.0) or 0.0)
    if batch <= 1 or item <= 0:
        return peak
    group = int(measured.get("peak_group") or _prefill_group(analyzer))
    shape = Demand(getattr(analyzer, "name", ""), item_vram_mb=item, group_items=group,
                   item_kv_mb=float(getattr(analyzer, "item_kv_mb", 0.0) or 0.0))
    one = peak - batch_extra_mb(shape, batch)
    return one if one >= peak / 4 else estimate_mb


def _capability(gpus: Any, device: str) -> str | None:
    """A GPU's CUDA compute capability as NVIDIA writes it (``"9.0"``), if known."""
    cap = gpus.capability.get(device)
    return ".".join(map(str, cap)) if cap else None


def plan_video(video: str | os.PathLike, *, registry_path: str | os.PathLike | None = None,
               registry: Registry | None = None, host: PluginHost | None = None, only: list[str] | None = None,
               skip: list[str] | None = None, vram_budget: str | float | None = None,
               devices: list[str] | None = None, load_entrypoints: bool = True) -> PlanReport:
    """Plan a run of ``video`` without running anything (``framework plan``): devices, variants,
    waves, estimates, and the reasons for what will not run. Nothing is downloaded or decoded."""
    path = Path(video)
    registry, host, configured, selected = _configure(registry_path, registry, host, load_entrypoints, only, skip)
    meta = media.probe(path, hash_content=False)  # a plan needs the metadata, not the file's hash
    budget = vram_budget if vram_budget is not None else registry.config.vram_budget_gb
    run = _Run(path, meta, default_run_dir(path), host, selected, configured, True, False, 1, budget,
               offline=True, devices=devices)
    run._plan()
    cannot_run = {}
    for name in run.plan.order:
        reason = run._precheck(name)
        if reason is None and run.manifest is not None and run.analyzers[name].model_ids():
            run.resolved_models[name] = run.model_resolver.resolve(run._load_ids(name), fetch=False)
            missing = run._missing_models(name)
            reason = missing[0] if missing else None
        if reason:
            cannot_run[name] = reason
    run.gpu_in_run = any(p.is_gpu for p in run.plan.placements.values())
    own = [n for n in run.plan.order if run._in_own_process(n, run.plan.placements[n])]
    return PlanReport(meta, run.plan, run.gpus, cannot_run, own)


def _configure(registry_path: str | os.PathLike | None, registry: Registry | None, host: PluginHost | None,
               load_entrypoints: bool, only: list[str] | None, skip: list[str] | None
               ) -> tuple[Registry, PluginHost, dict[str, ConfiguredAnalyzer], list[str]]:
    """The registry, the plugin host, the configured analyzers and the ones selected to run."""
    if registry is None:
        registry = load_registry(find_registry(registry_path))
    if host is None:
        host = build_plugin_manager(registry.plugin_dirs, load_entrypoints=load_entrypoints)
    names = needed_analyzers(host.analyzers, only, skip)
    configured = {c.name: c for c in registry.configure(host.analyzers, host, names=names)}
    return registry, host, configured, select_analyzers(configured, only, skip, host.analyzers)


def _check_names(available: Any, only: list[str] | None, skip: list[str] | None) -> None:
    valid = ", ".join(sorted(available))
    for flag, names in (("--only", only), ("--skip", skip)):
        for name in names or ():
            if name not in available:
                raise ConfigError(f"{flag}: unknown analyzer {name!r}; valid names: {valid}")


def needed_analyzers(available: Any, only: list[str] | None, skip: list[str] | None = None) -> set[str] | None:
    """What a run with ``only`` may need: those analyzers and, transitively, the ones they depend
    on (only their classes are imported); ``None`` without ``only`` (the enabled ones, any of them).

    :raises framework.errors.ConfigError: ``only`` or ``skip`` names an unknown analyzer.
    """
    _check_names(available, only, skip)
    if not only:
        return None
    needed: set[str] = set()
    todo = list(only)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(d for d in available[name].depends_on if d != ALL_UPSTREAM and d in available)
    return needed


def select_analyzers(configured: dict[str, ConfiguredAnalyzer], only: list[str] | None,
                     skip: list[str] | None, available: Any = None) -> list[str]:
    """Enabled analyzers (or exactly ``only``), minus ``skip``, plus the dependencies they need.

    ``available``: every registered name (``PluginHost.analyzers``), which ``only`` and ``skip`` are
    checked against when ``configured`` holds only what ``needed_analyzers`` named."""
    _check_names(configured if available is None else available, only, skip)
    chosen = list(only) if only else [n for n, c in configured.items() if c.enabled]
    skipped = set(skip or ())
    chosen = [n for n in chosen if n not in skipped]
    # pull in missing dependencies (not for "*", which means "whatever else runs")
    i = 0
    while i < len(chosen):
        for dep in configured[chosen[i]].cls.depends_on:
            if dep != ALL_UPSTREAM and dep in configured and dep not in chosen and dep not in skipped:
                logger.info("%s needs %s: running it too", chosen[i], dep)
                chosen.append(dep)
        i += 1
    return chosen


class _Run:
    """The state of one video's run (private: use ``analyze``)."""

    def __init__(self, path: Path, meta: VideoMeta, run_dir: Path, host: PluginHost,
                 selected: list[str], configured: dict[str, ConfiguredAnalyzer], resume: bool,
                 progress: bool, jobs: int, vram_budget: str | float | None, offline: bool = False,
                 devices: list[str] | None = None, exports: list[str] | None = None,
                 profile: list[str] | None = None):
        self.path, self.meta, self.run_dir, self.host = path, meta, run_dir, host
        self.profile = set(profile or ())
        self.offline = offline
        self.configured, self.resume, self.show_progress, self.jobs = configured, resume, progress, jobs
        try:
            self.vram_budget = parse_budget(vram_budget)
        except ValueError as exc:
            raise ConfigError(f"--vram-budget: {exc}") from None
        self.requested_devices = devices
        self.exports = exports
        self.analyzers: dict[str, Analyzer] = {n: configured[n].instantiate() for n in selected}
        self.deps = self._dependencies()
        self.tracks: dict[str, Track] = {}
        self.keys: dict[str, str] = {}
        self.resolved_models: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}  # by _key: found, missing
        self.reused: list[str] = []
        self.lock = threading.Lock()
        self.tracks_dir = run_dir / "tracks"
        self.cache_dir = run_dir / ".cache"
        self.warnings: list[str] = []
        self.stated_duration: float | None = None  # the header's length, when decoding stopped short
        self.stop = threading.Event()  # set on Ctrl-C: analyzers stop at their next progress report
        # started with the early decode, before the plan (execute): the import warm-up, the analyzers' own processes
        self.load_turns = LoadTurns()
        self.warming_early: threading.Thread | None = None
        self.early_children: own_process.EarlyChildren | None = None

    # --- planning ---------------------------------------------------------------------
    def _dependencies(self) -> dict[str, tuple[str, ...]]:
        """Each analyzer's upstream. ``("*",)`` reads every analyzer that does not itself read
        ``"*"``; one of those that provides the summary (fusion) also reads the other ``"*"`` ones
        (comment_cta_detection), so the summary sees every track."""
        late = {n for n, a in self.analyzers.items() if ALL_UPSTREAM in a.depends_on}
        summaries = {n for n in late if SUMMARY in self.analyzers[n].provides}
        deps: dict[str, tuple[str, ...]] = {}
        for name, a in self.analyzers.items():
            if name in late:
                deps[name] = tuple(n for n in self.analyzers if n != name and (
                    n not in late or (name in summaries and n not in summaries)))
            else:
                deps[name] = tuple(a.depends_on)
        return deps

    def _key(self, name: str, resolve: bool = True) -> str:
        """The resume key: video, analyzer version, params, model revisions, upstream keys.

        Resolving the revisions fetches a missing model on first use (unless offline) for an
        analyzer that can run on this input, so the key names the weights it will load.
        """
        a = self.analyzers[name]
        payload = {
            "video": self.meta.content_hash, "analyzer": name, "version": a.version,
            "streams": [self.meta.video_stream, self.meta.audio_stream],  # --video-stream / --audio-stream
            "params": a.params_hash(), "models": a.model_ids(),
            "upstream": {d: self.keys.get(d) for d in self.deps[name] if d in self.analyzers},
        }
        placement = self.plan.placements.get(name)
        if placement is not None and placement.substitutes:  # a smaller model stands in: other weights
            payload["substitutes"] = dict(placement.substitutes)
        if a.model_ids() and resolve:  # resolved once per analyzer, here; the rest of the run reads resolved_models
            self.resolved_models[name] = self.model_resolver.resolve(self._load_ids(name),
                                                                     fetch=self._precheck(name) is None)
            payload["model_revisions"] = {ref.id: ref.revision for ref in self._model_refs(name)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]

    def _cached(self, name: str) -> Track | None:
        file = self.tracks_dir / f"{name}.json"
        if not self.resume or not file.is_file():
            return None
        try:
            saved = json.loads(file.read_text(encoding="utf-8"))
            if saved.get("key") != self.keys[name]:
                return None
            track = Track.model_validate(saved["track"])
        except (ValueError, KeyError) as exc:
            logger.warning("ignoring unreadable saved track %s (%s); recomputing", file, exc)
            return None
        if track.status not in ("ok", "skipped"):
            return None
        if track.status == "skipped" and not self._still_skipped(name):
            return None
        return track.model_copy(update={"reused": True, "provides": list(self.analyzers[name].provides)})

    def _blocked_upstream(self, name: str, finished: bool = False) -> str | None:
        """The first upstream analyzer whose track ``name`` needs but that is not ``ok`` (or None).

        With ``finished=False`` (planning the decode) an upstream that has not run yet is assumed
        to succeed unless it cannot run at all; with ``finished=True`` (about to run ``name``) it
        counts as missing.
        """
        if ALL_UPSTREAM in self.analyzers[name].depends_on:
            return None  # "whatever else ran": it copes with any upstream status
        for d in self.deps[name]:
            if d in self.tracks:
                if self.tracks[d].status != "ok":
                    return d
            elif finished or self._precheck(d) is not None or self._blocked_upstream(d):
                return d  # it has not run and will not (no audio, missing package, its own upstream)
        return None

    def _still_skipped(self, name: str) -> bool:
        """Whether a saved ``skipped`` track's cause may still hold, so reusing it is right.

        Its key does not change when the cause goes away: a package installed since
        (``check_available``), a model pulled since. An upstream that failed is handled by the
        caller: a track whose upstream is recomputed in this run is recomputed too.
        """
        if self._precheck(name) is not None:
            return True  # still cannot run on this input or machine (no audio, missing package...)
        # no required model missing: the cause was an upstream or a package, now gone
        return bool(self._missing_models(name))

    def _precheck(self, name: str) -> str | None:
        """Why ``name`` cannot run on this input (or None)."""
        a = self.analyzers[name]
        if a.requires_audio and not self.meta.has_audio:
            return "the video has no audio stream"
        if a.needs_video and not self.meta.has_video:
            return "the file has no video stream"
        reason = type(a).check_available()
        if reason:
            return reason
        for dep in self.deps[name]:
            if ALL_UPSTREAM in a.depends_on:
                continue
            if dep not in self.analyzers:
                return f"it needs {dep}, which is not registered"
        return None

    # --- running ----------------------------------------------------------------------
    def execute(self, keep_cache: bool) -> RunResult:
        """The run (``_plan_and_run``), with ``FRAMEWORK_GIL_SWITCH_MS``'s switch interval from its start: the plan
        and the import warm-up beside it too, not only the analyzers (``executor.gil_switch_interval``); with
        ``FRAMEWORK_PROFILE_START``, every thread sampled for its first seconds (``stack_sampler.run_start``)."""
        sampled_start = run_start(self.run_dir / "profiles" / "run_start")  # (FRAMEWORK_PROFILE_START)
        try:
            with gil_switch_interval():
                return self._plan_and_run(keep_cache)
        finally:
            if sampled_start is not None:
                sampled_start()

    def _plan_and_run(self, keep_cache: bool) -> RunResult:
        started, plan_t0 = time.time(), time.perf_counter()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.inputs_base: dict[str, Any] = dict(video=self.meta, streams={}, audio=None, host=self.host)
        self.decode_t0, self.decode_s = time.perf_counter(), 0.0
        early = self._early_decode()  # on a GPU machine: decoding while the plan imports torch and checks models
        # ... and the slow imports of the models that will load here (transformers' core: 8-11 s on a busy
        # H200 machine), one module per load turn, started now instead of after the plan
        self.warming_early = self._warm_up_early() if early is not None else None
        # ... and the processes of the analyzers that will run in their own, importing torch and the like
        early_ones = {n: a for n, a in self.analyzers.items()
                      if self._may_run_in_own_process(n) and self._precheck(n) is None}
        self.early_children = (own_process.EarlyChildren(
            {n: type(a) for n, a in early_ones.items()},
            low_priority=[n for n, a in early_ones.items() if a.cpu_priority == "low"],
            low_gpu_priority=[n for n, a in early_ones.items() if a.gpu_stream_priority == "low"])
            if early is not None else None)
        try:
            return self._execute(keep_cache, early, started, plan_t0)
        except BaseException:
            if early is not None:
                early.close()
            raise
        finally:
            if self.early_children is not None:
                self.early_children.close()  # those no analyzer took
            own_process.wait_for_exits()  # the analyzers' own processes, left to exit while the run went on

    def _execute(self, keep_cache: bool, early: "decode_process.BackgroundDecode | None", started: float,
                 plan_t0: float) -> RunResult:
        order = self._plan()
        names = order + list(self.plan.unplanned)  # every selected analyzer has a track, planned or not
        self._fetch_planned_models()
        for name in order:  # keys in dependency order so upstream keys are known
            self.keys[name] = self._key(name)
        to_run: list[str] = []
        for name in order:  # dependency order: an upstream's fate is known before its dependents
            rerun = name in self.profile or any(d in to_run for d in self.deps[name])
            cached = None if rerun else self._cached(name)
            if cached is not None:
                self.tracks[name] = cached
                self.reused.append(name)
            else:
                to_run.append(name)
        if self.reused:
            logger.info("reusing %d finished track(s) from %s: %s", len(self.reused), self.tracks_dir,
                        ", ".join(self.reused))
        self.host.notify("analysis_started", video=self.meta, analyzers=names, run_dir=self.run_dir)
        for name, reason in self.plan.unplanned.items():
            self.keys.setdefault(name, self._key(name, resolve=False))
            self._finish(name, self._stamp(self.analyzers[name].track(), status="skipped", reason=reason))

        self.gpu_in_run = any(self.plan.placements[n].is_gpu for n in to_run)  # (reused tracks use none)
        decoding = [n for n in to_run if self._precheck(n) is None and not self._blocked_upstream(n)]
        request = self._decode_request(decoding)
        inputs_base = self.inputs_base
        plan_s = time.perf_counter() - plan_t0
        # in a run that uses a GPU the decode runs in a process of its own while the models load here
        background = self._decode_beside(early, request, decoding)
        if background is not None and background.error is not None:
            raise background.error  # (an early decode that failed while the run planned)
        decoded = None
        if background is None:
            self.decode_t0 = time.perf_counter()
            decoded = None if request is None else self._decode(*request, features=self._stream_features(decoding))
            self.decode_s = time.perf_counter() - self.decode_t0
            self._open_inputs(decoded)
        # the slow imports of the analyzers that load here (not in processes of their own), beside the
        # decode in its own process (in this one it would take turns with them on the interpreter's lock);
        # with the early decode that warm-up is under way since the run started (for these and maybe a few more)
        if background is not None and self.warming_early is None:
            self._warm_up([type(self.analyzers[n]) for n in to_run
                           if not self._in_own_process(n, self.plan.placements[n])])
        run_t0 = time.perf_counter()
        with self._progress() as bars:
            if background is not None and bars:
                decode_task = bars.add_task("decode", total=1.0, completed=1.0 if background.ready.is_set() else 0.0)
                background.progress = lambda f: bars.update(decode_task, completed=f)
            tasks = {n: bars.add_task(n, total=1.0) for n in to_run} if bars else {}

            def finish(name: str, track: Track) -> None:
                self._finish(name, self._with_model_revisions(name, track))
                if bars:
                    bars.update(tasks[name], completed=1.0, description=f"{name} [{track.status}]")

            first = {n: self._first_ready(n, background) for n in to_run}  # (a decode's first pass: frames_first)
            jobs = [Job(n, self.plan.placements[n], tuple(d for d in self.deps[n] if d in to_run),
                        functools.partial(self._start, n, inputs_base, bars, tasks.get(n)), self.demands.get(n),
                        high_priority=self.analyzers[n].gpu_stream_priority == "high",
                        stream_local=self.analyzers[n].cuda_stream_local, audio_only=self._audio_only(n),
                        inputs_ready=first[n], load_first=self.analyzers[n].load_first
                        or (self.analyzers[n].frames_first and first[n] is not None))
                    for n in to_run]
            executor = Executor(self.plan, jobs, finish, memory=self._device_memory(to_run),
                                cpu_workers=self.jobs, stop=self.stop, load_turns=self.load_turns,
                                inputs_ready=background.ready if background is not None else None,
                                audio_ready=background.audio_ready if background is not None else None)
            try:
                executor.run()
            except BaseException:
                if background is not None:
                    background.close()
                    if background.error is not None:  # the decode failed, and the executor stopped for it
                        raise background.error from None
                raise
            if background is not None:
                decoded = background.result()  # (done: the analyses waited for it, unless none ran)
        run_wall = time.perf_counter() - run_t0
        # with the decode beside the plan or the loads, it overlaps them: "analyzers" counts from the
        # executor's start, "decode" from the decode's
        phases = {"plan": plan_s, "decode": self.decode_s, "analyzers": run_wall}
        self._record_measurements(to_run)

        timeline = Timeline(
            framework_version=__version__, video=self.meta,
            tracks={n: self.tracks[n] for n in names if n in self.tracks},
            run={"started_at": started, "duration_s": round(time.time() - started, 3),
                 "decode": dataclasses.asdict(decoded.stats) if decoded else None,
                 "plan": {"order": names, "devices": self.plan.device, "notes": self.plan.notes,
                          **self.plan.as_dict()},
                 "receipt": self._run_receipt(executor, run_wall, time.time() - started, phases),
                 "reused": self.reused, "warnings": self.warnings, "stated_duration": self.stated_duration,
                 "plugin_problems": [str(p) for p in self.host.problems]})
        timeline.write(self.run_dir / "results.json")
        if decoded and THUMB_SPEC in decoded.streams:
            thumbnails_from_stream(timeline, self.run_dir, decoded.streams[THUMB_SPEC])
        outputs = self._write_outputs(timeline)
        self.host.notify("analysis_finished", timeline=timeline, run_dir=self.run_dir)
        return RunResult(self.path, self.run_dir, timeline,
                         failed=[n for n, t in timeline.tracks.items() if t.status == "failed"],
                         skipped=[n for n, t in timeline.tracks.items() if t.status == "skipped"],
                         reused=list(self.reused), outputs=outputs)

    @functools.cached_property
    def manifest(self) -> Any:
        """The models manifest plus the plugins' entries, loaded once, only when some analyzer declares models."""
        if not any(a.model_ids() for a in self.analyzers.values()):
            return None
        from .models import load_manifest

        return load_manifest(host=self.host)

    @functools.cached_property
    def model_resolver(self) -> Any:
        """The run's ``framework.models.ModelResolver``: each model resolved (or fetched) once."""
        from .models import ModelResolver

        return ModelResolver(self.manifest, offline=self.offline, progress=self.show_progress)

    def _vram_mb(self, a: Analyzer) -> float:
        manifest = self.manifest
        return sum(manifest[m].vram_mb() for m in a.model_ids() if m in manifest) if manifest else 0.0

    def _missing_models(self, name: str) -> list[str]:
        """The analyzer's missing models it cannot do without, each with why it is missing.

        ``models_optional``: the analyzer copes without a missing model that is in the manifest
        (fusion falls back); an id the manifest does not know is always an error.
        """
        a = self.analyzers[name]
        _found, missing = self.resolved_models.get(name, ({}, {}))
        return [missing[m] for m in missing if not a.models_optional or m not in self.manifest]

    def _models(self, name: str) -> tuple[dict[str, Path], str | None]:
        """Local paths of the analyzer's models (and what they require), or why it cannot have them."""
        if name not in self.resolved_models:
            return {}, None
        required = self._missing_models(name)
        if required:
            return {}, required[0]
        found, _missing = self.resolved_models[name]
        paths = {m: r.path for m, r in found.items()}
        placement = self.plan.placements.get(name)
        for original, smaller in (placement.substitutes if placement else ()):
            if smaller in paths:  # the analyzer asks for its own ids; a smaller model stands in
                paths[original] = paths[smaller]
        return paths, None

    def _model_refs(self, name: str) -> list[ModelRef]:
        """The analyzer's models and what they require, each with the revision resolved (None: missing)."""
        found, _missing = self.resolved_models[name]
        return [ModelRef(id=m, revision=found[m].revision if m in found else None)
                for m in self.manifest.with_requirements(self._load_ids(name))]

    def _load_ids(self, name: str) -> list[str]:
        """The model ids the analyzer will really load: its own, with the plan's smaller stand-ins."""
        swap = dict(self.plan.placements[name].substitutes) if name in self.plan.placements else {}
        return [swap.get(m, m) for m in self.analyzers[name].model_ids()]

    def _with_model_revisions(self, name: str, track: Track) -> Track:
        """Stamp the revision of every model the analyzer was handed into its track."""
        if name not in self.resolved_models:
            return track
        return track.model_copy(update={"models": self._model_refs(name)})

    def _plan(self) -> list[str]:
        """Plan devices, variants and waves (``framework.scheduler.plan``); log what it decided."""
        from .devices import discover

        self.demands = {n: self._demand(n) for n in self.analyzers}
        self.gpus = discover(self.requested_devices, self.vram_budget,
                             wanted=any(d.wants_gpu for d in self.demands.values()))
        if not self.gpus.fp8_matmul:  # fp8 weights would be widened for every product: asked for only
            self.demands = {n: without_precision(d, "fp8") for n, d in self.demands.items()}
        try:
            self.plan = plan(list(self.demands.values()), self.gpus.budgets, self.gpus.devices,
                             cpu_time_limit_s=cpu_time_limit(self.meta.duration))
        except CycleError as exc:
            raise ConfigError(str(exc)) from None
        if any(p.is_gpu for p in self.plan.placements.values()):  # (the CPUs feed the GPU and the run's processes)
            thread_settings.use_torch_threads(thread_settings.run_torch_threads(gpu=True))
        for name, note in self.plan.notes.items():
            logger.info("%s: %s", name, note)
        for name, why in self.plan.unplanned.items():
            logger.warning("%s will not run: %s", name, why)
        return self.plan.order

    def _demand(self, name: str) -> Demand:
        """The scheduler's view of one analyzer: device, variants from the manifest, measured peaks."""
        a = self.analyzers[name]
        device, note = resolve_device(a.device, self.configured[name].device)
        variants = self._variants(a)
        measured = self._measured(a, variants[0].precision if variants else None)
        if measured and measured.get("peak_vram_mb") and variants:
            best = variants[0]
            variants = [Variant(best.precision, measured_one_item_mb(measured, a, best.vram_mb), best.substitutes),
                        *variants[1:]]
        # on a GPU, a process of its own has a CUDA context of its own, outside any estimate of its models
        context = own_process.CONTEXT_MB if self._wants_own_process(name, gpu=True) else 0.0
        if context and variants:
            variants = [dataclasses.replace(v, vram_mb=v.vram_mb + context) for v in variants]
        vram_mb = variants[0].vram_mb if variants else (context if device == "gpu" else 0.0)
        seconds = {}
        for kind in ("cpu", "cuda"):
            m = self._measured(a, variants[0].precision if variants else None, kind)
            if m and m.get("seconds_per_video_s") and self.meta.duration:
                seconds[kind] = float(m["seconds_per_video_s"]) * self.meta.duration
        from .device_step import BatchedAnalyzer

        # the device step's analyzers, and any other that sizes batches from the plan (fusion's prompts)
        batched = isinstance(a, BatchedAnalyzer) or (getattr(a, "item_vram_mb", 0.0) > 0
                                                     and hasattr(a, "max_batch_size"))
        return Demand(name, device, vram_mb, self.deps[name], note=note,
                      variants=tuple(variants),
                      forced=self.configured[name].device == "cpu" or a.cpu_always_practical,
                      item_vram_mb=float(a.item_vram_mb) if batched else 0.0,
                      max_batch=a.max_batch_size() if batched else 1,
                      stretch_batch=a.stretch_batch_size() if batched and hasattr(a, "stretch_batch_size") else 0,
                      group_items=_prefill_group(a) if batched else 0,
                      item_kv_mb=float(getattr(a, "item_kv_mb", 0.0) or 0.0) if batched else 0.0,
                      cpu_seconds=seconds.get("cpu"), gpu_seconds=seconds.get("cuda"))

    def _variants(self, a: Analyzer) -> list[Variant]:
        from .models.variants import model_variants

        return model_variants(self.manifest, a.model_ids(), a.supported_precisions())

    def _measured(self, a: Analyzer, variant: str | None, kind: str = "cuda") -> dict[str, Any] | None:
        from .measurements import measurement_key

        return self.measurements.get(measurement_key(a.name, a.version, a.model_ids(), variant, kind))

    @functools.cached_property
    def measurements(self) -> Any:
        from .measurements import Measurements

        return Measurements()

    def _fetch_planned_models(self) -> None:
        """Announce the total size of the models the plan will run that are not cached, then fetch them.

        Only planned analyzers that can run on this input count: a laptop is never sent a model
        the plan left out. The fetch itself happens as each analyzer's key is computed.
        """
        if self.manifest is None or self.model_resolver.why_offline is not None:
            return
        from .models.fsguard import human_size
        from .models.resolve import find_model

        wanted = {m for n in self.plan.order if self._precheck(n) is None
                  for m in self.manifest.with_requirements(self._load_ids(n)) if m in self.manifest}
        missing = sorted(m for m in wanted if find_model(self.manifest[m], self.model_resolver.roots) is None)
        if missing:
            total = sum(self.manifest[m].size_bytes or 0 for m in missing)
            logger.warning("fetching %d model(s) the plan will run, about %s in all: %s", len(missing),
                           human_size(total), ", ".join(missing))

    def _device_memory(self, names: list[str]) -> Any:
        if not any(self.plan.placements[n].is_gpu for n in names):
            return None
        from .executor import TorchMemory

        return TorchMemory()

    def _record_measurements(self, names: list[str]) -> None:
        """Store each analyzer's measured peak (when it had its GPU alone) and speed for later plans."""
        from .measurements import measurement_key

        updates: dict[str, dict[str, Any]] = {}
        for name in names:
            track = self.tracks.get(name)
            if track is None or track.status != "ok" or not track.receipt:
                continue
            r, a = track.receipt, self.analyzers[name]
            key = measurement_key(name, a.version, a.model_ids(), r.get("variant"), r.get("device") or "cpu")
            values: dict[str, Any] = {}
            if r.get("measured_alone") and r.get("peak_vram_mb"):
                values["peak_vram_mb"] = float(r["peak_vram_mb"])
                # the batch it was measured at: a batch's working memory is not the model's own
                values["peak_batch"] = max((r.get("step") or {}).get("batch_sizes") or [1])
                group = _prefill_group(a)
                if group:  # (the group its largest batch prefilled in: ``prefill_group_used``, else the plan's)
                    used = getattr(a, "prefill_group_used", None)
                    values["peak_group"] = used(values["peak_batch"]) if callable(used) else group
            if r.get("analyze_s") is not None and self.meta.duration:
                values["seconds_per_video_s"] = float(r["analyze_s"]) / self.meta.duration
            if values and (a.model_ids() or str(r.get("device", "cpu")).startswith("cuda")):
                updates[key] = values  # model-backed analyzers: what later plans estimate from
        try:
            self.measurements.record(updates)
        except Exception as exc:  # noqa: BLE001 - a measurement never fails a run
            logger.warning("could not record measurements in %s: %s", self.measurements.path, exc)

    def _run_receipt(self, executor: Any, wall_s: float, total_s: float, phases: dict[str, float]) -> dict[str, Any]:
        """The run's receipt: speed against the video's length, how busy each GPU was, and where the
        wall time went (``phases_s``: planning with the model checks, the decode pass, the analyzers;
        the outputs are written after it)."""
        video_s = self.meta.duration or 0.0
        busy = {dev: round(min(1.0, s / wall_s), 3) if wall_s > 0 else None for dev, s in executor.busy_s.items()}
        gpu_minutes = (total_s / 60.0) * len(self.gpus.devices) if self.gpus.devices else None
        return {
            "video_s": round(video_s, 3), "wall_s": round(total_s, 3), "analyzers_wall_s": round(wall_s, 3),
            "video_s_per_wall_s": round(video_s / total_s, 3) if total_s > 0 else None,
            "video_min_per_gpu_min": round((video_s / 60.0) / gpu_minutes, 3) if gpu_minutes else None,
            "gpu_busy_fraction": busy,
            "phases_s": {k: round(v, 3) for k, v in phases.items()},
            "peak_vram_mb": executor.peak_vram_mb,  # per GPU used: the most allocated at once
            # [who, asked, began, ended] in seconds from the plan's end (the tracks' times): the models' loads and
            # the import warm-up's modules, one at a time; before the plan's end, negative
            "load_turns": self.load_turns.held(executor.t0),
            # the MPS server the run's GPU processes were clients of (``framework.mps``), null without one
            "mps": gpu_sharing.receipt(),
            "gpus": {d: {"name": self.gpus.names.get(d), "budget_mb": round(self.gpus.budgets.get(d, 0.0), 1),
                         "total_mb": round(self.gpus.total_mb.get(d, 0.0), 1),
                         "capability": _capability(self.gpus, d)} for d in self.gpus.devices},
        }

    def _decode_request(self, names: list[str]) -> tuple[list[FrameSpec], bool] | None:
        """The frame streams and whether the audio the decode pass makes for ``names`` (None: nothing)."""
        specs = {s for n in names for s in self.analyzers[n].frame_specs() if self.meta.has_video}
        if specs:  # the report's thumbnails come from this same pass
            specs.add(THUMB_SPEC)
        want_audio = self.meta.has_audio and any(self.analyzers[n].wants_audio for n in names)
        if not specs and not want_audio:
            return None
        return sorted(specs, key=lambda s: s.key), want_audio

    def _stream_features(self, names: list[str]) -> "media.StreamFeatures":
        """The per-frame features ``names`` ask the decode to compute on its segments (``Analyzer.stream_features``),
        merged per stream; none with ``FRAMEWORK_STREAM_FEATURES=0`` (the analyzers compute them, to compare)."""
        merged: dict[FrameSpec, list[tuple[str, dict[str, Any]]]] = {}
        for name in names if self.meta.has_video and switched_on("FRAMEWORK_STREAM_FEATURES") else []:
            for spec, wanted in self.analyzers[name].stream_features().items():
                have = merged.setdefault(spec, [])
                have.extend(w for w in wanted if w not in have)
        return merged

    def _decode(self, specs: list[FrameSpec], want_audio: bool,
                features: "media.StreamFeatures | None" = None) -> "media.DecodedMedia":
        """The decode pass in this process, with its progress bar."""
        with self._progress() as bars:
            task = bars.add_task("decode", total=1.0) if bars else None
            report = (lambda f: bars.update(task, completed=f)) if bars else None
            decoded = media.decode(self.path, self.meta, specs, want_audio, self.cache_dir, progress=report,
                                   features=features)
        return self._decoded(decoded, logged=True)  # media logs the warnings as it finds them

    def _decoded(self, decoded: "media.DecodedMedia", logged: bool = False) -> "media.DecodedMedia":
        """A decode pass's result: its warnings in the run (logged here when it decoded elsewhere), and
        the length decoded when the file broke off (``_truncation``)."""
        if not logged:
            for warning in decoded.stats.warnings:
                logger.warning("%s", warning)
        self.warnings.extend(decoded.stats.warnings)
        return self._truncation(decoded)

    def _open_inputs(self, decoded: "media.DecodedMedia | None") -> None:
        """What every analyzer's inputs share, once decoded: the video (its length as decoded), streams, audio."""
        self.inputs_base.update(video=self.meta, streams=decoded.streams if decoded else {},
                                audio=decoded.audio if decoded else None)

    def _early_decode(self) -> "decode_process.BackgroundDecode | None":
        """On a machine with a GPU driver, a fresh run (no finished tracks to reuse) whose analyzers
        may use a GPU starts decoding every selected analyzer's streams in a process of its own now,
        while the plan imports torch, finds the GPUs and checks the models (seconds). None otherwise."""
        if not (decode_process.wanted() and gpu_driver_present()):
            return None
        if self.resume and any(self.tracks_dir.glob("*.json")):
            return None  # some tracks may be reused: decode only what the plan says is needed
        if not any(resolve_device(a.device, self.configured[n].device)[0] != "cpu" for n, a in self.analyzers.items()):
            return None
        names = [n for n in self.analyzers if self._precheck(n) is None]
        request = self._decode_request(names)
        return self._background_decode(request, names) if request is not None else None

    def _warm_up_early(self) -> threading.Thread | None:
        """``_warm_up`` for every selected analyzer that may load in this process (not in one of its
        own: ``_in_own_process`` with a GPU in the run), before the plan says which will run."""
        return self._warm_up([type(a) for n, a in self.analyzers.items()
                              if not self._may_run_in_own_process(n) and self._precheck(n) is None])

    def _warm_up(self, classes: list[type]) -> threading.Thread | None:
        """Import the ``warm_imports`` of ``classes`` on a thread, each module in a ``LoadTurns.WARM_UP``
        turn of the run's load turns (the executor's, once it starts: its loads go first)."""
        return warm_up_imports(classes, name="analyzer-imports",
                               turn=lambda module: self.load_turns.turn(LoadTurns.WARM_UP, what=f"import {module}"))

    def _may_run_in_own_process(self, name: str) -> bool:
        """Before the plan: whether ``name`` will run in a process of its own if a GPU is in the run
        (``_in_own_process``, with the device its registry entry resolves to here)."""
        a = self.analyzers[name]
        return self._wants_own_process(name, gpu=resolve_device(a.device, self.configured[name].device)[0] != "cpu")

    def _decode_beside(self, early: "decode_process.BackgroundDecode | None",
                       request: tuple[list[FrameSpec], bool] | None,
                       names: list[str]) -> "decode_process.BackgroundDecode | None":
        """The decode pass that runs beside the analyzers: the early one when it makes what ``request``
        asks, else a new one in a run that uses a GPU; None: decode here, before the analyzers."""
        if early is not None:
            specs, audio = request if request is not None else ([], False)
            if request is not None and set(specs) <= set(early.specs) and (early.want_audio or not audio):
                return early
            early.close()  # it decodes what this run does not need (nothing, say), or less
        if request is None or not (self.gpu_in_run and decode_process.wanted()):
            return None
        return self._background_decode(request, names)

    def _background_decode(self, request: tuple[list[FrameSpec], bool],
                           names: list[str]) -> "decode_process.BackgroundDecode":
        self.decode_t0 = time.perf_counter()

        def decoded(d: media.DecodedMedia) -> None:
            self.decode_s = time.perf_counter() - self.decode_t0
            self._open_inputs(self._decoded(d))

        def audio(track: AudioTrack) -> None:  # complete before the video: the audio-only analyzers start
            self.inputs_base.update(audio=track)

        def first(part: media.DecodedMedia) -> None:  # the frames_first analyzers' streams: they may start
            self.inputs_base.update(streams=dict(part.streams), **({"audio": part.audio} if part.audio else {}))

        return decode_process.BackgroundDecode(self.path, self.meta, *request, self.cache_dir, stop=self.stop,
                                               on_done=decoded, on_failure=self.stop.set, on_audio=audio,
                                               first=self._first_specs(names), on_first=first,
                                               features=self._stream_features(names))

    def _first_specs(self, names: list[str]) -> list[FrameSpec]:
        """With ``FRAMEWORK_FRAMES_FIRST=1``: the streams of ``names``' ``frames_first`` analyzers and of their
        upstream analyzers, for a decode's first pass (``decode_process``); else none."""
        if not asked_for("FRAMEWORK_FRAMES_FIRST"):
            return []
        chosen: set[str] = set()
        todo = [n for n in names if getattr(self.analyzers[n], "frames_first", False)]
        while todo:
            name = todo.pop()
            if name not in chosen:
                chosen.add(name)
                todo.extend(d for d in self.deps.get(name, ()) if d in names)
        specs = {s for n in chosen for s in self.analyzers[n].frame_specs()} if self.meta.has_video else set()
        return sorted(specs, key=lambda s: s.key)

    def _first_ready(self, name: str, background: "decode_process.BackgroundDecode | None") -> threading.Event | None:
        """The event ``name`` waits for instead of every stream: the decode's first pass, when it makes all of
        ``name``'s streams (``frames_first``); else None."""
        specs = set(self.analyzers[name].frame_specs()) if self.meta.has_video else set()
        if background is None or not background.first or not specs or not specs <= set(background.first):
            return None
        return background.first_ready

    def _audio_only(self, name: str) -> bool:
        """Whether ``name`` may start once the audio is decoded: it reads the audio and no frames, and
        does not wait for the video (``Analyzer.wait_for_video``)."""
        a = self.analyzers[name]
        return a.wants_audio and not a.frame_specs() and not a.wait_for_video

    def _truncation(self, decoded: "media.DecodedMedia") -> "media.DecodedMedia":
        """A file that broke off: the run goes on with the length decoded, and says so."""
        if decoded.stats.truncated_at is not None:
            # analyzers and reports see the part that exists, not the length the header promised
            self.warnings.append(f"the header says {self.meta.duration:.2f} s; analyzed "
                                 f"{decoded.stats.truncated_at:.2f} s")
            self.stated_duration = self.meta.duration
            self.meta = self.meta.model_copy(update={"duration": decoded.stats.truncated_at})
        return decoded

    def _start(self, name: str, base: dict[str, Any], bars: Any, task: Any, placement: Placement) -> Any:
        """The executor's start of one attempt: an ``AnalyzerCall``, or a ``skipped`` track."""
        a = self.analyzers[name]
        reason = self._precheck(name)
        if reason is None:  # a GPU model may load while its upstream still runs: judged again in inputs()
            blocked = self._blocked_upstream(name)
            if blocked:
                reason = f"upstream analyzer {blocked} is {self.tracks[blocked].status if blocked in self.tracks else 'missing'}"
        if reason is None:
            models, reason = self._models(name)
        if reason is not None:
            return self._stamp(a.track(), status="skipped", reason=reason, device=placement.device)
        work = self.cache_dir / "work" / name

        def progress(fraction: float) -> None:
            if self.stop.is_set():  # Ctrl-C: leave analyze() here; the track is not saved
                raise RunInterrupted()
            if bars:
                bars.update(task, completed=fraction)

        def inputs() -> AnalyzerInputs | str:  # built when analyze starts: upstream tracks exist then
            blocked = self._upstream_problem(name)
            if blocked:
                return blocked
            upstream = {d: self.tracks[d] for d in self.deps[name] if d in self.tracks}
            return AnalyzerInputs(upstream=upstream, work_dir=work, progress=progress, **base)

        a.placement = placement
        call = (functools.partial(ProcessCall, early=self.early_children) if self._in_own_process(name, placement)
                else AnalyzerCall)
        return call(a, inputs, placement.device, self.host, models,
                    save_traceback=functools.partial(self._save_traceback, name),
                    profile_to=self.run_dir / "profiles" / name if name in self.profile else None)

    def _in_own_process(self, name: str, placement: Placement) -> bool:
        """Whether this analyzer runs in a child process (``framework.own_process``): it asks to, a
        GPU analyzer is in the run (it or another), and its class imports by name."""
        return self.gpu_in_run and self._wants_own_process(name, gpu=placement.is_gpu)

    def _wants_own_process(self, name: str, gpu: bool) -> bool:
        """``_in_own_process`` but for the run's GPU: asked for (class or registry.yaml), allowed
        (``own_process.wanted``), importable by name (a profiled one samples itself in its child)."""
        a = self.analyzers[name]
        return bool(a.own_process and own_process.wanted(gpu=gpu) and own_process.importable(type(a)) is not None)

    def _upstream_problem(self, name: str) -> str | None:
        blocked = self._blocked_upstream(name, finished=True)
        if blocked is None:
            return None
        status = self.tracks[blocked].status if blocked in self.tracks else "missing"
        return f"upstream analyzer {blocked} is {status}"

    def _save_traceback(self, name: str, text: str) -> str:
        """Store a failed track's traceback beside it; the path relative to the run folder."""
        file = self.tracks_dir / f"{name}.traceback.txt"
        atomic_write_text(file, text)
        return file.relative_to(self.run_dir).as_posix()

    def saved_tracks(self) -> list[str]:
        """Analyzers whose finished track is saved in ``tracks/`` (reused or computed this run)."""
        with self.lock:
            return [n for n, t in self.tracks.items() if t.status in ("ok", "skipped")]

    def _stamp(self, track: Track, **update: Any) -> Track:
        return track.model_copy(update=update)

    def _finish(self, name: str, track: Track) -> None:
        with self.lock:
            self.tracks[name] = track
            # serialised by pydantic-core straight to JSON: no Python copy of a long track's series
            payload = f'{{"key": {json.dumps(self.keys[name])}, "track": {track.model_dump_json()}}}'
            atomic_write_text(self.tracks_dir / f"{name}.json", payload)
            if track.traceback_file is None:  # an old failure's traceback no longer applies
                (self.tracks_dir / f"{name}.traceback.txt").unlink(missing_ok=True)
        if track.status == "failed":
            logger.error("analyzer %s failed: %s", name, track.reason)
            self.host.notify("analyzer_failed", name=name, error=track.reason or "", track=track)
        else:
            if track.status == "skipped":
                logger.info("analyzer %s skipped: %s", name, track.reason)
            self.host.notify("analyzer_finished", track=track)

    def _write_outputs(self, timeline: Timeline) -> list[Path]:
        return write_outputs(timeline, self.run_dir, host=self.host, video_path=self.path, exporters=self.exports)

    @contextmanager
    def _progress(self) -> Iterator[Any]:
        if not self.show_progress:
            yield None
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from .progress import console

        with Progress(TextColumn("{task.description:<28}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=console, transient=False) as bars:
            yield bars


def cpu_time_limit(duration: float | None) -> float:
    """How long a GPU analyzer may take on the CPU and still be planned there without being asked:
    five minutes, or twice the video's length for longer videos."""
    return max(300.0, 2.0 * (duration or 0.0))


@dataclass
class VideoOutcome:
    """One video of a multi-video run: its result, or the input error that stopped it."""

    video: Path
    result: RunResult | None = None
    error: str | None = None
    exit_code: int = 0
    already_done: bool = False  # not analyzed again: ``finished`` found its run complete and unchanged


def run_many(videos: list[Path], *, registry_path: str | os.PathLike | None = None,
             out_dir: str | os.PathLike | None = None, strict: bool = False, finished: Any = None,
             **kwargs: Any) -> tuple[list[VideoOutcome], int]:
    """Analyze several videos with one registry and one plugin host; a bad file does not stop the rest.

    Each video gets its own run folder (``run_dirs``: two files named ``clip.mp4`` in different
    folders go to ``clip`` and ``clip-2``). Returns the outcomes and the process exit code (see
    ``framework.errors``): the highest of the videos' codes, so an unreadable file among readable
    ones gives 3 while the others are still analyzed.

    ``finished(video, run_dir)``: the saved ``RunResult`` of a video whose run is complete and
    unchanged (``framework.library.batch.FinishedRuns.check``), which is then not analyzed again.

    :raises RunInterrupted: Ctrl-C; it names the videos already finished and the tracks kept.
    """
    from .errors import PluginFailure

    registry = load_registry(find_registry(registry_path))
    host = build_plugin_manager(registry.plugin_dirs, load_entrypoints=kwargs.pop("load_entrypoints", True))
    if strict and host.problems:
        raise PluginFailure("--strict: " + "; ".join(str(p) for p in host.problems))
    # report registry errors before touching any video
    registry.configure(host.analyzers, names=needed_analyzers(host.analyzers, kwargs.get("only"), kwargs.get("skip")))
    videos = [Path(v) for v in videos]
    targets = run_dirs(videos, out_dir)
    for video, target in zip(videos, targets):
        if sum(v.stem.casefold() == video.stem.casefold() for v in videos) > 1:
            logger.info("%s -> %s (another input has the same name)", video, target)
    mps = kwargs.pop("mps", None)
    with gpu_sharing.for_run(registry.config.mps if mps is None else mps, kwargs.get("devices"),
                             registry.config.device):
        return _run_videos(videos, targets, registry, host, strict, finished, kwargs)


def _run_videos(videos: list[Path], targets: list[Path], registry: Registry, host: Any, strict: bool,
                finished: Any, kwargs: dict[str, Any]) -> tuple[list[VideoOutcome], int]:
    """``run_many``'s loop over the videos (under the run's MPS server when it has one)."""
    from .errors import EXIT_ANALYZER_FAILED, EXIT_OK, EXIT_PLUGIN

    outcomes: list[VideoOutcome] = []
    for video, target in zip(videos, targets):
        previous = finished(video, target) if finished is not None else None
        if previous is not None:
            outcomes.append(VideoOutcome(video, result=previous, already_done=True))
            continue
        try:
            result = analyze(video, registry=registry, host=host, out_dir=target, **kwargs)
        except InputError as exc:
            # in a batch, said as it happens (the command lists every error again at the end); alone, once
            logger.log(logging.ERROR if len(videos) > 1 else logging.DEBUG, "%s", exc)
            outcomes.append(VideoOutcome(video, error=str(exc), exit_code=exc.exit_code))
            continue
        except KeyboardInterrupt as exc:
            done = [o.video for o in outcomes if o.result is not None]
            if isinstance(exc, RunInterrupted):
                exc.finished_videos = done
                raise
            raise RunInterrupted(finished_videos=done, video=video) from None
        code = EXIT_ANALYZER_FAILED if result.failed else EXIT_OK
        if strict and any(not (result.timeline.tracks[n].plugin or "").startswith("builtin:")
                          for n in result.failed):
            code = EXIT_PLUGIN
        outcomes.append(VideoOutcome(video, result=result, exit_code=code))
    return outcomes, max((o.exit_code for o in outcomes), default=EXIT_OK)
