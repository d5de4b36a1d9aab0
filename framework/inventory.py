"""What is installed: the analyzers, whether each is enabled, and whether it can run here,
including which of its models are missing from the local cache."""
from __future__ import annotations

import os
from typing import Any

from .plugins import build_plugin_manager
from .registry import find_registry, load_registry


def analyzer_inventory(registry_path: str | os.PathLike | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per registered analyzer, and the plugin problems met while loading them.

    Each row's ``models_missing`` lists the manifest ids (with what they require) that are not
    cached, ``models_unknown`` the ids no manifest entry or plugin defines; ``can_run`` is
    ``available`` (the analyzer's own check) and, unless its models are optional, nothing missing.
    ``run_note`` says it in words, with the ``framework models pull`` command when models are missing.
    """
    registry = load_registry(find_registry(registry_path))
    host = build_plugin_manager(registry.plugin_dirs)
    configured = sorted(registry.configure(host.analyzers, host), key=lambda c: c.name)
    analyzers = {c.name: c.instantiate() for c in configured}
    missing_of = _missing_models(analyzers, host)
    rows = []
    for c in configured:
        analyzer = analyzers[c.name]
        reason = c.cls.check_available()
        plugin = c.cls.plugin or "?"
        dist = host.distributions.get(plugin)
        missing, unknown = missing_of.get(c.name, ([], []))
        blocked = bool(unknown) or (bool(missing) and not c.cls.models_optional)
        rows.append({
            "name": c.name, "enabled": c.enabled, "version": c.cls.version, "device": c.device if c.cls.device != "cpu" else "cpu",
            "models": analyzer.model_ids(),
            "plugin": "built-in" if plugin.startswith("builtin:") else plugin + (f" ({dist})" if dist else ""),
            "distribution": dist, "available": reason is None, "reason": reason or "",
            "models_missing": missing, "models_unknown": unknown,
            "can_run": reason is None and not blocked,
            "run_note": _run_note(reason, missing, unknown, c.cls.models_optional),
            "depends_on": list(c.cls.depends_on), "description": c.cls.description,
        })
    return rows, [str(p) for p in host.problems]


def _missing_models(analyzers: dict[str, Any], host: Any) -> dict[str, tuple[list[str], list[str]]]:
    """Analyzer name -> (model ids not cached, model ids no manifest entry defines)."""
    ids = {name: list(a.model_ids()) for name, a in analyzers.items()}
    if not any(ids.values()):
        return {}
    from .models import load_manifest
    from .models.lockfile import ModelLock
    from .models.roots import CacheRoots

    manifest = load_manifest(host=host)
    roots = CacheRoots.from_env()
    lock = ModelLock.load(roots)
    cached: dict[str, bool] = {}
    out = {}
    for name, wanted in ids.items():
        known = manifest.with_requirements(m for m in wanted if m in manifest)
        for mid in known:
            if mid not in cached:
                spec = manifest[mid]
                cached[mid] = spec.handler.local_path(spec, roots, lock) is not None
        out[name] = ([m for m in known if not cached[m]], [m for m in wanted if m not in manifest])
    return out


def _run_note(reason: str | None, missing: list[str], unknown: list[str], optional: bool) -> str:
    if reason:
        return f"no: {reason}"
    if unknown:
        return f"no: model id(s) {', '.join(unknown)} in no manifest entry"
    if missing and optional:
        return f"yes, without {', '.join(missing)} (not cached: framework models pull {' '.join(missing)})"
    if missing:
        return (f"not until fetched: {', '.join(missing)} not cached (framework models pull {' '.join(missing)}; "
                "a run fetches them on first use unless offline)")
    return "yes"
