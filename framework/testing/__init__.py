"""Test helpers for analyzer and plugin authors, in one namespace.

- ``framework.testing.synth``: synthetic videos and audio with exact ground truth (shots, fades,
  dissolves, camera motion, speech-like audio, captions, multi-stream and truncated files).
- ``framework.testing.llm``: ``ScriptedLLM`` (a backend that answers from a script and records
  every call), ``backend_plugin`` to register it, and tiny random chat models saved on disk.
- ``framework.testing.plugins``: ``analyzers_plugin`` (a plugin object registering analyzer classes),
  ``run_analyzer`` (one plugin's analyzer through the real pipeline) and ``FakeSite`` (an entry-point "installation" without pip).

Nothing here is imported by the framework itself; importing it loads no model.
"""
from __future__ import annotations

from .llm import ScriptedCall, ScriptedLLM, backend_plugin
from .plugins import FakeSite, analyzers_plugin, run_analyzer
from .synth import AudioSegment, ShotSpec, SynthTruth, default_shots, make_audio_only, make_video

__all__ = ["AudioSegment", "FakeSite", "ScriptedCall", "ScriptedLLM", "ShotSpec", "SynthTruth",
           "analyzers_plugin", "backend_plugin", "default_shots", "make_audio_only", "make_video", "run_analyzer"]
