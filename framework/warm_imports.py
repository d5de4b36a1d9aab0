"""Slow imports done on a background thread while the run does something else.

Exporters (``Exporter.warm_imports``: OpenTimelineIO) and analyzers (``Analyzer.warm_imports``:
transformers' model code, ultralytics, open_clip) name the modules their work will import. A run
imports them on a daemon thread while the video decodes, work that mostly runs outside the
interpreter's lock, instead of on the critical path: the first analyzer to load a transformers
model imported its model code for 15-28 s beside the other analyzers' threads on an H200 machine.

Python's per-module import locks make an ``import`` of the same module elsewhere wait for this
one instead of importing it twice. Libraries that import lazily (transformers) are not safe to
import from two threads at once, so the analyzers' warm-up imports each module inside a load turn
(``turn``: ``framework.executor.LoadTurns``), and a model's load waits only for the module being
imported, never beside one.

Some packages cannot be imported for the first time from two threads at once at all: two CPU
analyzers each importing a part of scipy (``scipy.signal``, ``scipy.ndimage``) while its lazy
top-level module is half initialized failed one of them with ``KeyError: 'scipy'`` (one run in 24 on
the H200 machine; 31 fresh processes of 40 with 8 such threads here). ``import_before_threads``
imports those packages' top levels on the calling thread before a run starts its threads (9 ms
for scipy), after which the same race passed 100 times in 100. An analyzer's own process
(``framework.own_process``) does the same when it starts, before its analyzer's threads.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import threading
from importlib.util import find_spec
from typing import Any, Callable, ContextManager, Iterable

from . import thread_settings

logger = logging.getLogger(__name__)

# packages whose first import from two threads at once can fail (module docstring), imported up front
IMPORT_BEFORE_THREADS = ("scipy",)


def import_before_threads(packages: Iterable[str] = IMPORT_BEFORE_THREADS) -> list[str]:
    """Import those of ``packages`` that are installed and not yet imported, here on the calling thread;
    returns the names imported. Call it before starting threads that may import them. One that fails
    to import is skipped and left for the code that needs it to report (``import_each``)."""
    todo = [p for p in packages if p not in sys.modules and find_spec(p) is not None]
    import_each(todo)
    return [p for p in todo if p in sys.modules]


def warm_up_imports(classes: Iterable[type], name: str = "exporter-imports",
                    turn: Callable[[str], ContextManager[Any]] | None = None) -> threading.Thread | None:
    """Import the ``warm_imports`` of ``classes`` on a daemon thread (started here and returned;
    ``None`` when there is nothing to import), each module inside ``turn(module)`` when given. A module
    that fails to import is skipped here and left for the code that needs it to report."""
    modules = list(dict.fromkeys(m for c in classes for m in getattr(c, "warm_imports", ())))
    modules = [m for m in modules if m not in sys.modules]
    if not modules:
        return None
    thread = threading.Thread(target=import_each, args=(modules, turn), name=name, daemon=True)
    thread.start()
    return thread


def import_each(modules: Iterable[str], turn: Callable[[str], ContextManager[Any]] | None = None) -> None:
    """Import ``modules`` in order, each inside ``turn(module)`` when given. A module that fails to import
    is skipped and left for the code that needs it to report. The threads an import sets for the
    whole process are put back (``thread_settings``)."""
    for module in modules:
        try:
            with turn(module) if turn is not None else contextlib.nullcontext(), thread_settings.kept(f"importing {module}"):
                importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - the code that needs it reports a missing module
            logger.debug("warming up %s: %s", module, exc)
