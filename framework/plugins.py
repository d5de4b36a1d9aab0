"""build_plugin_manager(): built-ins, the ``framework`` entry-point group, and plugin folders.

A plugin that fails to import is recorded in ``host.problems`` (with its distribution) and the
rest load. Duplicate names are an error naming both plugins.

Environment:
- ``FRAMEWORK_LOAD_PLUGINS``: comma list of entry-point or distribution names to load; set but
  empty loads no installed plugin. Built-ins and plugin folders always load. A name that matches
  no installed plugin is reported as a problem.
- ``FRAMEWORK_TRACE_PLUGINS=1``: log every hook call, its plugin and its outcome on the
  ``framework.plugins.trace`` logger (INFO, shown even with ``-q``). ``0``/``false``/empty: off.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .analyzer import Analyzer
from .errors import EXIT_PLUGIN, FrameworkError

logger = logging.getLogger(__name__)
trace_logger = logging.getLogger(__name__ + ".trace")

ENTRY_POINT_GROUP = "framework"
# Modules that register the built-in pieces through the same hooks a third party uses.
# Imported by name so that framework/ never imports analyzers/ statically.
BUILTIN_MODULES = ("framework.llm", "framework.outputs", "analyzers")


class PluginError(FrameworkError):
    """A plugin broke a rule the host enforces (duplicate names, invalid registrations)."""

    exit_code = EXIT_PLUGIN


class DuplicateNameError(PluginError):
    pass


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that could not be loaded or whose hook raised."""

    plugin: str
    distribution: str | None
    error: str

    def __str__(self) -> str:
        dist = f" (distribution {self.distribution})" if self.distribution else ""
        return f"plugin {self.plugin}{dist}: {self.error}"


@dataclass(frozen=True)
class Deferred:
    """An analyzer registered by its name and where its class lives, imported when first needed.

    ``register(Deferred("blackframes", "framework_blackframes.analyzer:BlackFrames"))`` registers
    the name at once; the module is imported the first time the host is asked for the class (a
    run that selects the analyzer, ``framework analyzers list``). The built-ins register this way,
    so ``framework run --only cut_analysis`` imports one analyzer module, not all of them.
    """

    name: str
    target: str  # "package.module:ClassName"

    def load(self) -> type:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


class AnalyzerTable(MutableMapping):
    """``PluginHost.analyzers``: analyzer name -> class, where a ``Deferred`` registration is
    imported and checked on first access. Names, ``in`` and ``len`` never import anything."""

    def __init__(self, check: Callable[[type, str], None] | None = None) -> None:
        self._entries: dict[str, Any] = {}
        self._plugins: dict[str, str] = {}
        self._check = check

    def defer(self, entry: Deferred, plugin: str) -> None:
        self._entries[entry.name] = entry
        self._plugins[entry.name] = plugin

    def plugin_of(self, name: str) -> str | None:
        """The plugin that registered ``name`` (without importing a deferred class)."""
        return self._plugins.get(name)

    def __getitem__(self, name: str) -> type[Analyzer]:
        entry = self._entries[name]
        if isinstance(entry, Deferred):
            plugin = self._plugins[name]
            try:
                cls = entry.load()
            except Exception as exc:
                raise PluginError(f"plugin {plugin}: analyzer {name!r}: cannot import {entry.target} "
                                  f"({type(exc).__name__}: {exc})") from exc
            if self._check:
                self._check(cls, plugin)
            if getattr(cls, "name", None) != name:
                raise PluginError(f"plugin {plugin} registered {name!r} as {entry.target}, whose name is "
                                  f"{getattr(cls, 'name', None)!r}")
            cls.plugin = plugin
            self._entries[name] = entry = cls
        return entry

    def __setitem__(self, name: str, cls: type[Analyzer]) -> None:
        self._entries[name] = cls
        self._plugins[name] = getattr(cls, "plugin", None) or self._plugins.get(name) or "?"

    def __delitem__(self, name: str) -> None:
        del self._entries[name]
        self._plugins.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"AnalyzerTable({sorted(self._entries)})"


@dataclass
class PluginHost:
    """The loaded plugins and what they registered."""

    pm: pluggy.PluginManager
    analyzers: AnalyzerTable = field(default_factory=lambda: AnalyzerTable(_check_analyzer))
    llm_backends: dict[str, type] = field(default_factory=dict)
    exporters: dict[str, type] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)  # model id -> framework.models.ModelSpec
    model_plugins: dict[str, str] = field(default_factory=dict)  # model id -> the plugin that registered it
    problems: list[PluginProblem] = field(default_factory=list)
    distributions: dict[str, str] = field(default_factory=dict)  # plugin name -> distribution
    trace: bool = False

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call an observer hook on every plugin; an exception in one is logged, not raised."""
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            try:
                self._call(impl, hook, kwargs)
            except Exception as exc:  # noqa: BLE001 - observers must not stop a run
                logger.warning("observer %s of %s raised %s: %s (the run goes on)", hook,
                               self.describe(impl.plugin_name), type(exc).__name__, exc)

    def _call(self, impl: Any, hook: str, kwargs: dict[str, Any]) -> Any:
        wanted = {k: v for k, v in kwargs.items() if k in impl.argnames}
        if self.trace:
            trace_logger.info("hook %s -> %s(%s)", hook, self.describe(impl.plugin_name), ", ".join(wanted))
        try:
            result = impl.function(**wanted)
        except Exception as exc:
            if self.trace:
                trace_logger.info("hook %s <- %s raised %s: %s", hook, impl.plugin_name, type(exc).__name__, exc)
            raise
        if self.trace:
            trace_logger.info("hook %s <- %s returned %r", hook, impl.plugin_name, result)
        return result

    def plugin_of(self, name: str) -> str:
        """The plugin that registered analyzer ``name``."""
        return self.analyzers.plugin_of(name) or "?"

    def describe(self, plugin: str | None) -> str:
        """``plugin NAME (distribution DIST)``: how errors and traces name a plugin."""
        dist = self.distributions.get(plugin or "")
        return f"plugin {plugin or '?'}" + (f" (distribution {dist})" if dist else "")

    def origin(self, analyzer: str) -> str:
        """Where analyzer ``analyzer`` comes from, e.g. ``plugin blackframes (distribution framework-blackframes)``."""
        return self.describe(self.plugin_of(analyzer) if analyzer in self.analyzers else None)


def build_plugin_manager(plugin_dirs: Iterable[str | os.PathLike] = (),
                         load_entrypoints: bool = True,
                         extra_plugins: Iterable[Any] = ()) -> PluginHost:
    """Load built-ins, installed plugins and plugin folders; collect their registrations.

    :param plugin_dirs: folders whose ``*.py`` files and packages are loaded as plugins.
    :param load_entrypoints: load the ``framework`` entry-point group (tests turn this off).
    :param extra_plugins: already-imported plugin objects (modules or instances) to register.
    :raises DuplicateNameError: two plugins registered the same analyzer/backend/exporter name.
    """
    pm = pluggy.PluginManager("framework")
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm=pm, trace=_env_flag("FRAMEWORK_TRACE_PLUGINS"))
    if host.trace:
        trace_logger.setLevel(logging.INFO)  # the user asked for it: show it whatever -q says
        pm.trace.root.setwriter(lambda msg: trace_logger.info("pluggy: %s", msg.rstrip()))
        pm.enable_tracing()  # covers hooks called through pm.hook.<name>(...)

    for module_name in BUILTIN_MODULES:
        _guarded_register(host, f"builtin:{module_name}", None, lambda m=module_name: importlib.import_module(m))
    if load_entrypoints:
        _load_entrypoints(host)
    for folder in plugin_dirs:
        _load_folder(host, Path(folder))
    for i, plugin in enumerate(extra_plugins):
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{i}"
        pm.register(plugin, name=name)

    _collect(host, "register_analyzers", host.analyzers, "analyzer", _check_analyzer)
    _collect(host, "register_llm_backends", host.llm_backends, "LLM backend", None)
    _collect(host, "register_exporters", host.exporters, "exporter", None)
    _collect_models(host)
    for problem in host.problems:
        logger.warning("%s", problem)
    return host


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _normalize(name: str) -> str:
    """PEP 503 form, so ``Framework_Foo`` in FRAMEWORK_LOAD_PLUGINS matches ``framework-foo``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _allowed_plugins() -> set[str] | None:
    raw = os.environ.get("FRAMEWORK_LOAD_PLUGINS")
    if raw is None:
        return None
    return {_normalize(p.strip()) for p in raw.split(",") if p.strip()}


def _load_entrypoints(host: PluginHost) -> None:
    allowed = _allowed_plugins()
    seen: set[str] = set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else None
        names = {_normalize(ep.name), _normalize(dist or "")}
        if allowed is not None and not names & allowed:
            continue
        seen |= names
        if host.pm.has_plugin(ep.name):
            host.problems.append(PluginProblem(
                ep.name, dist, f"not loaded: {host.describe(ep.name)} already uses the entry-point name "
                               f"{ep.name!r}; uninstall one of them"))
            continue
        _guarded_register(host, ep.name, dist, ep.load)
    for missing in sorted((allowed or set()) - seen):
        host.problems.append(PluginProblem(
            missing, None, "named in FRAMEWORK_LOAD_PLUGINS but no installed plugin has that entry-point "
                           "or distribution name (check `pip list` and the spelling)"))


def _load_folder(host: PluginHost, folder: Path) -> None:
    if not folder.is_dir():
        host.problems.append(PluginProblem(str(folder), None, "plugin directory does not exist"))
        return
    for path in sorted(folder.iterdir()):
        if path.name.startswith(("_", ".")):
            continue
        if path.is_dir() and (path / "__init__.py").exists():
            target = path / "__init__.py"
        elif path.suffix == ".py":
            target = path
        else:
            continue
        module_name = f"framework_plugin_dir_{abs(hash(str(path)))}_{path.stem}"
        _guarded_register(host, f"{path.stem} ({path})", None,
                          lambda t=target, m=module_name: _import_file(m, t))


def _import_file(module_name: str, path: Path) -> Any:
    package_dir = [str(path.parent)] if path.name == "__init__.py" else None
    spec = importlib.util.spec_from_file_location(module_name, path, submodule_search_locations=package_dir)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _guarded_register(host: PluginHost, name: str, dist: str | None, load: Callable[[], Any]) -> None:
    try:
        plugin = load()
        host.pm.register(plugin, name=name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - one broken plugin must not stop the others
        host.problems.append(PluginProblem(name, dist, f"failed to load: {type(exc).__name__}: {exc}"))
        return
    if dist:
        host.distributions[name] = dist
    callers = host.pm.get_hookcallers(plugin) or []
    unknown = sorted(c.name for c in callers if not c.has_spec())
    if unknown or not callers:
        known = ", ".join(sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "framework_spec")))
        what = f"implements unknown hook(s) {', '.join(unknown)}" if unknown else \
            "implements no hook (did you forget @hookimpl?)"
        host.problems.append(PluginProblem(name, dist, f"{what}; the hooks are: {known}"))


def _collect(host: PluginHost, hook: str, table: MutableMapping[str, Any], kind: str,
             check: Callable[[type, str], None] | None) -> None:
    for impl in getattr(host.pm.hook, hook).get_hookimpls():  # registration order: built-ins first
        plugin_name = impl.plugin_name

        def register(cls: Any, _plugin: str = plugin_name) -> None:
            deferred = isinstance(cls, Deferred)
            if deferred and not isinstance(table, AnalyzerTable):
                raise PluginError(f"plugin {_plugin} registered {kind} {cls.name!r} as Deferred; only analyzers "
                                  "can be deferred: register the class")
            name = getattr(cls, "name", "")
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {_plugin} registered {kind} {cls!r} without a name")
            if check and not deferred:
                check(cls, _plugin)
            if name in table:
                other = table.plugin_of(name) if isinstance(table, AnalyzerTable) else getattr(table[name], "plugin", None)
                raise DuplicateNameError(
                    f"{kind} {name!r} is registered twice: by {host.describe(other)} and by "
                    f"{host.describe(_plugin)}; uninstall one or limit plugins with FRAMEWORK_LOAD_PLUGINS")
            if deferred:
                table.defer(cls, _plugin)
                return
            cls.plugin = _plugin
            table[name] = cls

        try:
            host._call(impl, hook, {"register": register})
        except DuplicateNameError:
            raise
        except Exception as exc:  # noqa: BLE001
            host.problems.append(PluginProblem(plugin_name, host.distributions.get(plugin_name),
                                               f"{hook} raised {type(exc).__name__}: {exc}"))


def _check_analyzer(cls: type, plugin: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Analyzer)):
        raise PluginError(f"plugin {plugin} registered {cls!r}, which is not a framework.Analyzer subclass")


def _collect_models(host: PluginHost) -> None:
    """``register_models``: validate each entry as a ``ModelSpec``; one plugin's bad entry is its problem."""
    impls = host.pm.hook.register_models.get_hookimpls()
    if not impls:
        return
    from pydantic import ValidationError

    from .models.manifest import ModelSpec

    for impl in impls:
        plugin_name = impl.plugin_name
        pending: dict[str, ModelSpec] = {}  # kept only if the plugin's hook returns without error

        def register(entry: Any, _plugin: str = plugin_name, _pending: dict = pending) -> None:
            try:
                spec = entry if isinstance(entry, ModelSpec) else ModelSpec.model_validate(entry)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "entry"
                mid = entry.get("id", "?") if isinstance(entry, dict) else "?"
                raise PluginError(f"model {mid!r}: {where}: {first['msg']} ({len(exc.errors())} problem(s); "
                                  "fields as in models_manifest.yaml, plus id)") from None
            if spec.id in _pending:
                raise PluginError(f"model {spec.id!r} is registered twice by {host.describe(_plugin)}")
            if spec.id in host.models:
                raise DuplicateNameError(
                    f"model {spec.id!r} is registered twice: by {host.describe(host.model_plugins[spec.id])} and "
                    f"by {host.describe(_plugin)}; uninstall one or limit plugins with FRAMEWORK_LOAD_PLUGINS")
            _pending[spec.id] = spec

        try:
            host._call(impl, "register_models", {"register": register})
        except DuplicateNameError:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the others
            host.problems.append(PluginProblem(plugin_name, host.distributions.get(plugin_name),
                                               f"register_models raised {type(exc).__name__}: {exc}; "
                                               "none of its models were registered"))
            continue
        host.models.update(pending)
        host.model_plugins.update({mid: plugin_name for mid in pending})
