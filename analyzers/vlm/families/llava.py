"""LLaVA-NeXT-Video (7B), optionally with a LoRA adapter (seed 002's fine-tune) applied by peft.

Loading: ``AutoProcessor`` (``LlavaNextVideoProcessor``) + ``LlavaNextVideoForConditionalGeneration``
from the base model's local folder; an adapter folder (``adapter_config.json``) is applied with
``peft.PeftModel.from_pretrained`` and merged. A folder that holds a full fine-tuned model
instead (``config.json``, no adapter config) is loaded as the model itself.

Prompt: the model's ``USER: <video>\\n... ASSISTANT:`` format (seed 002's captions were made with
it), with a line giving the real times of the frames.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .base import Request
from .hf import HFFamily, has_adapter_config, import_transformers, left_padded
from ..prompts import times_line


class LlavaNextVideo(HFFamily):
    """LLaVA-NeXT-Video."""

    name: ClassVar[str] = "llava_next_video"
    model_class: ClassVar[str] = "LlavaNextVideoForConditionalGeneration"
    #: frames every video of a batch is stretched to; None: the batch's largest count (one tensor, one count)
    frame_count: ClassVar[int | None] = None

    def load(self, folder: Path, device: str, precision: str | None, adapter: Path | None = None) -> None:
        transformers = import_transformers()
        if adapter is not None and not has_adapter_config(adapter) and (Path(adapter) / "config.json").is_file():
            folder, adapter = Path(adapter), None  # a merged fine-tune: load it as the model
            self.notes.append(f"{folder} holds a full model (no adapter_config.json): loaded it as the model")
        self.processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
        self.tokenizer = left_padded(self.processor.tokenizer)
        self.load_model(folder, device, precision, adapter)
        if adapter is not None:
            self.notes.append(f"LoRA adapter {Path(adapter).name} applied with peft and merged")

    def prompt(self, req: Request) -> str:
        return (f"USER: <video>\n{times_line(req.start, req.end, req.times)}\n{req.context}{req.instruction} "
                "ASSISTANT:")

    def prepare(self, requests: list[Request]) -> dict[str, Any]:
        texts = [self.prompt(r) for r in requests]
        n = self.frame_count or max(len(r.frames) for r in requests)
        videos = [stretch(r.frames, n) for r in requests]
        inputs = self.processor(text=texts, videos=videos, padding=True, return_tensors="pt", **self.video_kwargs())
        return {"inputs": self.pin(dict(inputs)), "texts": texts}


def stretch(frames: np.ndarray, n: int) -> np.ndarray:
    """``n`` frames from ``frames``, uniformly over them (repeating some when there are fewer):
    LLaVA-NeXT-Video samples a fixed number of frames per video, and a batch needs one count."""
    if len(frames) == n:
        return frames
    return frames[np.linspace(0, len(frames) - 1, n).round().astype(int)]


__all__ = ["LlavaNextVideo"]
