"""Scene descriptions by vision-language models: the ``qwen2_vl_temporal`` analyzer.

Modules: ``analyzer`` (the analyzer, a ``BatchedAnalyzer``), ``chunks`` (shot-aware chunks and
their frames), ``catalog`` (known models and their video defaults), ``prompts`` (instruction,
frame times, context), ``families`` (one small module per model family: Qwen2-VL/Qwen2.5-VL,
SmolVLM2, LLaVA-NeXT-Video with peft adapters, an OpenAI-compatible endpoint).

Importing this package loads no model and imports neither torch nor transformers.
"""
from __future__ import annotations

from .analyzer import SceneDescription

__all__ = ["SceneDescription"]
