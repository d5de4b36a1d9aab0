"""Runs a ``Plan``: models loaded just in time under the VRAM budget, CPU work beside, OOM fallbacks.

The executor follows the plan and nothing else:

- **GPU lanes.** Each GPU's analyzers are admitted in the plan's order (wave by wave). An analyzer
  is admitted when the estimates of the models loaded on that GPU plus its own stay within the
  budget; admitting it starts loading its models at once, so the next model is read from disk
  while the current wave computes, where memory allows. It analyzes once its dependencies have
  finished and is unloaded as soon as it is done, which admits the next ones.
- **CPU analyzers** run in a thread pool (``jobs`` at a time) as soon as their dependencies have
  finished, beside the GPU lanes.
- **Out of memory** (a load or analyze that raises a device OOM): the analyzer is unloaded and
  retried **alone** on its GPU (the device step then halves its batches), then in the next
  **smaller variant** the manifest lists, then on the **CPU** when it has a CPU path. Each step is
  recorded in the track's receipt (``receipt["fallbacks"]``).
- **Memory.** The allocator of each GPU is capped to its budget (``DeviceMemory.cap``), so an
  underestimate raises OOM instead of taking memory from other processes. Under a cap the
  allocator uses expandable segments (unless ``PYTORCH_ALLOC_CONF`` / ``PYTORCH_CUDA_ALLOC_CONF``
  says otherwise): a model working close to its budget grows its segments in place instead of
  freeing the cache and retrying, so less of the budget is lost to fragmentation (on an H200 at a
  24 GB cap: 23.3 GB reserved at the peak instead of the whole 24.6; the time did not change).
  The peak each analyzer allocated is measured (``measured_alone`` says whether it had the GPU to
  itself, the only case in which the figure is its own) and handed back in the receipt; the
  runner stores it for later plans (``framework.measurements``).
- **A stream per analyzer.** Each attempt of a GPU analyzer gets its own CUDA stream, current
  in its load, analyze and unload (``framework.work_streams``): the analyzers sharing a GPU queue
  their kernels apart, and a wait for a result waits for that analyzer's own work, not for
  everything the others have queued on the device's one default stream. An analyzer whose work
  is many small waiting steps (``Analyzer.gpu_stream_priority = "high"``) gets a stream of higher
  priority: its kernels start ahead of the others' queued ones as the GPU frees up.
- **A GPU to itself.** ``Placement.gpu_to_itself`` lets an analyzer do work that must not overlap
  other analyzers' device-wide CUDA calls in this process (capturing a CUDA graph: another
  thread's ``synchronize`` or ``empty_cache`` breaks the capture and fails that thread's analyzer).
  It says yes when every other analyzer busy on its GPU is analyzing on a stream of its own and
  declares its CUDA calls stream-local (``Analyzer.cuda_stream_local``); none loading, unloading
  or freeing memory there; models loaded ahead and idle, waiting for their upstream, make no
  CUDA calls. Meanwhile it holds admissions there, the start of those idle ones, and every
  unload (which frees the CUDA cache) until the block ends. ``FRAMEWORK_CAPTURE_BESIDE=0`` asks
  for the GPU to itself in the strict sense: no other analyzer loading or analyzing there.
- **Ctrl-C** sets ``stop``: nothing new starts, running analyzers stop at their next progress
  report, loaded models are unloaded, then ``RunInterrupted`` is raised.

The executor knows analyzers only through ``Job``s: the runner builds them, so tests drive the
executor with stand-ins on simulated devices (``framework.testing.devices.SimulatedGPUs``).
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from . import thread_settings
from .callinfo import CallInfo
from .device_step import free_device_memory, is_out_of_memory
from .devices import attention_without_cudnn
from .scheduler import Demand, Placement, Plan, batch_cap, fitted
from .warm_imports import import_before_threads
from .work_streams import Stream, number_setting, switched_on, torch_stream, using
from .work_streams import wanted as streams_wanted

logger = logging.getLogger(__name__)


class DeviceMemory(Protocol):
    """What the executor needs of the GPUs: capping, and measuring what was allocated."""

    def cap(self, device: str, budget_mb: float) -> None:
        """Make allocations beyond ``budget_mb`` on ``device`` fail with an out-of-memory error."""

    def reset_peak(self, device: str) -> None: ...

    def allocated_mb(self, device: str) -> float: ...

    def peak_mb(self, device: str) -> float: ...

    def new_stream(self, device: str, high_priority: bool = False) -> Stream:
        """A work stream of its own on ``device`` for one analyzer (``framework.work_streams``);
        ``high_priority``: its kernels start before other streams' waiting ones."""


class TorchMemory:
    """``DeviceMemory`` for CUDA through torch (imported only when a GPU is used)."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        attention_without_cudnn(torch)

    def cap(self, device: str, budget_mb: float) -> None:
        dev = self.torch.device(device)
        total = self.torch.cuda.get_device_properties(dev).total_memory / 2**20
        expandable_segments(self.torch)
        self.torch.cuda.set_per_process_memory_fraction(min(1.0, budget_mb / total), dev)

    def reset_peak(self, device: str) -> None:
        self.torch.cuda.reset_peak_memory_stats(device)

    def allocated_mb(self, device: str) -> float:
        return self.torch.cuda.memory_allocated(device) / 2**20

    def peak_mb(self, device: str) -> float:
        return self.torch.cuda.max_memory_allocated(device) / 2**20

    def new_stream(self, device: str, high_priority: bool = False) -> Stream:
        return torch_stream(self.torch, device, high_priority)


def expandable_segments(torch: Any) -> bool:
    """Turn on the CUDA allocator's expandable segments unless the user's allocator settings name them.

    A capped allocator (``set_per_process_memory_fraction``) that reaches its cap frees its cached
    blocks and retries; with expandable segments it maps more pages into the same segment instead,
    so fragmentation takes less of the budget. vLLM and torchtune make the same default. Returns
    whether it was turned on here.
    """
    import os

    conf = os.environ.get("PYTORCH_ALLOC_CONF", "") + os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")
    if "expandable_segments" in conf or "cudaMallocAsync" in conf:
        return False  # the user chose
    setter = getattr(torch._C, "_accelerator_setAllocatorSettings", None)  # torch >= 2.9
    if setter is None:
        setter = getattr(torch._C, "_cuda_cudaCachingAllocator_set_allocator_settings", None)
    if setter is None:
        return False
    try:
        setter("expandable_segments:True")
    except RuntimeError as exc:  # an allocator that has no such setting
        logger.debug("expandable segments not turned on: %s", exc)
        return False
    return True


@contextlib.contextmanager
def gil_switch_interval(env: Any = None) -> Iterator[float | None]:
    """``FRAMEWORK_GIL_SWITCH_MS``: the interpreter's thread switch interval during a run, in ms
    (unset: Python's own, 5 ms). Experimental, for measuring; yields the interval set, or None. The runner
    sets it from the run's start (its plan and import warm-up too), the executor for its own run.

    An import gives the interpreter up at every file it looks for or reads, and waits to get it back: beside
    one Python-bound thread, ``import transformers.modeling_utils`` (3129 modules) took 30-33 s instead of
    2.2-2.4 s at 5 ms, 8.9 s at 1 ms and 5.0-5.3 s at 0.2 ms on a 2-core machine (``bench/import_convoy.py``);
    on an H200 machine it held the run's first load turn 7.9 s.

    Analyzers run as threads of one process. A thread that feeds a GPU from a Python loop (a
    decoding step at a time) gives up the interpreter at every blocking call and then waits up to
    the switch interval for each Python-bound thread to hand it back. On a 2-core machine such a
    loop beside three Python-bound threads took 2.79 s at 5 ms, 1.30 s at 1 ms and 1.25 s at 0.2 ms,
    against 0.05-0.20 s alone (``bench/results/gil_switch_probe.md``). Not yet measured on a whole run.
    """
    import sys

    ms = number_setting("FRAMEWORK_GIL_SWITCH_MS", env, hint="give milliseconds above 0, e.g. 1")
    if ms is None:
        yield None
        return
    seconds = ms / 1000.0
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield seconds
    finally:
        sys.setswitchinterval(previous)


class Call(Protocol):
    """One attempt at running one analyzer, phase by phase (``framework.callinfo.AnalyzerCall``)."""

    in_child: bool  # its phases run in a process of its own (``framework.own_process.ProcessCall``)
    peak_vram_mb: float | None  # then, on a GPU: that process's allocator peak while analyzing

    def load(self) -> CallInfo[Any]: ...

    def analyze(self) -> CallInfo[Any]: ...

    def unload(self) -> CallInfo[Any]: ...

    def track(self, receipt: dict[str, Any]) -> Any: ...


@dataclass
class Job:
    """What the executor runs for one analyzer.

    :ivar start: called with a ``Placement`` when the analyzer is about to be loaded there; returns
        the ``Call`` for that attempt, or a finished track when it must not run (skipped: missing
        model, upstream failed...).
    :ivar demand: its plan input (variants, CPU path) for the fallback chain.
    """

    name: str
    placement: Placement
    deps: tuple[str, ...]
    start: Callable[[Placement], Any]
    demand: Demand | None = None
    high_priority: bool = False  # on a GPU: a CUDA stream of higher priority (``Analyzer.gpu_stream_priority``)
    stream_local: bool = False  # analyzing, it waits only for its own stream (``Analyzer.cuda_stream_local``)
    audio_only: bool = False  # it reads the audio and no frames: it may start once the audio is (``audio_ready``)
    # set when its own inputs exist, before every stream does (a decode's first pass: ``frames_first``)
    inputs_ready: threading.Event | None = None
    load_first: bool = False  # its load takes the first turn there is, before loads that could analyze now


class LoadTurns:
    """One load at a time; when a turn ends, the waiting load that comes first by ``key(name)`` goes
    next (the executor's key, ``Executor._load_turn_key``). Before, every GPU analyzer admitted at
    the start queued on a plain lock: on an H200 Whisper, ready after 4 s, loaded behind models that
    waited for the cut list and started analyzing at 38 s.

    The run's import warm-up (``framework.warm_imports``) imports each module in a turn named
    ``WARM_UP``, which comes after every waiting load: a load waits for the module being imported,
    not for the whole warm-up (the VLM's load waited 10.9 s for it on an H200)."""

    WARM_UP = "<import warm-up>"

    def __init__(self, key: Callable[[str], Any] | None = None):
        self.key = key  # (set by the executor that takes these turns; before it, only the warm-up asks)
        self.cond = threading.Condition()
        self.holder: str | None = None
        self.waiting: set[str] = set()
        #: every turn taken, in order: (who: an analyzer, or ``import MODULE`` for the warm-up's, asked, began,
        #: ended), the times ``time.perf_counter()``'s (``held``: as seconds from a moment of the caller's)
        self.log: list[tuple[str, float, float, float]] = []

    def held(self, origin: float) -> list[list[Any]]:
        """The turns taken so far as ``[who, asked, began, ended]``, in seconds from ``origin`` (a
        ``time.perf_counter()`` value): which load or import held the GPU's loading when, and who waited."""
        with self.cond:
            return [[who, *(round(t - origin, 3) for t in times)] for who, *times in self.log]

    def _order(self, name: str) -> tuple[Any, ...]:
        return (1,) if name == self.WARM_UP else (0, self.key(name) if self.key is not None else 0)

    @contextlib.contextmanager
    def turn(self, name: str, what: str | None = None) -> Iterator[None]:
        """Hold the one turn while the block runs; ``what`` names it in ``log`` (default ``name``)."""
        asked = time.perf_counter()
        with self.cond:
            self.waiting.add(name)
            try:
                while self.holder is not None or min(self.waiting, key=self._order) != name:
                    self.cond.wait(0.1)  # readiness changes without a notify: look again now and then
            finally:
                self.waiting.discard(name)
            self.holder = name
        began = time.perf_counter()
        try:
            yield
        finally:
            with self.cond:
                self.holder = None
                self.log.append((what or name, asked, began, time.perf_counter()))
                self.cond.notify_all()


@dataclass
class _State:
    job: Job
    placement: Placement
    call: Any = None
    reserved_mb: float = 0.0
    loaded: bool = False
    fallbacks: list[str] = field(default_factory=list)
    receipt: dict[str, Any] = field(default_factory=dict)
    alone: bool = True
    baseline_mb: float = 0.0
    started: float = 0.0  # perf_counter when its first attempt began
    stream: Stream | None = None  # this attempt's work stream on its GPU (None: the default stream)


def _in_child(st: _State | None) -> bool:
    """Whether this attempt's phases run in a process of its own (``framework.own_process``)."""
    return st is not None and st.call is not None and st.call.in_child


class Executor:
    """Runs a plan's jobs; ``finish(name, track)`` receives each finished track, in completion order.

    :param budgets: per GPU, the MB its loaded estimates may sum to (None: one model at a time).
    :param memory: the GPUs' memory (``TorchMemory`` on a real machine; simulated in tests).
    :param jobs: CPU analyzers run at a time.
    :param inputs_ready: set when the analyzers' inputs exist (the decode pass, run beside: models
        are admitted and loaded before, analyses and CPU analyzers start after; None: they exist).
    :param audio_ready: set when the audio is complete, possibly before ``inputs_ready``: the jobs
        that read only the audio (``Job.audio_only``) wait for this one instead.
    :param load_turns: the turns to load in, when the run made them (its import warm-up,
        ``framework.warm_imports``, takes its ``WARM_UP`` turns in them); else new ones.
    """

    def __init__(self, plan: Plan, jobs: list[Job], finish: Callable[[str, Any], None], *,
                 memory: DeviceMemory | None = None, cpu_workers: int = 2,
                 stop: threading.Event | None = None, cap_allocator: bool = True,
                 inputs_ready: threading.Event | None = None,
                 audio_ready: threading.Event | None = None, load_turns: LoadTurns | None = None):
        self.plan = plan
        self.jobs = {j.name: j for j in jobs}
        self.finish = finish
        self.inputs_ready = inputs_ready
        self.audio_ready = audio_ready
        self.memory = memory
        self.cpu_workers = max(1, cpu_workers)
        self.stop = stop if stop is not None else threading.Event()
        self.cap_allocator = cap_allocator
        self.lanes = {dev: [n for n in names if n in self.jobs] for dev, names in plan.lanes().items()}
        self.budgets = dict(plan.budgets)
        self.reserved: dict[str, float] = {dev: 0.0 for dev in self.lanes}
        self.active: dict[str, set[str]] = {dev: set() for dev in self.lanes}  # admitted, not yet released
        self.exclusive: dict[str, str | None] = {dev: None for dev in self.lanes}  # device -> the one running alone
        self.holding: dict[str, str | None] = {dev: None for dev in self.lanes}  # device -> inside _to_itself
        self.idle: set[str] = set()  # GPU analyzers loaded and waiting for their upstream (no CUDA calls)
        self.analyzing: set[str] = set()  # GPU analyzers inside their analyze phase
        self.preparing: set[str] = set()  # GPU analyzers preparing their first batches while loading (prepare_ahead)
        self.prepare_ahead = switched_on("FRAMEWORK_PREPARE_AHEAD")  # (0: each analysis prepares its own batches)
        self.changing: dict[str, int] = {dev: 0 for dev in self.lanes}  # device -> unloads / frees under way
        self.t0 = time.perf_counter()  # reset when ``run`` starts: the receipt's start times count from it
        self.states: dict[str, _State] = {}
        self.done: set[str] = set()
        self.intervals: dict[str, list[tuple[float, float]]] = {dev: [] for dev in self.lanes}
        self.lock = threading.Lock()
        self.quiet = threading.Condition(self.lock)  # notified when a GPU stops being held (_to_itself)
        self._peaks: dict[str, float] = {}  # per GPU an analyzer used: the allocator's peak, before each reset
        self._child_peaks: dict[str, float] = {}  # per GPU: the peaks of analyzers in processes of their own, summed
        self._peaks_lock = threading.Lock()
        # one load at a time: loads overlap other analyzers' work, not each other (libraries that
        # import lazily, as transformers does, are not safe to import from two threads at once); an
        # analyzer with nothing to load, or loading in its own process, does not wait (``load_takes_turns``).
        # Which load goes next: ``_load_turn_key``.
        self._rank = {n: i for i, n in enumerate(n for lane in self.lanes.values() for n in lane)}
        self._rank.update({n: len(self._rank) + i for i, n in enumerate(plan.order) if n not in self._rank})
        self.load_turns = load_turns or LoadTurns()  # (the run's: a warm-up may have taken turns before)
        self.load_turns.key = self._load_turn_key

    # --- public -----------------------------------------------------------------------
    def run(self) -> None:
        """Run every job (see the module docstring); raises ``RunInterrupted`` on Ctrl-C."""
        with gil_switch_interval():
            self._run()

    def _run(self) -> None:
        from .errors import RunInterrupted

        if self.memory is not None and self.cap_allocator:
            for dev, budget in self.budgets.items():
                if budget is not None and dev in self.lanes:
                    self.memory.cap(dev, budget)
        if self.memory is not None:
            for dev in [d for d, names in self.lanes.items() if names]:  # a process that analyzed before
                self.memory.reset_peak(dev)  # (a Ray worker): this run's peak only
        import_before_threads()  # (done already in a run, whose threads start before; here for an executor on its own)
        self.t0 = time.perf_counter()
        pending = set(self.jobs)
        cpu_pool = cf.ThreadPoolExecutor(self.cpu_workers, thread_name_prefix="cpu-analyzer")
        gpu_pool = cf.ThreadPoolExecutor(max(1, sum(len(v) for v in self.lanes.values())) + 1,
                                         thread_name_prefix="gpu-analyzer")
        futures: dict[cf.Future, tuple[str, str]] = {}  # future -> (name, phase)
        loading: set[str] = set()
        loaded_waiting: set[str] = set()
        try:
            while pending or futures or loaded_waiting:
                if self.stop.is_set():
                    raise KeyboardInterrupt
                # CPU jobs whose dependencies are done, the longest first; before the inputs exist (the decode
                # pass runs beside) they load, then wait for them (``_run_cpu``)
                for name in self._longest_first([n for n in pending if self._placement(n).device == "cpu"
                                                 and self._deps_done(n)]):
                    pending.discard(name)
                    st = self._state(name)
                    futures[cpu_pool.submit(self._run_cpu, st)] = (name, "cpu")
                # GPU admissions, lane by lane in plan order
                for name in self._make_room(pending, loaded_waiting):
                    loaded_waiting.discard(name)
                    pending.add(name)
                for dev in self.lanes:
                    for name in self._admit(dev, pending):
                        pending.discard(name)
                        loading.add(name)
                        futures[gpu_pool.submit(self._load, self.states[name])] = (name, "load")
                for name in [n for n in loading if self._ready(n)]:  # (a load under way, or waiting its turn)
                    self._prepare_ahead(self.states[name])
                for name in [n for n in list(loaded_waiting) if self._ready(n)]:
                    with self.lock:
                        if self.holding.get(self.states[name].placement.device):
                            continue  # another analyzer has the GPU to itself (a capture): start after
                        self.idle.discard(name)
                    loaded_waiting.discard(name)
                    futures[gpu_pool.submit(self._analyze, self.states[name])] = (name, "analyze")
                if not futures:
                    if self.inputs_ready is not None and not self.inputs_ready.is_set():
                        self.inputs_ready.wait(0.25)  # everything waits for the decode pass
                        continue
                    raise RuntimeError(f"cannot schedule {sorted(pending | loaded_waiting)}: unmet dependencies")
                finished, _ = cf.wait(futures, timeout=0.25, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    name, phase = futures.pop(fut)
                    outcome = fut.result()
                    if phase == "cpu":
                        self.done.add(name)
                    elif phase == "load":
                        loading.discard(name)
                        if outcome == "loaded":
                            loaded_waiting.add(name)
                            with self.lock:
                                self.idle.add(name)
                        elif outcome == "retry":
                            pending.add(name)
                        else:
                            self.done.add(name)
                    elif phase == "analyze":
                        if outcome == "retry":
                            pending.add(name)
                        else:
                            self.done.add(name)
        except BaseException as exc:
            self.stop.set()
            cpu_pool.shutdown(wait=False, cancel_futures=True)
            gpu_pool.shutdown(wait=False, cancel_futures=True)
            busy = sorted({n for f, (n, _p) in futures.items() if f.running()})
            if busy:
                logger.warning("stopping: waiting for %s to stop (Ctrl-C again to quit at once)", ", ".join(busy))
            try:
                while not all(f.done() for f in futures):
                    cf.wait(futures, timeout=0.25)
            except KeyboardInterrupt:
                raise RunInterrupted(abandoned=sorted({n for f, (n, _p) in futures.items() if not f.done()})) from None
            for name in loaded_waiting:  # loaded, never ran: give their memory back
                self._release(self.states[name], unload=True)
            if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunInterrupted):
                raise RunInterrupted() from None
            raise
        cpu_pool.shutdown(wait=True)
        gpu_pool.shutdown(wait=True)

    # --- admission ----------------------------------------------------------------------
    def _since_start(self) -> float:
        """Seconds since ``run`` began (when a phase starts: the receipt's ``load_at_s``, ``analyze_at_s``)."""
        return round(time.perf_counter() - self.t0, 3)

    def _placement(self, name: str) -> Placement:
        st = self.states.get(name)
        return st.placement if st is not None else self.jobs[name].placement

    def _state(self, name: str) -> _State:
        if name not in self.states:
            self.states[name] = _State(self.jobs[name], self.jobs[name].placement)
        return self.states[name]

    def _ready(self, name: str) -> bool:
        """Whether ``name`` may start analyzing: its inputs exist and its upstream analyzers are done."""
        inputs = self._inputs_event(name)
        if inputs is not None and not inputs.is_set():
            return False
        return self._deps_done(name)

    def _inputs_event(self, name: str) -> threading.Event | None:
        """What ``name`` waits for before it analyzes: the audio alone, its own streams, or every stream."""
        if self.jobs[name].audio_only and self.audio_ready is not None:
            return self.audio_ready
        if self.jobs[name].inputs_ready is not None:
            return self.jobs[name].inputs_ready
        return self.inputs_ready

    def _load_turn_key(self, name: str) -> tuple[Any, ...]:
        """The order of waiting loads: first one that says so (``Job.load_first``: a ``frames_first`` analyzer
        whose streams are decoded first); then one that can analyze as soon as it is loaded (``_ready``);
        then one whose upstream runs on CPUs only over one that waits for another GPU analyzer (fusion
        waits for them all); then the longest estimated run (``plan.seconds``, from measurements),
        else the biggest model: while the video decodes nothing is ready, and a 16 GB VLM, which loads
        for seconds and analyzes longest, went after every small model in lane order (on an H200 it
        started analyzing 10 s after the decode); then lane order.

        A ready load goes before a longer one still waiting for its upstream on purpose: measured three times
        on an H200 (nineteenth, twenty-first and twenty-fourth sessions, ``bench/results/end_to_end_h200_ab24.md``),
        the 7B VLM loaded before the two small audio models was ready before the cut list, but the audio
        analyses then ran in this process beside its prefill and the run took longer (medians 34.2 s against
        32.2 s)."""
        job = self.jobs[name]
        waits_for_gpu = any(d in self.jobs and d not in self.done and self.jobs[d].placement.is_gpu for d in job.deps)
        return (not job.load_first, not self._ready(name), waits_for_gpu, -(self.plan.seconds.get(name) or 0.0),
                -job.placement.vram_mb, self._rank.get(name, len(self._rank)))

    def _deps_done(self, name: str) -> bool:
        return all(d in self.done or d not in self.jobs for d in self.jobs[name].deps)

    def _longest_first(self, names: list[str]) -> list[str]:
        """``names`` by the plan's estimated run time, longest first (unknown last, in plan order)."""
        order = {n: i for i, n in enumerate(self.plan.order)}
        return sorted(names, key=lambda n: (-(self.plan.seconds.get(n) or 0.0), order.get(n, len(order)), n))

    def _inputs_there(self, name: str) -> bool:
        """Wait until ``name``'s inputs exist (``_inputs_event``); False when the run stops first."""
        inputs = self._inputs_event(name)
        while inputs is not None and not inputs.wait(0.25):
            if self.stop.is_set():
                return False
        return not self.stop.is_set()

    def _admit(self, dev: str, pending: set[str]) -> list[str]:
        """The lane's next analyzers that fit beside what is loaded (strictly in plan order).

        While a retry that must run alone waits on this GPU, nothing else is admitted there: it
        goes first, once the GPU is empty."""
        admitted = []
        with self.lock:
            if self.exclusive.get(dev) or self.holding.get(dev):
                return admitted
            lane = [n for n in self.lanes.get(dev, []) if n in pending and self._state(n).placement.device == dev]
            alone = [n for n in lane if self.states[n].placement.exclusive]
            if alone:
                lane = alone[:1]
            for name in lane:
                st = self.states[name]
                need = st.placement.vram_mb
                budget = self.budgets.get(dev)
                if st.placement.exclusive:
                    if self.active[dev]:
                        break  # wait until the GPU is empty
                    self.exclusive[dev] = name
                elif budget is None:
                    if self.active[dev]:
                        break
                elif self.reserved[dev] + need > budget and self.active[dev]:
                    break  # in order: nothing later jumps ahead of it
                self.reserved[dev] += need
                for other in self.active[dev]:
                    self.states[other].alone = False
                st.alone = not self.active[dev]
                self.active[dev].add(name)
                st.reserved_mb = need
                admitted.append(name)
                if st.placement.exclusive:
                    break
        return admitted

    @contextlib.contextmanager
    def _to_itself(self, dev: str, name: str) -> Iterator[bool]:
        """``Placement.gpu_to_itself``: yields whether no other analyzer on ``dev`` may make a
        device-wide CUDA call now: each one busy there is analyzing on its own stream and declares
        its calls stream-local (strictly, with ``FRAMEWORK_CAPTURE_BESIDE=0``: none is busy), and
        nothing is being unloaded or freed. When so, nothing is admitted there, no idle one starts
        and no unload begins until the block ends."""
        with self.lock:
            busy = {n for n in self.active.get(dev, set()) - {name}
                    if (n not in self.idle or n in self.preparing) and not _in_child(self.states.get(n))}
            quiet = not busy or (switched_on("FRAMEWORK_CAPTURE_BESIDE") and all(map(self._stream_local_now, busy)))
            held = self.holding.get(dev) is None and not self.changing.get(dev) and quiet
            if held:
                self.holding[dev] = name
        try:
            yield held
        finally:
            if held:
                with self.quiet:
                    self.holding[dev] = None
                    self.quiet.notify_all()

    def _stream_local_now(self, name: str) -> bool:
        """Whether ``name`` is analyzing on a stream of its own and makes no device-wide CUDA calls
        (called holding ``lock``)."""
        st = self.states.get(name)
        return (st is not None and (name in self.analyzing or name in self.preparing) and st.job.stream_local
                and st.stream is not None)

    @contextlib.contextmanager
    def _changing(self, dev: str, name: str) -> Iterator[None]:
        """An unload or a free of the CUDA cache on ``dev``: it waits while another analyzer holds
        the GPU (a capture), and no capture begins until it is done."""
        if dev not in self.changing:
            yield
            return
        with self.quiet:
            while self.holding.get(dev) not in (None, name):
                self.quiet.wait(0.25)
            self.changing[dev] += 1
        try:
            yield
        finally:
            with self.lock:
                self.changing[dev] -= 1

    def _make_room(self, pending: set[str], loaded_waiting: set[str]) -> list[str]:
        """Unload models waiting for their upstream on a GPU where a retry must run alone.

        (They may be waiting for the very analyzer that needs the GPU to itself.)"""
        evicted = []
        for dev in self.lanes:
            if self.holding.get(dev):
                continue  # unloading now would be a CUDA call during another analyzer's capture
            if not any(n in pending and self.states.get(n) and self.states[n].placement.exclusive
                       and self.states[n].placement.device == dev for n in self.lanes[dev]):
                continue
            for name in [n for n in loaded_waiting if self.states[n].placement.device == dev]:
                with self.lock:
                    self.idle.discard(name)
                self._release(self.states[name], unload=True)
                self.states[name].call = None
                evicted.append(name)
        return evicted

    def _room_mb(self, st: _State) -> float | None:
        """The MB ``st`` may allocate on its GPU: the budget less what the others there have reserved."""
        dev = st.placement.device
        budget = self.budgets.get(dev)
        if budget is None:
            return None
        with self.lock:
            return max(st.reserved_mb, budget - (self.reserved.get(dev, 0.0) - st.reserved_mb))

    def _release(self, st: _State, unload: bool) -> None:
        dev = st.placement.device
        if unload and st.call is not None and st.loaded:
            # an unload in a process of its own makes no CUDA call in this one: it need not wait for a capture
            changing = contextlib.nullcontext() if _in_child(st) else self._changing(dev, st.job.name)
            with changing, using(st.stream):
                info = st.call.unload()
            st.receipt["unload_s"] = round(info.duration_s, 4)
            st.loaded = False
        with self.lock:
            self.preparing.discard(st.job.name)
            if dev in self.active and st.job.name in self.active[dev]:
                self.active[dev].discard(st.job.name)
                self.reserved[dev] = max(0.0, self.reserved[dev] - st.reserved_mb)
                if self.exclusive.get(dev) == st.job.name:
                    self.exclusive[dev] = None
            st.reserved_mb = 0.0

    # --- phases -------------------------------------------------------------------------
    def _begin(self, st: _State) -> bool:
        """Ask the runner for this attempt's call; False when the job finished without running."""
        st.started = st.started or time.perf_counter()
        started = st.job.start(st.placement)
        if not hasattr(started, "load"):  # a finished (skipped) track
            self.finish(st.job.name, started)
            return False
        st.call = started
        return True

    def _run_cpu(self, st: _State) -> str:
        """A CPU analyzer: its phases in one worker thread, one after the other (loaded, it waits for
        the inputs when the decode pass runs beside)."""
        outcome = self._load(st)
        if outcome != "loaded":
            return outcome
        if not self._inputs_there(st.job.name):
            self._release(st, unload=True)
            return "done"
        return self._analyze(st)

    def _load(self, st: _State) -> str:
        if self.stop.is_set():
            self._release(st, unload=False)
            return "done"
        dev, gpu = st.placement.device, st.placement.is_gpu
        if gpu:
            st.placement = dataclasses.replace(
                st.placement, shared=lambda: len(self.active.get(dev, ())) > 1,
                on_busy=lambda t0, t1: self.intervals.setdefault(dev, []).append((t0, t1)),
                gpu_to_itself=lambda: self._to_itself(dev, st.job.name), memory_cap_mb=self._room_mb(st))
        if not self._begin(st):
            self._release(st, unload=False)
            return "done"
        new_stream = getattr(self.memory, "new_stream", None) if gpu and streams_wanted() else None
        st.stream = new_stream(dev, st.job.high_priority) if new_stream is not None else None
        if gpu and self.memory is not None:
            st.baseline_mb = self.memory.allocated_mb(dev)
            self._fold_peak(dev)
            if st.alone:
                self.memory.reset_peak(dev)
        st.receipt["load_at_s"] = self._since_start()

        def load_keeping_threads() -> CallInfo[Any]:  # (a library's import may set the process's threads)
            with thread_settings.kept(f"{st.job.name}'s load"):
                return st.call.load()
        load = self._guarded(st, load_keeping_threads, one_at_a_time=getattr(st.call, "load_takes_turns", True))
        st.receipt["load_s"] = round(load.duration_s, 4)
        if load.failed and gpu and is_out_of_memory(load.excinfo):
            return self._fall_back(st, "load", load.excinfo)
        if load.failed:  # the call records the failure (or the skip) in its track
            self._release(st, unload=True)
            self._finish(st)
            return "done"
        return "loaded"

    def _analyze(self, st: _State) -> str:
        if self.stop.is_set():
            self._release(st, unload=True)
            return "done"
        dev = st.placement.device
        st.receipt["analyze_at_s"] = self._since_start()
        with self.lock:
            self.analyzing.add(st.job.name)
            self.preparing.discard(st.job.name)
        try:
            info = self._guarded(st, st.call.analyze)
        finally:
            with self.lock:
                self.analyzing.discard(st.job.name)
        st.receipt["analyze_s"] = round(info.duration_s, 4)
        if info.failed and st.placement.is_gpu and is_out_of_memory(info.excinfo):
            return self._fall_back(st, "analyze", info.excinfo)
        if _in_child(st):
            st.receipt["own_process"] = True
            st.receipt["pid"] = getattr(st.call, "pid", None)  # (to find it in the system's tools: nvidia-smi, top)
            peak = st.call.peak_vram_mb  # (on a GPU) its own allocator's, shared with no other analyzer
            if peak is not None:
                st.receipt["peak_vram_mb"], st.receipt["measured_alone"] = round(peak, 1), True
                with self._peaks_lock:
                    self._child_peaks[dev] = self._child_peaks.get(dev, 0.0) + peak
        elif st.placement.is_gpu and self.memory is not None:
            st.receipt["peak_vram_mb"] = round(max(0.0, self.memory.peak_mb(dev) - st.baseline_mb), 1)
            st.receipt["measured_alone"] = st.alone
        self._release(st, unload=True)
        self._finish(st)
        return "done"

    def _prepare_ahead(self, st: _State) -> None:
        """Start the first batches' preprocessing of an analyzer whose inputs exist while its model still
        loads (or waits for its load turn), once what that preprocessing needs is loaded
        (``BatchedAnalyzer.preprocess_ready``): on an H200 the VLM prepared its 114 chunks for 2.2-3.1 s
        after its model had loaded, with the cut list there 1.7-2.4 s before the model. Called from the
        run's loop, at most once per attempt; quick (the preprocessing runs on the analyzer's own
        threads). A failure here is only logged: the analysis prepares its batches itself, and reports
        what fails there."""
        name, call = st.job.name, st.call
        ready = getattr(call, "preprocess_ready", None)
        if ready is None or name in self.preparing or not self.prepare_ahead:
            return
        try:
            if not ready():
                return
            with self.lock:
                self.preparing.add(name)  # from here on it may make CUDA calls (on its own stream)
            with using(st.stream):
                if call.prepare_ahead():
                    st.receipt["prepared_ahead_at_s"] = self._since_start()
        except Exception as exc:  # noqa: BLE001 - its analysis prepares the batches again
            with self.lock:
                self.preparing.add(name)  # (not asked again)
            logger.warning("%s: preparing its first batches while its model loads failed (%s: %s); they are "
                           "prepared when its analysis starts", name, type(exc).__name__, exc)

    def _guarded(self, st: _State, phase: Callable[[], CallInfo[Any]], one_at_a_time: bool = False) -> CallInfo[Any]:
        """Run a load or analyze phase; on Ctrl-C unload what was loaded before stopping."""
        st.loaded = True  # from here on, unload() is owed (also after a failed or half-done load)
        try:
            with using(st.stream):
                if one_at_a_time:
                    asked = time.perf_counter()
                    with self.load_turns.turn(st.job.name):
                        # waited for the other loads, and for the module the import warm-up was importing
                        st.receipt["load_wait_s"] = round(time.perf_counter() - asked, 3)
                        return phase()
                return phase()
        except KeyboardInterrupt:
            self._release(st, unload=True)
            raise

    def _fall_back(self, st: _State, phase: str, exc: BaseException | None) -> str:
        """Out of memory: alone on the same GPU, then a smaller variant, then the CPU."""
        dev = st.placement.device
        self._release(st, unload=True)
        with self._changing(dev, st.job.name):
            free_device_memory(dev)
        nxt = self._next_attempt(st)
        what = f"out of memory in {phase}() on {dev} ({st.placement.variant or 'default'}"
        what += ", alone)" if st.placement.exclusive else ", beside other models)"
        if nxt is None:
            st.fallbacks.append(f"{what}: no smaller variant and no CPU path left")
            logger.error("%s: %s", st.job.name, st.fallbacks[-1])
            self._finish(st)
            return "done"
        step = ("retrying alone" if nxt.device == dev and nxt.variant == st.placement.variant
                else f"retrying as {nxt.variant or 'default'} on {nxt.device}" if nxt.is_gpu
                else "retrying on the CPU")
        st.fallbacks.append(f"{what}: {step}")
        logger.warning("%s: %s", st.job.name, st.fallbacks[-1])
        st.placement = nxt
        st.call = None
        st.loaded = False
        return "retry"

    def _next_attempt(self, st: _State) -> Placement | None:
        p, demand = st.placement, st.job.demand
        if p.is_gpu and not p.exclusive:
            return dataclasses.replace(p, exclusive=True)
        if p.is_gpu and demand is not None:
            variants = list(demand.all_variants)
            current = next((i for i, v in enumerate(variants)
                            if v.precision == p.variant and v.substitutes == p.substitutes), -1)
            budget = self.budgets.get(p.device)
            for v in variants[current + 1:]:
                if v.vram_mb < p.vram_mb and (budget is None or v.vram_mb <= budget):
                    # alone on the device: its batch (and prefill group) from the room this variant leaves,
                    # not the failed one's
                    room = None if budget is None else budget - v.vram_mb
                    shaped = fitted(demand, room)
                    cap = batch_cap(shaped, room) if demand.item_vram_mb > 0 else p.max_batch
                    return Placement(p.device, v.precision, v.substitutes, cap, v.vram_mb, exclusive=True,
                                     prefill_group=shaped.group_items or None,
                                     batch_room_mb=room if demand.item_vram_mb > 0 else None)
            if demand.cpu_fallback:
                cpu_variant = "fp32" if any(v.precision == "fp32" for v in variants) else p.variant
                return Placement("cpu", cpu_variant, p.substitutes, p.max_batch, 0.0)
        return None

    def _finish(self, st: _State) -> None:
        receipt = dict(st.receipt)
        receipt["wall_s"] = round(time.perf_counter() - st.started, 4)
        receipt.update(device=st.placement.device, variant=st.placement.variant)
        if st.placement.substitutes:
            receipt["substitutes"] = dict(st.placement.substitutes)
        if st.fallbacks:
            receipt["fallbacks"] = list(st.fallbacks)
        track = st.call.track(receipt)  # after an OOM with nowhere left to go: the call's failed track
        self.finish(st.job.name, track)

    def _fold_peak(self, dev: str) -> None:
        """Keep the allocator's peak on ``dev`` so far (before a reset measures one analyzer alone)."""
        with self._peaks_lock:
            self._peaks[dev] = max(self._peaks.get(dev, 0.0), self.memory.peak_mb(dev))

    @property
    def peak_vram_mb(self) -> dict[str, float]:
        """Per GPU an analyzer ran on in this run, the most memory allocated there at once (MB): the
        allocator's peak, kept across the resets that measure each analyzer alone. Analyzers in
        processes of their own add their own allocators' peaks: then it is an upper bound."""
        if self.memory is None:
            return {}
        for dev in list(self._peaks):
            self._fold_peak(dev)
        devices = sorted(set(self._peaks) | set(self._child_peaks))
        return {dev: round(self._peaks.get(dev, 0.0) + self._child_peaks.get(dev, 0.0), 1) for dev in devices}

    @property
    def busy_s(self) -> dict[str, float]:
        """Per GPU, the seconds some analyzer was inside ``forward`` (overlaps counted once)."""
        busy = {}
        for dev, spans in self.intervals.items():
            total, end = 0.0, float("-inf")
            for t0, t1 in sorted(spans):
                if t1 > end:
                    total += t1 - max(t0, end)
                    end = t1
            busy[dev] = total
        return busy
