"""Helpers for testing an analyzer plugin: run it through the real pipeline, fake an installation.

``analyzers_plugin(*classes)`` is a plugin object that registers analyzer classes.

``run_analyzer(plugin, video, folder)`` runs only the plugin's analyzers (and what they depend on)
through ``framework.runner.analyze``, exactly as ``framework run`` would, and returns the track.

``FakeSite`` writes a distribution the way pip lays it out (``<name>.dist-info`` with METADATA and
``entry_points.txt``) into a folder on ``sys.path``, so ``importlib.metadata`` discovers its entry
point for real, in-process and in a fraction of a second.
"""
from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from ..timeline import Track


def analyzers_plugin(*classes: type) -> Any:
    """A plugin object registering the analyzer ``classes`` through ``register_analyzers`` (for
    ``build_plugin_manager(extra_plugins=[...])`` or ``run_analyzer``), in place of a class written for it."""
    from ..hookspecs import hookimpl

    class _AnalyzersPlugin:
        @hookimpl
        def register_analyzers(self, register: Any) -> None:
            for cls in classes:
                register(cls)

    return _AnalyzersPlugin()


def run_analyzer(plugin: ModuleType | object, video: str | Path, folder: str | Path, name: str,
                 params: dict[str, Any] | None = None, **analyze_kwargs: Any) -> Track:
    """Run analyzer ``name`` from ``plugin`` (a module or object with ``@hookimpl`` functions) on
    ``video`` through the real pipeline, with a registry written to ``folder``; return its track.

    Installed plugins are not loaded (only ``plugin`` and the built-ins), the run folder is
    ``folder/run`` and there are no progress bars. Extra keyword arguments go to ``analyze``.
    """
    from ..plugins import build_plugin_manager
    from ..runner import analyze

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    registry = folder / "registry.yaml"
    registry.write_text(yaml.safe_dump({"analyzers": {name: {"params": params or {}}}}), encoding="utf-8")
    host = build_plugin_manager(extra_plugins=[plugin], load_entrypoints=False)
    analyze_kwargs.setdefault("progress", False)
    result = analyze(video, registry_path=registry, host=host, out_dir=folder / "run", **analyze_kwargs)
    return result.timeline.tracks[name]


class FakeSite:
    """A site folder with hand-written distributions; add it to ``sys.path`` to "install" them."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.modules: list[str] = []

    def add(self, dist: str, module: str, code: str, entry_point: str | None = None,
            version: str = "1.0") -> Path:
        """Write module ``module`` and a dist-info declaring ``[framework] entry_point = module``."""
        (self.root / f"{module}.py").write_text(textwrap.dedent(code), encoding="utf-8")
        info = self.root / f"{re.sub(r'[-.]+', '_', dist)}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[framework]\n{entry_point or module} = {module}\n")
        self.modules.append(module)
        return info

    def forget_modules(self) -> None:
        """Drop the site's modules from ``sys.modules`` (call it when the test ends)."""
        for name in self.modules:
            sys.modules.pop(name, None)
