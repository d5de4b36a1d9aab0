"""framework: plugin-based multi-analyzer video understanding.

The public API for analyzer authors and embedding applications. Analyzers import only
from here; ``framework`` itself never imports a particular analyzer.
"""
from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .analyzer import Analyzer, AnalyzerInputs, AnalyzerUnavailable
    from .device_step import BatchedAnalyzer, DeviceOutOfMemory, StepReceipt
    from .hookspecs import hookimpl
    from .plugins import Deferred
    from .process_workers import ProcessWorkers, WorkerError
    from .streams import AUDIO_SAMPLE_RATE, AudioTrack, FrameSpec, FrameStream
    from .timeline import Event, ModelRef, Series, Timeline, Track, VideoMeta, tracks_providing
    from .work_streams import carry_work_stream

# The public names load on first use (PEP 562), so ``import framework`` (and ``framework
# --version``) does not pay for numpy and pydantic; ``from framework import Analyzer`` works as before.
_LAZY = {
    **dict.fromkeys(("Analyzer", "AnalyzerInputs", "AnalyzerUnavailable"), ".analyzer"),
    "hookimpl": ".hookspecs",
    "Deferred": ".plugins",
    **dict.fromkeys(("ProcessWorkers", "WorkerError"), ".process_workers"),
    **dict.fromkeys(("BatchedAnalyzer", "DeviceOutOfMemory", "StepReceipt"), ".device_step"),
    **dict.fromkeys(("AUDIO_SAMPLE_RATE", "AudioTrack", "FrameSpec", "FrameStream"), ".streams"),
    **dict.fromkeys(("Event", "ModelRef", "Series", "Timeline", "Track", "VideoMeta", "tracks_providing"),
                    ".timeline"),
    "carry_work_stream": ".work_streams",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'framework' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "AUDIO_SAMPLE_RATE", "Analyzer", "AnalyzerInputs", "AnalyzerUnavailable", "AudioTrack",
    "BatchedAnalyzer", "Deferred", "DeviceOutOfMemory", "ProcessWorkers", "StepReceipt", "WorkerError",
    "Event", "FrameSpec", "FrameStream", "ModelRef", "Series", "Timeline", "Track", "VideoMeta",
    "carry_work_stream", "hookimpl", "tracks_providing", "__version__",
]
