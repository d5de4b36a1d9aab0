"""Every hook the host calls, with its docstring as the reference.

Registration hooks receive a ``register`` callback owned by the host, so the host can
validate what is registered, stamp the plugin's name on it and reject duplicates.
Observer hooks (``analysis_*``, ``analyzer_*``) are called one implementation at a time
and an exception in one is logged, never raised: an observer cannot stop a run.
"""
from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("framework")
hookimpl = pluggy.HookimplMarker("framework")


@hookspec
def register_analyzers(register: Callable[[type], None]) -> None:
    """Register analyzer classes: call ``register(AnalyzerSubclass)`` once per class.

    :param register: host callback; raises ``DuplicateAnalyzerError`` if another plugin
        already registered an analyzer of the same ``name``.
    """


@hookspec
def register_llm_backends(register: Callable[[type], None]) -> None:
    """Register LLM backend classes (``framework.llm.LLMBackend`` subclasses) by ``name``.

    :param register: host callback; duplicate backend names are an error naming both plugins.
    """


@hookspec
def register_exporters(register: Callable[[type], None]) -> None:
    """Register exporter classes (``framework.outputs.Exporter`` subclasses) by ``name``.

    :param register: host callback; duplicate exporter names are an error naming both plugins.
    """


@hookspec
def analysis_started(video: Any, analyzers: list[str], run_dir: Any) -> None:
    """Observer: a run of one video is about to decode and analyze.

    :param video: the probed ``framework.media.VideoInfo``.
    :param analyzers: names of the analyzers that will run, in execution order.
    :param run_dir: the run folder (``pathlib.Path``).
    Guarded: an exception here is logged and the run goes on.
    """


@hookspec
def analyzer_finished(track: Any) -> None:
    """Observer: an analyzer produced its ``Track`` (status ``ok``, ``skipped`` or reused).

    Guarded: an exception here is logged and the run goes on.
    """


@hookspec
def analyzer_failed(name: str, error: str, track: Any) -> None:
    """Observer: analyzer ``name`` raised; ``track`` is its ``failed`` Track, ``error`` the reason.

    Guarded: an exception here is logged and the run goes on.
    """


@hookspec
def analysis_finished(timeline: Any, run_dir: Any) -> None:
    """Observer: the run's ``Timeline`` is complete and ``results.json`` is written.

    Guarded: an exception here is logged and the run goes on.
    """
