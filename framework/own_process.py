"""An analyzer in a child process of its own, beside the analyzers that run in this one.

The analyzers of a run are threads of one process. A CPU analyzer whose work is mostly Python holds
the interpreter's lock while it works, and the threads that feed the GPUs wait for it after every
call into torch. On one H200, the default set's GPU analyzers took a 10-minute clip 70 s on their
own and 115 s beside the CPU analyzers (``bench/results/end_to_end_h200_streams.md``, runs D-F).

An analyzer class that sets ``own_process = True`` therefore runs in a child process when the run
also uses a GPU (``wanted``):

- the child is ``python -m framework.own_process``, a fresh interpreter (never forked from a process
  that may hold CUDA) with this process's ``sys.path``; it imports the class by module and name,
  builds it from its params, and runs ``load``, ``analyze`` and ``unload`` when asked;
- frame streams and audio are opened from the run cache by path, as here; the upstream tracks go to
  the child pickled, and the track comes back pickled;
- progress and log records come back as the analyzer reports or logs them (records at the run's
  logging level, logged here under their own logger's name); the run's stop (Ctrl-C) ends the child
  at once;
- a failure comes back with the child's traceback and reads as it would from a thread
  (``ChildFailure``); ``AnalyzerUnavailable`` in ``load`` still makes the track ``skipped``.

A GPU analyzer that sets it runs in a child too: one whose GPU work is driven by a loop of Python
(Whisper decoding token by token) then has an interpreter's lock to itself, instead of taking turns
with the threads that feed the other models. Its CUDA context is the child's own:

- its allocator is capped like this process's, to ``Placement.memory_cap_mb`` (the budget less what
  the other analyzers on the GPU had reserved when it was admitted) less its CUDA context
  (``CONTEXT_MB``, which the plan counts in the analyzer's demand): an underestimate raises out of
  memory there, and the error comes back as one (``device_step.is_out_of_memory``), so the
  executor's fallbacks follow;
- the device step's busy spans come back to the executor (the GPU's busy fraction), and the peak
  its allocator reached while analyzing comes back as the track's ``peak_vram_mb``;
- no CUDA call it makes can break a CUDA graph captured in this process, so captures never wait
  for it. The GPU itself time-slices between the two processes' kernels.

Where the run decodes early (a GPU driver present, a fresh run: ``framework.runner``), the child of
each analyzer that will likely run in one starts before the plan and imports what its load will need
(``EarlyChildren``); the load takes it. After ``unload`` the child exits on a thread of its own
(``exit_in_background``): the track is handed over without waiting for the teardown, and the run
collects the exits at its end (``wait_for_exits``).

It runs as a thread instead when no GPU analyzer is in the run (a child costs its imports, about
a second), when its class cannot be imported by name in a fresh interpreter (``importable``), with
``FRAMEWORK_OWN_PROCESS=0``, and (GPU analyzers only) with ``FRAMEWORK_OWN_PROCESS=cpu``. Profiled
(``--profile``), the child samples its own threads and writes the report where a thread's would go.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import logging
import os
import pickle
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Collection, Iterator

from . import thread_settings, transformers_index
from .analyzer import Analyzer, AnalyzerInputs, AnalyzerUnavailable
from .callinfo import AnalyzerCall, CallInfo
from .device_step import free_device_memory
from .process_workers import _Child, child_env, children_supported, exit_with_parent
from .warm_imports import import_before_threads, import_each
from .work_streams import switched_on

logger = logging.getLogger(__name__)

POLL_S = 0.25  # how often the parent looks at the run's stop while the child is quiet
PROGRESS_STEP = 0.01  # the child reports progress when it moved by this much
#: device memory a child's own CUDA context takes outside its allocator (an estimate: about 0.5 GB with
#: torch 2.11 on an H200, less on smaller cards); the plan counts it in the analyzer's demand and the
#: child's allocator is capped to its room less this (``allocator_cap_mb``)
CONTEXT_MB = 512.0
#: the least an allocator is capped to, however small the room
MIN_ALLOCATOR_MB = 256.0


def allocator_cap_mb(room_mb: float) -> float:
    """The cap for a child's allocator on a GPU where its analyzer has ``room_mb`` (its reservation in the
    plan, with ``CONTEXT_MB`` in it): the room less the context, which lives outside the allocator."""
    return max(MIN_ALLOCATOR_MB, room_mb - CONTEXT_MB)


class ChildFailure(RuntimeError):
    """An analyzer phase raised in the child process: its exception type's name, message and traceback."""

    def __init__(self, type_name: str, message: str, child_traceback: str):
        super().__init__(message)
        self.type_name, self.child_traceback = type_name, child_traceback


def wanted(env: Any = None, gpu: bool = False) -> bool:
    """Whether ``own_process`` analyzers may get their own process (``FRAMEWORK_OWN_PROCESS``, on by
    default; ``cpu``: only those that run on the CPU)."""
    if not switched_on("FRAMEWORK_OWN_PROCESS", env) or not children_supported():
        return False
    return not (gpu and (os.environ if env is None else env).get("FRAMEWORK_OWN_PROCESS", "").strip().lower() == "cpu")


def importable(cls: type) -> str | None:
    """``"module:qualname"`` when a fresh interpreter can import ``cls`` by name, else None."""
    module, qualname = cls.__module__, cls.__qualname__
    if module == "__main__" or "<locals>" in qualname:
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    loaded = sys.modules.get(module)
    if spec is None or spec.origin is None or loaded is None or getattr(loaded, "__file__", None) is None:
        return None
    if Path(spec.origin).resolve() != Path(loaded.__file__).resolve():
        return None  # a plugin folder's module, loaded under a name that points elsewhere (or nowhere)
    return f"{module}:{qualname}"


class ProcessCall(AnalyzerCall):
    """``AnalyzerCall`` whose phases run in a child process: the same outcomes, the same track."""

    def __init__(self, analyzer: Analyzer, *args: Any, early: "EarlyChildren | None" = None, **kwargs: Any):
        super().__init__(analyzer, *args, **kwargs)
        where = importable(type(analyzer))
        if where is None:
            raise ValueError(f"{analyzer.name}: its class cannot be imported by name in another process")
        self.where = where
        self.early = early  # children started before the plan: this analyzer's may be among them
        self.child: _Child | None = None
        self.on_busy: Any = None  # the executor's, for the spans the child relays
        self.pid: int | None = None  # the child's process id, once loading (the track's receipt names it)

    load_takes_turns = False  # it loads in its own interpreter: nothing to share with this one's imports
    in_child = True  # its CUDA calls are another process's: they never break a capture in this one

    # --- the phases, in the child ----------------------------------------------------------
    def _load(self) -> None:
        early = self.early.take(self.analyzer.name) if self.early is not None else None
        if early is not None:
            self.child = early
            try:
                self._answer(early)  # its imports done (or failed: the load below says what is missing)
            except ChildFailure:
                pass
        else:
            self.child = _Child(0, child_env(), module=__name__)
        self.pid = self.child.proc.pid
        placement = self.analyzer.placement
        self.on_busy = placement.on_busy if placement is not None else None
        if placement is not None:  # what calls back into this process stays here; busy spans are relayed
            placement = dataclasses.replace(placement, shared=None, on_busy=None, gpu_to_itself=None)
        self._ask("load", {"class": self.where, "params": self.analyzer.params, "placement": placement,
                           "device": self.device, "models": self.models,
                           "cpu_priority": getattr(self.analyzer, "cpu_priority", "normal"),
                           "gpu_priority": getattr(self.analyzer, "gpu_stream_priority", "normal"),
                           "log_level": logging.getLogger().getEffectiveLevel()})

    def _analyze(self, inputs: AnalyzerInputs) -> Any:
        sent = {"video": inputs.video, "upstream": inputs.upstream, "work_dir": inputs.work_dir,
                "streams": [(spec, stream.folder) for spec, stream in inputs.streams.items()],
                "audio": inputs.audio.path if inputs.audio is not None else None,
                "profile_to": self.profile_to}
        return self._ask("analyze", sent, inputs)

    def _sampled(self, run: Any) -> Any:
        """``--profile``: the child samples its own threads while it analyzes (``_analyzed``); here
        only this thread's wait for it would be seen."""
        return run()

    def _unload(self) -> None:
        child, self.child = self.child, None
        if child is None:
            return
        try:
            if child.proc.poll() is None:
                self._ask("unload", None, child=child)  # (its models gone, its cached device memory freed)
        finally:
            exit_in_background(child)

    def _ask(self, phase: str, payload: Any, inputs: AnalyzerInputs | None = None, child: _Child | None = None) -> Any:
        """Send one request; relay the child's progress until its answer (raised, if it failed)."""
        child = child or self.child
        assert child is not None
        child.send_conn.send((phase, payload))
        return self._answer(child, inputs)

    def _answer(self, child: _Child, inputs: AnalyzerInputs | None = None) -> Any:
        """The child's answer to the request it was sent last, relaying what comes before it."""
        fraction = 0.0
        try:
            while True:
                if not child.recv_conn.poll(POLL_S):
                    if inputs is not None:
                        inputs.report(fraction)  # the run's stop raises here (RunInterrupted)
                    continue
                kind, value = _receive(child)
                if kind == "progress":
                    fraction = value
                    if inputs is not None:
                        inputs.report(fraction)
                    continue
                if kind == "log":
                    name, level, message = value
                    logging.getLogger(name).log(level, "%s", message)
                    continue
                if kind == "busy":  # (start, end) inside forward, on the host's monotonic clock
                    if self.on_busy is not None:
                        self.on_busy(*value)
                    continue
                if kind == "peak":
                    self.peak_vram_mb = value
                    continue
                if kind == "unavailable":
                    raise AnalyzerUnavailable(value)
                if kind == "failed":
                    raise ChildFailure(*value)
                return value
        except KeyboardInterrupt:  # the run stops: do not wait for the child to finish its phase
            self.child = None
            child.stop(timeout=0)
            raise

    def _traceback_of(self, info: CallInfo[Any]) -> CallInfo[Any]:
        if isinstance(info.excinfo, ChildFailure):  # the child's traceback, not the relay's
            return dataclasses.replace(info, traceback=info.excinfo.child_traceback)
        return info


class EarlyChildren:
    """Processes started for analyzers that will likely run in processes of their own, when the run
    starts (before the plan, as the early decode): each imports its class's module and ``warm_imports``
    (torch, whisper, ultralytics: seconds of a fresh interpreter's time) while the run plans, then waits
    for its ``load``. ``take(name)`` hands an analyzer's child to its ``ProcessCall``; ``close()`` ends
    those nobody took (an analyzer the plan skipped, or ran in this process)."""

    def __init__(self, classes: dict[str, type], low_priority: Collection[str] = (),
                 low_gpu_priority: Collection[str] = ()):
        """``low_priority``: the analyzers whose children import at a lower CPU priority already
        (``cpu_priority: low``), as they will analyze; ``low_gpu_priority``: those whose children are MPS
        clients of below-normal priority (``gpu_stream_priority: low``), set before anything starts CUDA."""
        self._lock = threading.Lock()
        self._children: dict[str, _Child] = {}
        for name, cls in classes.items():
            where = importable(cls)
            if where is None:
                continue
            child = _Child(0, child_env(), module=__name__)
            child.send_conn.send(("import", {"class": where, "modules": list(getattr(cls, "warm_imports", ())),
                                             "cpu_priority": "low" if name in low_priority else "normal",
                                             "gpu_priority": "low" if name in low_gpu_priority else "normal"}))
            self._children[name] = child

    @property
    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._children)

    def take(self, name: str) -> _Child | None:
        """``name``'s child, once (None when it has none, or its child died)."""
        with self._lock:
            child = self._children.pop(name, None)
        if child is not None and child.proc.poll() is not None:
            exit_in_background(child)
            return None
        return child

    def close(self) -> None:
        with self._lock:
            children, self._children = list(self._children.values()), {}
        for child in children:
            exit_in_background(child)


_exiting: list[threading.Thread] = []
_exiting_lock = threading.Lock()


def exit_in_background(child: _Child) -> None:
    """Let ``child`` exit while the run goes on: a process that imported torch takes a second or
    more to end (its interpreter's teardown, its CUDA context's), and the analyzers that wait for
    this one's track need not wait for that. The child has already unloaded (its models and cached
    device memory freed); only its CUDA context (counted in its demand) outlives the track by
    that second. ``wait_for_exits`` collects them at the end of the run."""
    thread = threading.Thread(target=child.stop, name="own-process-exit", daemon=True)
    thread.start()
    with _exiting_lock:
        _exiting[:] = [t for t in _exiting if t.is_alive()] + [thread]


def wait_for_exits(timeout: float = 10.0) -> None:
    """Wait (at most ``timeout`` seconds in all) until the children left to exit in the background
    have exited (each is killed after 5 s, as ``_Child.stop`` does)."""
    deadline = time.monotonic() + timeout
    with _exiting_lock:
        threads, _exiting[:] = list(_exiting), []
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _receive(child: _Child) -> tuple[str, Any]:
    try:
        return child.recv_conn.recv()
    except (EOFError, OSError):
        raise ChildFailure("ChildProcessError", f"the analyzer's own process died {child.death()}", "") from None


# --- the child ------------------------------------------------------------------------------
class _Sender:
    """The child's pipe to the parent, shared by the analyzer's threads (one message at a time)."""

    def __init__(self, conn: Connection):
        self.conn, self.lock = conn, threading.Lock()

    def send(self, message: Any) -> None:
        with self.lock:
            self.conn.send(message)

    def send_bytes(self, data: bytes) -> None:
        with self.lock:
            self.conn.send_bytes(data)


class _RelayLogs(logging.Handler):
    """Sends the child's log records to the parent, which logs them under the same names."""

    def __init__(self, sender: _Sender):
        super().__init__()
        self.sender = sender

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sender.send(("log", (record.name, record.levelno, self.format(record))))
        except Exception:  # noqa: BLE001 - the parent is gone or the record does not format
            self.handleError(record)


#: how much lower a ``cpu_priority: low`` analyzer's process runs (``os.nice``: 0 is the run's, 19 the lowest)
LOW_PRIORITY_NICE = 10


_lowered = False  # (in a child: its priority was lowered already)


def lower_cpu_priority() -> None:
    """Run this process (and the workers it starts from now on) ``LOW_PRIORITY_NICE`` steps lower, once, where
    the system has priorities (``os.nice``); else as it is, said in the log."""
    global _lowered
    if _lowered:
        return
    _lowered = True
    try:
        os.nice(LOW_PRIORITY_NICE)
    except (AttributeError, OSError) as exc:  # (Windows has no os.nice)
        logging.getLogger(__name__).info("cpu_priority low: could not lower this process's priority (%s)", exc)


#: what ``gpu_stream_priority: low`` sets in an analyzer's own process (read by CUDA when it starts there): under
#: an MPS server, a client of below-normal priority (NVIDIA's MPS reference, CUDA_MPS_CLIENT_PRIORITY: 0 normal,
#: 1 below normal); without one, nothing reads it
MPS_LOW_PRIORITY = {"CUDA_MPS_CLIENT_PRIORITY": "1"}


def lower_gpu_priority() -> None:
    """Make this process an MPS client of below-normal priority when CUDA starts in it (under an MPS server)."""
    os.environ.update(MPS_LOW_PRIORITY)


def _take_priorities(payload: dict[str, Any]) -> None:
    """The priorities an ``import`` or ``load`` request asks this child for (``cpu_priority``, ``gpu_priority``)."""
    if payload.get("cpu_priority") == "low":
        lower_cpu_priority()
    if payload.get("gpu_priority") == "low":
        lower_gpu_priority()


def _serve(recv_conn: Connection, conn: Connection) -> None:
    """The child's loop: answer load, analyze and unload until ``None`` or end-of-file (or its parent's death:
    a run killed outright leaves no analysis running on, holding its GPU memory)."""
    exit_with_parent()
    thread_settings.alone_in_this_process()  # (its libraries' thread settings are its own: nothing is put back)
    transformers_index.install()  # (before its class's imports: transformers' model table from a file)
    import_before_threads()  # (scipy: as in the run's process, before its analyzer's threads import parts of it)
    send_conn = _Sender(conn)
    relay = _RelayLogs(send_conn)
    relay.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger().addHandler(relay)
    analyzer: Analyzer | None = None
    while True:
        try:
            request = recv_conn.recv()
        except EOFError:
            return
        if request is None:
            return
        phase, payload = request
        try:
            if phase == "import":  # (an early child, before the plan: what its load will need)
                _take_priorities(payload)
                importlib.import_module(payload["class"].partition(":")[0])
                import_each(payload["modules"])  # (a missing package: the load reports it)
                reply: tuple[str, Any] = ("ok", None)
            elif phase == "load":
                logging.getLogger().setLevel(payload.get("log_level", logging.WARNING))
                _take_priorities(payload)
                module, _, qualname = payload["class"].partition(":")
                cls: Any = importlib.import_module(module)
                for part in qualname.split("."):
                    cls = getattr(cls, part)
                analyzer = cls(payload["params"])
                analyzer.placement = _on_this_gpu(payload["placement"], send_conn)
                analyzer.load(payload["device"], payload["models"])
                reply = ("ok", None)
            elif phase == "analyze":
                assert analyzer is not None
                with _peak_sent(analyzer, send_conn):
                    reply = ("ok", _analyzed(analyzer, _inputs(payload, send_conn), payload.get("profile_to")))
            elif phase == "unload":
                if analyzer is not None:
                    device = analyzer.placement.device if analyzer.placement is not None else "cpu"
                    analyzer.unload()
                    analyzer = None
                    # the blocks torch's allocator still caches back to the device, so that what the
                    # executor frees in its account is free on the device too
                    free_device_memory(device)
                reply = ("ok", None)
            else:
                raise ValueError(f"unknown request {phase!r}")
        except AnalyzerUnavailable as exc:
            reply = ("unavailable", str(exc))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the run, as in a thread
            message = repr(exc.code) if isinstance(exc, SystemExit) else str(exc)
            reply = ("failed", (type(exc).__name__, message, traceback.format_exc()))
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - a result that does not pickle
            data = pickle.dumps(("failed", ("PicklingError", f"{phase}() returned what cannot be sent back",
                                            traceback.format_exc())))
        try:
            send_conn.send_bytes(data)
        except OSError:  # the parent is gone
            return


def _analyzed(analyzer: Analyzer, inputs: AnalyzerInputs, profile_to: Path | None) -> Any:
    """``analyzer.analyze(inputs)``; with ``profile_to`` (``--profile``) its threads in this process
    sampled and the report written there, as ``AnalyzerCall`` does for a thread of the run."""
    if profile_to is None:
        return analyzer.analyze(inputs)
    from .stack_sampler import sampled

    return sampled(analyzer.name, Path(profile_to), lambda: analyzer.analyze(inputs), " (in its own process)")


def _on_this_gpu(placement: Any, send_conn: _Sender) -> Any:
    """The placement for the child: on a GPU, its allocator capped to ``memory_cap_mb`` (as the run's
    own process is to the budget) and the device step's busy spans sent to the parent."""
    if placement is None or not placement.is_gpu:
        return placement
    import torch

    if torch.cuda.is_available():  # (a test's simulated GPU has none)
        from .executor import TorchMemory

        memory = TorchMemory()  # the run process's CUDA settings (attention, allocator) in this one too
        if placement.memory_cap_mb is not None:
            memory.cap(placement.device, allocator_cap_mb(placement.memory_cap_mb))
    return dataclasses.replace(placement, on_busy=lambda t0, t1: send_conn.send(("busy", (t0, t1))))


@contextlib.contextmanager
def _peak_sent(analyzer: Analyzer, send_conn: _Sender) -> Iterator[None]:
    """On a GPU, send the allocator's peak during ``analyze`` (load's weights included) before the answer."""
    placement = analyzer.placement
    torch = sys.modules.get("torch") if placement is not None and placement.is_gpu else None
    try:
        yield
    finally:
        if torch is not None and torch.cuda.is_initialized():
            send_conn.send(("peak", torch.cuda.max_memory_allocated(placement.device) / 2**20))


def _inputs(payload: dict[str, Any], send_conn: _Sender) -> AnalyzerInputs:
    from .streams import AudioTrack, FrameStream

    last = [-1.0, 0.0]  # fraction, time of the last report sent

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if fraction - last[0] >= PROGRESS_STEP or (fraction > last[0] and now - last[1] > 1.0):
            last[:] = [fraction, now]
            send_conn.send(("progress", fraction))

    streams = {spec: FrameStream(folder, spec) for spec, folder in payload["streams"]}
    audio = AudioTrack(payload["audio"]) if payload["audio"] is not None else None
    return AnalyzerInputs(video=payload["video"], streams=streams, audio=audio, upstream=payload["upstream"],
                          work_dir=payload["work_dir"], progress=progress)


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
