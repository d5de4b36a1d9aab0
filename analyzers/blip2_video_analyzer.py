"""``blip2_video_analyzer``: the description analyzer with BLIP-2 (OPT-2.7b) as its model.

The original system's analyzer of this name (seed 004; disabled there, its model ~5.5 GB in the
cache) captioned video frames with ``Salesforce/blip2-opt-2.7b``. Here it is the scene-description
analyzer (``qwen2_vl_temporal``, ``analyzers/vlm``) with ``model: blip2-opt-2.7b`` as its default:
the same shot-aware chunks, single decode pass, device step, resume and outputs, and the BLIP-2
family (``analyzers/vlm/families/blip.py``). BLIP-2 captions single images, so each of a chunk's
frames (1 per second, at most 4; 2 on a CPU) gets a caption, and the chunk's ``description``
event lists them with their times (``[12.0 s] a man on a bench. [13.0 s] ...``). A custom
``prompt`` is asked as ``Question: ... Answer:``; the default prompt gives plain captions.

Disabled by default, as in the original system.
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from .vlm import SceneDescription

MODEL_ID = "blip2-opt-2.7b"


class Blip2VideoAnalyzer(SceneDescription):
    """BLIP-2 captions of each chunk's frames, as ``description`` events (the description analyzer, BLIP-2 family)."""

    name: ClassVar[str] = "blip2_video_analyzer"
    original_status = "disabled"
    enabled_by_default = False  # (off in the original too; the description analyzer it builds on is on)
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = ("BLIP-2 (OPT-2.7b) captions of sampled frames, one description event per chunk "
                                  "(shot-aware) listing each frame's caption with its time; the description "
                                  "analyzer with another model. Disabled in the original system.")

    class Params(SceneDescription.Params):
        model: str = Field(MODEL_ID, description="models-manifest id of a BLIP-2 model")


__all__ = ["Blip2VideoAnalyzer"]
