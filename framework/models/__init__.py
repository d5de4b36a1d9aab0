"""Models: the manifest, where each source caches, and pull / prune / verify / check-pins.

Modules:

- ``manifest``: ``models_manifest.yaml`` (plus plugin entries) -> ``ModelSpec``.
- ``sources``: one class per source (huggingface, ultralytics, whisper, easyocr, url, bundled)
  doing everything source-specific: cache folders, local path and revision, pull, verify, prune.
- ``resolve``: the one model-resolution path the runner uses (``ModelResolver``, ``find_model``).
- ``cache``, ``roots``, ``lockfile``, ``fsguard``, ``digest``, ``download``: what is cached,
  where, what ``pull`` recorded, the deletion guards, hashes and resumable downloads.
- ``pull``, ``prune``, ``verify``, ``pins``, ``listing``, ``usage``: the ``framework models`` commands.
"""
from __future__ import annotations

from .manifest import Manifest, ManifestError, ModelSpec, load_manifest
from .resolve import ModelResolver, ResolvedModel, find_model, pull_command

__all__ = ["Manifest", "ManifestError", "ModelResolver", "ModelSpec", "ResolvedModel", "find_model",
           "load_manifest", "pull_command"]
