"""models_manifest.yaml -> validated ``ModelSpec`` entries, and which analyzers use each model.

The manifest says where a model comes from (``source`` + ``locator``), its pinned revision, its
approximate size, VRAM by precision, license and task. It does not say which analyzers use a
model: that comes from each analyzer's declared model ids (``Analyzer.model_ids()``), through
``model_usage``. Every error names the manifest file and line.

Example::

    manifest = load_manifest()                      # the file shipped with the framework
    spec = manifest["qwen2.5-1.5b-instruct"]
    spec.source, spec.locator, spec.vram_gb         # ('huggingface', 'Qwen/Qwen2.5-1.5B-Instruct', {...})
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Literal
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .registry import ConfiguredAnalyzer
from .yamlio import ConfigError, format_validation_error, load_yaml

MANIFEST_FILENAME = "models_manifest.yaml"
Source = Literal["huggingface", "ultralytics", "whisper", "easyocr", "url", "bundled"]
Precision = Literal["fp32", "fp16", "bf16", "int8", "int4"]

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_HF_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_CHECKSUM_RE = re.compile(r"^(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})$")
_PACKAGE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ManifestError(ConfigError):
    """models_manifest.yaml is wrong: the message names the file, the key and the line."""


def _plain_filename(name: str, what: str) -> str:
    """A single file name: no folder, no ``..``, nothing that could leave a cache folder."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ValueError(f"{what} must be a plain file name (no '/', '\\' or '..'), got {name!r}")
    return name


def _safe_relpath(path: str, what: str) -> str:
    p = PurePosixPath(path)
    if not path or p.is_absolute() or any(part in ("..", "") for part in path.split("/")) or "\\" in path:
        raise ValueError(f"{what} must be a relative path inside the package without '..', got {path!r}")
    return path


class ModelSpec(BaseModel):
    """One manifest entry. Field reference: docs/models.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    source: Source
    locator: str = Field(description="repo id, asset file name, whisper model name, EasyOCR file, URL, or package")
    revision: str | None = Field(None, description="a 40-hex commit for huggingface; null = unpinned")
    size_bytes: int | None = Field(None, ge=0)
    size_approximate: bool = True
    vram_gb: dict[Precision, float] = Field(default_factory=dict)
    license: str
    task: str
    description: str = ""
    instruction_tuned: bool | None = None
    requires: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # huggingface: other repo ids the same weights are cached under
    ignore: tuple[str, ...] = ()   # huggingface: file patterns `pull` skips
    paths: tuple[str, ...] = ()    # bundled: folders/files inside the package
    checksums: dict[str, str] = Field(default_factory=dict)  # file name -> "sha256:<hex>" | "md5:<hex>"

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError(f"model id {v!r} must be a lowercase slug such as 'qwen2-vl-7b-instruct'")
        return v

    @field_validator("vram_gb")
    @classmethod
    def _vram(cls, v: dict[str, float]) -> dict[str, float]:
        for k, gb in v.items():
            if gb <= 0:
                raise ValueError(f"vram_gb.{k} must be > 0")
        return v

    @field_validator("checksums")
    @classmethod
    def _checksums(cls, v: dict[str, str]) -> dict[str, str]:
        for name, digest in v.items():
            _plain_filename(name, "a checksums key")
            if not _CHECKSUM_RE.match(digest):
                raise ValueError(f"checksum of {name} must be 'sha256:<64 hex>' or 'md5:<32 hex>', got {digest!r}")
        return v

    @model_validator(mode="after")
    def _per_source(self) -> "ModelSpec":
        s, loc = self.source, self.locator
        if s != "huggingface" and (self.aliases or self.ignore):
            raise ValueError("aliases and ignore apply only to source: huggingface")
        if s != "bundled" and self.paths:
            raise ValueError("paths applies only to source: bundled")
        if s == "huggingface":
            for repo in (loc, *self.aliases):
                if not _HF_REPO_RE.match(repo) or ".." in repo:
                    raise ValueError(f"locator/alias {repo!r} is not a Hugging Face repo id like 'org/name'")
            if self.revision is not None and not _COMMIT_RE.match(self.revision):
                raise ValueError(f"revision {self.revision!r} is not a 40-hex commit hash; a branch such as "
                                 "'main' is not a pin: use null (unpinned; `pull` records the commit it fetched)")
        elif self.revision is not None:
            raise ValueError(f"revision applies only to source: huggingface (source is {s})")
        if s in ("ultralytics", "easyocr"):
            _plain_filename(loc, "locator")
        elif s == "whisper":
            if not re.match(r"^[a-z0-9][a-z0-9.-]*$", loc) or ".." in loc:
                raise ValueError(f"locator {loc!r} is not a whisper model name such as 'base' or 'large-v3'")
        elif s == "url":
            parsed = urlparse(loc)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(f"locator {loc!r} is not an http(s) URL")
            _plain_filename(PurePosixPath(parsed.path).name, "the URL's file name")
        elif s == "bundled":
            if not _PACKAGE_RE.match(loc):
                raise ValueError(f"locator {loc!r} must be an importable package name such as 'silero_vad'")
            if not self.paths:
                raise ValueError("a bundled model needs paths: the folders/files inside the package")
            for p in self.paths:
                _safe_relpath(p, "each of paths")
        return self

    # --- derived -------------------------------------------------------------------
    @property
    def pinned(self) -> bool:
        """True when the manifest itself pins an exact revision (or the file's hash)."""
        if self.source == "huggingface":
            return self.revision is not None
        return bool(self.checksums) or self.source == "bundled"

    @property
    def pin_status(self) -> str:
        return "pinned" if self.pinned else "unverified"

    @property
    def filename(self) -> str | None:
        """The single file a file-based source stores (None for huggingface and bundled)."""
        if self.source in ("ultralytics", "easyocr"):
            return self.locator
        if self.source == "whisper":
            return f"{self.locator}.pt"
        if self.source == "url":
            return PurePosixPath(urlparse(self.locator).path).name
        return None

    @property
    def repo_ids(self) -> tuple[str, ...]:
        """Hugging Face repo ids this model may be cached under (locator first)."""
        return (self.locator, *self.aliases) if self.source == "huggingface" else ()

    def vram_mb(self, precision: str | None = None) -> float:
        """VRAM estimate in MB at ``precision`` (default: bf16, else fp16, fp32, int8, int4)."""
        if not self.vram_gb:
            return 0.0
        if precision is None:
            for p in ("bf16", "fp16", "fp32", "int8", "int4"):
                if p in self.vram_gb:
                    precision = p
                    break
        gb = self.vram_gb.get(precision)  # type: ignore[arg-type]
        if gb is None:
            raise KeyError(f"model {self.id} lists no VRAM for {precision}; it lists {', '.join(self.vram_gb)}")
        return gb * 1024


class _ManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    models: dict[str, dict[str, Any]]


@dataclass
class Manifest:
    """A loaded manifest: ``manifest[id]``, ``id in manifest``, iteration in file order."""

    path: Path
    models: dict[str, ModelSpec]
    lines: dict[tuple, int] = field(default_factory=dict)

    def __getitem__(self, model_id: str) -> ModelSpec:
        try:
            return self.models[model_id]
        except KeyError:
            raise KeyError(f"{model_id!r} is not in {self.path}; known ids: {', '.join(self.models)}") from None

    def __contains__(self, model_id: object) -> bool:
        return model_id in self.models

    def __iter__(self):
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)

    def line(self, model_id: str) -> int | None:
        return self.lines.get(("models", model_id))

    def with_requirements(self, ids: Iterable[str]) -> list[str]:
        """``ids`` plus everything they require (an adapter's base model, EasyOCR's detector)."""
        out: list[str] = []
        todo = list(ids)
        while todo:
            mid = todo.pop(0)
            if mid in out:
                continue
            out.append(mid)
            if mid in self.models:
                todo.extend(self.models[mid].requires)
        return out

    def by_repo_id(self) -> dict[str, str]:
        """Lower-cased Hugging Face repo id (locator or alias) -> manifest id."""
        return {repo.lower(): spec.id for spec in self for repo in spec.repo_ids}


def default_manifest_path() -> Path:
    """``$FRAMEWORK_MANIFEST`` if set, else ./models_manifest.yaml, else the framework's own file."""
    env = os.environ.get("FRAMEWORK_MANIFEST")
    if env:
        return Path(env)
    local = Path.cwd() / MANIFEST_FILENAME
    if local.is_file():
        return local
    return Path(__file__).parent / MANIFEST_FILENAME  # in a checkout, a link to the repo root's file


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Load and validate a manifest; raise ``ManifestError`` naming file and line on any problem."""
    path = Path(path) if path is not None else default_manifest_path()
    try:
        data, lines = load_yaml(path)
    except ConfigError as exc:
        raise ManifestError(f"{exc} (the models manifest)") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}:1: the top level must be a mapping with 'version' and 'models'")
    _check_duplicates(path)
    top = {k: v for k, v in data.items() if not str(k).startswith("x-")}  # x-*: YAML anchors only
    try:
        parsed = _ManifestFile.model_validate(top)
    except ValidationError as exc:
        raise ManifestError(format_validation_error(path, exc, lines)) from None
    problems: list[str] = []
    models: dict[str, ModelSpec] = {}
    for model_id, raw in parsed.models.items():
        where = f"{path}:{lines.get(('models', model_id), '?')}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: models.{model_id}: must be a mapping of fields (source, locator, ...)")
            continue
        if "id" in raw:
            problems.append(f"{path}:{lines.get(('models', model_id, 'id'), '?')}: models.{model_id}.id: "
                            "unknown key (the id is the entry's key)")
            continue
        try:
            models[model_id] = ModelSpec.model_validate({"id": model_id, **raw})
        except ValidationError as exc:
            problems.append(format_validation_error(path, exc, lines, prefix=("models", model_id)))
    for spec in models.values():
        for req in spec.requires:
            if req not in models:
                line = lines.get(("models", spec.id, "requires"), "?")
                problems.append(f"{path}:{line}: models.{spec.id}.requires: unknown model id {req!r}")
    if problems:
        raise ManifestError("\n".join(problems))
    return Manifest(path=path, models=models, lines=lines)


def _check_duplicates(path: Path) -> None:
    """PyYAML keeps the last of two equal keys silently; a manifest must not."""
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)

    def walk(n: yaml.Node, where: str) -> None:
        if isinstance(n, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in n.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else None
                if key in seen:
                    raise ManifestError(f"{path}:{k.start_mark.line + 1}: {where}{key}: duplicate key "
                                        f"(first defined on line {seen[key]})")
                seen[key] = k.start_mark.line + 1
                walk(v, f"{where}{key}.")

    if node is not None:
        walk(node, "")


# --- which analyzers use which model ---------------------------------------------------
@dataclass
class ModelUsage:
    """Which configured analyzers use each model id.

    :ivar enabled: model id -> names of enabled analyzers that use it.
    :ivar disabled: model id -> names of disabled analyzers that use it.
    :ivar unknown: (analyzer, model id) pairs whose id the manifest lacks.
    :ivar failures: analyzers whose ``model_ids()`` raised, with the error.
    """

    enabled: dict[str, list[str]] = field(default_factory=dict)
    disabled: dict[str, list[str]] = field(default_factory=dict)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    enabled_failures: list[str] = field(default_factory=list)

    def in_use(self, manifest: Manifest, keep: Iterable[str] = ()) -> set[str]:
        """Every model an enabled analyzer uses, plus ``keep``, plus what those require."""
        return set(manifest.with_requirements([*self.enabled, *keep]))

    def problems(self) -> list[str]:
        out = [f"analyzer {a!r} names model id {m!r}, which the manifest lacks" for a, m in self.unknown]
        out += [f"analyzer {a!r}: model_ids() raised {e}" for a, e in self.failures]
        return out


def model_usage(configured: Iterable[ConfiguredAnalyzer], manifest: Manifest) -> ModelUsage:
    """Ask each configured analyzer (with its registry params) for its model ids."""
    usage = ModelUsage()
    for c in sorted(configured, key=lambda c: c.name):
        try:
            ids = list(c.instantiate().model_ids())
        except Exception as exc:  # noqa: BLE001 - one broken analyzer must not hide the others
            usage.failures.append((c.name, f"{type(exc).__name__}: {exc}"))
            if c.enabled:
                usage.enabled_failures.append(c.name)
            continue
        for mid in ids:
            (usage.enabled if c.enabled else usage.disabled).setdefault(mid, []).append(c.name)
            if mid not in manifest:
                usage.unknown.append((c.name, mid))
    return usage


def load_usage(manifest: Manifest, registry_path: str | os.PathLike | None = None,
               extra_plugins: Iterable[Any] = ()) -> tuple[ModelUsage, Path | None, list[str]]:
    """Load the active registry and plugins; return (usage, registry file, plugin problems)."""
    from .plugins import build_plugin_manager
    from .registry import find_registry, load_registry

    reg_path = find_registry(registry_path)
    registry = load_registry(reg_path)
    host = build_plugin_manager(registry.plugin_dirs, extra_plugins=extra_plugins)
    usage = model_usage(registry.configure(host.analyzers), manifest)
    return usage, reg_path, [str(p) for p in host.problems]
