"""Every hook the host calls, with its docstring as the reference.

Registration hooks receive a ``register`` callback owned by the host, so the host can
validate what is registered, stamp the plugin's name on it and reject duplicates.
Observer hooks (``analysis_*``, ``analyzer_*``) are called one implementation at a time
and an exception in one is logged, never raised: an observer cannot stop a run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:  # annotations only: importing hookspecs stays cheap
    from pathlib import Path

    from .timeline import Timeline, Track, VideoMeta

hookspec = pluggy.HookspecMarker("framework")
hookimpl = pluggy.HookimplMarker("framework")


@hookspec
def register_analyzers(register: Callable[[type], None]) -> None:
    """Register analyzer classes: call ``register(AnalyzerSubclass)`` once per class.

    Or ``register(framework.Deferred("name", "package.module:ClassName"))``: the name is registered
    at once and the module imported only when the class is first needed, so a run that does not
    select the analyzer never imports it (the built-ins register this way).

    :param register: host callback; raises ``framework.plugins.DuplicateNameError`` if another plugin
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
def register_models(register: Callable[[Any], None]) -> None:
    """Register models-manifest entries for the plugin's own models: call ``register(entry)`` with
    a ``framework.models.ModelSpec`` or a dict of its fields (``id``, ``source``, ``locator``, ...).

    :param register: host callback; an invalid entry is a plugin problem, and an id that another
        plugin registered is an error naming both. An id the manifest file already has is an
        error naming the plugin when the manifest is loaded.
    """


@hookspec
def analysis_started(video: VideoMeta, analyzers: list[str], run_dir: Path) -> None:
    """Observer: a run of one video is about to decode and analyze.

    :param video: the probed metadata of the input file.
    :param analyzers: every analyzer of the run in execution order, including those whose
        tracks are reused from an earlier run.
    :param run_dir: the run folder.
    Guarded: an exception here is logged and the run goes on.
    """


@hookspec
def analyzer_finished(track: Track) -> None:
    """Observer: an analyzer of this run produced its ``Track`` with status ``ok`` or ``skipped``.

    Not called for tracks reused from an earlier run, nor for failures (see ``analyzer_failed``).
    Guarded: an exception here is logged and the run goes on.
    """


@hookspec
def analyzer_failed(name: str, error: str, track: Track) -> None:
    """Observer: analyzer ``name`` raised; ``track`` is its ``failed`` Track, ``error`` the reason.

    Guarded: an exception here is logged and the run goes on.
    """


@hookspec
def analysis_finished(timeline: Timeline, run_dir: Path) -> None:
    """Observer: the run's ``Timeline`` is complete and ``results.json`` and the reports are written.

    Guarded: an exception here is logged and the run goes on.
    """
