"""``streaming_dense_captioning``: a BLIP caption for every sampled frame.

The original system's analyzer of this name (seed 004; disabled there, model ~450 MB) captioned
frames with ``Salesforce/blip-image-captioning-base``. Here it is the scene-description analyzer
(``qwen2_vl_temporal``, ``analyzers/vlm``) with ``model: blip-image-captioning-base`` and its
chunks set to one sampled frame each: fixed windows of ``1 / fps`` seconds from the start, one
frame per window, no merging. So every frame sampled at ``fps`` (default 1 per second) gets one
``description`` event, from the start of its window to the next one, whose ``data["text"]`` is
the frame's caption and ``data["frame_times"]`` the frame's time. Everything else (the single
decode pass, batching through the device step, resume, outputs) is the description analyzer's;
the captions come from the BLIP family (``analyzers/vlm/families/blip.py``), which gives BLIP no
instruction (it is a captioner). An ``fps`` above the video's own frame rate leaves some windows
without a frame of their own; such a window is given the frame nearest its middle, so a caption
repeats.

Disabled by default, as in the original system.
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from .vlm import SceneDescription

MODEL_ID = "blip-image-captioning-base"
#: parameters this analyzer sets from ``fps`` (one chunk per sampled frame)
FIXED = {"chunking": "fixed", "min_chunk_s": 0.0, "frames_per_chunk": 1}


class StreamingDenseCaptioning(SceneDescription):
    """One BLIP caption per sampled frame, as ``description`` events (the description analyzer, BLIP family)."""

    name: ClassVar[str] = "streaming_dense_captioning"
    original_status = "disabled"
    enabled_by_default = False  # (off in the original too; the description analyzer it builds on is on)
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = ("a caption for every sampled frame (BLIP image captioning, 1 per second by "
                                  "default): one description event per frame; the description analyzer with "
                                  "another model and one frame per chunk. Disabled in the original system.")
    batch_size: ClassVar[int] = 16

    class Params(SceneDescription.Params):
        model: str = Field(MODEL_ID, description="models-manifest id of a BLIP captioning model")
        fps: float | None = Field(1.0, gt=0, le=30, description="frames captioned per second")
        batch_size: int = Field(16, ge=1, le=256, description="frames per batch (capped by the VRAM plan)")
        chunking: str = Field("fixed", description="fixed (set by this analyzer: one chunk per sampled frame)")
        chunk_s: float = Field(1.0, gt=0, description="set by this analyzer to 1 / fps")
        min_chunk_s: float = Field(0.0, ge=0, description="set by this analyzer to 0 (no merging)")
        frames_per_chunk: int | None = Field(1, ge=1, le=1, description="set by this analyzer to 1")

        @model_validator(mode="after")
        def _one_frame_per_chunk(self) -> "StreamingDenseCaptioning.Params":
            wrong = [k for k, v in FIXED.items() if k in self.model_fields_set and getattr(self, k) != v]
            if "chunk_s" in self.model_fields_set and abs(self.chunk_s - 1.0 / float(self.fps or 1.0)) > 1e-9:
                wrong.append("chunk_s")
            if self.context:
                wrong.append("context")
            if wrong:
                raise ValueError(f"streaming_dense_captioning captions each sampled frame on its own: "
                                 f"{', '.join(wrong)} cannot be set (set fps instead)")
            for k, v in FIXED.items():
                object.__setattr__(self, k, v)
            object.__setattr__(self, "chunk_s", 1.0 / float(self.fps or 1.0))
            return self


__all__ = ["StreamingDenseCaptioning"]
