"""registry.yaml -> validated configuration.

Two phases, because plugin folders named in the file must load before analyzer names can be
checked: ``load_registry(path)`` validates the file's structure; ``Registry.configure(host)``
checks analyzer names and each analyzer's ``Params``. Every error names the file, the key and
the line, and lists the valid choices.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Collection, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .analyzer import Analyzer
from .yamlio import ConfigError, format_validation_error, line_of, load_yaml

REGISTRY_FILENAME = "registry.yaml"


class RegistryError(ConfigError):
    """registry.yaml is wrong: the message names the file, key and line."""


class AnalyzerEntry(BaseModel):
    """One analyzer's block under ``analyzers:``."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    device: Literal["cpu", "gpu", "auto"] | None = None
    # a process of its own in runs that use a GPU (``Analyzer.own_process``); None: the analyzer's default
    own_process: bool | None = None
    # its CUDA stream's priority on a GPU (``Analyzer.gpu_stream_priority``); None: the analyzer's default
    gpu_stream_priority: Literal["low", "normal", "high"] | None = None
    # an audio-only analyzer waits for the video's decode too (``Analyzer.wait_for_video``); None: its default
    wait_for_video: bool | None = None
    # "low": in a process of its own, its CPU work yields to the rest of the run's (``Analyzer.cpu_priority``)
    cpu_priority: Literal["normal", "low"] | None = None
    # its model's load takes the first load turn there is (``Analyzer.load_first``); None: the analyzer's default
    load_first: bool | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class RegistryFile(BaseModel):
    """The top level of registry.yaml."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    plugin_dirs: list[str] = Field(default_factory=list)
    device: Literal["cpu", "gpu", "auto"] = "auto"
    vram_budget_gb: float | None = Field(default=None, gt=0)
    # the run's GPU processes as clients of one MPS server of the run's own (``framework.mps``; --mps / --no-mps)
    mps: bool = False
    exports: list[str] | None = None  # exporter names a run writes (None: every registered one)
    analyzers: dict[str, AnalyzerEntry | None] = Field(default_factory=dict)


#: the keys of an analyzer's registry entry that override a class attribute of the same name
CLASS_OVERRIDES = ("own_process", "gpu_stream_priority", "wait_for_video", "cpu_priority", "load_first")


@dataclass(frozen=True)
class ConfiguredAnalyzer:
    """An analyzer class with validated params and where it should run."""

    name: str
    cls: type[Analyzer]
    params: BaseModel
    enabled: bool
    device: str
    host: Any = field(default=None, repr=False, compare=False)  # the PluginHost the class came from
    own_process: bool | None = None  # registry.yaml's choice over the class's ``own_process`` (None: the class's)
    gpu_stream_priority: str | None = None  # registry.yaml's over the class's ``gpu_stream_priority`` (None: the class's)
    wait_for_video: bool | None = None  # registry.yaml's over the class's ``wait_for_video`` (None: the class's)
    cpu_priority: str | None = None  # registry.yaml's over the class's ``cpu_priority`` (None: the class's)
    load_first: bool | None = None  # registry.yaml's over the class's ``load_first`` (None: the class's)

    def instantiate(self) -> Analyzer:
        """The analyzer with its params, told the plugin host (what other plugins registered)."""
        analyzer = self.cls(self.params)
        if self.host is not None:
            analyzer.host = self.host
        for key in CLASS_OVERRIDES:  # registry.yaml's choices over the class's, on this instance only
            if getattr(self, key) is not None:
                setattr(analyzer, key, getattr(self, key))
        return analyzer


@dataclass
class Registry:
    """A loaded registry.yaml (or the defaults when there is none)."""

    path: Path | None
    config: RegistryFile
    lines: dict[tuple, int]

    @property
    def plugin_dirs(self) -> list[Path]:
        base = self.path.parent if self.path else Path.cwd()
        return [(base / os.path.expanduser(d)).resolve() for d in self.config.plugin_dirs]

    def _where(self, *loc: Any) -> str:
        line = line_of(self.lines, loc)
        return f"{self.path or '(defaults)'}:{line or '?'}"

    def configure(self, available: Mapping[str, type[Analyzer]], host: Any = None,
                  names: Collection[str] | None = None) -> list[ConfiguredAnalyzer]:
        """Validate analyzer names and params against the registered analyzers (``host``: the
        ``PluginHost`` they come from, handed to each instance as ``Analyzer.host``).

        Analyzers the file does not mention use their class default (``enabled_by_default``)
        when there is no registry file, and are disabled when there is one. With a ``host``,
        ``exports:`` is checked against its exporters too (``select_exporters``).

        ``names``: configure only these analyzers (``runner.needed_analyzers``: what ``--only``
        can run); the file's other entries are checked for unknown names alone, and no other
        analyzer's class is imported. ``None``: every registered analyzer.
        """
        if host is not None and isinstance(getattr(host, "exporters", None), dict):
            self.select_exporters(host.exporters)  # an unknown export format fails before any decoding
        valid = ", ".join(sorted(available)) or "(none registered)"
        problems: list[str] = []
        out: list[ConfiguredAnalyzer] = []
        for name, entry in self.config.analyzers.items():
            if name not in available:
                problems.append(f"{self._where('analyzers', name)}: analyzers.{name}: unknown analyzer; "
                                f"valid names: {valid}")
                continue
            if names is not None and name not in names:
                continue
            entry = entry or AnalyzerEntry()
            cls = available[name]
            try:
                params = cls.Params.model_validate(entry.params)
            except ValidationError as exc:
                problems.append(format_validation_error(self.path or Path("(defaults)"), exc, self.lines,
                                                        prefix=("analyzers", name, "params")))
                continue
            out.append(ConfiguredAnalyzer(name, cls, params, entry.enabled, entry.device or self.config.device, host,
                                          **{key: getattr(entry, key) for key in CLASS_OVERRIDES}))
        if problems:
            raise RegistryError("\n".join(problems))
        listed = {c.name for c in out}
        for name in sorted(available):
            if name not in listed and (names is None or name in names):
                cls = available[name]
                out.append(ConfiguredAnalyzer(name, cls, cls.Params(),
                                              self.path is None and cls.enabled_by_default,
                                              self.config.device, host))
        return out

    def select_exporters(self, available: dict[str, type]) -> list[str] | None:
        """The exporter names ``exports:`` lists (``None`` when the key is absent: every exporter).

        :param available: the registered exporters (``PluginHost.exporters``), plugins' included.
        :raises RegistryError: a name no exporter has; the message names the file, line and key.
        """
        names = self.config.exports
        if names is None:
            return None
        valid = ", ".join(sorted(available)) or "(none registered)"
        problems = [f"{self._where('exports', i)}: exports[{i}]: unknown export format {name!r}; valid names: {valid}"
                    for i, name in enumerate(names) if name not in available]
        if problems:
            raise RegistryError("\n".join(problems))
        return list(dict.fromkeys(names))


def find_registry(explicit: str | os.PathLike | None = None) -> Path | None:
    """``--registry`` if given, else ./registry.yaml, else $FRAMEWORK_HOME/registry.yaml, else None."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise RegistryError(f"{path}: registry file not found (pass an existing file to --registry)")
        return path
    candidates = [Path.cwd() / REGISTRY_FILENAME]
    home = os.environ.get("FRAMEWORK_HOME")
    if home:
        candidates.append(Path(home) / REGISTRY_FILENAME)
    return next((c for c in candidates if c.is_file()), None)


def load_registry(path: str | os.PathLike | None = None) -> Registry:
    """Load and structurally validate a registry file (``None`` gives the built-in defaults)."""
    if path is None:
        return Registry(None, RegistryFile(), {})
    path = Path(path)
    try:
        data, lines = load_yaml(path)
    except ConfigError as exc:
        raise RegistryError(str(exc)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RegistryError(f"{path}:1: the top level must be a mapping with keys such as 'analyzers'")
    try:
        config = RegistryFile.model_validate(data)
    except ValidationError as exc:
        msg = format_validation_error(path, exc, lines)
        valid = ", ".join(RegistryFile.model_fields)
        if "unknown key" in msg:
            msg += f"\n(valid top-level keys: {valid}; analyzer keys: {', '.join(AnalyzerEntry.model_fields)})"
        raise RegistryError(msg) from None
    return Registry(path, config, lines)
