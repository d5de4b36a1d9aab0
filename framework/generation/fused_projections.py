"""A decoder layer's query, key and value projections as one matrix product, and its MLP's gate and up
projections as one.

A one-token decoding step of a small model is bound by how many kernels it launches, not by its
arithmetic: Qwen2.5-1.5B's step (fusion's summary model) launched some 35 kernels in each of its 28
layers, each 1-20 microseconds on an H200 (``bench/results/fusion_step_h200.md``), and its 764 steps
took 3.2-3.3 s at the end of every end-to-end run. transformers computes ``q_proj``, ``k_proj`` and
``v_proj`` of the same hidden states as three products (each with its bias), and ``gate_proj`` and
``up_proj`` as two; one product over the weights stacked does the same work in one kernel.

``install(model)`` stacks each attention's three weights (and biases) into one tensor, the three
``nn.Linear`` modules' parameters becoming views of it (no memory added), and replaces their
``forward``: ``q_proj`` computes all three outputs and returns its own columns, ``k_proj`` and
``v_proj`` return theirs when given the very tensor ``q_proj`` was given (else they compute their own,
as before: the outputs are the same values either way); the attention classes in ``ATTENTIONS``. Each
MLP of the classes in ``MLPS`` gets a ``forward`` with one product for ``gate_proj`` and ``up_proj``.
Only plain ``nn.Linear`` layers whose weights share a device and dtype are touched (FP8 layers,
adapters wrapping a layer and the like are left as they are); the model's ``state_dict`` keeps its keys
and values. A model moved elsewhere afterwards (``.to``) computes each projection on its own again.

The queries and keys then lie side by side in one buffer, so their rotary position embedding can be one
computation over both (``joint_rotary``: five elementwise kernels a layer instead of ten, the same
arithmetic element by element): ``install`` wraps the ``apply_rotary_pos_emb`` of each fused attention
class's transformers module, which is called by that name at every step; any call whose query and key are
not adjacent head blocks of one buffer (another model of that module, unfused) goes to transformers' own.

One product over stacked weights may round differently from three (cuBLAS picks its algorithm by
shape): in bfloat16, a last-bit difference of some outputs. ``FRAMEWORK_FUSED_PROJECTIONS=0`` leaves the
layers as they are (to compare); ``FRAMEWORK_JOINT_ROTARY=0`` keeps transformers' rotary embedding.
"""
from __future__ import annotations

import types
import sys
from typing import Any, Callable

from ..work_streams import switched_on

#: transformers' attention classes that project the same hidden states with ``q_proj``, ``k_proj``, ``v_proj``
ATTENTIONS = frozenset({"Qwen2Attention", "Qwen2VLAttention", "Qwen2_5_VLAttention", "Qwen3Attention",
                        "LlamaAttention", "MistralAttention"})
#: transformers' MLP classes whose forward is ``down_proj(act_fn(gate_proj(x)) * up_proj(x))``
MLPS = frozenset({"Qwen2MLP", "Qwen2_5_VLMLP", "Qwen3MLP", "LlamaMLP", "MistralMLP"})


def _plain_linears(modules: list[Any], torch: Any, force: bool) -> bool:
    """Whether ``modules`` are plain ``nn.Linear`` layers with one device and dtype (on a GPU unless ``force``)."""
    if not all(type(m) is torch.nn.Linear for m in modules):
        return False
    weights = [m.weight for m in modules]
    biases = [m.bias for m in modules]
    if len({(w.device, w.dtype) for w in weights}) != 1 or len({w.shape[1] for w in weights}) != 1:
        return False
    if any(b is not None for b in biases) and not all(b is not None and b.dtype == weights[0].dtype for b in biases):
        return False
    return force or weights[0].device.type == "cuda"


def _stack(modules: list[Any], torch: Any) -> tuple[Any, Any, list[int]]:
    """One weight (and bias) for ``modules``, each module's parameters becoming views of it; the column sizes."""
    sizes = [int(m.weight.shape[0]) for m in modules]
    with torch.no_grad():
        weight = torch.cat([m.weight for m in modules])
        bias = torch.cat([m.bias for m in modules]) if modules[0].bias is not None else None
        start = 0
        for m, n in zip(modules, sizes):
            m.weight = torch.nn.Parameter(weight[start:start + n], requires_grad=False)
            if bias is not None:
                m.bias = torch.nn.Parameter(bias[start:start + n], requires_grad=False)
            start += n
    return weight, bias, sizes


def _fuse_qkv(attention: Any, torch: Any) -> None:
    import torch.nn.functional as F

    q, k, v = attention.q_proj, attention.k_proj, attention.v_proj
    weight, bias, (nq, nk, _nv) = _stack([q, k, v], torch)
    last: list[Any] = [None]  # (the input q_proj was given, the three outputs) until v_proj takes them

    def q_forward(self: Any, x: Any) -> Any:
        if x.device != weight.device:  # (moved since: the stacked weight stayed behind)
            return F.linear(x, self.weight, self.bias)
        out = F.linear(x, weight, bias)
        last[0] = (x, out)
        return out[..., :nq]

    def part(lo: int, hi: int | None, clear: bool) -> Any:
        def forward(self: Any, x: Any) -> Any:
            held = last[0]
            if clear:
                last[0] = None
            if held is None or held[0] is not x:  # another input (or another order): this layer's own product
                return F.linear(x, self.weight, self.bias)
            return held[1][..., lo:hi]
        return forward

    q.forward = types.MethodType(q_forward, q)
    k.forward = types.MethodType(part(nq, nq + nk, clear=False), k)
    v.forward = types.MethodType(part(nq + nk, None, clear=True), v)


def _fuse_gate_up(mlp: Any, torch: Any) -> None:
    import torch.nn.functional as F

    weight, bias, (ng, _nu) = _stack([mlp.gate_proj, mlp.up_proj], torch)

    def forward(self: Any, x: Any) -> Any:
        if x.device != weight.device:  # (moved since: the stacked weight stayed behind)
            return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))
        both = F.linear(x, weight, bias)
        return self.down_proj(self.act_fn(both[..., :ng]) * both[..., ng:])

    mlp.forward = types.MethodType(forward, mlp)


def _adjacent(q: Any, k: Any) -> bool:
    """Whether ``q`` and ``k`` (batch, heads, positions, head size) are the query and key heads of one fused
    projection's output: the same buffer and row strides (a dimension of size one has any stride), heads a
    head size apart, the key heads right after the query heads, rows that do not overlap."""
    if q.dim() != 4 or k.dim() != 4 or q.dtype != k.dtype or q.device != k.device:
        return False
    (b, hq, s, d), hk = q.shape, k.shape[1]
    if k.shape[0] != b or k.shape[2] != s or k.shape[3] != d or q.stride(3) != 1 or k.stride(3) != 1:
        return False
    if (hq > 1 and q.stride(1) != d) or (hk > 1 and k.stride(1) != d):
        return False
    width = (hq + hk) * d
    for dim, size in ((0, b), (2, s)):
        if size > 1 and q.stride(dim) != k.stride(dim):
            return False
    if s > 1 and q.stride(2) < width:
        return False
    if b > 1 and q.stride(0) < (s - 1) * (q.stride(2) if s > 1 else 0) + width:
        return False
    return (q.untyped_storage().data_ptr() == k.untyped_storage().data_ptr()
            and k.storage_offset() == q.storage_offset() + hq * d)


def joint_rotary(original: Callable[..., Any]) -> Callable[..., Any]:
    """transformers' ``apply_rotary_pos_emb(q, k, cos, sin)`` computed once over the query and key heads
    when they are adjacent in one buffer (``_adjacent``), else ``original``; the same formula,
    ``x * cos + rotate_half(x) * sin``, element by element."""
    def apply_rotary_pos_emb(q: Any, k: Any, cos: Any, sin: Any, unsqueeze_dim: int = 1, *args: Any,
                             **kwargs: Any) -> Any:
        import torch

        if args or kwargs or unsqueeze_dim != 1 or cos.dim() != 3 or not _adjacent(q, k):
            return original(q, k, cos, sin, unsqueeze_dim, *args, **kwargs)
        b, hq, s, d = q.shape
        hk = k.shape[1]
        # (batch, positions, heads, head size) over both (a dimension of size one: any stride)
        both = torch.as_strided(q, (b, s, hq + hk, d), (q.stride(0), q.stride(2), d, 1), q.storage_offset())
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
        half = d // 2
        turned = torch.cat((-both[..., half:], both[..., :half]), dim=-1)
        out = (both * cos) + (turned * sin)
        return out[:, :, :hq].transpose(1, 2), out[:, :, hq:].transpose(1, 2)

    apply_rotary_pos_emb.joint_of = original  # type: ignore[attr-defined]
    return apply_rotary_pos_emb


def _join_rotary(attention: Any) -> bool:
    """Wrap the ``apply_rotary_pos_emb`` of ``attention``'s transformers module (once); whether it is wrapped."""
    module = sys.modules.get(type(attention).__module__)
    original = getattr(module, "apply_rotary_pos_emb", None)
    if original is None:
        return False
    if not hasattr(original, "joint_of"):
        module.apply_rotary_pos_emb = joint_rotary(original)
    return True


def install(model: Any, force: bool = False, env: Any = None) -> dict[str, int]:
    """Fuse ``model``'s attention projections and MLP gate/up projections if its weights are on a GPU
    (``force``: anywhere, for tests); how many of each were, and of the fused attentions whose rotary
    embedding is joint (``{"qkv": n, "gate_up": m, "joint_rotary": j}``). Nothing when
    ``FRAMEWORK_FUSED_PROJECTIONS`` is off; no joint rotary embedding when ``FRAMEWORK_JOINT_ROTARY`` is."""
    import torch

    done = {"qkv": 0, "gate_up": 0, "joint_rotary": 0}
    joint = switched_on("FRAMEWORK_JOINT_ROTARY", env)
    if not switched_on("FRAMEWORK_FUSED_PROJECTIONS", env):
        return done
    for module in list(model.modules()):
        kind = type(module).__name__
        if kind in ATTENTIONS:
            parts = [getattr(module, n, None) for n in ("q_proj", "k_proj", "v_proj")]
            if _plain_linears(parts, torch, force):
                _fuse_qkv(module, torch)
                done["qkv"] += 1
                done["joint_rotary"] += int(joint and _join_rotary(module))
        elif kind in MLPS:
            parts = [getattr(module, n, None) for n in ("gate_proj", "up_proj")]
            if _plain_linears(parts, torch, force) and callable(getattr(module, "down_proj", None)):
                _fuse_gate_up(module, torch)
                done["gate_up"] += 1
    return done


__all__ = ["install"]
