"""Built-in analyzers, one module each, registered through the same ``register_analyzers``
hook a third-party plugin uses.

Every module in this package is imported when the hook runs and each ``Analyzer`` subclass it
defines (with a ``name``) is registered. Importing an analyzer module loads no model and does
no I/O: heavy imports belong in ``Analyzer.load``.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

from framework import Analyzer, hookimpl


def analyzer_classes() -> list[type[Analyzer]]:
    """The built-in analyzer classes, in module order."""
    found: list[type[Analyzer]] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Analyzer) and obj is not Analyzer and obj.__module__.startswith(module.__name__) and obj.name:
                found.append(obj)
    return found


@hookimpl
def register_analyzers(register):
    for cls in analyzer_classes():
        register(cls)
