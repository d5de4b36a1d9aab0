"""Per-frame signals shared by the effect analyzers, computed in blocks from one frame stream.

The stream is the one ``cut_analysis`` reads (every frame, 96 px wide, RGB), so in a normal run it
is decoded once for all of them. Per frame:

- ``luma``: mean Rec. 601 luma, 0..255;
- ``rgb``: mean of each channel, 0..255;
- ``diff``: mean absolute luma difference to the previous frame (``nan`` for the first frame);
- ``changed``: share of pixels whose luma moved by more than ``change_level`` since the previous
  frame (a freeze has none; a talking head has a few);
- ``peak``: the largest absolute luma change of a pixel since the previous frame (a small moving
  object keeps it high when the mean hardly moves; a repeated frame leaves only coding noise);
- ``lit``: share of pixels brighter than ``dark_level`` (a black frame has almost none).
"""
from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

try:
    import fcntl
except ImportError:  # Windows: no file locks here; each process computes its own signals
    fcntl = None  # type: ignore[assignment]

import numpy as np

from framework import AnalyzerInputs, FrameSpec

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def every_frame_spec(width: int) -> FrameSpec:
    """Every frame at ``width`` px, RGB: with ``width`` 96 it is ``cut_analysis``'s own stream."""
    return FrameSpec(fps=None, width=width, pix_fmt="rgb24")


def to_luma(frames: np.ndarray) -> np.ndarray:
    """(n, h, w, 3) uint8 RGB -> (n, h, w) float32 luma (grey frames pass through as float32)."""
    if frames.ndim == 3:
        return frames.astype(np.float32)
    return frames.astype(np.float32) @ LUMA


@dataclass
class FrameSignals:
    """The per-frame signals of a stream (see the module docstring)."""

    times: np.ndarray
    luma: np.ndarray
    rgb: np.ndarray
    diff: np.ndarray
    changed: np.ndarray
    peak: np.ndarray
    lit: np.ndarray
    end: float  # end of the last frame (seconds): the video's duration when known

    @property
    def fps(self) -> float:
        """Median frame rate of the stream (frames per second; 0 with fewer than two frames)."""
        if self.times.size < 2:
            return 0.0
        step = float(np.median(np.diff(self.times)))
        return 1.0 / step if step > 0 else 0.0

    @property
    def step(self) -> float:
        """Median frame duration in seconds (1/30 when it cannot be measured)."""
        return 1.0 / self.fps if self.fps > 0 else 1.0 / 30.0

    def end_of(self, index: int) -> float:
        """When frame ``index`` stops being shown (the next frame's time, or the video's end)."""
        if index + 1 < self.times.size:
            return float(self.times[index + 1])
        return float(max(self.end, self.times[index] + self.step)) if self.times.size else 0.0


class _Shared:
    """One stream's signals at one pair of thresholds, computed by the first analyzer that asks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: FrameSignals | None = None


#: per frame stream of a run (weakly: gone with the run's streams), per (change_level, dark_level)
_SHARED: "weakref.WeakKeyDictionary[Any, dict[tuple[float, float], _Shared]]" = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def frame_signals(inputs: AnalyzerInputs, spec: FrameSpec, change_level: float = 12.0,
                  dark_level: float = 32.0, report: Callable[[float], None] | None = None,
                  batch: int = 512) -> FrameSignals:
    """:class:`FrameSignals` over ``inputs.frames(spec)``, computed in blocks (bounded memory) once per
    stream and thresholds in a run: ``temporal_flow``, ``temporal_consistency`` and ``visual_effects``
    read the same stream, and the first to ask computes them while the others wait. The arrays are
    read-only, since they are shared."""
    stream = inputs.frames(spec)
    with _SHARED_LOCK:
        entry = _SHARED.setdefault(stream, {}).setdefault((float(change_level), float(dark_level)), _Shared())
    with entry.lock:
        if entry.value is None:
            entry.value = _computed_once(inputs, stream, change_level, dark_level, report, batch)
        elif report is not None:
            report(1.0)
        return entry.value


def _computed_once(inputs: AnalyzerInputs, stream: Any, change_level: float, dark_level: float,
                   report: Callable[[float], None] | None, batch: int) -> FrameSignals:
    """The signals, computed by one process of the run: beside GPU analyzers, ``temporal_flow`` and
    ``visual_effects`` run in processes of their own (``framework.own_process``), so the first to
    compute them keeps them beside the stream in the run cache, under a file lock the others wait on.
    Without a lockable stream folder (or ``fcntl``), each process computes its own."""
    path = Path(stream.folder) / f"signals-{change_level:g}-{dark_level:g}.npz"
    try:
        lock = open(path.with_suffix(".lock"), "a") if fcntl is not None else None
    except OSError:
        lock = None
    if lock is None:
        return _compute(inputs, stream, change_level, dark_level, report, batch)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if path.is_file():
            if report is not None:
                report(1.0)
            return _load(path)
        sig = _compute(inputs, stream, change_level, dark_level, report, batch)
        _store(sig, path)
        return sig


def _store(sig: FrameSignals, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: getattr(sig, k) for k in _ARRAYS}, end=np.float64(sig.end))
        os.replace(tmp, path)
    except OSError:  # a full disk: the other processes compute their own
        tmp.unlink(missing_ok=True)


def _load(path: Path) -> FrameSignals:
    with np.load(path) as saved:
        arrays = {k: saved[k] for k in _ARRAYS}
        end = float(saved["end"])
    for a in arrays.values():
        a.setflags(write=False)
    return FrameSignals(**arrays, end=end)


_ARRAYS = ("times", "luma", "rgb", "diff", "changed", "peak", "lit")


def _compute(inputs: AnalyzerInputs, stream: Any, change_level: float, dark_level: float,
             report: Callable[[float], None] | None, batch: int) -> FrameSignals:
    n = len(stream)
    luma = np.zeros(n, np.float32)
    rgb = np.zeros((n, 3), np.float32)
    diff = np.full(n, np.nan, np.float32)
    changed = np.full(n, np.nan, np.float32)
    peak = np.full(n, np.nan, np.float32)
    lit = np.zeros(n, np.float32)
    prev: np.ndarray | None = None
    i = 0
    for _t, frames in stream.batches(batch):
        k = len(frames)
        gray = to_luma(frames)
        luma[i:i + k] = gray.mean(axis=(1, 2))
        if frames.ndim == 4:
            rgb[i:i + k] = frames.reshape(k, -1, 3).mean(axis=1)
        else:
            rgb[i:i + k] = luma[i:i + k, None]
        lit[i:i + k] = (gray > dark_level).mean(axis=(1, 2))
        before = np.concatenate([gray[:1] if prev is None else prev[None], gray[:-1]])
        d = np.abs(gray - before)
        diff[i:i + k] = d.mean(axis=(1, 2))
        changed[i:i + k] = (d > change_level).mean(axis=(1, 2))
        peak[i:i + k] = d.max(axis=(1, 2))
        if prev is None:
            diff[0] = changed[0] = peak[0] = np.nan
        prev = gray[-1]
        i += k
        if report is not None:
            report(i / max(1, n))
    times = np.array(stream.times, dtype=np.float64)
    for a in (times, luma, rgb, diff, changed, peak, lit):
        a.setflags(write=False)
    duration = inputs.video.duration or 0.0
    return FrameSignals(times=times, luma=luma, rgb=rgb, diff=diff, changed=changed, peak=peak, lit=lit,
                        end=float(duration))


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) indices of each run of True values."""
    f = np.concatenate([[False], np.asarray(flags, bool), [False]])
    edges = np.flatnonzero(f[1:] != f[:-1])
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def moving_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Sum of ``values`` over a centred window of ``window`` samples, the same length as ``values``
    (unlike ``np.convolve(..., mode="same")`` when the window is longer than the signal)."""
    values = np.asarray(values, dtype=np.float64)
    full = np.convolve(values, np.ones(max(1, int(window))), mode="full")
    offset = (max(1, int(window)) - 1) // 2
    return full[offset:offset + values.size]


def shot_index(times: np.ndarray, shots: list[tuple[float, float]]) -> np.ndarray:
    """Index of the shot each time falls in (-1 before the first shot)."""
    if not shots:
        return np.zeros(times.size, np.int64)
    starts = np.array([s for s, _ in shots])
    return np.searchsorted(starts, times + 1e-6, side="right") - 1


def pooled(times: np.ndarray, values: np.ndarray, max_points: int, how: str = "max") -> tuple[list[float], list[float | None]]:
    """At most ``max_points`` samples: blocks of consecutive values pooled by ``how`` (max or mean)."""
    n = values.size
    if n == 0:
        return [], []
    k = max(1, int(np.ceil(n / max_points)))
    out_t, out_v = [], []
    for a in range(0, n, k):
        block = values[a:a + k]
        block = block[np.isfinite(block)]
        out_t.append(round(float(times[a]), 4))
        if block.size == 0:
            out_v.append(None)
        else:
            out_v.append(round(float(block.max() if how == "max" else block.mean()), 3))
    return out_t, out_v


def fmt_time(t: float) -> str:
    """``83.4`` -> ``"1:23.4"`` for the searchable text of an event."""
    m, s = divmod(max(0.0, t), 60)
    return f"{int(m)}:{s:04.1f}"
