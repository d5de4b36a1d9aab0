"""What ``framework models list`` shows, built here so the CLI only renders it.

``open_models`` loads the active registry's plugins once, the manifest with the entries those
plugins register, the usage of every model, the cache scan and the pull lock.
``model_listing`` turns that into rows (one per model), the unknown cached repos and totals.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError
from .cache import CacheScan, scan_cache
from .lockfile import ModelLock
from .manifest import Manifest, load_manifest
from .roots import CacheRoots
from .usage import ModelUsage, model_usage


@dataclass
class ModelsContext:
    """Everything the ``framework models`` commands work from.

    :ivar problems: plugin problems met while loading the registry's plugins.
    """

    manifest: Manifest
    roots: CacheRoots
    scan: CacheScan
    usage: ModelUsage
    registry: Path | None
    problems: list[str]
    lock: ModelLock


def open_models(registry_path: str | os.PathLike | None = None, manifest_path: str | os.PathLike | None = None,
                extra_plugins: Iterable[Any] = (), scan: bool = True) -> ModelsContext:
    """Load plugins (from the active registry), the manifest plus plugin entries, usage and cache state.

    :raises framework.errors.ConfigError: the registry or the manifest is invalid, or a plugin
        registers a model id the manifest already has.
    """
    from ..plugins import build_plugin_manager
    from ..registry import find_registry, load_registry

    reg_path = find_registry(registry_path)
    registry = load_registry(reg_path)
    host = build_plugin_manager(registry.plugin_dirs, extra_plugins=extra_plugins)
    manifest = load_manifest(manifest_path, host=host)
    usage = model_usage(registry.configure(host.analyzers, host), manifest)
    roots = CacheRoots.from_env()
    cache = scan_cache(manifest, roots) if scan else CacheScan(roots, {}, [])
    return ModelsContext(manifest, roots, cache, usage, reg_path, [str(p) for p in host.problems],
                         ModelLock.load(roots))


@dataclass
class ModelListing:
    """``framework models list``: one row per model, unknown cached HF repos, totals, warnings."""

    rows: list[dict[str, Any]]
    unknown: list[dict[str, Any]]
    totals: dict[str, int]
    warnings: list[str] = field(default_factory=list)


def model_listing(ctx: ModelsContext, cached_only: bool = False) -> ModelListing:
    """Build the rows of ``framework models list`` (``--json`` prints them as they are)."""
    from .prune import plan_prune

    warnings = ctx.problems + ctx.usage.problems() + ctx.scan.warnings
    try:
        plan = plan_prune(ctx.manifest, ctx.scan, ctx.usage)
        prunable = {i.id: i for i in plan.items}
    except ConfigError as exc:
        plan, prunable = None, {}
        warnings.append(f"prune is blocked: {exc}")
    rows = []
    for spec in ctx.manifest:
        cm = ctx.scan.models[spec.id]
        if cached_only and not cm.cached:
            continue
        item = prunable.get(spec.id)
        rows.append({
            "id": spec.id, "source": spec.source, "locator": spec.locator, "revision": spec.revision,
            "pin_status": spec.pin_status, "locked_revision": (ctx.lock.get(spec.id) or {}).get("revision"),
            "expected_size_bytes": spec.size_bytes, "size_approximate": spec.size_approximate,
            "cached": cm.cached, "size_on_disk": cm.size_on_disk, "paths": [str(p) for p in cm.paths],
            "enabled_analyzers": ctx.usage.enabled.get(spec.id, []),
            "disabled_analyzers": ctx.usage.disabled.get(spec.id, []),
            "prunable": bool(item and item.action == "delete"),
            "prune_action": item.action if item else None, "prune_reason": item.reason if item else None,
            "partial": cm.partial, "busy": cm.busy, "license": spec.license, "task": spec.task,
            "vram_gb": spec.vram_gb, "instruction_tuned": spec.instruction_tuned,
            "package_version": cm.package_version, "origin": ctx.manifest.origin(spec.id),
        })
    unknown = [{"repo_id": u.repo_id, "path": str(u.path), "size_on_disk": u.size_on_disk,
                "revisions": u.revisions, "busy": u.busy} for u in ctx.scan.unknown]
    totals = {
        "models": len(rows), "cached": sum(r["cached"] for r in rows),
        "expected_bytes": sum(r["expected_size_bytes"] or 0 for r in rows),
        "cached_bytes": sum(r["size_on_disk"] for r in rows),
        "reclaimable_bytes": plan.reclaimable if plan else 0,
        "unknown_repos": len(unknown), "unknown_bytes": sum(u["size_on_disk"] for u in unknown),
    }
    return ModelListing(rows, unknown, totals, warnings)
