"""What is installed: the analyzers, whether each is enabled, and whether it can run here."""
from __future__ import annotations

import os
from typing import Any

from .plugins import build_plugin_manager
from .registry import find_registry, load_registry


def analyzer_inventory(registry_path: str | os.PathLike | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per registered analyzer, and the plugin problems met while loading them."""
    registry = load_registry(find_registry(registry_path))
    host = build_plugin_manager(registry.plugin_dirs)
    rows = []
    for c in sorted(registry.configure(host.analyzers), key=lambda c: c.name):
        analyzer = c.instantiate()
        reason = c.cls.check_available()
        plugin = c.cls.plugin or "?"
        dist = host.distributions.get(plugin)
        rows.append({
            "name": c.name, "enabled": c.enabled, "version": c.cls.version, "device": c.device if c.cls.device != "cpu" else "cpu",
            "models": analyzer.model_ids(),
            "plugin": "built-in" if plugin.startswith("builtin:") else plugin + (f" ({dist})" if dist else ""),
            "distribution": dist, "available": reason is None, "reason": reason or "",
            "depends_on": list(c.cls.depends_on), "description": c.cls.description,
        })
    return rows, [str(p) for p in host.problems]
