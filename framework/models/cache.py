"""What of the manifest is cached now: one ``CachedModel`` per entry, and the cached Hugging Face
repos no entry names. Each source finds its own files (``framework.models.sources``)."""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .fsguard import tree_size
from .roots import CacheRoots

if TYPE_CHECKING:
    from .manifest import Manifest, ModelSpec


@dataclass
class CachedModel:
    """The cache state of one manifest model.

    :ivar paths: what holds it on disk (HF repo folders, files, package folders).
    :ivar root: the cache folder those paths belong to (None for bundled).
    :ivar busy: reasons a download looks in progress (``.incomplete`` blobs, held locks, partial files).
    """

    spec: ModelSpec
    cached: bool = False
    size_on_disk: int = 0
    paths: list[Path] = field(default_factory=list)
    root: Path | None = None
    revisions: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    package_version: str | None = None
    partial: bool = False  # a cached HF revision lacks files its saved tree listing names

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass
class UnknownRepo:
    """A Hugging Face model repo in the cache that no manifest entry names."""

    repo_id: str
    path: Path
    size_on_disk: int
    revisions: list[str]
    busy: list[str] = field(default_factory=list)


@dataclass
class CacheScan:
    """The result of ``scan_cache``: every manifest model's state and the unknown HF repos."""

    roots: CacheRoots
    models: dict[str, CachedModel]
    unknown: list[UnknownRepo]
    hf_info: Any = None  # huggingface_hub HFCacheInfo, or None when there is no HF cache
    warnings: list[str] = field(default_factory=list)
    hf_repos: dict[str, Any] = field(default_factory=dict)  # lower-cased repo id -> huggingface_hub CachedRepoInfo


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def package_version(package: str) -> str | None:
    """The installed version of the distribution that provides import package ``package``.

    The distribution named like the package is asked first (reading its own file list); only when
    none provides it is every installed distribution's file list read, once per process
    (``importlib.metadata.packages_distributions``: about 0.5 s in this project's environment,
    which ``framework models list`` paid once per bundled model)."""
    for name in dict.fromkeys((package, package.replace("_", "-"))):
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if _provides(dist, package):
            return dist.version
    for name in _packages_distributions().get(package, []):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _provides(dist: importlib.metadata.Distribution, package: str) -> bool:
    top_level = dist.read_text("top_level.txt")
    if top_level is not None:
        return package in top_level.split()
    return any(f.parts and f.parts[0] in (package, f"{package}.py") for f in dist.files or ())


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def scan_cache(manifest: Manifest, roots: CacheRoots | None = None) -> CacheScan:
    """What of ``manifest`` is cached, and which cached HF repos the manifest does not know."""
    from .sources.huggingface import hf_busy

    roots = roots or CacheRoots.from_env()
    scan = CacheScan(roots, {}, [])
    if roots.hf_hub.is_dir():
        from huggingface_hub import scan_cache_dir

        scan.hf_info = scan_cache_dir(roots.hf_hub)
        scan.warnings += [f"Hugging Face cache: {w}" for w in scan.hf_info.warnings]
        scan.hf_repos = {r.repo_id.lower(): r for r in scan.hf_info.repos if r.repo_type == "model"}
    for spec in manifest:
        scan.models[spec.id] = spec.handler.scan(spec, roots, scan)
    known = manifest.by_repo_id()
    for key, repo in sorted(scan.hf_repos.items()):
        if key not in known:
            scan.unknown.append(UnknownRepo(repo.repo_id, repo.repo_path, tree_size(repo.repo_path),
                                            sorted(r.commit_hash for r in repo.revisions),
                                            hf_busy(repo.repo_path, roots.hf_hub)))
    return scan

