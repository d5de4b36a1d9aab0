"""One class per model source; ``source_for(name)`` is how the rest of ``framework.models`` reaches one.

To add a source: subclass ``ModelSource`` (or ``FileSource`` for one file per model) in a module
here, add it to ``SOURCES`` and to ``framework.models.manifest.Source``.
"""
from __future__ import annotations

from .base import FileSource, ModelSource
from .bundled import Bundled
from .easyocr import EasyOCR
from .huggingface import HuggingFace
from .ultralytics import Ultralytics
from .url import Url
from .whisper import Whisper

SOURCES: dict[str, ModelSource] = {s.name: s for s in (HuggingFace(), Ultralytics(), Whisper(), EasyOCR(),
                                                        Url(), Bundled())}


def source_for(name: str) -> ModelSource:
    """The source object for a manifest ``source:`` value."""
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown model source {name!r}; known: {', '.join(SOURCES)}") from None


__all__ = ["SOURCES", "FileSource", "ModelSource", "source_for"]
