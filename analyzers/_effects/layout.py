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
    """(Pv, Ph): share of frames in which each pixel is a vertical / horizontal edge (local max)."""
    f = frames.astype(np.float32)
    gv = np.zeros(f.shape[:3], np.float32)
    gh = np.zeros(f.shape[:3], np.float32)
    dv = np.abs(f[:, :, 2:] - f[:, :, :-2])
    dh = np.abs(f[:, 2:] - f[:, :-2])
    gv[:, :, 1:-1] = dv.max(axis=-1) if dv.ndim == 4 else dv
    gh[:, 1:-1] = dh.max(axis=-1) if dh.ndim == 4 else dh
    ev = (gv >= edge_min)
    ev[:, :, 1:-1] &= (gv[:, :, 1:-1] >= gv[:, :, :-2]) & (gv[:, :, 1:-1] >= gv[:, :, 2:])
    eh = (gh >= edge_min)
    eh[:, 1:-1] &= (gh[:, 1:-1] >= gh[:, :-2]) & (gh[:, 1:-1] >= gh[:, 2:])
    # a line one pixel either way is the same line (an edge blurred over two pixels moves between them)
    ev[:, :, 1:-1] = ev[:, :, 1:-1] | ev[:, :, :-2] | ev[:, :, 2:]
    eh[:, 1:-1] = eh[:, 1:-1] | eh[:, :-2] | eh[:, 2:]
    pv = ev.mean(axis=0)
    ph = eh.mean(axis=0)
    return pv, ph


def _gray(frames: np.ndarray) -> np.ndarray:
    """(m, h, w) float32 luma of ``(m, h, w[, 3])`` frames."""
    return frames.astype(np.float32).mean(axis=-1) if frames.ndim == 4 else frames.astype(np.float32)


def _motion(frames: np.ndarray) -> np.ndarray:
    """(m-1, h, w) absolute luma change between consecutive sampled frames."""
    return np.abs(np.diff(_gray(frames), axis=0))


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


def _independent(motion_a: np.ndarray, motion_b: np.ndarray, shift_a: np.ndarray, shift_b: np.ndarray,
                 motion_min: float, shift_min: float = 1.0) -> tuple[bool, float | None]:
    """Whether two regions move independently: one moves and the other hardly, or both move but
    by different shifts (a camera move over one picture shifts both sides alike). Returns the
    verdict and the median shift difference in pixels (None when nothing moves)."""
    ma, mb = float(motion_a.mean()), float(motion_b.mean())
    hi, lo = max(ma, mb), min(ma, mb)
    if hi < motion_min:
        return False, None  # nothing moves: no evidence either way
    if lo < 0.3 * hi:
        return True, None
    if not len(shift_a) or len(shift_a) != len(shift_b):
        return False, None
    apart = float(np.median(np.hypot(*(shift_a - shift_b).T)))
    return apart >= shift_min, apart


def _textured(region: np.ndarray, min_std: float = 8.0) -> bool:
    return bool(region.size) and float(region.std()) >= min_std


def find_layout(frames: np.ndarray, edge_min: float = 10.0, persist: float = 0.7, split_cover: float = 0.95,
                min_part: float = 0.25, motion_min: float = 2.0) -> Layout | None:
    """The layout of a window of frames ``(m, h, w[, 3])`` uint8, or None (see the module docstring)."""
    m, h, w = frames.shape[:3]
    if m < 3 or h < 16 or w < 16:
        return None
    pv, ph = edge_persistence(frames, edge_min)
    motion = _motion(frames)  # (m-1, h, w)
    sv, sh = pv >= persist, ph >= persist
    # an edge counts only next to moving content: a still picture's own texture is persistent too
    moving = motion.mean(axis=0) >= motion_min
    sv, sh = _near_motion(sv, sh, moving)
    gray = _gray(frames)
    return _split(sv, sh, motion, gray, split_cover, min_part, motion_min)


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
            else:
                a, b = motion[:, :x - 1], motion[:, x + 2:]
                ga, gb = gray[:, :x - 1], gray[:, x + 2:]
                box = (0.0, x / h, 1.0, x / h)
            if not (_textured(ga) and _textured(gb)):
                continue
            sa, sb = a.reshape(a.shape[0], -1).mean(axis=1), b.reshape(b.shape[0], -1).mean(axis=1)
            if orientation == "vertical":
                sha, shb = _shift_series(gray, 0, h, 0, x - 1), _shift_series(gray, 0, h, x + 2, w)
            else:
                sha, shb = _shift_series(gray, 0, x - 1, 0, w), _shift_series(gray, x + 2, h, 0, w)
            ok, apart = _independent(sa, sb, sha, shb, motion_min)
            if ok:
                found.append(Layout("split", orientation, box, round(float(cover[x]), 3),
                                    (round(float(sa.mean()), 2), round(float(sb.mean()), 2)),
                                    None if apart is None else round(apart, 2)))
    return max(found, key=lambda l: l.cover) if found else None


# --- picture-in-picture ------------------------------------------------------------------------
def _gated_maps(frames: np.ndarray, edge_min: float, persist: float, motion_min: float):
    """(sv, sh, gray, signed differences): persistent edges next to motion (as ``find_layout``)."""
    pv, ph = edge_persistence(frames, edge_min)
    gray = _gray(frames)
    diffs = np.diff(gray, axis=0)
    moving = np.abs(diffs).mean(axis=0) >= motion_min
    sv, sh = pv >= persist, ph >= persist
    sv, sh = _near_motion(sv, sh, moving)
    return sv, sh, gray, diffs


def _longest_run(line: np.ndarray) -> int:
    best = cur = 0
    for v in line:
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return best


def _lines(mask: np.ndarray, min_len: int, keep: int = 8) -> list[int]:
    """Columns of ``mask`` with a run of True at least ``min_len`` long, longest first, one per
    line (columns within two pixels are one line), at most ``keep``."""
    found = sorted(((_longest_run(mask[:, x]), x) for x in range(3, mask.shape[1] - 3)), reverse=True)
    kept: list[int] = []
    for n, x in found:
        if n < min_len or len(kept) >= keep:
            break
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
               motion_min: float = 2.0, shift_min: float = 2.5) -> Layout | None:
    """A picture-in-picture inset in a window of frames ``(m, h, w[, 3])`` uint8, or None.

    A rectangle of 3-40 % of the frame with at least three drawn sides (touching at most one frame
    border), each a persistent edge next to motion along ``cover_min`` of its length, with the
    change just inside each side unrelated to the change just outside it, and content that moves,
    independently of the rest of the frame (shifts ``shift_min`` px apart, or the rest still)."""
    m, h, w = frames.shape[:3]
    if m < 3 or h < 16 or w < 16:
        return None
    sv, sh, gray, diffs = _gated_maps(frames, edge_min, persist, motion_min)
    min_h, min_w = max(4, int(0.15 * h)), max(4, int(0.15 * w))
    xs = [0, w - 1, *_lines(sv, min_h)]
    ys = [0, h - 1, *_lines(sh.T, min_w)]
    best: Layout | None = None
    best_sides = 0
    for x0 in xs:
        for x1 in xs:
            if x1 - x0 < min_w:
                continue
            for y0 in ys:
                for y1 in ys:
                    if y1 - y0 < min_h:
                        continue
                    borders = [x0 == 0, x1 == w - 1, y0 == 0, y1 == h - 1]
                    if sum(borders) > 1:
                        continue
                    area = (x1 - x0) * (y1 - y0) / (w * h)
                    if not 0.03 <= area <= 0.4:
                        continue
                    rs, cs = slice(y0 + 2, y1 - 1), slice(x0 + 2, x1 - 1)
                    sides = []  # (cover, inner band, outer band)
                    if not borders[0]:
                        sides.append((sv[y0:y1 + 1, x0].mean(), (rs, slice(x0 + 2, x0 + 4)), (rs, slice(x0 - 3, x0 - 1))))
                    if not borders[1]:
                        sides.append((sv[y0:y1 + 1, x1].mean(), (rs, slice(x1 - 3, x1 - 1)), (rs, slice(x1 + 2, x1 + 4))))
                    if not borders[2]:
                        sides.append((sh[y0, x0:x1 + 1].mean(), (slice(y0 + 2, y0 + 4), cs), (slice(y0 - 3, y0 - 1), cs)))
                    if not borders[3]:
                        sides.append((sh[y1, x0:x1 + 1].mean(), (slice(y1 - 3, y1 - 1), cs), (slice(y1 + 2, y1 + 4), cs)))
                    cover = float(min(c for c, _i, _o in sides))
                    if cover < cover_min or (best is not None and (len(sides), cover) <= (best_sides, best.cover)):
                        continue
                    if not all(_border_break(diffs, i, o, motion_min) for _c, i, o in sides):
                        continue
                    inside = np.zeros((h, w), bool)
                    inside[y0 + 2:y1 - 1, x0 + 2:x1 - 1] = True
                    ring = np.zeros((h, w), bool)
                    ring[max(0, y0 - 2):y1 + 3, max(0, x0 - 2):x1 + 3] = True
                    if not (_textured(gray[:, inside]) and _textured(gray[:, ~ring])):
                        continue
                    si = np.abs(diffs[:, inside]).mean(axis=1)
                    if si.mean() < motion_min:
                        continue  # a still box (a score, a logo, a caption plate) is a graphic, not a picture
                    so = np.abs(diffs[:, ~ring]).mean(axis=1)
                    strips = [(0, y0 - 2, 0, w), (y1 + 3, h, 0, w), (0, h, 0, x0 - 2), (0, h, x1 + 3, w)]
                    oy0, oy1, ox0, ox1 = max(strips, key=lambda r: max(0, r[1] - r[0]) * max(0, r[3] - r[2]))
                    ok, apart = _independent(si, so, _shift_series(gray, y0 + 2, y1 - 1, x0 + 2, x1 - 1),
                                             _shift_series(gray, oy0, oy1, ox0, ox1), motion_min, shift_min)
                    if ok:
                        best_sides = len(sides)
                        best = Layout("pip", None, (x0 / w, y0 / h, (x1 + 1) / w, (y1 + 1) / h), round(cover, 3),
                                      (round(float(si.mean()), 2), round(float(so.mean()), 2)),
                                      None if apart is None else round(apart, 2))
    return best
