"""Video-LLaVA (7B) in the transformers layout (``LanguageBind/Video-LLaVA-7B-hf``).

Loading: ``AutoProcessor`` (``VideoLlavaProcessor``) + ``VideoLlavaForConditionalGeneration`` from
the local folder, as LLaVA-NeXT-Video, whose prompt, adapter handling and ``prepare`` it shares: the
``USER: <video>\\n... ASSISTANT:`` format with a line giving the real times of the frames, and on
CUDA the frames prepared on the model's GPU (``VideoLlavaProcessor`` hands ``videos_kwargs``'
``device`` to its video processor in transformers 5.17 and 5.23 alike). The model was trained on 8
frames per clip, so every chunk's frames are spread or repeated to 8 (``frame_count``).

The original repository ``LanguageBind/Video-LLaVA-7B`` (the seed's ``video-llava-7b``) is in
the authors' own layout (``model_type: llava``, their ``LlavaLlamaForCausalLM``), which
transformers cannot load as Video-LLaVA: loading it says to use ``video-llava-7b-hf``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from framework import AnalyzerUnavailable

from .llava import LlavaNextVideo

FRAMES = 8


class VideoLlava(LlavaNextVideo):
    """Video-LLaVA."""

    name: ClassVar[str] = "video_llava"
    model_class: ClassVar[str] = "VideoLlavaForConditionalGeneration"
    frame_count: ClassVar[int | None] = FRAMES

    def load(self, folder: Path, device: str, precision: str | None, adapter: Path | None = None) -> None:
        cfg = Path(folder) / "config.json"
        model_type = json.loads(cfg.read_text()).get("model_type") if cfg.is_file() else None
        if model_type != "video_llava":
            raise AnalyzerUnavailable(
                f"{folder} is not a transformers Video-LLaVA snapshot (config.json model_type {model_type!r}, "
                "expected 'video_llava'); LanguageBind/Video-LLaVA-7B is in its authors' layout: set "
                "`model: video-llava-7b-hf` and run `framework models pull video-llava-7b-hf`")
        super().load(folder, device, precision, adapter)


__all__ = ["FRAMES", "VideoLlava"]
