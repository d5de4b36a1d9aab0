"""Torch device and dtype choices shared by the transformers-based audio analyzers."""
from __future__ import annotations

from typing import Any

from framework import AnalyzerUnavailable

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def torch_device(device: str) -> str:
    """``"cpu"`` / ``"cuda:N"``; the legacy ``"gpu"`` means ``"cuda"``."""
    return "cuda" if device == "gpu" else device


def torch_dtype(precision: str | None, device: str, what: str) -> Any:
    """The torch dtype for the plan's precision: fp32 on a CPU, the variant (fp16 when none) on a GPU.

    int8/int4 need bitsandbytes, which is not installed: the analyzer is then unavailable.
    """
    import torch

    if precision in ("int8", "int4"):
        raise AnalyzerUnavailable(f"{what}: no {precision} variant here (bitsandbytes is not installed); "
                                  "use fp16, bf16 or fp32")
    if not torch_device(device).startswith("cuda"):
        return torch.float32
    return getattr(torch, DTYPES.get(precision or "fp16", "float16"))
