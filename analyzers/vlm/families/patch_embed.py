"""Qwen2-VL's patch embedding as one matrix product instead of a 3-D convolution.

Its vision tower's ``PatchEmbed`` projects each patch (3 channels x 2 frames x 14 x 14 pixels) with a
``Conv3d`` whose stride is its kernel: no window overlaps another, so the convolution is the product of
the flattened patches and the flattened weight. cuDNN has no fast kernel for that shape on several GPUs
and versions (10x to thousands of times slower than the product, in reports on H20, H100 and Blackwell;
vLLM's ``Conv3dLayer`` makes the same swap, and transformers 5.23 offers it as
``fusion_config={"patch_embeddings": True}``, which 5.17 lacks). The weight is read where it is, so the
checkpoint, the model's ``state_dict`` and an adapter see the convolution as before; the results are
the convolution's up to the order of the sums.

On an H200 (torch 2.11, cuDNN 9.19) the product took 0.76-0.80 ms where the Conv3d took 20.3 ms for one
batch of 172,800 patches (``bench/patch_embed_step.py``, ``bench/results/patch_embed_step_h200.md``).
"""
from __future__ import annotations

import math
from typing import Any, Callable


def install(model: Any) -> int:
    """Give each patch embedding of ``model`` whose ``proj`` is a non-overlapping ``Conv3d`` the matrix
    product's forward; how many were given it (0: none of that shape, the model is unchanged)."""
    from torch import nn

    count = 0
    for name, module in model.named_modules():
        proj = getattr(module, "proj", None)
        if not name.endswith("patch_embed") or not isinstance(proj, nn.Conv3d) or not _non_overlapping(proj):
            continue
        module.forward = as_matrix_product(proj)
        count += 1
    return count


def _non_overlapping(proj: Any) -> bool:
    return (tuple(proj.stride) == tuple(proj.kernel_size) and tuple(proj.padding) == (0, 0, 0)
            and tuple(proj.dilation) == (1, 1, 1) and proj.groups == 1)


def as_matrix_product(proj: Any) -> Callable[[Any], Any]:
    """``PatchEmbed.forward`` (patches in, one row of ``proj.out_channels`` per patch out) as
    ``F.linear`` with ``proj``'s weight viewed as a matrix."""
    import torch.nn.functional as F

    volume = proj.in_channels * math.prod(proj.kernel_size)

    def forward(hidden_states: Any) -> Any:
        weight = proj.weight
        patches = hidden_states.reshape(-1, volume).to(weight.dtype)
        return F.linear(patches, weight.reshape(proj.out_channels, volume), proj.bias)

    return forward
