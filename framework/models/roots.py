"""Where each model source caches its files, found the way its own library finds them.

Every folder is computed from the environment at call time (not at import time), so a test or
a user can point any of them elsewhere:

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

Which of these folders a source reads and writes is the source's business
(``framework.models.sources``); ``CacheRoots.file_dirs`` asks it.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


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
        from .sources import source_for

        return source_for(source).cache_dirs(self)

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


