"""Measured peaks and speeds of past runs, preferred over the manifest's estimates in later plans.

Stored in ``$FRAMEWORK_HOME/measurements.json``, one entry per analyzer version, model set,
variant and device kind::

    {"qwen2_vl_temporal@1.0.0|qwen2-vl-7b-instruct|bf16|cuda":
        {"peak_vram_mb": 36410.4, "peak_batch": 64, "seconds_per_video_s": 0.012, "runs": 3,
         "updated": 1764370000.0}}

A peak is recorded only when the analyzer had its GPU to itself (``measured_alone``), since the
device's allocation counter cannot tell two models apart; ``peak_batch`` is the largest batch it ran
then (the plan subtracts the other items' working memory: ``runner.measured_one_item_mb``), and
``peak_group`` the prefill group it ran them in, for an analyzer that prefills its batches in groups.
Written atomically under a file lock, so two runs finishing together both land.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping

logger = logging.getLogger(__name__)

FILE_NAME = "measurements.json"


def measurement_key(analyzer: str, version: str, model_ids: list[str], variant: str | None, device: str) -> str:
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return f"{analyzer}@{version}|{','.join(sorted(model_ids))}|{variant or '-'}|{kind}"


class Measurements:
    """The measurements file: ``get`` for planning, ``record`` after a run."""

    def __init__(self, home: Path | None = None, env: Mapping[str, str] = os.environ):
        if home is None:
            from .models.roots import framework_home

            home = framework_home(env)
        self.path = Path(home) / FILE_NAME
        self._data: dict[str, dict[str, Any]] | None = None

    @property
    def data(self) -> dict[str, dict[str, Any]]:
        if self._data is None:
            try:
                self._data = json.loads(self.path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                self._data = {}
            except (OSError, ValueError) as exc:
                logger.warning("ignoring unreadable %s (%s): plans use the manifest's estimates", self.path, exc)
                self._data = {}
        return self._data

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def record(self, updates: dict[str, dict[str, Any]]) -> None:
        """Merge measured values (``peak_vram_mb``, ``seconds_per_video_s``) into the file."""
        if not updates:
            return
        from filelock import FileLock

        from .timeline import atomic_write_text

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock", timeout=30):
            self._data = None  # re-read under the lock: another run may have written
            data = dict(self.data)
            for key, values in updates.items():
                entry = dict(data.get(key, {}))
                entry.update({k: round(v, 4) for k, v in values.items() if v is not None})
                entry["runs"] = int(entry.get("runs", 0)) + 1
                entry["updated"] = round(time.time(), 1)
                data[key] = entry
            atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True))
            self._data = data
