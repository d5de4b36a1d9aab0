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


def call_analyzer(analyzer: Analyzer, inputs: AnalyzerInputs, device: str,
                  host: "PluginHost | None" = None, models: dict[str, Path] | None = None, *,
                  save_traceback: Callable[[str], str] | None = None) -> Track:
    """Load, analyze and unload one analyzer; any failure becomes a ``failed`` Track.

    :param device: where the plan put it (``"cpu"`` or ``"gpu"``), passed to ``load``.
    :param models: manifest ids mapped to local paths, passed to ``load``.
    :param save_traceback: stores a failure's traceback text and returns the path to record in
        ``Track.traceback_file`` (relative to the run folder); without it the traceback is only logged.
    :raises KeyboardInterrupt: Ctrl-C, after ``unload`` has run.
    """
    started = time.time()
    t0 = time.perf_counter()
    failure: CallInfo[Any] | None = None
    status, reason, track = "ok", None, None
    try:
        load = CallInfo.from_call(lambda: analyzer.load(device, models or {}), "load")
        if isinstance(load.excinfo, AnalyzerUnavailable):
            status, reason = "skipped", str(load.excinfo)
        elif load.failed:
            failure = load
        else:
            call = CallInfo.from_call(lambda: _checked(analyzer, analyzer.analyze(inputs)), "analyze")
            if call.failed:
                failure = call
            else:
                track = call.result
    finally:  # unload also when Ctrl-C arrived during load or analyze
        unload = CallInfo.from_call(analyzer.unload, "unload")
    tb_text = None
    if failure is not None:
        status, reason = "failed", _describe_failure(analyzer, failure, host)
        tb_text = _traceback_text(analyzer, failure)
        if unload.failed:  # recorded beside the first failure, which is the one that matters
            tb_text += "\n" + _traceback_text(analyzer, unload)
            reason += f"; unload() also raised {_exc_line(unload.excinfo)}"
    elif unload.failed:
        failure = unload
        status = "failed"
        reason = _describe_failure(analyzer, unload, host)
        if track is not None:
            reason += " (analyze() had finished; its events are dropped because the analyzer did not release its resources)"
        track = None
        tb_text = _traceback_text(analyzer, unload)
    traceback_file = None
    if tb_text is not None:
        logger.debug("analyzer %s failed in %s()\n%s", analyzer.name, failure.phase, tb_text)
        traceback_file = save_traceback(tb_text) if save_traceback else None
    base = track if track is not None else analyzer.track()
    return base.model_copy(update={
        "status": status, "reason": reason, "device": device, "started_at": started,
        "plugin": analyzer.plugin, "provides": list(analyzer.provides),
        "duration_s": round(time.perf_counter() - t0, 4),
        "failed_phase": failure.phase if failure is not None else None,
        "traceback_file": traceback_file})


def _checked(analyzer: Analyzer, result: Any) -> Track:
    if not isinstance(result, Track):
        raise TypeError(f"analyze() returned {type(result).__name__}, expected a framework.Track "
                        "(use self.track(events=..., series=...))")
    return result


def _exc_line(exc: BaseException | None) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}) (the analyzer called sys.exit)"
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
