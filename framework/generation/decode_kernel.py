"""A decoding step's attention as one Triton kernel over splits of the KV cache, and one that joins them
(flash-decoding), for ``decode_attention`` on a GPU.

Why: a decoding step has one query per row. ``decode_attention``'s two matrix products per key/value head
leave cuBLAS a product of the whole cache (thousands of keys) with a handful of query heads, which it runs
in a few thread blocks: on an H200, Qwen2.5-1.5B's step after 5500 prompt tokens spent 58 % of its GPU time
in that product, 177 us a layer, to read 2.8 MB of keys (``bench/results/fusion_step_h200.md``). Here each
program reads one stretch of one key/value head's cache and attends all the query heads that share it
(``split``); a second kernel weighs the stretches' partial results by their softmax sums (``join``, one program
per query head, reading ``JOIN_BLOCK`` stretches at a time). The split's grid has as many programs as the GPU has
multiprocessors, twice over, however short the batch.

The arithmetic is the online softmax of flash attention, in float32; the probabilities meet the values in
the cache's dtype, as flash attention's do. A masked position (``False`` in a boolean mask; an additive mask
is added to the scores) does not count; a row whose positions are all masked gets zeros. Nothing here runs
at import; ``available()`` says whether the kernels can run on a tensor's device, and ``check`` builds and
verifies them for a model when ``decode_attention.install`` switches it to them (``disable`` sets them aside).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from typing import Any

from ..work_streams import switched_on

BLOCK_N = 64  #: keys a program reads at a time
MIN_GROUP_ROWS = 16  #: the query heads of a key/value head, padded: the least rows of a Triton product
#: stretches the join reads at a time: one program per query head loops over ``splits / JOIN_BLOCK`` tiles (one
#: program per key/value head looping over every stretch, twice, took most of a step's attention after 5500
#: tokens on an H200: 52 us a layer, growing by about 0.5 us a stretch)
JOIN_BLOCK = 32

logger = logging.getLogger(__name__)
_broken: list[str] = []  # why the kernels failed in this process (``disable``): the products are used instead


def wanted() -> bool:
    """``FRAMEWORK_DECODE_KERNEL`` (default on): ``0`` keeps ``decode_attention``'s two matrix products."""
    return switched_on("FRAMEWORK_DECODE_KERNEL")


def available(query: Any) -> bool:
    """Whether the kernels run on ``query``'s device: CUDA with Triton, or Triton's interpreter (tests)."""
    return in_use() and (bool(query.is_cuda) or os.environ.get("TRITON_INTERPRET") == "1")


def disable(why: str) -> None:
    """Stop using the kernels in this process (they failed to build or run: ``why``), said once."""
    if not _broken:
        logger.warning("decoding steps attend with two matrix products per key/value head, not the Triton "
                       "kernel: %s", why)
    _broken.append(why)


@functools.lru_cache(maxsize=None)
def _kernels() -> Any:
    """The two Triton kernels (None where Triton is missing)."""
    try:
        import triton
        import triton.language as tl
    except Exception:  # noqa: BLE001 - no Triton, or one that does not import here: the products
        return None

    # (the sizes and strides are not specialized on: one compiled kernel per model, whatever its cache's length)
    @triton.jit(do_not_specialize=["kv_len", "split_len", "kv_heads", "splits", "s_qb", "s_qh", "s_kb", "s_kh", "s_kn",
                                   "s_vb", "s_vh", "s_vn", "s_mb", "s_mn"])
    def split(q_ptr, k_ptr, v_ptr, mask_ptr, ml_ptr, acc_ptr, scale, kv_len, split_len, kv_heads, splits,
              s_qb, s_qh, s_kb, s_kh, s_kn, s_vb, s_vh, s_vn, s_mb, s_mn,
              GROUP: tl.constexpr, BLOCK_G: tl.constexpr, D: tl.constexpr, BLOCK: tl.constexpr,
              MASK: tl.constexpr):
        # one program: one (row, key/value head) and one stretch of its cache; MASK 0 none, 1 bool, 2 additive
        bh = tl.program_id(0)
        part = tl.program_id(1)
        b = (bh // kv_heads).to(tl.int64)
        h = (bh % kv_heads).to(tl.int64)
        g = tl.arange(0, BLOCK_G)
        d = tl.arange(0, D)
        q = tl.load(q_ptr + b * s_qb + (h * GROUP + g)[:, None] * s_qh + d[None, :], mask=(g < GROUP)[:, None],
                    other=0.0)
        start = part * split_len
        end = tl.minimum(start + split_len, kv_len)
        m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_G], tl.float32)
        acc = tl.zeros([BLOCK_G, D], tl.float32)
        for n0 in range(start, end, BLOCK):
            n = n0 + tl.arange(0, BLOCK)
            keep = n < end
            if MASK == 1:
                keep = keep & (tl.load(mask_ptr + b * s_mb + n * s_mn, mask=keep, other=0) != 0)
            k = tl.load(k_ptr + b * s_kb + h * s_kh + n[:, None] * s_kn + d[None, :], mask=keep[:, None], other=0.0)
            s = tl.dot(q, tl.trans(k)).to(tl.float32) * scale
            if MASK == 2:
                s = s + tl.load(mask_ptr + b * s_mb + n * s_mn, mask=keep, other=0.0).to(tl.float32)[None, :]
            s = tl.where(keep[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # (nothing let through yet: no NaN)
            alpha = tl.exp(m_i - m_safe)
            p = tl.exp(s - m_safe[:, None])
            l_i = l_i * alpha + tl.sum(p, axis=1)
            v = tl.load(v_ptr + b * s_vb + h * s_vh + n[:, None] * s_vn + d[None, :], mask=keep[:, None], other=0.0)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v).to(tl.float32)
            m_i = m_new
        at = (bh * splits + part) * BLOCK_G + g
        tl.store(ml_ptr + at * 2, m_i)
        tl.store(ml_ptr + at * 2 + 1, l_i)
        tl.store(acc_ptr + at[:, None] * D + d[None, :], acc)

    @triton.jit(do_not_specialize=["kv_heads", "splits", "s_ob", "s_oh"])
    def join(ml_ptr, acc_ptr, out_ptr, kv_heads, splits, s_ob, s_oh,
             GROUP: tl.constexpr, BLOCK_G: tl.constexpr, D: tl.constexpr, BLOCK_S: tl.constexpr):
        # one program: one (row, key/value head) and one query head of its group; its stretches' maxima, then
        # their weighted sums, BLOCK_S stretches at a time
        bh = tl.program_id(0)
        gi = tl.program_id(1)
        b = (bh // kv_heads).to(tl.int64)
        h = (bh % kv_heads).to(tl.int64)
        p = tl.arange(0, BLOCK_S)
        d = tl.arange(0, D)
        tops = tl.full([BLOCK_S], float("-inf"), tl.float32)
        for p0 in range(0, splits, BLOCK_S):
            at = (bh * splits + p0 + p) * BLOCK_G + gi
            tops = tl.maximum(tops, tl.load(ml_ptr + at * 2, mask=p0 + p < splits, other=float("-inf")))
        top = tl.max(tops, axis=0)
        top = tl.where(top == float("-inf"), 0.0, top)
        totals = tl.zeros([BLOCK_S], tl.float32)
        acc = tl.zeros([D], tl.float32)
        for p0 in range(0, splits, BLOCK_S):
            inside = p0 + p < splits
            at = (bh * splits + p0 + p) * BLOCK_G + gi
            w = tl.exp(tl.load(ml_ptr + at * 2, mask=inside, other=float("-inf")) - top)  # (0 past the last)
            totals += w * tl.load(ml_ptr + at * 2 + 1, mask=inside, other=0.0)
            acc += tl.sum(w[:, None] * tl.load(acc_ptr + at[:, None] * D + d[None, :], mask=inside[:, None],
                                               other=0.0), axis=0)
        total = tl.sum(totals, axis=0)
        out = acc / tl.where(total == 0.0, 1.0, total)
        tl.store(out_ptr + b * s_ob + (h * GROUP + gi) * s_oh + d, out.to(out_ptr.dtype.element_ty))

    return split, join


@functools.lru_cache(maxsize=16)
def _multiprocessors(device: Any) -> int:
    import torch

    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 8


def splits_for(programs: int, kv_len: int, multiprocessors: int) -> tuple[int, int]:
    """(stretches, keys in each, a multiple of ``BLOCK_N``): enough programs to give every multiprocessor two,
    however few (rows x key/value heads) there are, and never a stretch with no key."""
    blocks = max(1, math.ceil(kv_len / BLOCK_N))
    want = max(1, min(blocks, math.ceil(2 * multiprocessors / max(1, programs))))
    split_len = math.ceil(blocks / want) * BLOCK_N
    return math.ceil(kv_len / split_len), split_len


def attend(query: Any, key: Any, value: Any, mask: Any, scale: float) -> Any:
    """One decoding step's attention: ``query`` (batch, heads, 1, dim) against ``key``/``value`` (batch,
    key/value heads, keys, dim), ``mask`` None or (batch or 1, 1, 1, at least keys), boolean (True: attend) or
    additive; returns (batch, 1, heads, dim) in ``query``'s dtype. ``dim`` must be a power of two (16 or more)."""
    import torch

    batch, heads, _, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    group = heads // kv_heads
    block_g = max(MIN_GROUP_ROWS, 1 << (group - 1).bit_length())
    if query.stride(-1) != 1:
        query = query.contiguous()
    if key.stride(-1) != 1 or value.stride(-1) != 1:
        key, value = key.contiguous(), value.contiguous()
    splits, split_len = splits_for(batch * kv_heads, kv_len, _multiprocessors(query.device))
    ml = torch.empty((batch * kv_heads * splits * block_g * 2,), device=query.device, dtype=torch.float32)
    acc = torch.empty((batch * kv_heads * splits * block_g, dim), device=query.device, dtype=torch.float32)
    out = torch.empty((batch, 1, heads, dim), device=query.device, dtype=query.dtype)
    kind, s_mb, s_mn = 0, 0, 0
    if mask is None:
        mask = query  # (never read)
    else:
        kind = 1 if mask.dtype == torch.bool else 2
        mask = mask[:, 0, 0, :kv_len]
        if kind == 1:
            mask = mask.view(torch.uint8)  # (one byte each, as bool: Triton reads it as integers)
        s_mb, s_mn = (mask.stride(0) if mask.shape[0] > 1 else 0), mask.stride(1)
    split, join = _kernels()
    # (Triton launches on the current device: a model on cuda:1 is run from a thread whose current may be cuda:0)
    with torch.cuda.device(query.device) if query.is_cuda else contextlib.nullcontext():
        split[(batch * kv_heads, splits)](
            query, key, value, mask, ml, acc, float(scale), kv_len, split_len, kv_heads, splits,
            query.stride(0), query.stride(1), key.stride(0), key.stride(1), key.stride(2),
            value.stride(0), value.stride(1), value.stride(2), s_mb, s_mn,
            GROUP=group, BLOCK_G=block_g, D=dim, BLOCK=BLOCK_N, MASK=kind, num_warps=4)
        join[(batch * kv_heads, group)](ml, acc, out, kv_heads, splits, out.stride(0), out.stride(2),
                                         GROUP=group, BLOCK_G=block_g, D=dim, BLOCK_S=JOIN_BLOCK, num_warps=4)
    return out


def reference(query: Any, key: Any, value: Any, mask: Any, scale: float) -> Any:
    """``attend``'s result computed plainly in float32 (the check's yardstick): ``decode_attention``'s two
    products on float32 copies."""
    from .decode_attention import products

    return products(query.float(), key.float(), value.float(), mask, scale)


def check(model: Any) -> str | None:
    """Build the kernels for ``model``'s attention (its query and key/value heads, head dimension, dtype, on
    its device) and compare one step over a short masked cache with ``reference``: done when the model loads,
    so the compile is not in its first decoding step, and a kernel that gives other numbers on this GPU is
    never used (``disable``). None: the kernels are in use, or not wanted or not possible here (nothing to
    check); else why they were set aside."""
    import torch

    config = getattr(model, "config", None)
    text = getattr(config, "text_config", None) or config
    heads, kv_heads = getattr(text, "num_attention_heads", 0), getattr(text, "num_key_value_heads", 0)
    try:
        param = next(model.parameters())
    except (StopIteration, AttributeError, TypeError):
        return None
    if not heads or not kv_heads or heads % kv_heads:
        return None
    dim = getattr(text, "head_dim", None) or getattr(text, "hidden_size", 0) // heads
    if not dim:
        return None
    gen = torch.Generator(device=param.device).manual_seed(0)
    q = torch.randn(1, heads, 1, dim, device=param.device, dtype=param.dtype, generator=gen)
    k, v = (torch.randn(1, kv_heads, 300, dim, device=param.device, dtype=param.dtype, generator=gen)
            for _ in range(2))
    if not (available(q) and fits(q, k, v)):
        return None
    mask = torch.ones(1, 1, 1, 300, device=param.device, dtype=torch.bool)
    mask[..., 280:] = False
    try:
        error = (attend(q, k, v, mask, dim ** -0.5).float() - reference(q, k, v, mask, dim ** -0.5)).abs().max().item()
    except Exception as exc:  # noqa: BLE001 - no compiler, an unsupported GPU, ...: the products
        disable(f"{type(exc).__name__}: {str(exc)[:200]}")
        return _broken[-1]
    if not error < (2e-2 if param.dtype == torch.bfloat16 else 3e-3):
        disable(f"its check on this GPU differed from the plain computation by {error:.3g}")
        return _broken[-1]
    return None


def in_use() -> bool:
    """Whether decoding steps on a GPU attend with the kernels in this process (wanted, and not set aside)."""
    return wanted() and not _broken and _kernels() is not None


def fits(query: Any, key: Any, value: Any) -> bool:
    """Whether ``attend`` takes these shapes and dtypes: half precision (Triton's products of float32 round
    through TF32 on a GPU), one head dimension for all, a power of two of at least 16."""
    import torch

    dim = query.shape[-1]
    return (query.dtype in (torch.float16, torch.bfloat16) and key.dtype == value.dtype == query.dtype
            and key.shape[-1] == value.shape[-1] == dim and dim >= 16 and dim & (dim - 1) == 0)


__all__ = ["BLOCK_N", "attend", "available", "check", "disable", "fits", "in_use", "reference", "splits_for",
           "wanted"]
