"""One small module per model family; ``family_class`` maps a family name to its class.

Importing this package imports neither torch nor transformers (each family imports them in
``load``).
"""
from __future__ import annotations

from .base import Answer, Family, GenerationOptions, Request


def family_class(name: str) -> type[Family]:
    """The class of family ``name`` (``qwen2_vl``, ``qwen2_5_vl``, ``smolvlm``, ``llava_next_video``, ``blip``,
    ``blip2``, ``video_llava``, ``openai``)."""
    if name == "qwen2_vl":
        from .qwen import Qwen2VL
        return Qwen2VL
    if name == "qwen2_5_vl":
        from .qwen import Qwen25VL
        return Qwen25VL
    if name == "smolvlm":
        from .smolvlm import SmolVLM
        return SmolVLM
    if name == "llava_next_video":
        from .llava import LlavaNextVideo
        return LlavaNextVideo
    if name == "blip":
        from .blip import Blip
        return Blip
    if name == "blip2":
        from .blip import Blip2
        return Blip2
    if name == "video_llava":
        from .video_llava import VideoLlava
        return VideoLlava
    if name == "openai":
        from .endpoint import OpenAIEndpoint
        return OpenAIEndpoint
    raise ValueError(f"unknown VLM family {name!r}")


def family_from_config(folder) -> str | None:
    """The family a model folder's ``config.json`` names (``model_type``), or None."""
    import json
    from pathlib import Path

    from ..catalog import MODEL_TYPES

    cfg = Path(folder) / "config.json"
    if not cfg.is_file():
        return None
    try:
        model_type = json.loads(cfg.read_text()).get("model_type")
    except ValueError:
        return None
    return MODEL_TYPES.get(model_type)


__all__ = ["Answer", "Family", "GenerationOptions", "Request", "family_class", "family_from_config"]
