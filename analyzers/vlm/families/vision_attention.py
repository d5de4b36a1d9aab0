"""Qwen2-VL's vision attention as one attention call over all frame groups of equal length.

Without flash-attn, transformers' ``VisionAttention.forward`` (5.17 and 5.23) splits the patches
at ``cu_seqlens`` and runs SDPA once per frame group: for a batch of 64 chunks of Qwen2-VL-7B
(600 groups of 576 patches) that is 600 calls in each of the 32 layers, plus a read of the
lengths from the device in every layer. Each call is a few small kernels launched from Python;
in a run whose process also drives other models, every launch also waits its turn on the
interpreter's lock (the end-to-end bench on an H200: the VLM's prefill took 16.3 s beside the other
analyzers against 7.5 s alone, its graph-replayed decoding 3.7 s against 2.6 s). With this, the
prefill beside them took 11.1-13.5 s in five runs on two other machines
(``bench/results/end_to_end_h200_contention.md``, runs 28-38).

When every group has the same length (all frames of a run share one size, so every group of
Qwen2-VL does), the patches are one batch of (groups, heads, length, dim) and one SDPA call
computes the same attention: the lengths are read from the device once per forward of the vision
tower (``cu_seqlens`` is the same tensor in every layer), not once per layer. Unequal groups
(Qwen2.5-VL's windows, mixed frame sizes) go through transformers' own forward unchanged.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

#: the attention modules this replaces, by class name (Qwen2-VL's; Qwen2.5-VL's full-attention
#: layers share the forward, its window layers fall back whenever their windows differ in length)
CLASS_NAMES = ("VisionAttention", "Qwen2_5_VLVisionAttention")


class EqualLengths:
    """The common length of the groups ``cu_seqlens`` marks, or None; read once per tensor.

    The tower passes one ``cu_seqlens`` tensor (two for Qwen2.5-VL: windows and full) to all its
    layers, so the answer for the last few tensors is kept by identity."""

    KEEP = 4

    def __init__(self) -> None:
        self._seen: list[tuple[Any, int | None]] = []
        self.reads = 0  # how many times the lengths were read from the device
        self.modules = 0  # how many attention modules share it

    def __call__(self, cu_seqlens: Any) -> int | None:
        for tensor, length in self._seen:
            if tensor is cu_seqlens:
                return length
        self.reads += 1
        bounds = cu_seqlens.tolist()
        lengths = {b - a for a, b in zip(bounds, bounds[1:])}
        length = lengths.pop() if len(lengths) == 1 else None
        self._seen = [(cu_seqlens, length)] + self._seen[:self.KEEP - 1]
        return length


def grouped_forward(module: Any, original: Callable[..., Any], equal: EqualLengths,
                    rotary: Callable[..., Any]) -> Callable[..., Any]:
    """``module.forward`` with one SDPA call when the groups are equally long; else ``original``."""
    import torch.nn.functional as F

    def forward(hidden_states: Any, cu_seqlens: Any, *args: Any, **kwargs: Any) -> Any:
        embeddings = kwargs.get("position_embeddings")
        length = equal(cu_seqlens) if not args and embeddings is not None and not module.training else None
        seq = hidden_states.shape[0]
        if length is None or seq % length:
            return original(hidden_states, cu_seqlens, *args, **kwargs)
        heads = module.num_heads
        q, k, v = module.qkv(hidden_states).reshape(seq, 3, heads, -1).permute(1, 0, 2, 3).unbind(0)
        cos, sin = embeddings
        q, k = rotary(q, k, cos, sin)
        groups = seq // length
        q, k, v = (t.reshape(groups, length, heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, scale=module.scaling)
        return module.proj(out.transpose(1, 2).reshape(seq, -1))

    return forward


def install(model: Any) -> int:
    """Give the vision attention modules of ``model`` the grouped forward; how many were given it.
    0 when none of the expected shape is found (a future transformers): the model is unchanged."""
    equal = EqualLengths()
    count = 0
    for module in model.modules():
        if type(module).__name__ not in CLASS_NAMES:
            continue
        rotary = getattr(sys.modules.get(type(module).__module__), "apply_rotary_pos_emb_vision", None)
        if rotary is None or not all(hasattr(module, a) for a in ("qkv", "proj", "num_heads", "scaling")):
            continue
        module.forward = grouped_forward(module, module.forward, equal, rotary)
        count += 1
    equal.modules = count
    model._grouped_vision_lengths = equal  # (the track's model info says how many, and how many reads)
    return count


__all__ = ["CLASS_NAMES", "EqualLengths", "grouped_forward", "install"]
