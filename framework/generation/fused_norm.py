"""A language model's RMSNorm layers as one fused kernel each (``torch.nn.functional.rms_norm``).

transformers' Qwen2 / Qwen2-VL / Llama RMSNorm computes in float32 with six to eight elementwise kernels
(a cast, a square, a mean, an add, a reciprocal square root, two products and a cast back); a decoding
step runs two of them in each layer, so Qwen2.5-1.5B's 28 layers launch some 400 of these small
kernels a step, each 1-2 microseconds on an H200 (``bench/results/fusion_step_h200.md``: the mean,
pow, rsqrt and copy kernels of its profile). ``F.rms_norm`` does the same arithmetic (float32 inside)
in one kernel on CUDA (``aten::_fused_rms_norm``). The one difference: the weight multiplies the
normalized value before it is rounded to the model's dtype instead of after, at most one rounding
step of bfloat16 apart.

``install(model)`` swaps the ``forward`` of the RMSNorm classes listed in ``STANDARD`` (those that
compute exactly ``weight * x / sqrt(mean(x^2) + eps)``; Gemma's ``1 + weight`` is not one) on a model
on a GPU; weights and state_dict are untouched. ``FRAMEWORK_FUSED_RMS_NORM=0`` leaves them as they
are (to compare).
"""
from __future__ import annotations

import types
from typing import Any

from ..work_streams import switched_on

#: RMSNorm classes of transformers whose forward is the standard one
STANDARD = frozenset({"Qwen2RMSNorm", "Qwen2VLRMSNorm", "Qwen2_5_VLRMSNorm", "Qwen3RMSNorm", "LlamaRMSNorm",
                      "MistralRMSNorm"})


def _fused_forward(self: Any, hidden_states: Any) -> Any:
    import torch.nn.functional as F

    weight = self.weight
    if hidden_states.dtype != weight.dtype:  # (the reference promotes; the fused kernel takes one dtype)
        return type(self).forward(self, hidden_states)
    return F.rms_norm(hidden_states, (weight.shape[-1],), weight, self.variance_epsilon)


def install(model: Any, force: bool = False, env: Any = None) -> int:
    """Fuse ``model``'s standard RMSNorm layers if its weights are on a GPU (``force``: anywhere, for
    tests); how many were. Nothing when ``FRAMEWORK_FUSED_RMS_NORM`` is off or torch lacks ``rms_norm``."""
    import torch

    if not switched_on("FRAMEWORK_FUSED_RMS_NORM", env) or not hasattr(torch.nn.functional, "rms_norm"):
        return 0
    fused = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if (type(module).__name__ not in STANDARD or not isinstance(weight, torch.Tensor) or weight.dim() != 1
                or not isinstance(getattr(module, "variance_epsilon", None), float)):
            continue
        if weight.device.type != "cuda" and not force:
            continue
        module.forward = types.MethodType(_fused_forward, module)
        fused += 1
    return fused


__all__ = ["STANDARD", "install"]
