"""SmolVLM2 (256M, 500M, 2.2B): the frames as images, each after a ``Frame from MM:SS:`` line.

That is SmolVLM2's own video prompt (its processor's video template: an intro line, then each
frame after its timestamp), written here with the real presentation times of the chunk's
frames. The text and images are assembled from the tokenizer and the image processor
(``AutoTokenizer`` + ``AutoImageProcessor`` + ``SmolVLMForConditionalGeneration`` from the local
folder): the stock ``SmolVLMProcessor`` refuses to start without the ``num2words`` package,
which only spells the frame count in words. Each frame is one image of ``image_seq_len`` tokens
(no splitting into tiles, as in the video template).
"""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from .base import Request
from .hf import HFFamily, import_transformers, left_padded
from ..prompts import mmss, times_line

INTRO = "You are provided the following series of {n} frames from a {duration} [H:MM:SS] video.\n"


class SmolVLM(HFFamily):
    """SmolVLM2 / Idefics3-style models."""

    name: ClassVar[str] = "smolvlm"
    model_class: ClassVar[str] = "SmolVLMForConditionalGeneration"
    accepts_times: ClassVar[str] = "a 'Frame from MM:SS:' line before each frame (its video prompt format)"

    def _model_cls(self) -> Any:
        transformers = import_transformers()
        config = transformers.AutoConfig.from_pretrained(self.folder, local_files_only=True)
        if config.model_type == "idefics3":
            return transformers.Idefics3ForConditionalGeneration
        return transformers.SmolVLMForConditionalGeneration

    def load(self, folder: Path, device: str, precision: str | None, adapter: Path | None = None) -> None:
        transformers = import_transformers()
        self.folder = Path(folder)
        self.tokenizer = left_padded(transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True))
        self.image_processor = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        self.load_model(folder, device, precision, adapter)
        self.image_seq_len = self._image_seq_len()
        tok = self.tokenizer
        self.image_token = getattr(tok, "image_token", None) or "<image>"
        self.fake_token = getattr(tok, "fake_image_token", None) or "<fake_token_around_image>"
        self.global_token = getattr(tok, "global_image_token", None) or "<global-img>"

    def _image_seq_len(self) -> int:
        """Tokens per image: the processor's ``image_seq_len``, else from the vision config."""
        cfg_file = self.folder / "processor_config.json"
        if cfg_file.is_file():
            value = json.loads(cfg_file.read_text()).get("image_seq_len")
            if value:
                return int(value)
        c = self.model.config
        patches = (c.vision_config.image_size // c.vision_config.patch_size) ** 2
        return int(patches / (c.scale_factor ** 2))

    def image_string(self) -> str:
        return f"{self.fake_token}{self.global_token}{self.image_token * self.image_seq_len}{self.fake_token}"

    def prompt(self, req: Request) -> str:
        duration = str(timedelta(seconds=int(max(req.end, req.times[-1] if req.times else 0.0))))
        video = INTRO.format(n=len(req.times), duration=duration)
        for t in req.times:
            video += f"\nFrame from {mmss(t)}:" + self.image_string()
        text = f"{times_line(req.start, req.end, req.times)}\n{req.context}{req.instruction}"
        return f"<|im_start|>User: {video}\n\n{text}<end_of_utterance>\nAssistant:"

    def prepare(self, requests: list[Request]) -> dict[str, Any]:
        texts = [self.prompt(r) for r in requests]
        images = [[frame for frame in r.frames] for r in requests]
        vision = self.image_processor(images=images, do_image_splitting=False, return_tensors="pt")
        enc = self.tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt")
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                  "pixel_values": vision["pixel_values"]}
        if "pixel_attention_mask" in vision:
            inputs["pixel_attention_mask"] = vision["pixel_attention_mask"]
        return {"inputs": self.pin(inputs), "texts": texts}


__all__ = ["SmolVLM"]
