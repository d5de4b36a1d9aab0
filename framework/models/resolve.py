"""The one model-resolution path: manifest id -> local path and revision.

The runner asks a ``ModelResolver`` for every model an analyzer declares (and what those
require); analyzers, fusion and LLM backends load from the paths handed to
``load(device, models)`` and never look up a cache themselves. A model that is not cached is
fetched on first use through the same code as ``framework models pull`` (its size is logged and a
progress bar shown), unless downloads are off (``offline=True``, ``HF_HUB_OFFLINE=1`` or
``TRANSFORMERS_OFFLINE=1``); then it stays missing and the reason names the exact
``framework models pull ID`` command.

Example::

    resolver = ModelResolver(load_manifest(), offline=True)
    found, missing = resolver.resolve(["whisper-base"])
    found["whisper-base"].path, found["whisper-base"].revision   # Path(...), 'sha256:...'
    missing                                                      # {} or {'whisper-base': 'model whisper-base ...'}
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import ModelError
from .download import offline_reason
from .lockfile import ModelLock
from .manifest import Manifest, ModelSpec
from .roots import CacheRoots

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    """A cached model: where an analyzer loads it from, and which weights those are.

    :ivar revision: a Hugging Face commit, ``sha256:<hex>`` of a single file, or
        ``<package> <version>`` for a bundled model.
    """

    id: str
    source: str
    path: Path
    revision: str | None


def pull_command(model_id: str) -> str:
    """The command that fetches ``model_id``: ``framework models pull ID``."""
    return f"framework models pull {model_id}"


def find_model(spec: ModelSpec, roots: CacheRoots | None = None, lock: ModelLock | None = None) -> ResolvedModel | None:
    """``spec``'s local path and revision if it is cached (nothing is downloaded), else None."""
    roots = roots or CacheRoots.from_env()
    lock = lock if lock is not None else ModelLock.load(roots)
    path = spec.handler.local_path(spec, roots, lock)
    if path is None:
        return None
    return ResolvedModel(spec.id, spec.source, path, spec.handler.revision(spec, path, lock))


class ModelResolver:
    """Resolves manifest ids to ``ResolvedModel``s, each id once, fetching missing ones on first use.

    Thread-safe: analyzers running in parallel that share a model wait for one download.

    :param offline: never download (also when ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` is set).
    :param progress: show the download's progress bar.
    """

    def __init__(self, manifest: Manifest, *, offline: bool = False, progress: bool = True,
                 roots: CacheRoots | None = None):
        self.manifest = manifest
        self.roots = roots or CacheRoots.from_env()
        self.why_offline = offline_reason(offline)
        self.progress = progress
        self._found: dict[str, ResolvedModel] = {}
        self._missing: dict[str, str] = {}
        self._guard = threading.Lock()

    def resolve(self, ids: Iterable[str], fetch: bool = True) -> tuple[dict[str, ResolvedModel], dict[str, str]]:
        """``ids`` and what they require -> (id -> ``ResolvedModel``, id -> why it is missing).

        :param fetch: download what is not cached (unless offline). With ``fetch=False`` a model
            that is not cached is reported missing now and may still be fetched by a later call.
        """
        found: dict[str, ResolvedModel] = {}
        missing: dict[str, str] = {}
        with self._guard:
            for mid in self.manifest.with_requirements(ids):
                model = self._one(mid, fetch)
                if isinstance(model, ResolvedModel):
                    found[mid] = model
                else:
                    missing[mid] = model
        return found, missing

    def _one(self, mid: str, fetch: bool) -> ResolvedModel | str:
        if mid in self._found:
            return self._found[mid]
        if mid in self._missing:
            return self._missing[mid]
        if mid not in self.manifest:
            why = (f"model {mid!r} is not in {self.manifest.path} nor registered by a plugin; add it there "
                   "or fix the analyzer's model id")
            self._missing[mid] = why
            return why
        spec = self.manifest[mid]
        lock = ModelLock.load(self.roots)
        model = find_model(spec, self.roots, lock)
        if model is None and spec.handler.in_package:  # a package to install, not a model to pull
            why = f"model {mid} is {spec.handler.not_installed(spec)}"
            self._missing[mid] = why
            return why
        if model is None and fetch and self.why_offline is None:
            model = self._fetch(spec, lock)
            if isinstance(model, str):
                self._missing[mid] = model
                return model
        if model is None:
            why = f"model {mid} is not in the local cache"
            if self.why_offline:
                why += f" and downloads are off ({self.why_offline})"
            why += f"; run `{pull_command(mid)}`"
            if fetch or self.why_offline:
                self._missing[mid] = why
            return why
        self._found[mid] = model
        return model

    def _fetch(self, spec: ModelSpec, lock: ModelLock) -> ResolvedModel | str:
        from .pull import pull_models

        try:
            pull_models(self.manifest, [spec.id], roots=self.roots, progress=self.progress, lock=lock)
        except Exception as exc:  # noqa: BLE001 - a failed fetch skips the analyzer, never the run
            if not isinstance(exc, ModelError):
                exc = ModelError(f"{type(exc).__name__}: {exc}")
            logger.warning("could not fetch model %s on first use: %s", spec.id, exc)
            return (f"model {spec.id} is not in the local cache and could not be downloaded ({exc}); "
                    f"run `{pull_command(spec.id)}` when the network is reachable")
        found = find_model(spec, self.roots, lock)
        return found if found is not None else f"model {spec.id} was downloaded but is not found in its cache; " \
                                               f"run `framework models verify {spec.id}`"
