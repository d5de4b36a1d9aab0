"""FP8 weights for a transformer's linear layers: about half the memory of bf16.

``quantize_linears(model, device)`` replaces the ``nn.Linear`` layers of a model (all but those whose
qualified name contains one of ``skip``: by default the output head and any vision tower) with
``Fp8Linear``, moving each to ``device`` as it goes, so the device never holds more than one layer in
bf16 beside the FP8 weights already there.

``Fp8Linear`` stores its weight as ``float8_e4m3fn`` with one float32 scale per output row (the row's
largest magnitude maps to 448, the format's largest finite value) and quantizes its input the same
way, per row, on every call (dynamic scaling, the scheme vLLM calls "fp8 dynamic"). Where the device
can multiply FP8 matrices (``torch._scaled_mm`` with row-wise scales: NVIDIA Hopper and newer, and
the CPU in recent PyTorch) the product is one FP8 matrix multiplication with float32 accumulation;
elsewhere (Ampere, such as an RTX 3060) the weight is widened back to the input's dtype for each
product, which keeps the memory saving and loses the speed. ``Fp8Linear.path`` says which.

Random weights (what this repository's tests and benchmarks use) show memory, speed and how far the
outputs move from bf16, not whether a model's answers change: quantization error is measured by
``tests/test_fp8.py`` as the relative error of a layer's output, not as a quality claim.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable

logger = logging.getLogger(__name__)

#: qualified-name fragments left in their original dtype: the output head (its logits decide every
#: token) and vision towers (a small share of the weights, run once per frame)
DEFAULT_SKIP = ("lm_head", "visual", "vision")


def _torch() -> Any:
    import torch

    return torch


def quantize_rows(x: Any) -> tuple[Any, Any]:
    """``x`` (rows, columns) as FP8 with one float32 scale per row: ``x ~= q.float() * scale``.

    Few passes over ``x``, none in float32: each row's largest magnitude (one read), a multiplication
    by the reciprocal scale in ``x``'s own dtype (one read and write) and the cast. The scale returned
    is the exact reciprocal of the factor used, so no rounding of that factor reaches the product; the
    factor's own rounding keeps every value below 480, where e4m3fn would turn to NaN (448 and up
    round to 448)."""
    torch = _torch()
    fmax = torch.finfo(torch.float8_e4m3fn).max
    amax = torch.linalg.vector_norm(x, ord=float("inf"), dim=-1, keepdim=True)
    inv = (fmax / amax.float().clamp(min=1e-12)).to(x.dtype)
    q = (x * inv).to(torch.float8_e4m3fn)
    return q, inv.float().reciprocal()


@functools.lru_cache(maxsize=None)
def _fused_kernel() -> Any:
    """The Triton kernel of ``quantize_rows_fused`` (None where Triton is missing)."""
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None

    @triton.jit
    def quantize_rows_kernel(x_ptr, q_ptr, scale_ptr, cols, fmax, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        x_row = x_ptr + row * cols
        q_row = q_ptr + row * cols
        top = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, cols, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            top = tl.maximum(top, tl.abs(tl.load(x_row + offs, mask=offs < cols, other=0.0).to(tl.float32)))
        amax = tl.maximum(tl.max(top, axis=0), 1e-12)
        inv = fmax / amax
        for start in range(0, cols, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            v = tl.load(x_row + offs, mask=offs < cols, other=0.0).to(tl.float32)
            tl.store(q_row + offs, (v * inv).to(q_ptr.dtype.element_ty), mask=offs < cols)
        tl.store(scale_ptr + row, amax / fmax)

    return quantize_rows_kernel


def quantize_rows_fused(x: Any) -> tuple[Any, Any]:
    """``quantize_rows`` as one Triton kernel on a CUDA tensor (one program per row: the row's largest
    magnitude, then the scaled cast, in float32): what ``Fp8Linear`` runs on a GPU, where the
    half-dozen small kernels of ``quantize_rows`` would cost more than the FP8 product saves at the
    few rows of a decoding step."""
    torch = _torch()
    x = x.contiguous()
    rows, cols = x.shape
    q = torch.empty((rows, cols), device=x.device, dtype=torch.float8_e4m3fn)
    scale = torch.empty((rows, 1), device=x.device, dtype=torch.float32)
    if rows:
        _fused_kernel()[(rows,)](x, q, scale, cols, torch.finfo(torch.float8_e4m3fn).max, BLOCK=1024, num_warps=4)
    return q, scale


def _scaled_mm_works(device: Any, dtype: Any) -> bool:
    """Whether ``torch._scaled_mm`` with row-wise scales runs on ``device`` for ``dtype`` outputs."""
    torch = _torch()
    if not hasattr(torch, "_scaled_mm"):
        return False
    try:
        a = torch.ones(16, 32, device=device).to(torch.float8_e4m3fn)
        b = torch.ones(16, 32, device=device).to(torch.float8_e4m3fn)
        out = torch._scaled_mm(a, b.t(), scale_a=torch.ones(16, 1, device=device),
                               scale_b=torch.ones(1, 16, device=device), out_dtype=dtype)
        return bool(torch.allclose(out.float(), torch.full_like(out.float(), 32.0)))
    except (RuntimeError, NotImplementedError, TypeError) as exc:
        logger.debug("no row-wise FP8 matmul on %s for %s: %s", device, dtype, exc)
        return False


@functools.lru_cache(maxsize=None)
def fp8_linear_class() -> type:
    """The ``Fp8Linear`` module class (built on first use, so importing this module needs no torch)."""
    torch = _torch()

    class Fp8Linear(torch.nn.Module):
        """A linear layer with FP8 weights (one scale per output row) and inputs quantized per row.

        :ivar path: ``"scaled_mm"`` (one FP8 matrix product) or ``"widen"`` (weights widened to the
            input's dtype for each product, where the device has no FP8 matrix product).
        """

        def __init__(self, linear: Any, device: Any, native: bool | None = None):
            super().__init__()
            w = linear.weight.detach().to(device)
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.out_dtype = w.dtype
            q, scale = quantize_rows(w)
            del w
            self.register_buffer("weight_fp8", q)
            self.register_buffer("weight_scale", scale.reshape(1, -1).contiguous())  # (1, out) float32
            bias = linear.bias
            self.bias = None if bias is None else torch.nn.Parameter(bias.detach().to(device), requires_grad=False)
            if native is None:
                native = _scaled_mm_works(q.device, self.out_dtype)
            self.path = "scaled_mm" if native else "widen"
            # on a GPU, the inputs' quantization as one kernel where Triton is there
            self.quantize = (quantize_rows_fused if native and q.device.type == "cuda" and _fused_kernel() is not None
                             else quantize_rows)

        @property
        def weight(self) -> Any:
            """The weight as the original dtype (for code that inspects ``.weight``: dtype, device, shape)."""
            return self.widened(self.out_dtype)

        def widened(self, dtype: Any) -> Any:
            """The FP8 weight scaled back, as ``dtype``."""
            return self.weight_fp8.to(dtype) * self.weight_scale.t().to(dtype)

        def forward(self, x: Any) -> Any:
            shape = x.shape
            rows = x.reshape(-1, shape[-1])
            if self.path == "scaled_mm":
                q, scale = self.quantize(rows)
                out = torch._scaled_mm(q, self.weight_fp8.t(), scale_a=scale, scale_b=self.weight_scale,
                                       out_dtype=x.dtype)
            else:
                out = torch.nn.functional.linear(rows, self.widened(x.dtype))
            if self.bias is not None:
                out = out + self.bias.to(out.dtype)
            return out.reshape(*shape[:-1], self.out_features)

        def extra_repr(self) -> str:
            fused = ", fused quantization" if self.quantize is quantize_rows_fused else ""
            return f"in_features={self.in_features}, out_features={self.out_features}, path={self.path}{fused}"

    return Fp8Linear


def quantize_linears(model: Any, device: Any, skip: tuple[str, ...] = DEFAULT_SKIP,
                     init: Callable[[Any, Any], None] | None = None) -> dict[str, Any]:
    """Replace ``model``'s linear layers (not those named in ``skip``, and not those whose sizes are not
    multiples of 16, which FP8 matrix products require) by ``Fp8Linear`` on ``device``; then move the
    rest of the model there. Returns what was done, for the track: layers, bytes, path.

    :param init: called as ``init(linear, device)`` before each layer is quantized (benchmarks draw
        random weights on the device with it instead of reading them).
    """
    torch = _torch()
    cls = fp8_linear_class()
    device = torch.device(device)
    # names only: a list of the modules would keep every replaced layer's weights alive to the end
    targets = [name for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and not any(s in name for s in skip)
               and m.in_features % 16 == 0 and m.out_features % 16 == 0]
    native = None
    saved = 0
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        linear = getattr(parent, child)
        if init is not None:
            init(linear, device)
        if native is None:
            native = _scaled_mm_works(device, linear.weight.dtype)
        layer = cls(linear, device, native=native)
        saved += linear.weight.numel() * (linear.weight.element_size() - 1)
        setattr(parent, child, layer)
        del linear
    model.to(device)
    path = "scaled_mm" if native else "widen"
    logger.info("FP8 weights for %d linear layers (%.1f GB less than before), matrix products: %s",
                len(targets), saved / 1e9, path)
    return {"layers": len(targets), "bytes_saved": int(saved), "path": path if targets else None}


__all__ = ["DEFAULT_SKIP", "fp8_linear_class", "quantize_linears", "quantize_rows", "quantize_rows_fused"]
