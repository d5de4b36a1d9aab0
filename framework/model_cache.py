"""Where each model source caches its files, what is cached now, and the guards prune relies on.

Every cache folder is found the way its own library finds it, from the environment at call
time (not at import time), so a test or a user can point any of them elsewhere:

=============  =====================================================================================
source         folder
=============  =====================================================================================
huggingface    ``$HF_HUB_CACHE`` | ``$HUGGINGFACE_HUB_CACHE`` | ``$HF_HOME/hub`` |
               ``$XDG_CACHE_HOME/huggingface/hub`` | ``~/.cache/huggingface/hub``
url            torch hub checkpoints: ``$TORCH_HOME/hub/checkpoints`` | ``$XDG_CACHE_HOME/torch/...``
ultralytics    ``weights_dir`` of ultralytics' settings.json (in ``$YOLO_CONFIG_DIR/Ultralytics`` or
               ``$XDG_CONFIG_HOME/Ultralytics``); also looked up in the torch hub checkpoints folder
whisper        ``$XDG_CACHE_HOME/whisper`` | ``~/.cache/whisper``
easyocr        ``$EASYOCR_MODULE_PATH/model`` | ``$MODULE_PATH/model`` | ``~/.EasyOCR/model``
bundled        inside the installed package (found with ``importlib.util.find_spec``; never deleted)
framework      ``$FRAMEWORK_HOME`` | ``~/.framework``: the pull lock and prune records
=============  =====================================================================================
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import importlib.util
import json
import logging
import os
import site
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .manifest import Manifest, ModelSpec
from .timeline import atomic_write_text

logger = logging.getLogger(__name__)

LOCK_FILENAME = "models.lock.json"


def _env_path(env: Mapping[str, str], *names: str, empty_is_unset: bool = False) -> str | None:
    """The first of ``names`` set in ``env``, expanded. Libraries differ on an empty value:
    ``os.getenv(name, default)`` keeps it (huggingface_hub, torch, whisper), ``or`` skips it (easyocr)."""
    for name in names:
        value = env.get(name)
        if value is not None and (value or not empty_is_unset):
            return os.path.expandvars(os.path.expanduser(value))
    return None


def _home_cache(env: Mapping[str, str]) -> str:
    xdg = _env_path(env, "XDG_CACHE_HOME")
    return xdg if xdg is not None else os.path.join(os.path.expanduser("~"), ".cache")


def hf_hub_cache(env: Mapping[str, str] = os.environ) -> Path:
    """huggingface_hub.constants.HF_HUB_CACHE, computed from ``env`` now."""
    hub = _env_path(env, "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")
    if hub is not None:
        return Path(hub)
    home = _env_path(env, "HF_HOME")
    return Path(home if home is not None else os.path.join(_home_cache(env), "huggingface")) / "hub"


def torch_hub_checkpoints(env: Mapping[str, str] = os.environ) -> Path:
    """``torch.hub.get_dir()/checkpoints``, where ``load_state_dict_from_url`` stores files."""
    home = _env_path(env, "TORCH_HOME")
    return Path(home if home is not None else os.path.join(_home_cache(env), "torch")) / "hub" / "checkpoints"


def ultralytics_settings_file(env: Mapping[str, str] = os.environ) -> Path:
    """ultralytics.utils.SETTINGS_FILE (``get_user_config_dir()/settings.json``)."""
    env_dir = _env_path(env, "YOLO_CONFIG_DIR", empty_is_unset=True)
    if env_dir:
        base = Path(env_dir)
    elif sys.platform.startswith("win"):
        base = Path.home() / "AppData" / "Roaming"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_CONFIG_HOME")
        base = Path(xdg) if xdg is not None else Path.home() / ".config"
    return base / "Ultralytics" / "settings.json"


def ultralytics_weights_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``SETTINGS['weights_dir']``; ultralytics' default for a pip install is ./weights."""
    settings = ultralytics_settings_file(env)
    weights = "weights"
    try:
        weights = json.loads(settings.read_text(encoding="utf-8")).get("weights_dir") or weights
    except (OSError, ValueError, AttributeError):
        pass
    return Path(os.path.expanduser(str(weights))).absolute()


def whisper_root(env: Mapping[str, str] = os.environ) -> Path:
    """openai-whisper's ``download_root`` default."""
    return Path(_home_cache(env)) / "whisper"


def easyocr_model_dir(env: Mapping[str, str] = os.environ) -> Path:
    """easyocr.config.MODULE_PATH + '/model' (the Reader's default model_storage_directory)."""
    base = _env_path(env, "EASYOCR_MODULE_PATH", "MODULE_PATH", empty_is_unset=True) or os.path.expanduser("~/.EasyOCR/")
    return Path(base) / "model"


def framework_home(env: Mapping[str, str] = os.environ) -> Path:
    """``$FRAMEWORK_HOME`` or ``~/.framework``: the pull lock and prune records."""
    return Path(_env_path(env, "FRAMEWORK_HOME", empty_is_unset=True) or os.path.join(os.path.expanduser("~"), ".framework"))


@dataclass(frozen=True)
class CacheRoots:
    """The cache folders of every source, resolved from the environment."""

    hf_hub: Path
    torch_checkpoints: Path
    ultralytics_weights: Path
    whisper: Path
    easyocr: Path
    framework_home: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "CacheRoots":
        env = os.environ if env is None else env
        return cls(hf_hub_cache(env), torch_hub_checkpoints(env), ultralytics_weights_dir(env),
                   whisper_root(env), easyocr_model_dir(env), framework_home(env))

    def file_dirs(self, source: str) -> list[Path]:
        """Folders a file-based source's files may be in; the first is where ``pull`` writes."""
        return {
            "ultralytics": [self.ultralytics_weights, self.torch_checkpoints],
            "whisper": [self.whisper],
            "easyocr": [self.easyocr],
            "url": [self.torch_checkpoints],
        }.get(source, [])

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


# --- path guards -----------------------------------------------------------------------
def site_package_dirs() -> list[Path]:
    """Every site-packages folder of this interpreter (resolved)."""
    dirs = set()
    candidates = list(getattr(site, "getsitepackages", lambda: [])())
    candidates.append(site.getusersitepackages())
    for key in ("purelib", "platlib"):
        candidates.append(sysconfig.get_paths().get(key, ""))
    candidates += [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))]
    for c in candidates:
        if c:
            dirs.add(Path(os.path.realpath(c)))
    return sorted(dirs)


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False


def deletion_refusal(path: Path, root: Path) -> str | None:
    """Why ``path`` must not be deleted as part of the cache ``root``, or None when it may.

    Refused: a path naming ``..``; the root itself; anything that is outside the root as
    written or once symlinks are resolved (a symlink pointing out of the cache); anything
    inside a site-packages folder.
    """
    raw = str(path)
    if ".." in Path(raw).parts:
        return f"{raw}: the path contains '..'"
    root_abs, root_real = os.path.abspath(root), os.path.realpath(root)
    abs_path, real_path = os.path.abspath(raw), os.path.realpath(raw)
    if abs_path in (root_abs, root_real) or real_path == root_real:
        return f"{raw}: is the cache folder itself"
    if not (_inside(abs_path, root_abs) or _inside(abs_path, root_real)):
        return f"{raw}: is outside the cache folder {root}"
    if not _inside(real_path, root_real):
        return f"{raw}: resolves through a symlink to {real_path}, outside the cache folder {root}"
    for sp in site_package_dirs():
        if _inside(real_path, str(sp)):
            return f"{raw}: is inside the Python packages folder {sp} (bundled models are never deleted)"
    return None


def lock_is_held(lock_path: Path) -> bool:
    """True when another process holds ``lock_path`` (the flock huggingface_hub and filelock use).

    The file is never created: a missing lock file is not held.
    """
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: assume a download owns it
    try:
        try:
            import fcntl
        except ImportError:  # Windows: let filelock decide
            os.close(fd)
            fd = -1
            from filelock import FileLock, Timeout

            lock = FileLock(str(lock_path), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                return True
            lock.release()
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (symlinks not followed)."""
    try:
        st = path.lstat()
    except OSError:
        return 0
    if not path.is_dir() or path.is_symlink():
        return st.st_size if not path.is_symlink() else (path.stat().st_size if path.exists() else 0)
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                s = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(dirpath, name)):
                total += s.st_size
    return total


def human_size(n: int | None) -> str:
    """Decimal units, as model sizes are published: ``human_size(1_234_000_000) == '1.23 GB'``."""
    if n is None:
        return "?"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


# --- the pull lock -----------------------------------------------------------------------
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
            from .errors import ConfigError
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


# --- what is cached ------------------------------------------------------------------------
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
    roots: CacheRoots
    models: dict[str, CachedModel]
    unknown: list[UnknownRepo]
    hf_info: Any = None  # huggingface_hub HFCacheInfo, or None when there is no HF cache
    warnings: list[str] = field(default_factory=list)


def _hf_busy(repo_path: Path, hub: Path) -> list[str]:
    busy = [f"{p} is an unfinished download (.incomplete)" for p in sorted((repo_path / "blobs").glob("*.incomplete"))]
    locks = hub / ".locks" / repo_path.name
    if locks.is_dir():
        busy += [f"{p} is held by a running download" for p in sorted(locks.rglob("*.lock")) if lock_is_held(p)]
    return busy


def _file_busy(spec: ModelSpec, folder: Path) -> list[str]:
    name = spec.filename or ""
    partials = [folder / f"{name}.part", *folder.glob(f".{name}.*.part"), *folder.glob(f"{name}.*.partial")]
    if spec.source == "easyocr":
        partials.append(folder / "temp.zip")  # easyocr.utils.download_and_unzip's download file
    busy = [f"{p} is a partial download" for p in partials if p.exists()]
    lock = folder / f"{name}.lock"
    if lock_is_held(lock):
        busy.append(f"{lock} is held by a running download")
    return busy


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
    for dist in importlib.metadata.packages_distributions().get(package, [package]):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def scan_cache(manifest: Manifest, roots: CacheRoots | None = None) -> CacheScan:
    """What of ``manifest`` is cached, and which cached HF repos the manifest does not know."""
    roots = roots or CacheRoots.from_env()
    scan = CacheScan(roots, {}, [])
    repos: dict[str, Any] = {}
    if roots.hf_hub.is_dir():
        from huggingface_hub import scan_cache_dir

        scan.hf_info = scan_cache_dir(roots.hf_hub)
        scan.warnings += [f"Hugging Face cache: {w}" for w in scan.hf_info.warnings]
        repos = {r.repo_id.lower(): r for r in scan.hf_info.repos if r.repo_type == "model"}
    known = manifest.by_repo_id()
    for spec in manifest:
        cm = CachedModel(spec)
        if spec.source == "huggingface":
            cm.root = roots.hf_hub
            for rid in spec.repo_ids:
                repo = repos.get(rid.lower())
                if repo is None:
                    continue
                cm.paths.append(repo.repo_path)
                cm.revisions += sorted(r.commit_hash for r in repo.revisions)
                complete = [r for r in repo.revisions
                            if r.files and hf_snapshot(spec, roots, r.commit_hash, repo.repo_id) is not None]
                cm.cached = cm.cached or bool(complete)
                cm.partial = cm.partial or len(complete) < len(repo.revisions)
                cm.size_on_disk += tree_size(repo.repo_path)
                cm.busy += _hf_busy(repo.repo_path, roots.hf_hub)
        elif spec.source == "bundled":
            pkg = package_dir(spec.locator)
            if pkg is not None:
                cm.paths = [pkg / p for p in spec.paths if (pkg / p).exists()]
                cm.cached = len(cm.paths) == len(spec.paths)
                cm.size_on_disk = sum(tree_size(p) for p in cm.paths)
                cm.package_version = package_version(spec.locator)
        else:
            for folder in roots.file_dirs(spec.source):
                f = folder / (spec.filename or "")
                if f.is_file() or f.is_symlink():
                    cm.paths.append(f)
                    cm.root = cm.root or folder
                    cm.cached = True
                    cm.size_on_disk += f.stat().st_size if f.exists() else 0
                cm.busy += _file_busy(spec, folder)
            if cm.root is None:
                cm.root = roots.file_dirs(spec.source)[0]
        scan.models[spec.id] = cm
    for key, repo in sorted(repos.items()):
        if key not in known:
            scan.unknown.append(UnknownRepo(repo.repo_id, repo.repo_path, tree_size(repo.repo_path),
                                            sorted(r.commit_hash for r in repo.revisions),
                                            _hf_busy(repo.repo_path, roots.hf_hub)))
    return scan


def hf_snapshot(spec: ModelSpec, roots: CacheRoots, revision: str, repo_id: str | None = None) -> Path | None:
    """The snapshot folder of ``revision`` (a commit or a ref) if huggingface_hub finds it complete.

    huggingface_hub saves the repo's tree listing when a download starts and, offline
    (``local_files_only``), refuses a snapshot that lacks a listed file (``ignore`` applied).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    for rid in [repo_id] if repo_id else spec.repo_ids:
        try:
            return Path(snapshot_download(rid, revision=revision, cache_dir=roots.hf_hub, local_files_only=True,
                                          ignore_patterns=list(spec.ignore) or None))
        except (LocalEntryNotFoundError, OSError, ValueError):
            continue
    return None


def local_path(spec: ModelSpec, roots: CacheRoots | None = None, lock: ModelLock | None = None) -> Path | None:
    """Where an analyzer loads ``spec`` from: the HF snapshot (locked commit first), the file,
    or the package folder; None when it is not cached."""
    roots = roots or CacheRoots.from_env()
    if spec.source == "huggingface":
        entry = (lock or ModelLock.load(roots)).get(spec.id) or {}
        if not roots.hf_hub.is_dir():
            return None
        return hf_snapshot(spec, roots, spec.revision or entry.get("revision") or "main")
    if spec.source == "bundled":
        pkg = package_dir(spec.locator)
        return pkg if pkg is not None and all((pkg / p).exists() for p in spec.paths) else None
    for folder in roots.file_dirs(spec.source):
        if (folder / (spec.filename or "")).is_file():
            return folder / (spec.filename or "")
    return None
