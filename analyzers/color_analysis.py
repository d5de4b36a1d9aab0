"""Colour: a dominant palette per shot (k-means) and brightness / saturation / contrast series.

Reads one small, low-rate RGB stream (2 fps, 96 px wide by default). For every shot of the
upstream ``cut_analysis`` track (or the whole video as one shot when there is none) it samples a
few thousand pixels from up to ``max_frames_per_shot`` frames spread over the shot, clusters them
in CIE Lab with a weighted k-means and emits one ``palette`` event::

    Event(start, end, label="palette",
          data={"colors": ["#1f3a5c", ...], "weights": [0.41, ...], "shot": 3,
                "brightness": 0.42, "saturation": 0.31, "contrast": 0.27})

``colors`` are sorted by ``weights`` (the share of sampled pixels in each cluster, summing to 1).
The per-frame series, all in 0..1:

- ``brightness``: mean luma (Rec. 601) / 255.
- ``saturation``: mean HSV saturation / 255.
- ``contrast``: RMS contrast, the standard deviation of luma / 127.5, clipped to 1.

Track ``data`` holds the palette of the whole video (same form) and the mean of each series.

The k-means is plain numpy (``weighted_kmeans``; a test checks it against scikit-learn's):
importing scikit-learn costs seconds of CPU per process, more than this analyzer's whole
work on an hour of video.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydantic import Field

from framework import Analyzer, AnalyzerInputs, Event, FrameSpec, Series, Track

from ._shots import shot_intervals

logger = logging.getLogger(__name__)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _hex(rgb: np.ndarray) -> str:
    r, g, b = (int(round(float(c))) for c in np.clip(rgb, 0, 255))
    return f"#{r:02x}{g:02x}{b:02x}"


def frame_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brightness, saturation and contrast (each 0..1) of a batch of RGB frames (N, H, W, 3)."""
    f = frames.astype(np.float32)
    luma = f @ _LUMA  # (N, H, W)
    brightness = luma.mean(axis=(1, 2)) / 255.0
    contrast = np.minimum(1.0, luma.std(axis=(1, 2)) / 127.5)
    mx, mn = f.max(axis=3), f.min(axis=3)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)  # HSV saturation
    saturation = sat.mean(axis=(1, 2))
    return brightness, saturation, contrast


def weighted_kmeans(x: np.ndarray, w: np.ndarray, k: int, seed: int = 0, n_init: int = 3,
                    max_iter: int = 60) -> tuple[np.ndarray, float]:
    """Weighted k-means (k-means++ seeding, Lloyd iterations) of points ``x`` (n, d) with weights ``w``.

    Returns the cluster label of each point and the weighted inertia of the best of ``n_init``
    runs. Plain numpy: for the few hundred points a palette needs this is faster than importing
    scikit-learn (seconds per process), and a test checks it against ``sklearn.cluster.KMeans``.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n = len(x)
    k = max(1, min(k, n))
    best: tuple[np.ndarray, float] | None = None
    for _ in range(n_init):
        centers = [x[rng.choice(n, p=w / w.sum())]]
        d2 = ((x - centers[0]) ** 2).sum(axis=1)
        for _ in range(1, k):
            p = w * d2
            if p.sum() <= 0:
                break
            centers.append(x[rng.choice(n, p=p / p.sum())])
            d2 = np.minimum(d2, ((x - centers[-1]) ** 2).sum(axis=1))
        c = np.array(centers)
        for _ in range(max_iter):
            dist = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
            labels = dist.argmin(axis=1)
            mass = np.bincount(labels, weights=w, minlength=len(c))
            sums = np.stack([np.bincount(labels, weights=w * x[:, j], minlength=len(c)) for j in range(x.shape[1])], 1)
            moved = np.where(mass[:, None] > 0, sums / np.maximum(mass, 1e-12)[:, None], c)
            done = np.abs(moved - c).max() < 1e-3
            c = moved
            if done:
                break
        dist = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        labels = dist.argmin(axis=1)
        inertia = float((w * dist[np.arange(n), labels]).sum())
        if best is None or inertia < best[1]:
            best = (labels, inertia)
    assert best is not None
    return best


def dominant_palette(pixels: np.ndarray, k: int, seed: int = 0) -> tuple[list[str], list[float]]:
    """K-means (in CIE Lab) of RGB ``pixels`` (M, 3) uint8 -> (hex colours, weights), largest first.

    The pixels are first binned on a 16-level-per-channel RGB grid and k-means runs on the bins
    weighted by their pixel counts (a few hundred points instead of thousands: the same palette
    in a fraction of the time). Each colour is the mean of its cluster's original pixels; each
    weight is its share of the pixels. Fewer than ``k`` colours come back when the pixels fall
    into fewer than ``k`` bins.
    """
    import cv2

    if pixels.size == 0:
        return [], []
    pixels = np.ascontiguousarray(pixels.reshape(-1, 3), dtype=np.uint8)
    q = (pixels >> 4).astype(np.uint32)
    bins, inverse, counts = np.unique((q[:, 0] << 8) | (q[:, 1] << 4) | q[:, 2],
                                      return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    means = np.stack([np.bincount(inverse, weights=pixels[:, c], minlength=len(bins)) for c in range(3)], axis=1)
    means /= counts[:, None]
    k = max(1, min(k, len(bins)))
    if k == 1:
        bin_label = np.zeros(len(bins), dtype=np.int64)
    else:
        lab = cv2.cvtColor((means / 255.0).astype(np.float32).reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).reshape(-1, 3)
        bin_label, _ = weighted_kmeans(lab, counts, k, seed)
    labels = bin_label[inverse]
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    rgb = np.stack([np.bincount(labels, weights=pixels[:, c], minlength=k) for c in range(3)], axis=1)
    rgb /= np.maximum(sizes, 1)[:, None]
    order = [i for i in np.argsort(-sizes, kind="stable") if sizes[i] > 0]
    return [_hex(rgb[i]) for i in order], [round(float(sizes[i] / sizes.sum()), 4) for i in order]


class ColorAnalysis(Analyzer):
    """Dominant palette per shot plus brightness, saturation and contrast over time."""

    name = "color_analysis"
    own_process = True  # mostly Python: beside GPU analyzers, in a process of its own
    cpu_priority = "low"  # nothing on the run's longest path waits for it: the decode and the VLM get the CPUs first
    original_status = "active"
    version = "1.0.0"
    description = "Dominant colour palette per shot (k-means) and brightness/saturation/contrast series."
    depends_on = ("cut_analysis",)

    class Params(Analyzer.Params):
        fps: float = Field(2.0, gt=0, le=30, description="Frames per second sampled for colour.")
        width: int = Field(96, ge=16, le=640, description="Width in pixels of the analysed frames.")
        colors: int = Field(5, ge=1, le=16, description="Palette size (k of k-means).")
        pixels_per_shot: int = Field(4000, ge=100, le=100_000, description="Pixels sampled per shot.")
        max_frames_per_shot: int = Field(24, ge=1, le=1000, description="Frames read per shot, spread evenly.")
        seed: int = 0

    def frame_specs(self) -> list[FrameSpec]:
        return [FrameSpec(fps=self.params.fps, width=self.params.width)]

    @classmethod
    def check_available(cls) -> str | None:
        import importlib.util

        if importlib.util.find_spec("cv2") is None:
            return "color_analysis needs OpenCV: pip install opencv-python-headless"
        return None

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        stream = inputs.frames(self.frame_specs()[0])
        p = self.params
        series: dict[str, list[float]] = {"brightness": [], "saturation": [], "contrast": []}
        done = 0
        for _, frames in stream.batches(128):
            for name, values in zip(series, frame_stats(frames)):
                series[name].extend(round(float(v), 4) for v in values)
            done += len(frames)
            inputs.report(0.5 * done / max(1, len(stream)))
        times = [round(float(t), 4) for t in stream.times]
        values = {k: np.asarray(v, dtype=np.float64) for k, v in series.items()}

        duration = inputs.video.duration or (float(stream.times[-1]) if len(stream) else 0.0)
        shots = shot_intervals(inputs, duration)
        rng = np.random.default_rng(p.seed)
        events: list[Event] = []
        pool: list[np.ndarray] = []  # a few pixels of each shot, for the whole-video palette
        for i, (start, end) in enumerate(shots):
            idx = self._shot_frames(stream.times, start, end)
            if idx.size == 0:
                continue
            pixels = self._sample_pixels(stream.frames, idx, p.pixels_per_shot, rng)
            colors, weights = dominant_palette(pixels, p.colors, p.seed)
            share = max(1, int(round(p.pixels_per_shot * min(1.0, (end - start) / max(duration, 1e-9)))))
            pool.append(pixels[rng.choice(len(pixels), size=min(len(pixels), share), replace=False)])
            data: dict[str, Any] = {"colors": colors, "weights": weights, "shot": i}
            a, b = np.searchsorted(stream.times, [start, end], side="left")
            inside = slice(a, b) if b > a else idx  # every frame of the shot for the means
            for name, v in values.items():
                data[name] = round(float(v[inside].mean()), 4)
            events.append(Event(start=start, end=end, label="palette", data=data))
            inputs.report(0.5 + 0.5 * (i + 1) / len(shots))

        track_data: dict[str, Any] = {"shots": len(events)}
        if pool:
            colors, weights = dominant_palette(np.concatenate(pool), p.colors, p.seed)
            track_data["palette"] = {"colors": colors, "weights": weights}
        for name, v in values.items():
            track_data[f"mean_{name}"] = round(float(v.mean()), 4) if v.size else None
        out = [Series(name=name, times=times, values=list(map(float, series[name]))) for name in series]
        return self.track(events=events, series=out, data=track_data)

    def _shot_frames(self, times: np.ndarray, start: float, end: float) -> np.ndarray:
        """Indices of up to ``max_frames_per_shot`` frames inside [start, end), evenly spread;
        the frame nearest the middle when the shot is shorter than the sampling interval."""
        if len(times) == 0:
            return np.zeros(0, dtype=np.int64)
        a, b = np.searchsorted(times, [start, end], side="left")
        if b <= a:
            mid = (start + end) / 2
            return np.array([int(np.argmin(np.abs(times - mid)))])
        n = min(self.params.max_frames_per_shot, b - a)
        return np.unique(np.linspace(a, b - 1, n).round().astype(np.int64))

    @staticmethod
    def _sample_pixels(frames: np.ndarray, idx: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
        """``total`` random pixels (M, 3) drawn evenly from the frames at ``idx``."""
        per = max(1, -(-total // len(idx)))
        h, w = frames.shape[1:3]
        out = []
        for i in idx:
            flat = np.asarray(frames[i]).reshape(-1, 3)
            out.append(flat[rng.choice(h * w, size=min(per, h * w), replace=False)])
        return np.concatenate(out)[:total]
