"""Attention for decoding steps (one new token per row) as two matrix products per key/value head,
and transformers' SDPA for everything else (the prefill).

Why: over a static KV cache every decoding step passes a mask, so transformers' SDPA path cannot
let PyTorch's kernels group the query heads that share a key/value head; it packs them as a short
query (transformers 5.23) or copies the key/value heads out to every query head (``repeat_kv``,
5.17), and PyTorch picks its memory-efficient kernel, which runs the step over the whole cache in a
handful of thread blocks. On an H200, Qwen2.5-1.5B (12 query heads, 2 key/value heads) decoding
after a 5500-token prompt took 11.0-12.1 ms a step with SDPA, that kernel 56 % of the GPU time;
6.3 ms with this; 6.4-6.5 ms with transformers' eager attention (after 1000 tokens: 5.8-5.9, 4.4
and 5.1-5.2 ms; ``bench/results/fusion_step_h200.md``). End to end, fusion's 764 steps took
3.2-3.7 s instead of 4.1-4.5 s (``bench/results/end_to_end_h200_ab.md``).

On a GPU with Triton a step is ``decode_kernel``'s (flash-decoding: the cache read in stretches by as
many programs as the GPU has multiprocessors, twice over; ``FRAMEWORK_DECODE_KERNEL=0`` turns it off).
Elsewhere a step's query is viewed as (key/value head, queries sharing it), so each head's keys are read
once, by a batched matrix product; the softmax is in float32, as eager attention's. The mask and
everything else are SDPA's (the same mask function), so CUDA graphs and ``greedy_loop`` see the
same inputs. ``install`` switches a model to it where its attention follows transformers'
attention interface; elsewhere nothing changes and the note says why.
"""
from __future__ import annotations

from typing import Any

from . import decode_kernel

#: the attention implementation's name in transformers' registries
NAME = "framework_decode"


def attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
              scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers' attention-interface signature: (output as batch, query length, heads, head dim; None)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    if (q_len != 1 or dropout or kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None
            or kwargs.get("output_attentions") or heads % kv_heads
            or value.shape[-1] != dim
            or (attention_mask is not None and (attention_mask.ndim != 4 or attention_mask.shape[1:3] != (1, 1)))):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    scale = dim ** -0.5 if scaling is None else scaling
    if decode_kernel.available(query) and decode_kernel.fits(query, key, value):
        try:
            return decode_kernel.attend(query, key, value, attention_mask, scale), None
        except Exception as exc:  # noqa: BLE001 - a kernel that does not build or run here: the products below
            decode_kernel.disable(f"{type(exc).__name__}: {str(exc)[:200]}")
    return products(query, key, value, attention_mask, scale), None


def products(query: Any, key: Any, value: Any, attention_mask: Any, scale: float) -> Any:
    """A one-token step's attention as two matrix products per key/value head: ``query`` (batch, heads, 1,
    dim) against ``key``/``value`` (batch, key/value heads, keys, dim), ``attention_mask`` None or (batch or 1,
    1, 1, keys or more), boolean (True: attend) or additive; (batch, 1, heads, dim). The scores and softmax
    in float32, the probabilities back in ``value``'s dtype (given float32 tensors: all of it in float32,
    ``decode_kernel.reference``)."""
    import torch

    batch, heads, _, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    q = query.reshape(batch, kv_heads, heads // kv_heads, dim)  # query head h shares key/value head h // group
    # keys times queries (not queries times keys): a tall product that spreads over the keys, where
    # cuBLAS ran the other way round as a matrix-vector kernel, one key/value head per block. Other
    # ways were slower on an H200 after 5500 prompt tokens (``bench/results/fusion_step_h200.md``, run 4):
    # the queries padded to 8 rows 6.89 ms a step against 6.85; a broadcast product summed over the
    # head dimension 9.98 ms (11.50 with the products in float32); SDPA 11.03 ms; every query head against every
    # key/value head's keys as one linear layer's product (12 x 128 against 2 x 5500 x 128, the diagonal blocks
    # kept) 8.29-9.29 ms against 6.12-6.20: cuBLAS ran it as the slow matrix-vector kernel too (run 5).
    scores = torch.matmul(key, q.transpose(-1, -2)).float() * scale  # (batch, kv heads, keys, group)
    if attention_mask is not None:
        mask = attention_mask[..., :kv_len].transpose(-1, -2)  # (batch or 1, 1, keys, 1), as SDPA reads it
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.float()
    probs = torch.softmax(scores, dim=-2).to(value.dtype)
    out = torch.matmul(probs.transpose(-1, -2), value)  # (batch, kv heads, group, dim)
    return out.reshape(batch, 1, heads, dim)


def register() -> str | None:
    """Register ``attention`` (with SDPA's mask) under ``NAME``; None, or why it cannot be."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError as exc:
        return f"this transformers has no attention interface ({exc})"
    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return None


def install(model: Any) -> str | None:
    """Switch ``model`` (on SDPA) to ``attention`` for its decoding steps; None, or why it was not.
    A model on another attention (eager, flash) is left as it is, and nothing is said."""
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return None
    why = register()
    if why is None:
        try:
            model.set_attn_implementation(NAME)
        except Exception as exc:  # noqa: BLE001 - a model that cannot switch keeps SDPA
            why = f"{type(exc).__name__}: {str(exc)[:160]}"
    if why is None and model.config._attn_implementation != NAME:
        why = "the model does not switch its attention dynamically"
    if why is None:
        decode_kernel.check(model)  # (on a GPU: the kernel built and checked now; set aside if it fails)
    return None if why is None else f"decoding steps keep SDPA attention ({why})"


__all__ = ["NAME", "attention", "install", "products", "register"]
