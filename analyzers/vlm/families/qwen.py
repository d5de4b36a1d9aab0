"""Qwen2-VL and Qwen2.5-VL: the frames as one video input, their times in the prompt.

Loading: ``AutoProcessor`` + ``Qwen2VLForConditionalGeneration`` (or
``Qwen2_5_VLForConditionalGeneration``) from the local folder. The processor turns each chunk's
frames into patches (the frames were decoded 448 px wide, a multiple of the 28 px patch, so its
``smart_resize`` keeps them as they are) and expands the video placeholder; the tokenizer pads on
the left so a batch generates from one position.

The vision tower's attention runs as one SDPA call over all frame groups of equal length
(``vision_attention``), instead of transformers' call per group, and its patch embedding as one matrix
product instead of a 3-D convolution (``patch_embed``); on a GPU each RMSNorm of the decoder is one fused
kernel (``framework.generation.fused_norm``), and each layer's query/key/value projections one matrix product,
as its MLP's gate and up projections are (``framework.generation.fused_projections``).

Times: Qwen2-VL numbers its frame pairs, not seconds, so the prompt carries a line with the real
times of the frames; Qwen2.5-VL also encodes absolute time (``second_per_grid_ts``, set here from
the frames' real sampling rate, so it does not depend on what a processor version infers).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from framework.generation import fused_norm, fused_projections
from framework.work_streams import switched_on

from . import patch_embed, vision_attention
from .base import Request, pad_frames
from .hf import HFFamily, import_transformers, left_padded
from ..prompts import times_line

VIDEO_PLACEHOLDER = "<|vision_start|><|video_pad|><|vision_end|>"


def keep_frame_sizes(video_processor: Any) -> bool:
    """Frames patched at the size the analyzer decoded them, as before transformers' ``cap_pixels_per_frame``.

    transformers 5.23's Qwen video processors take ``cap_pixels_per_frame`` (unset: off, with a warning that
    the capped behaviour of qwen-vl-utils, which shrinks the frames of a chunk with many of them, will become
    the default). Set off here, so that a chunk's tokens (and the measurements made with them) stay the same
    across transformers versions and the warning is not logged in every run. Versions without the setting are
    left as they are. True where it was set."""
    if not hasattr(video_processor, "cap_pixels_per_frame"):
        return False
    video_processor.cap_pixels_per_frame = False
    return True


class Qwen2VL(HFFamily):
    """Qwen2-VL (2B, 7B)."""

    name: ClassVar[str] = "qwen2_vl"
    model_class: ClassVar[str] = "Qwen2VLForConditionalGeneration"
    accepts_times: ClassVar[str] = "text line with each frame's time"
    # with position_ids given, these feed only the 3-D position computation (get_rope_index)
    decode_unused: ClassVar[tuple[str, ...]] = ("mm_token_type_ids", "image_grid_thw", "video_grid_thw",
                                                "second_per_grid_ts")
    # Qwen2-VL-7B's 60 descriptions were the same with and without graphs on an H200
    # (bench/results/vlm_throughput_h200_7b.md, run 5), as were the tiny model's tokens; Qwen2.5-VL
    # shares the decoder (its tiny model checked on the CPU, tests/test_decode_graphs.py)
    graphs_by_default: ClassVar[bool] = True
    prefills_in_groups: ClassVar[bool] = True  # (split_rows below)
    linear_patch_embeds = 0  # set by ``load``: patch embeddings computed as a matrix product (``patch_embed``)
    fused_norms = 0  # set by ``load``: RMSNorm layers as one fused kernel each (``framework.generation.fused_norm``)
    fused_projections: dict[str, int] = {}  # set by ``load``: layers whose projections share one product
    processor: Any = None  # set by ``load_processor`` (``load`` calls it unless it was called before)

    def load_processor(self, folder: Path, device: str) -> bool:
        transformers = import_transformers()
        self.device = "cuda" if device == "gpu" else device  # (where ``prepare`` puts the frames' patches)
        self.processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
        self.tokenizer = left_padded(self.processor.tokenizer)
        self.temporal_patch = int(getattr(self.processor.video_processor, "temporal_patch_size", 2) or 2)
        keep_frame_sizes(self.processor.video_processor)
        return True

    def load(self, folder: Path, device: str, precision: str | None, adapter: Path | None = None) -> None:
        if self.processor is None:
            self.load_processor(folder, device)
        self.load_model(folder, device, precision, adapter)
        self.linear_patch_embeds = patch_embed.install(self.model) if self.options.patch_embed_product else 0
        self.fused_norms = fused_norm.install(self.model)  # on a GPU: each RMSNorm of its decoder one kernel
        self.fused_projections = fused_projections.install(self.model)  # on a GPU: q/k/v one product, gate/up one
        grouped = vision_attention.install(self.model)
        if not grouped:
            self.notes.append("vision attention: transformers' own (one call per frame group): no attention "
                              "module of the shape vision_attention knows")

    def describe_model(self) -> dict[str, Any]:
        info = super().describe_model()
        info["patch_embed"] = "matrix product" if self.linear_patch_embeds else "transformers' own"
        info["fused_rms_norms"] = self.fused_norms
        info["fused_projections"] = dict(self.fused_projections)
        equal = getattr(self.model, "_grouped_vision_lengths", None)
        if equal is not None:
            info["vision_attention"] = {"grouped_modules": equal.modules, "length_reads": equal.reads}
        return info

    def user_text(self, req: Request) -> str:
        return f"{VIDEO_PLACEHOLDER}{times_line(req.start, req.end, req.times)}\n{req.context}{req.instruction}"

    def chat(self, req: Request) -> str:
        messages = [{"role": "user", "content": self.user_text(req)}]
        template = getattr(self.tokenizer, "chat_template", None) or getattr(self.processor, "chat_template", None)
        return self.tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                  add_generation_prompt=True)

    def prepare(self, requests: list[Request]) -> dict[str, Any]:
        texts = [self.chat(r) for r in requests]
        videos = [self.video_input(r.frames) for r in requests]
        inputs = self.processor(text=texts, videos=videos, padding=True, return_tensors="pt", **self.video_kwargs())
        inputs = self.time_inputs(dict(inputs), requests)
        return {"inputs": self.pin(inputs), "texts": texts}

    def video_input(self, frames: np.ndarray) -> Any:
        """A chunk's frames as the processor gets them, padded to the temporal patch. On CUDA they go to the
        GPU first, as they are (frames x height x width x RGB, uint8): the processor's channels-first copy and
        the padding then run there, instead of on CPUs the run's other analyzers keep busy. (Beside the
        default set on an H200, the device waited 1.8 s for the 114 chunks of a 10-minute clip to be prepared,
        about 0.9 s of it in that copy and the copy to the GPU.) ``FRAMEWORK_VLM_FRAMES_TO_GPU=0``: as before."""
        if self.device.startswith("cuda") and switched_on("FRAMEWORK_VLM_FRAMES_TO_GPU"):
            import torch

            frames = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        return pad_frames(frames, self.temporal_patch)

    def time_inputs(self, inputs: dict[str, Any], requests: list[Request]) -> dict[str, Any]:
        return inputs

    #: inputs with a column per prompt token (left padded), and with one entry per chunk's video
    TOKEN_KEYS: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask", "mm_token_type_ids")
    VIDEO_KEYS: ClassVar[tuple[str, ...]] = ("video_grid_thw", "second_per_grid_ts")

    def split_rows(self, inputs: dict[str, Any], rows: list[int]) -> dict[str, Any] | None:
        """``rows``' chunks alone: their prompts left-trimmed to the longest of them, their videos' grids
        and patches (one video per chunk). None for inputs of another shape (images, several videos)."""
        import torch

        known = set(self.TOKEN_KEYS) | set(self.VIDEO_KEYS) | {"pixel_values_videos"}
        grid = inputs.get("video_grid_thw")
        n_rows = int(inputs["input_ids"].shape[0])
        if set(inputs) - known or grid is None or int(grid.shape[0]) != n_rows or "pixel_values_videos" not in inputs:
            return None
        index = torch.tensor(rows, device=inputs["input_ids"].device)
        width = int(inputs["attention_mask"].index_select(0, index).sum(1).max())
        out = {k: inputs[k].index_select(0, index)[:, -width:] for k in self.TOKEN_KEYS if k in inputs}
        for key in self.VIDEO_KEYS:
            if key in inputs:
                out[key] = inputs[key].index_select(0, index.to(inputs[key].device))
        patches = grid.prod(-1).tolist()
        starts = [0]
        for n in patches:
            starts.append(starts[-1] + int(n))
        pixels = inputs["pixel_values_videos"]
        out["pixel_values_videos"] = torch.cat([pixels[starts[r]:starts[r + 1]] for r in rows])
        return out


class Qwen25VL(Qwen2VL):
    """Qwen2.5-VL (3B, 7B): absolute time through ``second_per_grid_ts``."""

    name: ClassVar[str] = "qwen2_5_vl"
    model_class: ClassVar[str] = "Qwen2_5_VLForConditionalGeneration"
    accepts_times: ClassVar[str] = "absolute time encoding (second_per_grid_ts) and a text line"

    def time_inputs(self, inputs: dict[str, Any], requests: list[Request]) -> dict[str, Any]:
        import torch

        inputs["second_per_grid_ts"] = torch.tensor([self.temporal_patch / r.fps for r in requests],
                                                    dtype=torch.float32)
        return inputs


__all__ = ["Qwen25VL", "Qwen2VL", "VIDEO_PLACEHOLDER"]
