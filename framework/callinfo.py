"""The call wrapper around every analyzer: load, analyze, unload, each guarded like a pytest phase.

Modelled on pytest's ``CallInfo.from_call``: a call's outcome is its result *or* the exception it
raised, with its duration, and the run goes on. Every ``BaseException`` counts as a failure
(``SystemExit`` from ``sys.exit()``, ``MemoryError``, an exception class that forgot to derive
from ``Exception``) except ``KeyboardInterrupt``, which stops the run (Ctrl-C).

``call_analyzer`` turns the three phases into one ``Track``:

- ``load`` raising ``AnalyzerUnavailable``: ``skipped`` with its message;
- any other failure in ``load`` or ``analyze``: ``failed``, ``failed_phase`` says which;
- ``unload`` is always called (also after a failed load, to free what was half loaded); when it
  alone fails, the track is ``failed`` with phase ``unload`` (a leak would starve the next model).

The formatted traceback of a failure is handed to ``save_traceback``, which stores it beside the
track and returns the path written into ``Track.traceback_file``.
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generic, Literal, TypeVar

from .analyzer import Analyzer, AnalyzerInputs, AnalyzerUnavailable
from .timeline import Track

if TYPE_CHECKING:
    from .plugins import PluginHost

logger = logging.getLogger(__name__)

Phase = Literal["load", "analyze", "unload"]
T = TypeVar("T")


@dataclass(frozen=True)
class CallInfo(Generic[T]):
    """The outcome of one guarded call: ``result``, or ``excinfo`` with its formatted traceback."""

    phase: Phase
    result: T | None
    excinfo: BaseException | None
    traceback: str | None
    duration_s: float

    @property
    def failed(self) -> bool:
        return self.excinfo is not None

    @classmethod
    def from_call(cls, func: Callable[[], T], phase: Phase) -> "CallInfo[T]":
        """Call ``func()``; catch every ``BaseException`` but ``KeyboardInterrupt``, which propagates."""
        t0 = time.perf_counter()
        try:
            result = func()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit and MemoryError too: the run goes on
            return cls(phase, None, exc, traceback.format_exc(), time.perf_counter() - t0)
        return cls(phase, result, None, None, time.perf_counter() - t0)


class AnalyzerCall:
    """One attempt at running one analyzer, phase by phase, for the executor.

    ``load()``, ``analyze()`` and ``unload()`` each return a ``CallInfo``; ``track(receipt)``
    turns the outcome into the ``Track`` (``ok``, ``skipped`` or ``failed`` with the phase), as
    ``call_analyzer`` describes. The phases may run on different threads, one after the other.

    :param inputs: the ``AnalyzerInputs``, or a callable returning them (or a reason to skip, when
        an upstream analyzer turned out not ``ok``): called once, when ``analyze`` starts (or, for an
        analyzer that prepares its first batches while its model loads, ``prepare_ahead``), so a model
        can be loaded while its upstream analyzers are still running.
    """

    def __init__(self, analyzer: Analyzer, inputs: AnalyzerInputs | Callable[[], AnalyzerInputs | str],
                 device: str, host: "PluginHost | None" = None, models: dict[str, Path] | None = None, *,
                 save_traceback: Callable[[str], str] | None = None, profile_to: Path | None = None):
        self.analyzer, self.inputs, self.device, self.host = analyzer, inputs, device, host
        self.models = models or {}
        self.save_traceback = save_traceback
        self.profile_to = profile_to  # stem of the files where analyze()'s stacks are reported (--profile)
        self.started = time.time()
        self.t0 = time.perf_counter()
        self.failure: CallInfo[Any] | None = None
        self.unload_info: CallInfo[Any] | None = None
        self.status, self.reason, self.result = "ok", None, None
        self.peak_vram_mb: float | None = None  # in a process of its own on a GPU: that allocator's peak
        self._inputs: AnalyzerInputs | str | None = None

    def load(self) -> CallInfo[Any]:
        info = self._traceback_of(CallInfo.from_call(self._load, "load"))
        if isinstance(info.excinfo, AnalyzerUnavailable):
            self.status, self.reason = "skipped", str(info.excinfo)
        elif info.failed:
            self.failure = info
        return info

    def _built_inputs(self) -> AnalyzerInputs | str:
        """The inputs, built once (by ``prepare_ahead`` or ``analyze``, whichever comes first)."""
        if self._inputs is None:
            self._inputs = self.inputs() if callable(self.inputs) else self.inputs
        return self._inputs

    def preprocess_ready(self) -> bool:
        """Whether the analyzer's first batches may be prepared now, before its ``load`` has returned
        (``BatchedAnalyzer.preprocess_ready``); never for one in a process of its own."""
        ready = getattr(self.analyzer, "preprocess_ready", None)
        return not self.in_child and ready is not None and bool(ready())

    def prepare_ahead(self) -> bool:
        """Start preparing the analyzer's first batches (``BatchedAnalyzer.prepare_ahead``) with the
        inputs ``analyze`` will get; False when an upstream analyzer turned out not ``ok``."""
        inputs = self._built_inputs()
        if isinstance(inputs, str):
            return False
        self.analyzer.prepare_ahead(inputs)  # type: ignore[attr-defined]
        return True

    def analyze(self) -> CallInfo[Any]:
        inputs = self._built_inputs()
        if isinstance(inputs, str):  # an upstream analyzer is not ok after all
            self.status, self.reason = "skipped", inputs
            return CallInfo("analyze", None, None, None, 0.0)
        def run() -> Any:
            return _checked(self.analyzer, self._analyze(inputs))

        info = CallInfo.from_call(run if self.profile_to is None else lambda: self._sampled(run), "analyze")
        info = self._traceback_of(info)
        if info.failed:
            self.failure = info
        else:
            self.result = info.result
        return info

    def _sampled(self, run: Callable[[], Any]) -> Any:
        """``run()`` with the stacks of this thread and the analyzer's own threads sampled (``StackSampler``)."""
        from .stack_sampler import sampled

        return sampled(self.analyzer.name, self.profile_to, run)  # type: ignore[arg-type]

    def unload(self) -> CallInfo[Any]:
        self.unload_info = self._traceback_of(CallInfo.from_call(self._unload, "unload"))
        return self.unload_info

    #: whether the phases run in a process of their own (``framework.own_process.ProcessCall``)
    in_child = False

    @property
    def load_takes_turns(self) -> bool:
        """Whether ``load`` must wait for other analyzers' loads in this process to end: it runs the
        analyzer's own ``load`` (imports, model reads), and libraries that import lazily (transformers)
        do not survive an import from two threads at once. An analyzer that keeps ``Analyzer.load``
        (nothing to load), or says its load imports nothing of the kind (``Analyzer.load_takes_turns``
        False), does not wait behind the GPU models' loads."""
        return type(self.analyzer).load is not Analyzer.load and self.analyzer.load_takes_turns

    # --- where the phases run (``framework.own_process.ProcessCall`` runs them in a child) ---
    def _load(self) -> None:
        self.analyzer.load(self.device, self.models)

    def _analyze(self, inputs: AnalyzerInputs) -> Any:
        return self.analyzer.analyze(inputs)

    def _unload(self) -> None:
        drop = getattr(self.analyzer, "drop_prepared", None)  # batches prepared while it loaded, never run
        if drop is not None:
            drop()
        self.analyzer.unload()

    def _traceback_of(self, info: CallInfo[Any]) -> CallInfo[Any]:
        """The traceback to record for a failed phase (here, the one ``CallInfo`` caught)."""
        return info

    def track(self, receipt: dict[str, Any] | None = None) -> Track:
        """The attempt's track, with ``receipt`` (device, variant, timings...) merged into ``Track.receipt``."""
        analyzer, failure, unload, track = self.analyzer, self.failure, self.unload_info, self.result
        status, reason, tb_text = self.status, self.reason, None
        if failure is not None:
            status, reason = "failed", _describe_failure(analyzer, failure, self.host)
            tb_text = _traceback_text(analyzer, failure)
            if unload is not None and unload.failed:  # recorded beside the first failure, which matters
                tb_text += "\n" + _traceback_text(analyzer, unload)
                reason += f"; unload() also raised {_exc_line(unload.excinfo)}"
        elif unload is not None and unload.failed:
            failure = unload
            status = "failed"
            reason = _describe_failure(analyzer, unload, self.host)
            if track is not None:
                reason += " (analyze() had finished; its events are dropped because the analyzer did not release its resources)"
            track = None
            tb_text = _traceback_text(analyzer, unload)
        traceback_file = None
        if tb_text is not None:
            logger.debug("analyzer %s failed in %s()\n%s", analyzer.name, failure.phase, tb_text)
            traceback_file = self.save_traceback(tb_text) if self.save_traceback else None
        base = track if track is not None and status == "ok" else analyzer.track()
        update: dict[str, Any] = {
            "status": status, "reason": reason, "device": self.device, "started_at": self.started,
            "plugin": analyzer.plugin, "provides": list(analyzer.provides),
            "duration_s": round(time.perf_counter() - self.t0, 4),
            "failed_phase": failure.phase if failure is not None else None,
            "traceback_file": traceback_file}
        if receipt:
            update["receipt"] = {**receipt, **base.receipt}
            if receipt.get("peak_vram_mb") is not None:
                update["peak_vram_mb"] = receipt["peak_vram_mb"]
        return base.model_copy(update=update)


def call_analyzer(analyzer: Analyzer, inputs: AnalyzerInputs, device: str,
                  host: "PluginHost | None" = None, models: dict[str, Path] | None = None, *,
                  save_traceback: Callable[[str], str] | None = None) -> Track:
    """Load, analyze and unload one analyzer; any failure becomes a ``failed`` Track.

    :param device: where the plan put it (``"cpu"``, ``"cuda:0"``), passed to ``load``.
    :param models: manifest ids mapped to local paths, passed to ``load``.
    :param save_traceback: stores a failure's traceback text and returns the path to record in
        ``Track.traceback_file`` (relative to the run folder); without it the traceback is only logged.
    :raises KeyboardInterrupt: Ctrl-C, after ``unload`` has run.
    """
    call = AnalyzerCall(analyzer, inputs, device, host, models, save_traceback=save_traceback)
    try:
        load = call.load()
        if not load.failed:
            call.analyze()
    finally:  # unload also when Ctrl-C arrived during load or analyze
        call.unload()
    return call.track()


def _checked(analyzer: Analyzer, result: Any) -> Track:
    if not isinstance(result, Track):
        raise TypeError(f"analyze() returned {type(result).__name__}, expected a framework.Track "
                        "(use self.track(events=..., series=...))")
    return result


def _exc_line(exc: BaseException | None) -> str:
    type_name = getattr(exc, "type_name", None)  # raised in the analyzer's own process: its own type's name
    if isinstance(exc, SystemExit) or type_name == "SystemExit":
        code = repr(exc.code) if isinstance(exc, SystemExit) else str(exc)  # the child sends the code's repr
        return f"SystemExit({code}) (the analyzer called sys.exit)"
    if type_name:
        return f"{type_name}: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _describe_failure(analyzer: Analyzer, info: CallInfo[Any], host: "PluginHost | None") -> str:
    msg = _exc_line(info.excinfo)
    if info.phase != "analyze":
        msg = f"{info.phase}() raised {msg}"
    plugin = analyzer.plugin or ""
    if plugin and not plugin.startswith("builtin:"):
        dist = host.distributions.get(plugin) if host else None
        msg += f" (plugin {plugin}" + (f", distribution {dist}" if dist else "") + ")"
    return msg


def _traceback_text(analyzer: Analyzer, info: CallInfo[Any]) -> str:
    return (f"analyzer {analyzer.name} {analyzer.version} ({analyzer.plugin or 'unregistered'}), "
            f"phase {info.phase}, after {info.duration_s:.3f} s:\n{info.traceback}")
