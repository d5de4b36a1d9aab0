"""Picture measures that need no model: sharpness, noise, exposure; symmetry, balance, thirds.

All work on grey uint8 frames (H, W) and return one value per frame:

- ``sharpness``: variance of the Laplacian (OpenCV's 3x3 kernel) of the frame, the usual focus
  measure; it grows with resolution, so the analyzers compute it at a fixed width.
- ``noise``: Immerkaer's fast noise estimate (1996): the standard deviation, in grey levels, of
  the frame convolved with the 3x3 mask [[1,-2,1],[-2,4,-2],[1,-2,1]] (which cancels edges and
  smooth ramps), sigma = sqrt(pi/2) * mean|I * M| / 6.
- ``exposure``: mean grey level / 255; ``highlights`` / ``shadows``: share of pixels at >= 250
  (clipped) / <= 5 (crushed).
- ``symmetry``: 1 - mean |I - mirror(I)| / 255 (1 for a left-right symmetric frame).
- ``balance``: where the edge energy's centre of mass lies, as (x, y) offsets from the frame's
  centre in half-frame units (-1..1; 0, 0 is centred).
- ``thirds``: the share of edge energy within 1/12 of the frame of the rule-of-thirds lines,
  over the share that band would hold if the energy were spread evenly (1 = no preference).
"""
from __future__ import annotations

import math

import numpy as np

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def sharpness(grey: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def noise(grey: np.ndarray) -> float:
    import cv2

    h, w = grey.shape
    if h < 3 or w < 3:
        return 0.0
    conv = cv2.filter2D(grey.astype(np.float32), -1, _IMMERKAER)[1:-1, 1:-1]
    return float(math.sqrt(math.pi / 2) * np.abs(conv).mean() / 6.0)


def exposure(grey: np.ndarray) -> tuple[float, float, float]:
    """(mean / 255, share clipped >= 250, share crushed <= 5)."""
    n = grey.size or 1
    return (float(grey.mean()) / 255.0, float(np.count_nonzero(grey >= 250)) / n,
            float(np.count_nonzero(grey <= 5)) / n)


def frame_measures(grey: np.ndarray) -> dict[str, float]:
    """Every quality measure of one grey frame."""
    e, hi, lo = exposure(grey)
    return {"sharpness": sharpness(grey), "noise": noise(grey), "exposure": e, "highlights": hi, "shadows": lo}


def symmetry(grey: np.ndarray) -> float:
    g = grey.astype(np.float32)
    return 1.0 - float(np.abs(g - g[:, ::-1]).mean()) / 255.0


def _edges(grey: np.ndarray) -> np.ndarray:
    import cv2

    g = grey.astype(np.float32)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))


def balance(grey: np.ndarray) -> tuple[float, float]:
    return _balance(_edges(grey))


def thirds(grey: np.ndarray) -> float:
    return _thirds(_edges(grey))


def layout(grey: np.ndarray) -> tuple[float, float, float, float]:
    """symmetry, balance x, balance y, thirds of one grey frame (the edges computed once)."""
    e = _edges(grey)
    return (symmetry(grey), *_balance(e), _thirds(e))


def _balance(e: np.ndarray) -> tuple[float, float]:
    total = float(e.sum())
    if total <= 0:
        return 0.0, 0.0
    h, w = e.shape
    cx = float((e.sum(axis=0) * np.arange(w)).sum()) / total
    cy = float((e.sum(axis=1) * np.arange(h)).sum()) / total
    return (cx - (w - 1) / 2) / ((w - 1) / 2 or 1), (cy - (h - 1) / 2) / ((h - 1) / 2 or 1)


def _thirds(e: np.ndarray) -> float:
    total = float(e.sum())
    if total <= 0:
        return 1.0
    h, w = e.shape
    band = np.zeros((h, w), bool)
    for x in (w / 3, 2 * w / 3):
        band[:, max(0, int(x - w / 12)):int(x + w / 12)] = True
    for y in (h / 3, 2 * h / 3):
        band[max(0, int(y - h / 12)):int(y + h / 12), :] = True
    share = float(e[band].sum()) / total
    return share / (band.mean() or 1.0)
