"""BLIP and BLIP-2: image captioners, one caption per frame, the chunk's answer their captions with times.

Neither model takes a video or an instruction the way the video-language families do, so each
frame of a chunk is one image (the chunk's frames come from the single decode pass as always) and
gets its own caption; the chunk's text lists them in order with their real presentation times,
``[12.0 s] a man walks a dog. [14.5 s] a dog on grass.``, consecutive equal captions written once
with the time of the first. With one frame per chunk (``streaming_dense_captioning``) the text is
the caption alone.

- **BLIP** (``blip-image-captioning-base``; ``AutoProcessor`` = ``BlipProcessor`` +
  ``BlipForConditionalGeneration``): unconditional captioning, as its model card shows. The
  instruction is not given to it (it is a captioner, not instruction-tuned).
- **BLIP-2** (``blip2-opt-2.7b``; ``Blip2Processor`` + ``Blip2ForConditionalGeneration``): a
  caption by default (the empty prompt); a custom ``prompt`` is asked in its VQA format
  ``Question: ... Answer:``. The processor expands the ``<image>`` placeholder to the model's
  query tokens (``num_query_tokens``); a snapshot from before transformers added that token cannot
  be run correctly by transformers 5 (the image would be ignored), so loading refuses it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from framework import AnalyzerUnavailable

from ..prompts import DEFAULT_PROMPT, fmt_seconds
from .base import Answer, Request
from .hf import HFFamily, import_transformers, left_padded


class ImageCaptioner(HFFamily):
    """What BLIP and BLIP-2 share: every frame is one image with one caption (see the module docstring)."""

    accepts_times: ClassVar[str] = "none (one caption per frame; the text gives each caption its frame's time)"

    def load(self, folder: Path, device: str, precision: str | None, adapter: Path | None = None) -> None:
        transformers = import_transformers()
        if adapter is not None:
            raise AnalyzerUnavailable(f"{self.name} takes no adapter (got {adapter})")
        self.processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
        self.tokenizer = left_padded(self.processor.tokenizer)
        self.load_model(folder, device, precision, None)
        self.check_loaded()
        self.notes.append(f"{self.name} captions single images: each frame of a chunk got its own caption")

    def check_loaded(self) -> None:
        """Refuse a snapshot this transformers cannot run correctly."""

    def images(self, requests: list[Request]) -> tuple[list[Any], list[tuple[int, float]]]:
        """Every frame of every request, and (request position, frame time) for each."""
        images, owners = [], []
        for k, r in enumerate(requests):
            for t, frame in zip(r.times, r.frames):
                images.append(frame)
                owners.append((k, float(t)))
        return images, owners

    def encode(self, images: list[Any], prompts: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def prompt(self, req: Request) -> str:
        return ""

    def prepare(self, requests: list[Request]) -> dict[str, Any]:
        images, owners = self.images(requests)
        prompts = [self.prompt(requests[k]) for k, _ in owners]
        inputs = self.encode(images, prompts)
        return {"inputs": self.pin(inputs), "owners": owners, "requests": len(requests)}

    def captions(self, outputs: Any, prepared: dict[str, Any]) -> list[Answer]:
        """One answer per image."""
        return HFFamily.decode(self, outputs, prepared)

    def decode(self, outputs: Any, prepared: dict[str, Any]) -> list[Answer]:
        per_image = self.captions(outputs, prepared)
        grouped: list[list[tuple[float, Answer]]] = [[] for _ in range(prepared["requests"])]
        for (k, t), a in zip(prepared["owners"], per_image):
            grouped[k].append((t, a))
        return [join_captions(g) for g in grouped]


def join_captions(captions: list[tuple[float, Answer]]) -> Answer:
    """A chunk's answer from its frames' captions: the caption alone for one frame, else each
    caption after its time (``[12.0 s] ...``), a caption equal to the one before left out."""
    texts = [a.text.strip() for _, a in captions]
    if len(captions) == 1:
        text = texts[0]
    else:
        parts, last = [], None
        for (t, _), caption in zip(captions, texts):
            if caption and caption != last:
                parts.append(f"[{fmt_seconds(t)} s] {caption.rstrip('.')}.")
            last = caption
        text = " ".join(parts)
    return Answer(text=text, prompt_tokens=sum(a.prompt_tokens for _, a in captions),
                  new_tokens=sum(a.new_tokens for _, a in captions),
                  extra={"padding": sum(int(a.extra.get("padding", 0)) for _, a in captions),
                         "captions": [{"time": t, "text": c} for (t, _), c in zip(captions, texts)]})


class Blip(ImageCaptioner):
    """BLIP image captioning (``BlipForConditionalGeneration``)."""

    name: ClassVar[str] = "blip"
    model_class: ClassVar[str] = "BlipForConditionalGeneration"
    attention: ClassVar[str] = "eager"  # transformers has no SDPA path for BLIP

    def encode(self, images: list[Any], prompts: list[str]) -> dict[str, Any]:
        return {"pixel_values": self.processor(images=images, return_tensors="pt")["pixel_values"]}

    def gen_kwargs(self) -> dict[str, Any]:
        kw = super().gen_kwargs()
        kw.pop("pad_token_id", None)  # BLIP's generate passes its own pad and end tokens
        return kw

    def captions(self, outputs: Any, prepared: dict[str, Any]) -> list[Answer]:
        new = outputs[:, 1:].cpu()  # BLIP's generate starts every caption with its bos token
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        pad = self.model.config.text_config.pad_token_id
        return [Answer(text=text.strip(), prompt_tokens=1,
                       new_tokens=int((row != pad).sum()) if pad is not None else int(row.numel()))
                for row, text in zip(new, texts)]


class Blip2(ImageCaptioner):
    """BLIP-2 (``Blip2ForConditionalGeneration``, e.g. OPT-2.7b)."""

    name: ClassVar[str] = "blip2"
    model_class: ClassVar[str] = "Blip2ForConditionalGeneration"

    def check_loaded(self) -> None:
        cfg = self.model.config
        token = getattr(cfg, "image_token_id", None)
        if token is None:
            token = getattr(cfg, "image_token_index", None)
        if token is None or self.tokenizer.convert_tokens_to_ids("<image>") != token:
            raise AnalyzerUnavailable(
                "this BLIP-2 snapshot has no <image> token (it predates transformers' processor change), so "
                "transformers 5 would ignore the image; pull the pinned revision again: "
                "`framework models pull blip2-opt-2.7b`")
        if getattr(self.processor, "num_query_tokens", None) is None:
            self.processor.num_query_tokens = int(cfg.num_query_tokens)
            self.notes.append(f"processor had no num_query_tokens: took {cfg.num_query_tokens} from the model")

    def prompt(self, req: Request) -> str:
        if req.instruction == DEFAULT_PROMPT:
            return ""  # a caption: BLIP-2 OPT is not instruction-tuned
        return f"Question: {req.instruction} Answer:"

    def encode(self, images: list[Any], prompts: list[str]) -> dict[str, Any]:
        return dict(self.processor(images=images, text=prompts, padding=True, return_tensors="pt"))


__all__ = ["Blip", "Blip2", "ImageCaptioner", "join_captions"]
