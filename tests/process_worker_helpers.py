"""Factories that ``tests/test_process_workers.py`` hands to ``framework.ProcessWorkers`` (each child
imports this module by name)."""
from __future__ import annotations

import os
from typing import Any, Callable


def scaler(settings: dict[str, Any]) -> Callable[[Any], Any]:
    """Multiplies by ``settings["factor"]``; item "boom" raises, "die" ends the process at once, "sleep"
    holds it for minutes, and "pid" answers with the child's process id."""
    factor = settings["factor"]

    def call(item: Any) -> Any:
        if isinstance(item, str):
            if item == "boom":
                raise ValueError("boom item")
            if item == "die":
                os._exit(7)
            if item == "sleep":
                import time
                time.sleep(300)
            return os.getpid()  # "pid"
        return item * factor

    return call


def broken(settings: Any) -> Any:
    raise RuntimeError("this factory cannot build its object")
