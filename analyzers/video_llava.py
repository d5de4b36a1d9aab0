"""``video_llava``: the description analyzer with Video-LLaVA-7B as its model.

The original system's analyzer of this name (seed 004; disabled there, ~14 GB) described video
with ``LanguageBind/Video-LLaVA-7B``. Here it is the scene-description analyzer
(``qwen2_vl_temporal``, ``analyzers/vlm``) with ``model: video-llava-7b-hf`` as its default: the
transformers layout of the same model (``LanguageBind/Video-LLaVA-7B-hf``;
``VideoLlavaForConditionalGeneration``), loaded by the Video-LLaVA family
(``analyzers/vlm/families/video_llava.py``). Each chunk (shot-aware) is one clip of 8 frames with
their real times in the prompt, and one ``description`` event. The seed's own repository
(``video-llava-7b``) is in its authors' layout, which transformers cannot load; naming it gives a
``skipped`` track that says to use ``video-llava-7b-hf``.

Disabled by default, as in the original system.
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from .vlm import SceneDescription

MODEL_ID = "video-llava-7b-hf"


class VideoLlavaAnalyzer(SceneDescription):
    """Video-LLaVA descriptions, one per chunk (the description analyzer, Video-LLaVA family)."""

    name: ClassVar[str] = "video_llava"
    original_status = "disabled"
    enabled_by_default = False  # (off in the original too; the description analyzer it builds on is on)
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = ("what happens, in words, by Video-LLaVA-7B: one description per chunk (shot-aware) "
                                  "of 8 frames; the description analyzer with another model. Disabled in the "
                                  "original system.")

    class Params(SceneDescription.Params):
        model: str = Field(MODEL_ID, description="models-manifest id of a Video-LLaVA model in the transformers "
                           "layout (video-llava-7b-hf)")


__all__ = ["VideoLlavaAnalyzer"]
