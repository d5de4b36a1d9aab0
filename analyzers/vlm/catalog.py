"""The video-language models the describer knows: manifest id -> family and its video defaults.

Each family's defaults are the model's own video settings (its processor's and its authors'):

- Qwen2-VL / Qwen2.5-VL: 2 frames per second (qwen-vl-utils' ``FPS``), frames 448 px wide
  (448x252 at 16:9 = 16x9 patches of 28 px: 144 visual tokens per pair of frames, inside the
  model's 128-768 tokens per pair), an even number of frames (``temporal_patch_size`` 2: an odd
  count repeats its last frame);
- SmolVLM2: 1 frame per second, at most 64 frames, each resized to 512 px (256M/500M) or 384 px
  (2.2B) by its image processor; the frames go in as images after a ``Frame from MM:SS:`` line,
  the prompt format of its video template;
- LLaVA-NeXT-Video: 8 frames per chunk (its video processor's default), 336 px;
- Video-LLaVA: 8 frames per clip (what it was trained on), cropped to 224 px by its processor;
- BLIP / BLIP-2 (image captioners): 1 frame per second, each frame captioned on its own (BLIP
  resizes to 384 px, BLIP-2 to 224 px), a few frames per chunk.

``cpu_max_frames`` caps the frames per chunk when the model runs on a CPU (a 10 s chunk at
SmolVLM2's 1 fps costs ~3 s of vision encoder per frame on two cores; 4 frames a chunk is seed
003's "fast" setting). An id not listed here is loaded by the family its ``config.json`` names,
with the Qwen2-VL defaults for sampling.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VideoDefaults:
    """How a family samples video: frames per second, frame width, and frame caps per chunk."""

    fps: float
    frame_width: int
    max_frames: int
    cpu_max_frames: int


FAMILY_DEFAULTS: dict[str, VideoDefaults] = {
    "qwen2_vl": VideoDefaults(fps=2.0, frame_width=448, max_frames=768, cpu_max_frames=8),
    "qwen2_5_vl": VideoDefaults(fps=2.0, frame_width=448, max_frames=768, cpu_max_frames=8),
    "smolvlm": VideoDefaults(fps=1.0, frame_width=512, max_frames=64, cpu_max_frames=4),
    "llava_next_video": VideoDefaults(fps=1.0, frame_width=336, max_frames=8, cpu_max_frames=4),
    "openai": VideoDefaults(fps=1.0, frame_width=448, max_frames=16, cpu_max_frames=16),
    # image captioners (one caption per frame) and Video-LLaVA (8 frames per clip, 224 px crops)
    "blip": VideoDefaults(fps=1.0, frame_width=512, max_frames=4, cpu_max_frames=2),
    "blip2": VideoDefaults(fps=1.0, frame_width=320, max_frames=4, cpu_max_frames=2),
    "video_llava": VideoDefaults(fps=1.0, frame_width=400, max_frames=8, cpu_max_frames=8),
}

# config.json model_type -> family
MODEL_TYPES = {"qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_5_vl", "smolvlm": "smolvlm", "idefics3": "smolvlm",
               "llava_next_video": "llava_next_video", "blip": "blip", "blip-2": "blip2", "video_llava": "video_llava"}


@dataclass(frozen=True)
class KnownModel:
    """A manifest id the describer knows: its family, and the base model when it is an adapter."""

    id: str
    family: str
    base: str | None = None  # an adapter: the manifest id of the model it applies to
    note: str = ""

    @property
    def defaults(self) -> VideoDefaults:
        return FAMILY_DEFAULTS[self.family]


KNOWN_MODELS: dict[str, KnownModel] = {m.id: m for m in (
    KnownModel("qwen2-vl-7b-instruct", "qwen2_vl", note="the original system's model (seed 004)"),
    KnownModel("qwen2-vl-2b-instruct", "qwen2_vl", note="GPUs under 8 GB"),
    KnownModel("qwen2.5-vl-7b-instruct", "qwen2_5_vl", note="absolute time alignment of frames"),
    KnownModel("qwen2.5-vl-3b-instruct", "qwen2_5_vl"),
    KnownModel("smolvlm2-256m-video-instruct", "smolvlm", note="runs on a CPU (seed 003)"),
    KnownModel("smolvlm2-500m-video-instruct", "smolvlm"),
    KnownModel("smolvlm2-2.2b-instruct", "smolvlm", note="seed 003's quality setting"),
    KnownModel("llava-next-video-7b", "llava_next_video"),
    KnownModel("llava-next-video-genai-ft", "llava_next_video", base="llava-next-video-7b",
               note="seed 002's LoRA adapter, applied to llava-next-video-7b with peft"),
    KnownModel("blip-image-captioning-base", "blip", note="seed 004 streaming_dense_captioning; captions frames"),
    KnownModel("blip2-opt-2.7b", "blip2", note="seed 004 blip2_video_analyzer; captions frames"),
    KnownModel("video-llava-7b-hf", "video_llava", note="seed 004 video_llava, in the transformers layout"),
    KnownModel("video-llava-7b", "video_llava", note="the authors' layout: transformers cannot load it (use -hf)"),
)}

DEFAULT_MODEL = "qwen2-vl-7b-instruct"


def family_of(model: str) -> str:
    """The family of a known id; ``qwen2_vl`` (its sampling defaults) for an id not listed."""
    known = KNOWN_MODELS.get(model)
    return known.family if known else "qwen2_vl"


__all__ = ["DEFAULT_MODEL", "FAMILY_DEFAULTS", "KNOWN_MODELS", "KnownModel", "MODEL_TYPES", "VideoDefaults",
           "family_of"]
