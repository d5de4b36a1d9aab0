"""models_manifest.yaml -> validated ``ModelSpec`` entries, plus the entries plugins register.

The manifest says where a model comes from (``source`` + ``locator``), its pinned revision, its
approximate size, VRAM by precision, license and task. It does not say which analyzers use a
model: that comes from each analyzer's declared model ids (``Analyzer.model_ids()``), through
``framework.models.usage``. Every error names the manifest file and line, or the plugin.

Example::

    manifest = load_manifest()                      # the file shipped with the framework
    spec = manifest["qwen2.5-1.5b-instruct"]
    spec.source, spec.locator, spec.vram_gb         # ('huggingface', 'Qwen/Qwen2.5-1.5B-Instruct', {...})
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..yamlio import ConfigError, format_validation_error, load_yaml
from .roots import CacheRoots
from .sources import ModelSource, source_for
from .sources.common import plain_filename

MANIFEST_FILENAME = "models_manifest.yaml"
Source = Literal["huggingface", "ultralytics", "whisper", "easyocr", "url", "bundled"]
Precision = Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4"]

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_CHECKSUM_RE = re.compile(r"^(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})$")


class ManifestError(ConfigError):
    """models_manifest.yaml is wrong: the message names the file, the key and the line."""


#: the order in which the scheduler prefers precision variants: full quality first, then smaller
#: (fp8: weights in 8-bit floating point with a scale per row, inputs scaled per row as they come)
PRECISION_ORDER = ("bf16", "fp16", "fp32", "fp8", "int8", "int4")


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
    smaller: tuple[str, ...] = ()  # smaller models of the same family that can stand in when this one does not fit
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
            plain_filename(name, "a checksums key")
            if not _CHECKSUM_RE.match(digest):
                raise ValueError(f"checksum of {name} must be 'sha256:<64 hex>' or 'md5:<32 hex>', got {digest!r}")
        return v

    @model_validator(mode="after")
    def _per_source(self) -> "ModelSpec":
        if self.source != "huggingface" and (self.aliases or self.ignore):
            raise ValueError("aliases and ignore apply only to source: huggingface")
        if self.source != "bundled" and self.paths:
            raise ValueError("paths applies only to source: bundled")
        self.handler.validate(self)
        return self

    # --- derived -------------------------------------------------------------------
    @property
    def handler(self) -> ModelSource:
        """The object that does this entry's source-specific work (``framework.models.sources``)."""
        return source_for(self.source)

    @property
    def pinned(self) -> bool:
        """True when the manifest itself pins an exact revision (or the file's hash)."""
        return self.handler.pinned(self)

    @property
    def pin_status(self) -> str:
        return "pinned" if self.pinned else "unverified"

    @property
    def filename(self) -> str | None:
        """The single file a file-based source stores (None for huggingface and bundled)."""
        return self.handler.filename(self)

    @property
    def repo_ids(self) -> tuple[str, ...]:
        """Hugging Face repo ids this model may be cached under (locator first)."""
        return (self.locator, *self.aliases) if self.source == "huggingface" else ()

    def precisions(self) -> list[str]:
        """The precision variants it lists VRAM for, best first (``PRECISION_ORDER``)."""
        return [p for p in PRECISION_ORDER if p in self.vram_gb]

    def vram_mb(self, precision: str | None = None) -> float:
        """VRAM estimate in MB at ``precision`` (default: the first listed in ``PRECISION_ORDER``)."""
        if not self.vram_gb:
            return 0.0
        if precision is None:
            precision = self.precisions()[0]
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
    plugins: dict[str, str] = field(default_factory=dict)  # id -> the plugin that registered it

    def origin(self, model_id: str) -> str:
        """Where an entry comes from: ``FILE:LINE`` or ``plugin NAME (distribution DIST)``."""
        if model_id in self.plugins:
            return self.plugins[model_id]
        return f"{self.path}:{self.line(model_id) or '?'}"

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
    return Path(__file__).parent.parent / MANIFEST_FILENAME  # in a checkout, a link to the repo root's file


def load_manifest(path: str | os.PathLike | None = None, host: Any = None) -> Manifest:
    """Load and validate a manifest; raise ``ManifestError`` naming file and line on any problem.

    :param host: a ``framework.plugins.PluginHost``: the entries its plugins registered through
        ``register_models`` are added (see ``add_plugin_models``).
    """
    manifest = _load_file(Path(path) if path is not None else default_manifest_path())
    if host is not None and getattr(host, "models", None):
        add_plugin_models(manifest, {mid: (spec, host.describe(host.model_plugins.get(mid)))
                                     for mid, spec in host.models.items()})
    return manifest


def add_plugin_models(manifest: Manifest, entries: Mapping[str, tuple[ModelSpec, str]]) -> None:
    """Add plugin entries (id -> (spec, ``plugin NAME ...``)) to ``manifest``.

    :raises ManifestError: an id is already in the manifest file (the message names the plugin
        and the file's line), or an entry requires an id neither defines.
    """
    problems = []
    for mid, (spec, plugin) in entries.items():
        if mid in manifest.models:
            problems.append(f"{plugin} registers model {mid!r}, which {manifest.origin(mid)} already defines; "
                            "rename the plugin's model or remove the manifest entry "
                            "(or keep the plugin out with FRAMEWORK_LOAD_PLUGINS)")
    if problems:
        raise ManifestError("\n".join(problems))
    problems = shared_storage([(s, manifest.origin(s.id)) for s in manifest]
                              + [(spec, plugin) for spec, plugin in entries.values()])
    if problems:
        raise ManifestError("\n".join(problems))
    for mid, (spec, plugin) in entries.items():
        manifest.models[mid] = spec
        manifest.plugins[mid] = plugin
    for mid, (spec, plugin) in entries.items():
        missing = [r for r in spec.requires if r not in manifest.models]
        if missing:
            problems.append(f"{plugin}: model {mid!r} requires unknown model id(s) {', '.join(missing)}")
    if problems:
        raise ManifestError("\n".join(problems))


def _load_file(path: Path) -> Manifest:
    duplicates: list[tuple[tuple, int, int]] = []
    try:
        data, lines = load_yaml(path, duplicates)
    except ConfigError as exc:
        raise ManifestError(f"{exc} (the models manifest)") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}:1: the top level must be a mapping with 'version' and 'models'")
    if duplicates:  # PyYAML keeps the last of two equal keys silently; a manifest must not
        key_path, line, first = duplicates[0]
        raise ManifestError(f"{path}:{line}: {'.'.join(map(str, key_path))}: duplicate key "
                            f"(first defined on line {first})")
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
    problems += shared_storage([(spec, f"{path}:{lines.get(('models', spec.id), '?')}") for spec in models.values()])
    for spec in models.values():
        for key in ("requires", "smaller"):
            for req in getattr(spec, key):
                if req not in models:
                    line = lines.get(("models", spec.id, key), "?")
                    problems.append(f"{path}:{line}: models.{spec.id}.{key}: unknown model id {req!r}")
    if problems:
        raise ManifestError("\n".join(problems))
    return Manifest(path=path, models=models, lines=lines)


# Stand-in cache folders: two file entries clash when a source puts them in the same folder
# under the same name (ultralytics and url share the torch hub checkpoints folder).
_SYMBOLIC_ROOTS = CacheRoots(*(Path(f"<{f.name}>") for f in dataclasses.fields(CacheRoots)))


def storage_keys(spec: ModelSpec) -> list[str]:
    """What ``spec`` occupies in the caches: its Hugging Face repo ids (lower-cased, as the hub
    cache folds them) or its file in each of its source's cache folders. Bundled models: none."""
    if spec.source == "huggingface":
        return [f"Hugging Face repo {r.lower()}" for r in spec.repo_ids]
    name = spec.filename
    return [f"cache file {d / name}" for d in spec.handler.cache_dirs(_SYMBOLIC_ROOTS)] if name else []


def shared_storage(entries: Iterable[tuple[ModelSpec, str]]) -> list[str]:
    """One problem per entry whose repo or cache file an earlier entry already names.

    Two entries on one repo or file are one model on disk: pruning the unused one would delete
    the one in use. ``entries`` are (spec, where it comes from: ``FILE:LINE`` or the plugin).
    """
    owner: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for spec, origin in entries:
        for key in dict.fromkeys(storage_keys(spec)):
            if key in owner and owner[key][0] != spec.id:
                first, first_origin = owner[key]
                problems.append(f"{origin}: model {spec.id!r} names the same {key} as model {first!r} "
                                f"({first_origin}); two entries would share one cache copy, so pruning one "
                                "would delete the other: keep one entry (list other repo ids under aliases)")
                break
            owner.setdefault(key, (spec.id, origin))
    return problems


