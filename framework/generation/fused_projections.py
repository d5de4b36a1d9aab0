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

One product over stacked weights may round differently from three (cuBLAS picks its algorithm by
shape): in bfloat16, a last-bit difference of some outputs. ``FRAMEWORK_FUSED_PROJECTIONS=0`` leaves the
layers as they are (to compare).
"""
from __future__ import annotations

import types
from typing import Any

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


def install(model: Any, force: bool = False, env: Any = None) -> dict[str, int]:
    """Fuse ``model``'s attention projections and MLP gate/up projections if its weights are on a GPU
    (``force``: anywhere, for tests); how many of each were (``{"qkv": n, "gate_up": m}``). Nothing when
    ``FRAMEWORK_FUSED_PROJECTIONS`` is off."""
    import torch

    done = {"qkv": 0, "gate_up": 0}
    if not switched_on("FRAMEWORK_FUSED_PROJECTIONS", env):
        return done
    for module in list(model.modules()):
        kind = type(module).__name__
        if kind in ATTENTIONS:
            parts = [getattr(module, n, None) for n in ("q_proj", "k_proj", "v_proj")]
            if _plain_linears(parts, torch, force):
                _fuse_qkv(module, torch)
                done["qkv"] += 1
        elif kind in MLPS:
            parts = [getattr(module, n, None) for n in ("gate_proj", "up_proj")]
            if _plain_linears(parts, torch, force) and callable(getattr(module, "down_proj", None)):
                _fuse_gate_up(module, torch)
                done["gate_up"] += 1
    return done


__all__ = ["install"]
