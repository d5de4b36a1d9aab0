"""Split screens and picture-in-picture: persistent straight borders between independently moving pictures.

For a window of frames inside one shot (a few frames a second), each frame gives a map of edge
pixels: the colour difference across two pixels (``|I[x+1] - I[x-1]|``, the largest of R, G, B)
is at least ``edge_min`` and is a local maximum across the edge. Averaged over the window this is
a *persistence* map: moving content smears its edges out, while the border between two pictures
stays put. Only edges next to moving content count (a still picture's own texture persists too).
A **split** is a column (or row) whose persistent edge covers at least ``split_cover`` of the
frame's height (width), at least ``min_part`` of the frame from either side, with textured
content on both sides, and *independent content*: the motion (mean absolute change between sampled frames) on
the two sides is unrelated: one side moves and the other is still, or both move but their
shifts between sampled frames (phase correlation) differ by at least a pixel, which a camera
move over one picture does not do. A door frame in a still shot has no motion on either side and is not reported; a split
of two still pictures is not reported either (nothing shows that they are independent).

A **picture-in-picture** (``find_inset``) is a rectangle of the same kind: 3-40 % of the frame,
with at least three drawn sides (an inset flush with a frame corner has two, as trees against a
sky can: those gave false insets on Big Buck Bunny and are not reported), each a stricter
persistent edge (``persist`` 0.85) along 90 % of its length, with the change just inside each side
unrelated to the change just outside it, and moving content whose shift differs from the rest of
the frame's by ``shift_min`` pixels (or the rest is still). A still box (a score, a logo, a caption
plate) is a graphic, not a picture, and is not reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass
class Layout:
    """One window's layout: ``kind`` "split" or "pip"; ``box`` in frame fractions (x0, y0, x1, y1):
    the split line as a zero-width box, or the inset."""

    kind: str
    orientation: str | None  # "vertical" (side by side) / "horizontal" (stacked) for splits
    box: tuple[float, float, float, float]
    cover: float  # share of the border's length that is a persistent edge
    motion: tuple[float, float]  # mean motion of (left|top|inset, right|bottom|the rest)
    apart: float | None  # median difference (px) of the two sides' shifts, when both move

    def same_as(self, other: "Layout", tol: float = 0.06) -> bool:
        return (self.kind == other.kind and self.orientation == other.orientation
                and all(abs(a - b) <= tol for a, b in zip(self.box, other.box)))


def edge_persistence(frames: np.ndarray, edge_min: float) -> tuple[np.ndarray, np.ndarray]:
    """(Pv, Ph): share of frames in which each pixel is a vertical / horizontal edge (local max).

    The strengths are differences of 0..255 values, exact in int16; they are compared with
    ``edge_min`` as float32 (an int16 array against a float32 scalar), as float32 strengths were."""
    f = frames.astype(np.int16)
    gv = np.zeros(f.shape[:3], np.int16)
    gh = np.zeros(f.shape[:3], np.int16)
    gv[:, :, 1:-1] = _channel_max(np.abs(f[:, :, 2:] - f[:, :, :-2]))
    gh[:, 1:-1] = _channel_max(np.abs(f[:, 2:] - f[:, :-2]))
    return persistence(gv, gh, np.float32(edge_min))


def persistence(gv: np.ndarray, gh: np.ndarray, level: Any) -> tuple[np.ndarray, np.ndarray]:
    """(Pv, Ph) from the edge strengths across columns ``gv`` and rows ``gh`` (m, h, w): a pixel is an edge
    where its strength reaches ``level`` and is a local maximum across the edge."""
    ev = (gv >= level)
    ev[:, :, 1:-1] &= (gv[:, :, 1:-1] >= gv[:, :, :-2]) & (gv[:, :, 1:-1] >= gv[:, :, 2:])
    eh = (gh >= level)
    eh[:, 1:-1] &= (gh[:, 1:-1] >= gh[:, :-2]) & (gh[:, 1:-1] >= gh[:, 2:])
    # a line one pixel either way is the same line (an edge blurred over two pixels moves between them)
    ev[:, :, 1:-1] = ev[:, :, 1:-1] | ev[:, :, :-2] | ev[:, :, 2:]
    eh[:, 1:-1] = eh[:, 1:-1] | eh[:, :-2] | eh[:, 2:]
    return ev.mean(axis=0), eh.mean(axis=0)


def _channel_max(d: np.ndarray) -> np.ndarray:
    """The largest of R, G, B of ``(m, h, w, 3)`` (pairwise ``maximum``: ``max(axis=-1)`` over three
    values is slow); ``(m, h, w)`` grey passes through."""
    return np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2]) if d.ndim == 4 else d


def _gray(frames: np.ndarray) -> np.ndarray:
    """(m, h, w) float32 luma of ``(m, h, w[, 3])`` frames: the mean of R, G and B. (Their float32 sum
    is exact, divided by 3 as ``mean(axis=-1)`` divides it, which is ten times slower over three values.)"""
    f = frames.astype(np.float32)
    return (f[..., 0] + f[..., 1] + f[..., 2]) / np.float32(3) if f.ndim == 4 else f


@dataclass
class WindowMaps:
    """The per-pixel maps of a window of frames that ``find_layout`` and ``find_inset`` both read,
    computed once by :func:`window_maps`."""

    pv: np.ndarray  # (h, w) share of frames in which the pixel is a vertical edge
    ph: np.ndarray  # (h, w) the same for horizontal edges
    gray: np.ndarray  # (m, h, w) float32 luma
    diffs: np.ndarray  # (m-1, h, w) signed luma change between consecutive sampled frames
    motion: np.ndarray  # (m-1, h, w) its absolute value
    mean_motion: np.ndarray  # (h, w) mean of ``motion`` over the window

    def gated(self, persist: float, motion_min: float) -> tuple[np.ndarray, np.ndarray]:
        """(sv, sh): persistent edges (share of frames >= ``persist``) next to moving content (mean
        motion >= ``motion_min``): a still picture's own texture is persistent too."""
        return _near_motion(self.pv >= persist, self.ph >= persist, self.mean_motion >= motion_min)


def window_maps(frames: np.ndarray, edge_min: float = 10.0) -> WindowMaps:
    """The :class:`WindowMaps` of a window of frames ``(m, h, w[, 3])`` uint8."""
    pv, ph = edge_persistence(frames, edge_min)
    gray = _gray(frames)
    diffs = np.diff(gray, axis=0)
    motion = np.abs(diffs)
    return WindowMaps(pv, ph, gray, diffs, motion, motion.mean(axis=0))


def _near_motion(sv: np.ndarray, sh: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep vertical / horizontal edge pixels ``sv`` / ``sh`` only 2-3 pixels beside moving content."""
    near_v, near_h = np.zeros_like(moving), np.zeros_like(moving)
    for k in (2, 3):
        near_v[:, k:] |= moving[:, :-k]
        near_v[:, :-k] |= moving[:, k:]
        near_h[k:] |= moving[:-k]
        near_h[:-k] |= moving[k:]
    return sv & near_v, sh & near_h


def _shift_series(gray: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """(m-1, 2) translation (px) of the region between consecutive sampled frames (phase correlation)."""
    import cv2

    region = np.ascontiguousarray(gray[:, y0:y1, x0:x1], dtype=np.float32)
    if region.shape[1] < 6 or region.shape[2] < 6:
        return np.zeros((0, 2))
    window = cv2.createHanningWindow((region.shape[2], region.shape[1]), cv2.CV_32F)
    return np.array([cv2.phaseCorrelate(region[k], region[k + 1], window)[0] for k in range(len(region) - 1)])


def _independent(motion_a: np.ndarray, motion_b: np.ndarray, shifts: Callable[[], tuple[np.ndarray, np.ndarray]],
                 motion_min: float, shift_min: float = 1.0) -> tuple[bool, float | None]:
    """Whether two regions move independently: one moves and the other hardly, or both move but
    by different shifts (a camera move over one picture shifts both sides alike). ``shifts`` gives
    the two regions' shift series (``_shift_series``); it is called only when both move (phase
    correlation is the costly part). Returns the verdict and the median shift difference in pixels
    (None when nothing moves)."""
    ma, mb = float(motion_a.mean()), float(motion_b.mean())
    hi, lo = max(ma, mb), min(ma, mb)
    if hi < motion_min:
        return False, None  # nothing moves: no evidence either way
    if lo < 0.3 * hi:
        return True, None
    shift_a, shift_b = shifts()
    if not len(shift_a) or len(shift_a) != len(shift_b):
        return False, None
    apart = float(np.median(np.hypot(*(shift_a - shift_b).T)))
    return apart >= shift_min, apart


def _textured(region: np.ndarray, min_std: float = 8.0) -> bool:
    return bool(region.size) and float(region.std()) >= min_std


def _window_too_small(frames: np.ndarray) -> bool:
    """Fewer than three frames, or frames under 16 px either way: no layout is looked for."""
    m, h, w = frames.shape[:3]
    return m < 3 or h < 16 or w < 16


def find_window_layout(frames: np.ndarray, edge_min: float = 10.0) -> Layout | None:
    """``find_layout(frames) or find_inset(frames)`` with the default thresholds, the window's maps
    computed once for both."""
    if _window_too_small(frames):
        return None
    maps = window_maps(frames, edge_min)
    return find_layout(frames, edge_min, maps=maps) or find_inset(frames, edge_min, maps=maps)


def find_layout(frames: np.ndarray, edge_min: float = 10.0, persist: float = 0.7, split_cover: float = 0.95,
                min_part: float = 0.25, motion_min: float = 2.0, maps: WindowMaps | None = None) -> Layout | None:
    """The layout of a window of frames ``(m, h, w[, 3])`` uint8, or None (see the module docstring).
    ``maps``: ``window_maps(frames, edge_min)`` when the caller has them already."""
    if _window_too_small(frames):
        return None
    maps = window_maps(frames, edge_min) if maps is None else maps
    sv, sh = maps.gated(persist, motion_min)
    return _split(sv, sh, maps.motion, maps.gray, split_cover, min_part, motion_min)


def _split(sv, sh, motion, gray, cover_min, min_part, motion_min) -> Layout | None:
    h, w = sv.shape
    found: list[Layout] = []
    for orientation, mask, length, span in (("vertical", sv, h, w), ("horizontal", sh.T, w, h)):
        cover = mask.mean(axis=0)  # per column (vertical line) of the oriented mask
        lo, hi = int(np.ceil(min_part * span)), int(np.floor((1 - min_part) * span))
        for x in range(max(2, lo), min(span - 2, hi + 1)):
            if cover[x] < cover_min or cover[x] < cover[max(0, x - 1)] or cover[x] < cover[min(span - 1, x + 1)]:
                continue
            if orientation == "vertical":
                a, b = motion[:, :, :x - 1], motion[:, :, x + 2:]
                ga, gb = gray[:, :, :x - 1], gray[:, :, x + 2:]
                box = (x / w, 0.0, x / w, 1.0)
                regions = ((0, h, 0, x - 1), (0, h, x + 2, w))
            else:
                a, b = motion[:, :x - 1], motion[:, x + 2:]
                ga, gb = gray[:, :x - 1], gray[:, x + 2:]
                box = (0.0, x / h, 1.0, x / h)
                regions = ((0, x - 1, 0, w), (x + 2, h, 0, w))
            if not (_textured(ga) and _textured(gb)):
                continue
            sa, sb = a.reshape(a.shape[0], -1).mean(axis=1), b.reshape(b.shape[0], -1).mean(axis=1)
            ok, apart = _independent(sa, sb, _shifts_of(gray, *regions), motion_min)
            if ok:
                found.append(Layout("split", orientation, box, round(float(cover[x]), 3),
                                    (round(float(sa.mean()), 2), round(float(sb.mean()), 2)),
                                    None if apart is None else round(apart, 2)))
    return max(found, key=lambda l: l.cover) if found else None


def _shifts_of(gray: np.ndarray, region_a: tuple[int, int, int, int],
               region_b: tuple[int, int, int, int]) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """``_independent``'s ``shifts``: the shift series of two regions (y0, y1, x0, x1), when asked."""
    return lambda: (_shift_series(gray, *region_a), _shift_series(gray, *region_b))


# --- picture-in-picture ------------------------------------------------------------------------
def _longest_runs(mask: np.ndarray) -> np.ndarray:
    """The length of the longest run of True in each column of a 2-D bool ``mask``."""
    count = np.cumsum(mask, axis=0)  # Trues so far; minus its value at the last False: the current run
    return (count - np.maximum.accumulate(np.where(mask, 0, count), axis=0)).max(axis=0, initial=0)


def _lines(mask: np.ndarray, min_len: int, keep: int = 8) -> list[int]:
    """Columns of ``mask`` with a run of True at least ``min_len`` long, longest first (then the
    rightmost first), one per line (columns within two pixels are one line), at most ``keep``."""
    cols = np.arange(3, mask.shape[1] - 3)
    runs = _longest_runs(mask[:, 3:mask.shape[1] - 3])
    kept: list[int] = []
    for i in np.lexsort((cols, runs))[::-1].tolist():  # by (run, column), largest first
        if runs[i] < min_len or len(kept) >= keep:
            break
        x = int(cols[i])
        if all(abs(x - k) > 2 for k in kept):
            kept.append(x)
    return kept


def _border_break(diffs: np.ndarray, inner: tuple[slice, slice], outer: tuple[slice, slice],
                  motion_min: float) -> bool:
    """Whether the change just inside a border is unrelated to the change just outside it."""
    a = diffs[(slice(None), *inner)].reshape(-1)
    b = diffs[(slice(None), *outer)].reshape(-1)
    if a.size != b.size or a.size < 8:
        return False
    ma, mb = float(np.abs(a).mean()), float(np.abs(b).mean())
    if max(ma, mb) < motion_min:
        return False
    if min(ma, mb) < 0.3 * max(ma, mb):
        return True
    return float(np.corrcoef(a, b)[0, 1]) < 0.3


def find_inset(frames: np.ndarray, edge_min: float = 10.0, persist: float = 0.85, cover_min: float = 0.9,
               motion_min: float = 2.0, shift_min: float = 2.5, maps: WindowMaps | None = None) -> Layout | None:
    """A picture-in-picture inset in a window of frames ``(m, h, w[, 3])`` uint8, or None.

    A rectangle of 3-40 % of the frame with at least three drawn sides (touching at most one frame
    border), each a persistent edge next to motion along ``cover_min`` of its length, with the
    change just inside each side unrelated to the change just outside it, and content that moves,
    independently of the rest of the frame (shifts ``shift_min`` px apart, or the rest still).
    ``maps``: ``window_maps(frames, edge_min)`` when the caller has them already.

    The rectangles between candidate lines (the frame's borders and ``_lines``) are tested in the
    order of ``_rectangles``; an inset found replaces the one found before when it has more drawn
    sides, or as many and a cover above the earlier one's (rounded) cover."""
    if _window_too_small(frames):
        return None
    maps = window_maps(frames, edge_min) if maps is None else maps
    sv, sh = maps.gated(persist, motion_min)
    h, w = sv.shape
    min_h, min_w = max(4, int(0.15 * h)), max(4, int(0.15 * w))
    xs = [0, w - 1, *_lines(sv, min_h)]
    ys = [0, h - 1, *_lines(sh.T, min_w)]
    best: Layout | None = None
    best_sides = 0
    for x0, x1, y0, y1, sides, cover in _rectangles(sv, sh, xs, ys, min_w, min_h, cover_min):
        if best is not None and (sides, cover) <= (best_sides, best.cover):
            continue
        found = _inset_at(maps, x0, x1, y0, y1, cover, motion_min, shift_min)
        if found is not None:
            best, best_sides = found, sides
    return best


def _rectangles(sv: np.ndarray, sh: np.ndarray, xs: list[int], ys: list[int], min_w: int, min_h: int,
                cover_min: float) -> list[tuple[int, int, int, int, int, float]]:
    """The inset candidates ``(x0, x1, y0, y1, drawn sides, cover)`` in the order of the loops
    ``for x0 in xs: for x1 in xs: for y0 in ys: for y1 in ys``: at least ``min_w`` x ``min_h`` px,
    3-40 % of the frame, touching at most one frame border, and each drawn side (one not on the
    frame's border) a persistent edge along ``cover_min`` of its length (``cover``: the least)."""
    h, w = sv.shape
    x0, x1, y0, y1 = (a.ravel() for a in np.meshgrid(xs, xs, ys, ys, indexing="ij"))
    on_border = np.stack([x0 == 0, x1 == w - 1, y0 == 0, y1 == h - 1])
    area = (x1 - x0) * (y1 - y0) / (w * h)
    keep = ((x1 - x0 >= min_w) & (y1 - y0 >= min_h) & (on_border.sum(axis=0) <= 1)
            & (area >= 0.03) & (area <= 0.4))
    x0, x1, y0, y1, on_border = x0[keep], x1[keep], y0[keep], y1[keep], on_border[:, keep]
    # a side's cover (its share of edge pixels) from running counts: exactly the slice's mean
    down = np.concatenate([np.zeros((1, w), np.int64), np.cumsum(sv, axis=0)])  # (h+1, w)
    across = np.concatenate([np.zeros((h, 1), np.int64), np.cumsum(sh, axis=1)], axis=1)  # (h, w+1)
    tall, wide = y1 - y0 + 1, x1 - x0 + 1
    covers = np.stack([(down[y1 + 1, x0] - down[y0, x0]) / tall, (down[y1 + 1, x1] - down[y0, x1]) / tall,
                       (across[y0, x1 + 1] - across[y0, x0]) / wide, (across[y1, x1 + 1] - across[y1, x0]) / wide])
    cover = np.where(on_border, np.inf, covers).min(axis=0)
    sides = 4 - on_border.sum(axis=0)
    good = cover >= cover_min
    return list(zip(x0[good].tolist(), x1[good].tolist(), y0[good].tolist(), y1[good].tolist(),
                    sides[good].tolist(), cover[good].tolist()))


def _inset_at(maps: WindowMaps, x0: int, x1: int, y0: int, y1: int, cover: float, motion_min: float,
              shift_min: float) -> Layout | None:
    """The inset with borders at columns x0, x1 and rows y0, y1 (a ``_rectangles`` candidate), or
    None: a drawn side whose inside and outside change together, no texture inside or outside,
    still content inside, or content that does not move independently of the rest."""
    gray, diffs = maps.gray, maps.diffs
    h, w = gray.shape[1:]
    rs, cs = slice(y0 + 2, y1 - 1), slice(x0 + 2, x1 - 1)
    bands = []  # (inner band, outer band) of each drawn side
    if x0 != 0:
        bands.append(((rs, slice(x0 + 2, x0 + 4)), (rs, slice(x0 - 3, x0 - 1))))
    if x1 != w - 1:
        bands.append(((rs, slice(x1 - 3, x1 - 1)), (rs, slice(x1 + 2, x1 + 4))))
    if y0 != 0:
        bands.append(((slice(y0 + 2, y0 + 4), cs), (slice(y0 - 3, y0 - 1), cs)))
    if y1 != h - 1:
        bands.append(((slice(y1 - 3, y1 - 1), cs), (slice(y1 + 2, y1 + 4), cs)))
    if not all(_border_break(diffs, i, o, motion_min) for i, o in bands):
        return None
    inside = np.zeros((h, w), bool)
    inside[y0 + 2:y1 - 1, x0 + 2:x1 - 1] = True
    ring = np.zeros((h, w), bool)
    ring[max(0, y0 - 2):y1 + 3, max(0, x0 - 2):x1 + 3] = True
    if not (_textured(gray[:, inside]) and _textured(gray[:, ~ring])):
        return None
    si = np.abs(diffs[:, inside]).mean(axis=1)
    if si.mean() < motion_min:
        return None  # a still box (a score, a logo, a caption plate) is a graphic, not a picture
    so = np.abs(diffs[:, ~ring]).mean(axis=1)
    strips = [(0, y0 - 2, 0, w), (y1 + 3, h, 0, w), (0, h, 0, x0 - 2), (0, h, x1 + 3, w)]
    outside = max(strips, key=lambda r: max(0, r[1] - r[0]) * max(0, r[3] - r[2]))
    ok, apart = _independent(si, so, _shifts_of(gray, (y0 + 2, y1 - 1, x0 + 2, x1 - 1), outside),
                             motion_min, shift_min)
    if not ok:
        return None
    return Layout("pip", None, (x0 / w, y0 / h, (x1 + 1) / w, (y1 + 1) / h), round(cover, 3),
                  (round(float(si.mean()), 2), round(float(so.mean()), 2)), None if apart is None else round(apart, 2))
