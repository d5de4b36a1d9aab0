"""``$FRAMEWORK_HOME/models.lock.json``: what ``pull`` fetched (revision, file sizes, hashes)."""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        path = roots.framework_home / LOCK_FILENAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except ValueError as exc:
            from ..errors import ConfigError
            raise ConfigError(f"{path}: not valid JSON ({exc}); delete it and pull again to rebuild it") from None
        return cls(path, dict(data.get("models", {})))

    def get(self, model_id: str) -> dict[str, Any] | None:
        return self.models.get(model_id)

    def record(self, model_id: str, entry: dict[str, Any]) -> None:
        self.models[model_id] = {**entry, "pulled_at": now_iso()}
        write_json_atomic(self.path, {"version": 1, "models": self.models})

    def forget(self, model_ids: list[str]) -> None:
        if any(m in self.models for m in model_ids):
            for m in model_ids:
                self.models.pop(m, None)
            write_json_atomic(self.path, {"version": 1, "models": self.models})

