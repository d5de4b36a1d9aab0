"""Small helpers the vision analyzers share: devices, precisions, memory layouts, shots, spans, embeddings."""
from __future__ import annotations

import base64
from typing import Any, Iterable, Sequence

import numpy as np

from framework import AnalyzerUnavailable

#: precisions a plain PyTorch model can run in here (bitsandbytes is not installed: no int8/int4)
TORCH_PRECISIONS = ("fp32", "fp16", "bf16")


def torch_device(device: str) -> str:
    """The torch device for what ``load`` was handed: ``"cpu"``, ``"cuda:N"``, or a legacy ``"gpu"``."""
    if device in ("gpu", "cuda"):
        return "cuda"
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_precision(precision: str | None, device: str, gpu_default: str = "fp16",
                   supported: Sequence[str] = TORCH_PRECISIONS, who: str = "") -> str:
    """The precision to run in: the plan's variant when it is one ``supported``, else fp32 on the
    CPU and ``gpu_default`` on a GPU. Half precision is not used on the CPU (slow or unsupported).

    :raises AnalyzerUnavailable: the plan chose a quantised variant (int8/int4) this analyzer cannot run.
    """
    on_gpu = device.startswith("cuda")
    if precision is None:
        return gpu_default if on_gpu else "fp32"
    if precision not in supported:
        raise AnalyzerUnavailable(
            f"{who or 'this analyzer'}: precision {precision!r} is not supported (it runs in "
            f"{', '.join(supported)}; int8/int4 need bitsandbytes, which is not installed)")
    return precision if on_gpu else "fp32"


def dtype_of(precision: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def channels_last_module(module: Any, device: str, wanted: bool) -> tuple[Any, bool]:
    """``module`` in the channels-last (NHWC) memory format when ``wanted`` and ``device`` is a GPU (cuDNN's
    NHWC kernels; on the CPU the NCHW ones are faster), and whether it is."""
    if not (wanted and str(device).startswith("cuda")):
        return module, False
    import torch

    return module.to(memory_format=torch.channels_last), True


def nchw_batch(frames: np.ndarray, channels_last: bool) -> Any:
    """(N, H, W, C) frames as an (N, C, H, W) tensor: over their own NHWC memory when ``channels_last`` (that
    layout already), else an NCHW copy."""
    import torch

    batch = torch.from_numpy(frames).permute(0, 3, 1, 2)
    return batch if channels_last else batch.contiguous()


def in_layout(x: Any, channels_last: bool) -> Any:
    """A batch on the device, channels-last when ``channels_last`` (already so unless pinning copied it)."""
    if not channels_last:
        return x
    import torch

    return x.contiguous(memory_format=torch.channels_last)


def shot_of(times: Iterable[float], shots: Sequence[tuple[float, float]]) -> np.ndarray:
    """Index of the shot holding each time (the last shot starting at or before it; 0 before the first)."""
    starts = np.array([s for s, _ in shots], dtype=np.float64) if shots else np.zeros(1)
    t = np.asarray(list(times), dtype=np.float64)
    return np.maximum(0, np.searchsorted(starts, t + 1e-6, side="right") - 1)


def by_shot(shots: Sequence[tuple[float, float]], times: Iterable[float]) -> list[tuple[float, float, np.ndarray]]:
    """The shots holding at least one of ``times``, in order: ``(start, end, indices of those times)``."""
    which = shot_of(times, shots)
    groups = [(start, end, np.flatnonzero(which == s)) for s, (start, end) in enumerate(shots)]
    return [g for g in groups if len(g[2])]


def span(grid: Sequence[float], first: int, last: int, lo: float, hi: float) -> tuple[float, float]:
    """Start and end (seconds) of something seen from sample ``first`` to sample ``last`` of the
    sampling ``grid`` (sorted times): it appeared between the previous sample and ``first`` and
    left between ``last`` and the next one, so the midpoints are the best estimates (error at
    most half a sampling interval). Clipped to ``[lo, hi]`` (its shot, or the video)."""
    start = grid[first] if first == 0 else (grid[first - 1] + grid[first]) / 2
    end = (grid[last] + grid[last + 1]) / 2 if last + 1 < len(grid) else hi
    start = min(max(lo, start), hi)
    end = min(max(start, end), hi)
    return round(float(start), 3), round(float(end), 3)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def encode_embeddings(model_id: str, times: Sequence[tuple[float, float]], vectors: np.ndarray) -> dict[str, Any]:
    """The compact form of per-shot embeddings kept in ``Track.data["shot_embeddings"]``::

        {"model": <manifest id>, "dim": D, "times": [[start, end], ...], "dtype": "float16",
         "vectors_b64": base64 of the row-major float16 array (n, D), rows L2-normalised}
    """
    v = unit_rows(np.asarray(vectors, dtype=np.float32).reshape(len(times), -1)) if len(times) else \
        np.zeros((0, 0), np.float32)
    dim = int(v.shape[1]) if v.ndim == 2 and v.shape[0] else 0
    return {"model": model_id, "dim": dim, "times": [[round(float(a), 3), round(float(b), 3)] for a, b in times],
            "dtype": "float16",
            "vectors_b64": base64.b64encode(np.ascontiguousarray(v, dtype="<f2").tobytes()).decode("ascii")}


def decode_embeddings(block: dict[str, Any]) -> np.ndarray:
    """The (n, D) float32 array of an ``encode_embeddings`` block."""
    raw = base64.b64decode(block["vectors_b64"])
    arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    dim = int(block["dim"])
    return arr.reshape(-1, dim) if dim else arr.reshape(0, 0)


def sample_evenly(n: int, k: int) -> list[int]:
    """Up to ``k`` indices of ``range(n)`` spread evenly, always the first and the last."""
    if n <= k:
        return list(range(n))
    if k <= 1:
        return [0]
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)})


def r4(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


class SingleSpecFrames:
    """Mixin for a ``BatchedAnalyzer`` whose items are the ``(time, frame)`` pairs of its one
    ``FrameSpec`` and whose ``load`` sets ``model`` and ``torch_device``: the shared ``items`` /
    ``count_items`` and an ``unload`` that drops the model (and frees the CUDA cache)."""

    def unload(self) -> None:
        self.model = None
        if getattr(self, "torch_device", "cpu").startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def count_items(self, inputs: Any) -> int | None:
        return len(inputs.frames(self.frame_specs()[0]))

    def items(self, inputs: Any) -> Iterable[Any]:
        return iter(inputs.frames(self.frame_specs()[0]))
