"""What every model family implements: load, prepare a batch on the CPU, generate, decode.

The analyzer drives a family through the device step: ``prepare`` runs on a CPU thread (the
processor: resizing, normalising, tokenising), ``generate`` on the device thread, ``decode`` on
the postprocessing thread. A family never opens the video and never looks a model up: it gets
frames (uint8 arrays from the single decode pass) and the local folder the runner resolved.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, ContextManager

import numpy as np

from framework import AnalyzerUnavailable


@dataclass
class Request:
    """One chunk to describe: its frames (T, H, W, 3 uint8) with their presentation times."""

    index: int
    start: float
    end: float
    times: list[float]
    frames: np.ndarray
    instruction: str
    context: str = ""  # the earlier descriptions block ("" without context)

    @property
    def fps(self) -> float:
        """The rate the frames were sampled at, from their times (for time-aware models)."""
        if len(self.times) > 1 and self.times[-1] > self.times[0]:
            return (len(self.times) - 1) / (self.times[-1] - self.times[0])
        return 1.0


@dataclass
class Answer:
    text: str
    prompt_tokens: int = 0
    new_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerationOptions:
    """How to generate; the analyzer's parameters."""

    max_new_tokens: int = 128
    min_new_tokens: int = 0          # > 0 only for benchmarks (random weights would stop early)
    temperature: float = 0.0
    static_cache: bool = False       # generate(cache_implementation="static") where the model supports it
    compile: bool = False            # torch.compile the forward (with the static cache; CUDA)
    cuda_graphs: bool | None = None  # replay decoding steps as CUDA graphs (CUDA; static cache); None: the family's default
    patch_embed_product: bool = True  # Qwen-VL's patch embedding as a matrix product, not a Conv3d
    prefill_rows: int | None = None  # a batch of more rows: prefilled in groups of at most this many, decoded as one
    # those groups cut where their padding plus this many prompt tokens a group is least; None: as few as possible
    prefill_group_tokens: float | None = None
    seed: int = 0


def torch_dtype(precision: str | None, device: str) -> Any:
    """The torch dtype for a placement's precision on ``device`` (``bf16``, ``fp16``, ``fp32``; None:
    bf16 on a GPU that supports it). On a CPU always fp32 (the plan may say bf16 when the manifest
    lists no fp32 estimate, but CPUs without native bf16 run it many times slower). ``fp8`` is the
    dtype of everything but the language model's linear layers, which ``load`` then quantizes
    (``analyzers._fp8``): bf16 on a GPU. int8/int4 need bitsandbytes, which this framework does not
    ship: ``AnalyzerUnavailable`` says what to do."""
    import torch

    if precision in ("int8", "int4"):
        raise AnalyzerUnavailable(
            f"precision {precision} needs bitsandbytes quantization, which is not installed; give the "
            "analyzer more VRAM (--vram-budget) so bf16 fits, or pick a smaller model (e.g. "
            "qwen2-vl-2b-instruct or smolvlm2-2.2b-instruct)")
    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if not device.startswith("cuda"):
        return torch.float32  # bf16/fp16 matmuls on most CPUs are emulated: many times slower than fp32
    if precision == "fp8":
        precision = None  # the unquantized rest: bf16 where the GPU supports it
    if precision is not None:
        if precision not in table:
            raise AnalyzerUnavailable(f"unknown precision {precision!r}; use bf16, fp16, fp32 or fp8")
        return table[precision]
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


class Family:
    """Base class of the model families (see the module docstring)."""

    name: ClassVar[str] = ""
    accepts_times: ClassVar[str] = "text line"  # how the model learns its frames' times
    #: a batch above ``prefill_rows`` is prefilled in groups and decoded as one (``split_rows``; CUDA graphs)
    prefills_in_groups: ClassVar[bool] = False

    def __init__(self, options: GenerationOptions | None = None):
        self.options = options or GenerationOptions()
        self.device = "cpu"
        self.notes: list[str] = []  # what the family chose or fell back to (recorded in the track)
        #: held while a batch is prepared (on the GPU for the local families); see ``decode_graphs``
        self.prepare_lock = threading.Lock()
        #: the executor's ``Placement.gpu_to_itself`` (None outside a run: nothing else uses the GPU)
        self.gpu_to_itself: Callable[[], ContextManager[bool]] | None = None
        #: the analyzer's prefill group for a batch of so many rows (``BatchedAnalyzer.prefill_group_for``: a
        #: smaller batch has room for larger groups); None: ``options.prefill_rows`` for every batch
        self.group_rows: Callable[[int], int] | None = None

    def prefill_rows_for(self, rows: int) -> int | None:
        """The most rows a prefill group of a batch of ``rows`` may have (``group_rows``, else
        ``options.prefill_rows``); None or 0: the batch is prefilled whole."""
        most = self.options.prefill_rows
        return self.group_rows(rows) if most and self.group_rows is not None else most

    def load(self, folder: Path, device: str, precision: str | None, adapter: Path | None = None) -> None:
        raise NotImplementedError

    def load_processor(self, folder: Path, device: str) -> bool:
        """Load what ``prepare`` needs (the processor, the tokenizer) ahead of ``load``, which then loads
        the model alone: True when done, so batches may be prepared while the model loads. By default
        False: this family's ``load`` loads everything at once."""
        return False

    def prepare(self, requests: list[Request]) -> Any:
        raise NotImplementedError

    def generate(self, prepared: Any) -> Any:
        raise NotImplementedError

    def decode(self, outputs: Any, prepared: Any) -> list[Answer]:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's tokenizer (an estimate without one)."""
        from framework.llm import estimate_tokens

        return estimate_tokens(text)

    def describe_model(self) -> dict[str, Any]:
        """Facts for the track: class, dtype, attention, parameters."""
        return {}

    def close(self) -> None:
        """Free the model; the next analyzer may need the memory."""


def pad_frames(frames: Any, multiple: int) -> Any:
    """Repeat the last frame so the count is a multiple of ``multiple`` (Qwen2-VL's temporal patch): a
    numpy array, or a torch tensor (on its device)."""
    extra = (-len(frames)) % multiple
    if not extra:
        return frames
    if isinstance(frames, np.ndarray):
        return np.concatenate([frames, np.repeat(frames[-1:], extra, axis=0)])
    import torch

    return torch.cat([frames, frames[-1:].expand(extra, *frames.shape[1:])])


__all__ = ["Answer", "Family", "GenerationOptions", "Request", "pad_frames", "torch_dtype"]
