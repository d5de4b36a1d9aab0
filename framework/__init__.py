"""framework: plugin-based multi-analyzer video understanding.

The public API for analyzer authors and embedding applications. Analyzers import only
from here; ``framework`` itself never imports a particular analyzer.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .analyzer import Analyzer, AnalyzerInputs, AnalyzerUnavailable
from .hookspecs import hookimpl
from .streams import AUDIO_SAMPLE_RATE, AudioTrack, FrameSpec, FrameStream
from .timeline import Event, ModelRef, Series, Timeline, Track, VideoMeta

__all__ = [
    "AUDIO_SAMPLE_RATE", "Analyzer", "AnalyzerInputs", "AnalyzerUnavailable", "AudioTrack",
    "Event", "FrameSpec", "FrameStream", "ModelRef", "Series", "Timeline", "Track", "VideoMeta",
    "hookimpl", "__version__",
]
