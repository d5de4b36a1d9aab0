"""Video-LLaVA (7B) in the transformers layout (``LanguageBind/Video-LLaVA-7B-hf``).

Loading: ``AutoProcessor`` (``VideoLlavaProcessor``) + ``VideoLlavaForConditionalGeneration`` from
the local folder, as LLaVA-NeXT-Video (whose prompt and adapter handling it shares): the
``USER: <video>\\n... ASSISTANT:`` format with a line giving the real times of the frames. The
model was trained on 8 frames per clip, so every chunk's frames are spread or repeated to 8.

The original repository ``LanguageBind/Video-LLaVA-7B`` (the seed's ``video-llava-7b``) is in
the authors' own layout (``model_type: llava``, their ``LlavaLlamaForCausalLM``), which
transformers cannot load as Video-LLaVA: loading it says to use ``video-llava-7b-hf``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from framework import AnalyzerUnavailable

from .base import Request
from .llava import LlavaNextVideo, stretch

FRAMES = 8


class VideoLlava(LlavaNextVideo):
    """Video-LLaVA."""

    name: ClassVar[str] = "video_llava"
    model_class: ClassVar[str] = "VideoLlavaForConditionalGeneration"

    def load(self, folder: Path, device: str, precision: str | None, adapter: Path | None = None) -> None:
        cfg = Path(folder) / "config.json"
        model_type = json.loads(cfg.read_text()).get("model_type") if cfg.is_file() else None
        if model_type != "video_llava":
            raise AnalyzerUnavailable(
                f"{folder} is not a transformers Video-LLaVA snapshot (config.json model_type {model_type!r}, "
                "expected 'video_llava'); LanguageBind/Video-LLaVA-7B is in its authors' layout: set "
                "`model: video-llava-7b-hf` and run `framework models pull video-llava-7b-hf`")
        super().load(folder, device, precision, adapter)

    def prepare(self, requests: list[Request]) -> dict[str, Any]:
        texts = [self.prompt(r) for r in requests]
        videos = [stretch(r.frames, FRAMES) for r in requests]
        inputs = self.processor(text=texts, videos=videos, padding=True, return_tensors="pt")
        return {"inputs": self.pin(dict(inputs)), "texts": texts}


__all__ = ["FRAMES", "VideoLlava"]
