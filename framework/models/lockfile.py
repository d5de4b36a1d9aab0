"""``$FRAMEWORK_HOME/models.lock.json``: what ``pull`` fetched (revision, file sizes, hashes)."""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..timeline import atomic_write_text
from .roots import CacheRoots

LOCK_FILENAME = "models.lock.json"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def write_json_atomic(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


@dataclass
class ModelLock:
    """``$FRAMEWORK_HOME/models.lock.json``: what ``pull`` fetched (revision, file sizes, hashes)."""

    path: Path
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, roots: CacheRoots) -> "ModelLock":
        return cls(roots.framework_home / LOCK_FILENAME, _read_models(roots.framework_home / LOCK_FILENAME))

    def get(self, model_id: str) -> dict[str, Any] | None:
        return self.models.get(model_id)

    def record(self, model_id: str, entry: dict[str, Any]) -> None:
        """Record ``model_id``'s entry, merged into the lock as it is on disk now."""
        stamped = {**entry, "pulled_at": now_iso()}
        self._update(lambda models: models.__setitem__(model_id, stamped))

    def forget(self, model_ids: list[str]) -> None:
        """Drop ``model_ids`` from the lock as it is on disk now (a no-op when none is recorded)."""
        if model_ids:
            self._update(lambda models: [models.pop(m, None) for m in model_ids])

    def _update(self, change: Callable[[dict[str, dict[str, Any]]], Any]) -> None:
        """Re-read the lock under ``models.lock.json.lock``, apply ``change``, write it back, so an
        update another process made since this copy was loaded (a ``pull --update`` during a run)
        is kept. :raises OSError: the folder is not writable."""
        from filelock import FileLock  # a dependency of huggingface_hub

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            models = _read_models(self.path)
            before = json.dumps(models, sort_keys=True)
            change(models)
            if json.dumps(models, sort_keys=True) != before or not self.path.exists():
                write_json_atomic(self.path, {"version": 1, "models": models})
        self.models = models


def _read_models(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        from ..errors import ConfigError
        raise ConfigError(f"{path}: not valid JSON ({exc}); delete it and pull again to rebuild it") from None
    return dict(data.get("models", {}))

