"""Shot boundaries, frame-exact: hard cuts, fades through black and dissolves.

Reads every frame of the video, scaled to ``width`` pixels (96 by default), in one pass, and
computes three cheap signals per frame, vectorised over blocks of frames:

- ``content``: the HSV difference to the previous frame. Hue and saturation differences are
  weighted by how bright (and, for hue, how saturated) the pixels are, because hue and
  saturation are meaningless noise in near-black pixels (PySceneDetect's ContentDetector fires
  on fades for that reason).
- ``luma`` (mean Rec. 601 luma) and ``lit`` (the share of pixels brighter than ``dark_level``),
  for fades.
- a 64-bin RGB histogram, for cuts next to shaky shots and for dissolves.

Detectors, in order:

1. **Hard cuts** (AdaptiveDetector-style): a frame is a cut when its ``content`` score is at
   least ``min_content`` and either that score or the frame's colour-histogram change (at least
   ``hist_cut_min``; camera shake hardly moves a histogram) is at least ``threshold`` times the
   mean of the ``window`` frames on each side. A one- or two-frame flash (the picture comes
   back) is not a cut; of two cuts closer than ``min_shot_s`` the stronger one stays.
2. **Fades**: runs of black frames (at most 10 % of the pixels brighter than ``dark_level``, so
   a caption on black is still black and a dark but lit shot is not) with the luma ramps into
   and out of them. A dip to black entered by a fade-out and left by a fade-in is one ``fade``
   transition; the new shot starts at the first frame of the fade-in. When the black is held
   for ``black_hold_s`` or longer, the fade-out and the fade-in are separate effects and the
   picture's return is a ``cut`` from black (``data.from_black``): the edit happened there. A black run entered or left
   by a hard cut leaves the boundary at the cut (the ramp is reported as a fade-in/out effect).
3. **Dissolves** (twin comparison plus a blend test): where the colour histograms of frames
   ``k`` frames apart differ (``dissolve_hist_min``), with no cut or fade between them, the middle
   frame must be explained by a blend of the two (``dissolve_mix_max``) and must hold a second
   picture: one end alone, moved by up to two pixels and re-toned, leaves a share of the change
   unexplained (``dissolve_second_min``) or explains it far worse than the blend. So a slow change
   of one picture (a tilt across a smooth sky, fog clearing, a light coming up), whose middle
   frames are close to a blend of its ends too, is not a dissolve. The new shot starts at the
   middle of the dissolve.

Events (times in seconds, ``stream.times`` of the frames; frame indices are positions in the
all-frames stream, so ``data.frame / fps`` is only approximately the time on variable-rate video):

- ``shot`` (one per shot, covering the video without gaps): ``data = {index, first_frame,
  last_frame, transition_in: "start" | "cut" | "fade" | "dissolve"}``.
- ``cut`` (instant, at the first frame of the new shot): ``data = {frame, ratio, hist_ratio, content,
  from_black}``,
  ``score`` in 0..1.
- ``fade`` / ``dissolve`` (spanning the transition): ``data = {first_frame, last_frame, kind,
  boundary_frame}``; ``kind`` is ``"out-in"``, ``"out"`` or ``"in"`` for fades (only ``out-in``
  starts a new shot; ``boundary_frame`` is ``None`` otherwise).

Series: ``content_diff`` (the per-frame score, max-pooled to at most ``series_max_points``).
Track data: ``fps``, ``frame_count``, ``shot_count``, ``cut_count``, ``fade_count``,
``dissolve_count``, ``mean_shot_s``, ``signals_from``.

Speed: in a decode in parallel segments, each segment's per-frame signals are computed by the decode
as soon as that segment is decoded (``stream_features``, ``part_signals``), while later segments
still decode; here they are only joined (``signals_from_parts``), so the cut list, which the VLM and
the per-shot analyzers wait for, is ready almost as soon as the video is. Otherwise they are computed
here from the frames (``frame_signals``), with the same results.
"""
from __future__ import annotations

import contextlib
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
from pydantic import Field, field_validator

from framework import Analyzer, AnalyzerInputs, Event, FrameSpec, Series, Track
from framework.devices import cpus_available
from framework.streams import PART_STARTS

logger = logging.getLogger(__name__)

_HIST_BINS = 64  # 4 x 4 x 4 RGB
_TINY_WIDTH = 24  # pixels: the blend test's picture size
_SCAN_CHUNK = 1 << 16  # frames per chunk of the dissolve scan
_SHIFT = 2  # pixels (of the blend test's pictures) one picture may move when it explains a dissolve's middle
_SECOND_MIN_LEVELS = 3.0  # least RMS difference (0..255) a second picture leaves; under it is noise
# threads for the blocks of frame signals and the dissolve test (OpenCV and numpy release the GIL), at most. More
# were slower, not faster: on the H200 machine's 16 CPUs, right after the decode beside the other analyzers, 8 took
# 1.7-3.3 s for a 10-minute clip against 1.1 s with 2 (end_to_end_h200_ab28.md); on 2 CPUs here 8 took 1.5 s
# against 0.8-1.0 s. In a segmented decode the signals come from the decode instead (``part_signals``).
_WORKERS = 2

_T = TypeVar("_T")
_R = TypeVar("_R")


def _in_order(fn: Callable[[_T], _R], items: Iterable[_T], workers: int | None = None) -> Iterator[_R]:
    """``fn(item)`` for each item, yielded in order, computed on up to ``workers`` threads (default:
    ``_WORKERS``, at most the CPUs this process may use; ``0`` too) with at most two results per thread
    waiting, so memory stays that of a few items. Every item is computed by the same code
    whatever the threads, so the results are those of a plain loop."""
    if not workers:
        workers = min(_WORKERS, cpus_available())
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    from concurrent.futures import ThreadPoolExecutor

    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cut_analysis-worker") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # the consumer stopped early (an error, Ctrl-C in progress()): start nothing more
            for future in pending:
                future.cancel()


# --------------------------------------------------------------------------------------------
# per-frame signals
# --------------------------------------------------------------------------------------------
@dataclass
class FrameSignals:
    """Per-frame signals of a stream: ``content[i]`` compares frame i with frame i-1 (0 for i=0).

    Colour histograms are not kept (a 2-hour film's would take 22 MB): only the distances the
    detectors use, computed as the frames stream past.
    """

    content: np.ndarray    # (N,) float32
    luma: np.ndarray       # (N,) float32, mean luma 0..255
    lit: np.ndarray        # (N,) float32, fraction of pixels brighter than the dark level
    hist_step: np.ndarray  # (N,) float32, histogram distance (0..1) of frame i to frame i-1 (0 for i=0)
    hist_span: dict[int, np.ndarray]  # k -> (N,) float32, distance of frames i-k and i+k (NaN off the ends)


def hsv_planes(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H, S, V planes (each (N, H*W) uint8; OpenCV ranges H 0..179, S and V 0..255) of RGB
    frames (N, H, W, 3), converted in one cv2 call."""
    import cv2

    n, h, w, _ = frames.shape
    flat = np.ascontiguousarray(frames).reshape(n * h, w, 3)
    hue, sat, val = cv2.split(cv2.cvtColor(flat, cv2.COLOR_RGB2HSV))
    return hue.reshape(n, -1), sat.reshape(n, -1), val.reshape(n, -1)


def plane_difference(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...], few_calls: bool = False) -> np.ndarray:
    """Content difference of pairs of frames given as HSV planes (see ``hsv_planes``) -> (N,).

    The weighted mean, on a 0..255 scale, of |dH| (circular, doubled to span 0..180), |dS| and
    |dV| over all pixels, where hue counts only in bright, saturated pixels and saturation only
    in bright pixels (weights ramp from 0 at 8 to 1 at 32). The per-pixel terms are integers
    that fit 16 bits (at most 90 * 576); their row sums are exact (``_row_sums``; ``few_calls``
    there), then scaled in float64.
    """
    import cv2

    (ha, sa, va), (hb, sb, vb) = a, b
    wv = _ramp(np.minimum(va, vb))                           # 0..24
    whs = cv2.multiply(wv, _ramp(np.minimum(sa, sb)), dtype=cv2.CV_16U)  # 0..576
    dh = cv2.absdiff(ha, hb)
    dh = np.minimum(dh, 180 - dh)                          # circular, 0..90
    s_h, s_s, s_v, s_whs, s_wv = _row_sums(np.multiply(dh, whs, dtype=np.uint16),
                                           np.multiply(cv2.absdiff(sa, sb), wv, dtype=np.uint16),
                                           cv2.absdiff(va, vb), whs, wv, few_calls=few_calls)
    s_h = s_h * (2.0 / 576.0)
    s_s = s_s / 24.0
    den = s_whs / 576.0 + s_wv / 24.0 + va.shape[1]
    return ((s_h + s_s + s_v) / den).astype(np.float32)


def _ramp(x: np.ndarray) -> np.ndarray:
    """The weight (0..24) of hue/saturation differences by pixel value or saturation ``x`` (a 2-D
    uint8 array): 0 below 8, rising by one a level to 24 from 32 up, i.e. ``clip(x - 8, 0, 24)``
    (a saturating subtraction and a minimum: several times faster than a table look-up here)."""
    import cv2

    return cv2.min(cv2.subtract(x, 8), 24)


def _row_sums(*arrays: np.ndarray, few_calls: bool = False) -> tuple[np.ndarray, ...]:
    """The sum of each row of 2-D uint8/uint16 arrays, as float64. Exact: OpenCV sums integer
    pixels in integer blocks (every row sum is far below 2**53), so each value equals the float64
    dot product with ones this replaced, bit for bit; one ``cv2.sumElems`` per row beats both that
    product (a float64 copy of every term) and numpy's integer reductions.

    ``few_calls``: numpy's integer reduction instead, one call an array (the same integers, so the
    same values): slower alone, but each ``sumElems`` gives the interpreter's lock back and takes it
    again, and beside threads that run Python (the decode's segment decoders, ``part_signals``) each
    taking-again waited for them (``sys.getswitchinterval``): the decode of a 10-minute clip on an H200
    took up to 4 s longer."""
    if few_calls:
        return tuple(x.sum(axis=1, dtype=np.uint64 if x.shape[1] * np.iinfo(x.dtype).max >= 2**32 else np.uint32)
                     .astype(np.float64) for x in arrays)
    import cv2

    return tuple(np.fromiter((cv2.sumElems(row)[0] for row in x), dtype=np.float64, count=len(x)) for x in arrays)


def content_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Content difference of pairs of RGB frames (N, H, W, 3) -> (N,); see ``plane_difference``."""
    return plane_difference(hsv_planes(a), hsv_planes(b))


def rgb_histograms(frames: np.ndarray, step: int = 1) -> np.ndarray:
    """Normalised 4x4x4-bin RGB histograms of frames (N, H, W, 3) -> (N, 64) float32, counting
    every ``step``-th pixel of every ``step``-th row."""
    n = frames.shape[0]
    q = np.ascontiguousarray(frames[:, ::step, ::step]).reshape(n, -1, 3) >> 6
    code = (q[..., 0].astype(np.int32) << 4) | (q[..., 1].astype(np.int32) << 2) | q[..., 2]
    code += (np.arange(n, dtype=np.int32) * _HIST_BINS)[:, None]
    counts = np.bincount(code.ravel(), minlength=n * _HIST_BINS).reshape(n, _HIST_BINS)
    return (counts / max(1, q.shape[1])).astype(np.float32)


def frame_signals(frames: np.ndarray, dark_level: float = 16.0, block: int = 64,
                  progress: Any = None, spans: Iterable[int] = (), workers: int | None = None) -> FrameSignals:
    """Compute the per-frame signals of ``frames`` (N, H, W, 3) uint8 (a memmap is fine).

    Works in blocks of ``block`` frames, so memory stays bounded: each block overlaps the one
    before by a frame for ``content``, and the last ``2 * max(spans)`` histograms are carried
    over for ``hist_span[k]`` (one per ``k`` in ``spans``). Histograms are rounded to float16
    before distances are taken. ``progress`` is an optional callable taking the fraction done;
    ``workers`` the threads that compute blocks (see ``_in_order``; the signals do not depend on it).
    """
    n = len(frames)
    spans = sorted({int(k) for k in spans if int(k) >= 1})
    sig = FrameSignals(content=np.zeros(n, dtype=np.float32), luma=np.zeros(n, dtype=np.float32),
                       lit=np.zeros(n, dtype=np.float32), hist_step=np.zeros(n, dtype=np.float32),
                       hist_span={k: np.full(n, np.nan, dtype=np.float32) for k in spans})
    keep = max([1] + [2 * k for k in spans])  # histograms carried into the next block
    tail = np.zeros((0, _HIST_BINS), dtype=np.float32)
    starts = range(0, n, block)
    # blocks are independent (each reads the frame before it), so they run on a few threads; the
    # histogram distances across blocks are taken here, in order
    blocks = _in_order(lambda s: _block_signals(frames, s, min(n, s + block), dark_level, sig), starts, workers)
    with contextlib.closing(blocks):
        for s, own in zip(starts, blocks):
            e = min(n, s + block)
            window = np.concatenate([tail, own])  # window[len(tail) + j] is frame s + j
            first = len(tail) - s                 # window index of frame f is f + first
            right = np.arange(max(s, 1), e)
            sig.hist_step[right] = _l1_half(window[right + first - 1], window[right + first])
            for k in spans:
                right = np.arange(max(s, 2 * k), e)  # frame j closes the span centred on j - k
                sig.hist_span[k][right - k] = _l1_half(window[right + first - 2 * k], window[right + first])
            tail = window[-keep:]
            if progress is not None:
                progress(0.9 * e / n)
    return sig


#: the per-frame signals the decode computes on each segment of this analyzer's stream (``stream_features``)
PART_SIGNALS = "analyzers.cut_analysis:part_signals"


def part_signals(frames: np.ndarray, dark_level: float = 16.0, block: int = 512) -> dict[str, np.ndarray]:
    """The per-frame signals of a run of frames on their own (a segment of the decode), on this thread:
    ``content`` (frame i against frame i-1; NaN for the first, whose frame before is another segment's),
    ``luma``, ``lit`` and the colour histograms ``hist`` (float16, as ``frame_signals`` rounds them).
    ``signals_from_parts`` joins them into the ``FrameSignals`` that ``frame_signals`` gives.

    Beside the decode's segment decoders, which run Python between their frames, it takes the
    interpreter's lock as seldom as it can: blocks of ``block`` frames (512 at 96x54: about 8 MB), and
    row sums of one call an array (``_row_sums``' ``few_calls``)."""
    n = len(frames)
    sig = FrameSignals(content=np.zeros(n, dtype=np.float32), luma=np.zeros(n, dtype=np.float32),
                       lit=np.zeros(n, dtype=np.float32), hist_step=np.zeros(0, dtype=np.float32), hist_span={})
    hist = np.zeros((n, _HIST_BINS), dtype=np.float16)
    for s in range(0, n, block):
        e = min(n, s + block)
        hist[s:e] = _block_signals(frames, s, e, dark_level, sig, few_calls=True)
    if n:
        sig.content[0] = np.nan
    return {"content": sig.content, "luma": sig.luma, "lit": sig.lit, "hist": hist}


def signals_from_parts(frames: np.ndarray, parts: dict[str, np.ndarray], spans: Iterable[int] = ()) -> FrameSignals:
    """``frame_signals(frames, spans=spans)`` from the per-frame signals the decode computed on its
    segments (``part_signals``, joined; ``parts[PART_STARTS]`` the rows where a segment began): the
    content of each segment's first frame against the frame before it, and the histogram distances, are
    taken here. The same values, bit for bit (tests/test_cut_part_signals.py)."""
    n = len(frames)
    content = np.array(parts["content"], dtype=np.float32)
    for i in np.asarray(parts.get(PART_STARTS, [0]), dtype=np.int64):
        if 0 < i < n:
            content[i] = content_difference(np.asarray(frames[i - 1:i]), np.asarray(frames[i:i + 1]))[0]
    if n:
        content[0] = 0.0
    hist = np.asarray(parts["hist"]).astype(np.float32)
    hist_step = np.zeros(n, dtype=np.float32)
    hist_step[1:] = _l1_half(hist[:-1], hist[1:])
    hist_span = {}
    for k in sorted({int(k) for k in spans if int(k) >= 1}):
        hist_span[k] = np.full(n, np.nan, dtype=np.float32)
        if n > 2 * k:
            hist_span[k][k:n - k] = _l1_half(hist[:n - 2 * k], hist[2 * k:])
    return FrameSignals(content=content, luma=np.array(parts["luma"], dtype=np.float32),
                        lit=np.array(parts["lit"], dtype=np.float32), hist_step=hist_step, hist_span=hist_span)


def _l1_half(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Half the L1 distance (0..1) between rows of normalised histograms."""
    return 0.5 * np.abs(a - b).sum(axis=1)


def _block_signals(frames: np.ndarray, s: int, e: int, dark_level: float, out: FrameSignals,
                   few_calls: bool = False) -> np.ndarray:
    """Fill rows ``s:e`` of ``out`` (``content[s]`` compares frame s with frame s-1); return the
    block's colour histograms (float32 holding float16-rounded values)."""
    import cv2

    lo = max(0, s - 1)  # one frame of overlap with the previous block
    rgb = np.ascontiguousarray(frames[lo:e])
    planes = hsv_planes(rgb)
    if len(rgb) > 1:
        out.content[lo + 1:e] = plane_difference(tuple(p[:-1] for p in planes), tuple(p[1:] for p in planes),
                                                 few_calls)
    own = rgb[s - lo:]
    gray = cv2.cvtColor(own.reshape(-1, own.shape[2], 3), cv2.COLOR_RGB2GRAY).reshape(e - s, -1)
    # integer pixels: ``> floor(dark_level)`` is ``> dark_level``, compared in uint8
    luma, lit = _row_sums(gray, (gray > math.floor(dark_level)).view(np.uint8), few_calls=few_calls)
    out.luma[s:e] = luma / gray.shape[1]
    out.lit[s:e] = lit / gray.shape[1]
    return rgb_histograms(own, step=2 if own.shape[2] >= 64 else 1).astype(np.float16).astype(np.float32)


# --------------------------------------------------------------------------------------------
# detectors (pure functions of the signals; ``frames`` is read only at candidate frames)
# --------------------------------------------------------------------------------------------
@dataclass
class Cut:
    frame: int
    content: float     # HSV difference to the previous frame
    ratio: float       # content over its neighbours' mean
    hist_ratio: float  # histogram change over its neighbours' mean
    from_black: bool = False  # the picture returned after a held black (see find_fades)


@dataclass
class Gradual:
    kind: str             # "fade" | "dissolve"
    first: int            # first frame of the transition
    last: int             # last frame of the transition
    boundary: int | None  # first frame of the new shot, or None (a fade-in/out effect inside a shot)
    detail: str = ""      # fades: "out-in" | "out" | "in"
    score: float = 1.0


def _neighbour_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of x over the ``window`` frames on each side of every frame, excluding the frame."""
    pad = np.pad(x.astype(np.float64), (window, window), mode="reflect" if len(x) > window else "edge")
    csum = np.concatenate([[0.0], np.cumsum(pad)])
    total = csum[2 * window + 1:] - csum[:-(2 * window + 1)]
    return ((total - x) / (2 * window)).astype(np.float32)


def find_cuts(sig: FrameSignals, frames: np.ndarray, fps: float, p: "CutAnalysis.Params") -> list[Cut]:
    """Hard cuts: adaptive-ratio peaks of the content score, minus flashes, spaced ``min_shot_s``."""
    c = sig.content
    n = len(c)
    if n < 2:
        return []
    c = c.copy()
    c[0] = c[1]  # frame 0 has no predecessor; do not let its 0 lower its neighbours' baseline
    ratio = c / (_neighbour_mean(c, p.window) + 0.5)
    # the histogram barely moves with camera motion, so it still finds cuts next to shaky shots
    hd = sig.hist_step.copy()
    hd[0] = hd[1]
    hist_ratio = hd / (_neighbour_mean(hd, p.window) + 0.01)
    sharp = (ratio >= p.threshold) | ((hist_ratio >= p.threshold) & (hd >= p.hist_cut_min))
    cand = np.flatnonzero((c >= p.min_content) & sharp)
    cand = cand[cand >= 1]
    kept: list[Cut] = []
    for i in cand:
        # a flash (one or two frames) returns to the earlier picture; across a cut, every frame
        # of the three before differs from every frame of the three after
        before = np.asarray(frames[max(0, i - 3):i])
        after = np.asarray(frames[i:min(n, i + 3)])
        pairs_b = np.repeat(before, len(after), axis=0)
        pairs_a = np.tile(after, (len(before), 1, 1, 1))
        if float(content_difference(pairs_b, pairs_a).min()) < 0.5 * float(c[i]):
            continue
        kept.append(Cut(frame=int(i), content=float(c[i]), ratio=float(ratio[i]),
                        hist_ratio=float(hist_ratio[i])))
    return _space_out(kept, max(1, int(round(p.min_shot_s * fps))))


def _space_out(cuts: list[Cut], min_gap: int) -> list[Cut]:
    """Keep the strongest cuts so that no two are closer than ``min_gap`` frames."""
    chosen: list[Cut] = []
    for cut in sorted(cuts, key=lambda k: (-k.content * min(max(k.ratio, k.hist_ratio), 50.0), k.frame)):
        if all(abs(cut.frame - other.frame) >= min_gap for other in chosen):
            chosen.append(cut)
    return sorted(chosen, key=lambda k: k.frame)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of every run of True in a boolean array."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))


def find_fades(sig: FrameSignals, cuts: list[Cut], fps: float,
               p: "CutAnalysis.Params") -> tuple[list[Gradual], list[Cut]]:
    """Fades through black: black runs with the luma ramps that lead into and out of them.

    A frame is black when at most 10 % of its pixels are brighter than ``dark_level`` (so a
    caption or a logo on black still counts as black, and a dark but lit shot does not).
    Returns the fades and the cuts from black: where black was held for ``black_hold_s`` or
    longer before the next shot fades up, that shot starts with a cut (``from_black``).
    """
    luma = sig.luma
    n = len(luma)
    from_black: list[Cut] = []
    if n < 3:
        return [], from_black
    smooth = np.convolve(np.pad(luma, 1, mode="edge"), np.ones(3, dtype=np.float32) / 3, mode="valid")
    cut_frames = np.array([k.frame for k in cuts], dtype=np.int64)
    max_ramp = max(2, int(round(p.max_fade_s * fps)))

    def has_cut(lo: int, hi: int) -> bool:
        return bool(((cut_frames >= lo) & (cut_frames <= hi)).any())

    fades: list[Gradual] = []
    for a, b in _runs(sig.lit <= 0.1):
        floor = float(luma[a:b + 1].min())
        on_floor = np.flatnonzero(luma[a:b + 1] <= floor + 1.0 + 0.05 * floor) + a
        floor_first, floor_last = int(on_floor[0]), int(on_floor[-1])
        j = _ramp_end(smooth, a, -1, max_ramp)  # first frame of the fade-out
        k = _ramp_end(smooth, b, +1, max_ramp)  # last frame of the fade-in
        entry_cut = has_cut(max(0, a - 2), floor_first)
        exit_cut = has_cut(floor_last + 1, min(n - 1, b + 2))
        fade_out = a > 0 and not entry_cut and float(luma[j]) >= floor + p.dark_level
        fade_in = b < n - 1 and not exit_cut and float(luma[k]) >= floor + p.dark_level
        depth = max(float(luma[j]), float(luma[k])) - floor
        held = (floor_last - floor_first + 1) / fps >= p.black_hold_s
        if fade_out and fade_in and held:
            # fade to black, a held black slug, then the next shot fades up: two separate
            # effects, and the picture's return is an instant boundary (a cut from black)
            fades.append(Gradual("fade", j, floor_first, None, "out", min(1.0, depth / 64)))
            fades.append(Gradual("fade", floor_last + 1, k, None, "in", min(1.0, depth / 64)))
            from_black.append(Cut(floor_last + 1, float(sig.content[floor_last + 1]), 0.0, 0.0, from_black=True))
        elif fade_out and fade_in:
            fades.append(Gradual("fade", j, k, floor_last + 1, "out-in", min(1.0, depth / 64)))
        elif fade_out and (b == n - 1 or exit_cut):
            fades.append(Gradual("fade", j, floor_first, None, "out", min(1.0, depth / 64)))
        elif fade_in and (a == 0 or entry_cut):
            fades.append(Gradual("fade", floor_last + 1, k, None, "in", min(1.0, depth / 64)))
    return fades, from_black


def _ramp_end(smooth: np.ndarray, start: int, step: int, limit: int, eps: float = 0.15) -> int:
    """Walk from the edge ``start`` of a black run in direction ``step`` while the (smoothed) luma keeps
    rising by more than ``eps`` a frame, for at most ``limit`` frames. The ramp ends where, past
    its steepest step, the rise drops under a fifth of that step (camera motion, or a dissolve
    that follows, is not the fade)."""
    n = len(smooth)
    i = start
    while 0 <= i + step < n and abs(i - start) < limit and smooth[i + step] > smooth[i] + eps:
        i += step
    if i == start:
        return i
    lo, hi = sorted((start, i))
    rises = np.abs(np.diff(smooth[lo:hi + 1]))  # rise of each step, in walking order if step > 0
    if step < 0:
        rises = rises[::-1]
    steepest = int(np.argmax(rises))
    slow = np.flatnonzero(rises[steepest:] < 0.2 * float(rises[steepest]))
    keep = steepest + int(slow[0]) if len(slow) else len(rises)
    return start + step * keep


def _tiny(frames: np.ndarray) -> np.ndarray:
    """Frames (N, H, W, 3) box-filtered down to about 24 pixels wide, as float32.

    So coarse that camera shake and small moves hardly change it, while a blend of two
    pictures stays a blend (box means are linear).
    """
    import cv2

    n, h, w, _ = frames.shape
    f = max(1, w // _TINY_WIDTH)
    h2, w2 = max(1, h // f), max(1, w // f)
    # one cv2 call on the frames stacked into a tall image: with an exact integer factor,
    # INTER_AREA averages f x f blocks, never across two frames
    tall = np.ascontiguousarray(frames[:, :h2 * f, :w2 * f]).reshape(n * h2 * f, w2 * f, 3)
    return cv2.resize(tall, (w2, n * h2), interpolation=cv2.INTER_AREA).reshape(n, h2, w2, 3).astype(np.float32)


def dissolve_scales(fps: float, p: "CutAnalysis.Params") -> list[int]:
    """The dissolve detector's half-spans in frames (``dissolve_scales_s`` at ``fps``)."""
    return sorted({max(2, int(round(s * fps))) for s in p.dissolve_scales_s})


def _dissolve_candidates(span: np.ndarray, c0: int, c1: int, k: int, cut_cum: np.ndarray,
                         block_cum: np.ndarray, hist_min: float) -> np.ndarray:
    """Centres in ``[c0, c1)`` whose frames ``k`` either side differ in colour, with no cut in
    ``(i-k, i+k]`` and no fade frame in ``[i-k, i+k]`` (one chunk, so temporaries stay small)."""
    centres = np.arange(c0, c1)
    clean = (cut_cum[centres + k + 1] - cut_cum[centres - k + 1] == 0) & \
            (block_cum[centres + k + 1] - block_cum[centres - k] == 0)
    return centres[(span[c0:c1] >= hist_min) & clean]


def _border(shape: tuple[int, ...], max_shift: int) -> int:
    """The border (pixels) left out of frames of ``shape`` (N, h, w, 3) so that shifts of up to
    ``max_shift`` pixels compare the same region; smaller for tiny frames."""
    return max(0, min(max_shift, (min(shape[1], shape[2]) - 1) // 4))


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame, per-channel sum of products of (N, 3, h, w) arrays (views welcome) -> (N, 3)."""
    return (a * b).sum(axis=(2, 3))


def _planes(x: np.ndarray) -> np.ndarray:
    """(N, h, w, 3) pictures as contiguous (N, 3, h, w) float64 planes."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float64)


def single_picture_residual(ends: tuple[np.ndarray, ...], mid: np.ndarray,
                            max_shift: int = _SHIFT) -> tuple[np.ndarray, np.ndarray]:
    """How well one picture alone explains the middle frames ``mid`` (N, h, w, 3).

    Returns ``(as_is, best)``, each (N,): root-mean-square differences over ``mid`` less a border
    of ``max_shift`` pixels, ``as_is`` to the nearer of ``ends`` (each (N, h, w, 3)) unchanged,
    ``best`` to the closest of them moved by up to ``max_shift`` pixels each way and re-toned
    (the least-squares gain and offset per channel). ``best`` is what a slow change of one picture
    leaves unexplained: the camera moving over the same view (a tilt across a smooth sky) or the
    view changing in brightness and contrast (fog clearing, a light coming up).
    """
    n, h, w, _ = mid.shape
    s = _border(mid.shape, max_shift)
    hh, ww = h - 2 * s, w - 2 * s
    dst = _planes(mid)[:, :, s:h - s, s:w - s]
    dc = dst - dst.mean(axis=(2, 3), keepdims=True)
    sdd = _dot(dc, dc)
    as_is = np.full(n, np.inf)
    best = np.full(n, np.inf)
    for end in ends:
        src = _planes(end)
        as_is = np.minimum(as_is, ((src[:, :, s:h - s, s:w - s] - dst) ** 2).mean(axis=(1, 2, 3)))
        for y in range(2 * s + 1):  # the window of src moved by y - s, x - s pixels
            for x in range(2 * s + 1):
                win = src[:, :, y:y + hh, x:x + ww]
                sss = _dot(win, win) - win.sum(axis=(2, 3)) ** 2 / (hh * ww)
                ssd = _dot(win, dc)
                rss = sdd - ssd ** 2 / np.maximum(sss, 1e-3)  # left after the best gain and offset
                best = np.minimum(best, np.maximum(rss, 0.0).sum(axis=1))
    as_is = np.sqrt(as_is)
    return as_is, np.minimum(np.sqrt(best / (3 * hh * ww)), as_is)


def blend_residual(a: np.ndarray, b: np.ndarray, mid: np.ndarray, max_shift: int = _SHIFT) -> np.ndarray:
    """Root-mean-square difference (N,) of the middle frames ``mid`` (N, h, w, 3), less the border
    ``single_picture_residual`` leaves out, to the best blend ``wa * a + wb * b + offset`` of the
    frames around them (least squares per channel, both weights positive: two pictures, each
    faded); ``inf`` where the best fit needs a negative weight."""
    n, h, w, _ = mid.shape
    s = _border(mid.shape, max_shift)
    a, b, mid = (_planes(x)[:, :, s:h - s, s:w - s] for x in (a, b, mid))
    ac, bc, dc = (x - x.mean(axis=(2, 3), keepdims=True) for x in (a, b, mid))
    saa, sbb, sab = _dot(ac, ac) + 1e-3, _dot(bc, bc) + 1e-3, _dot(ac, bc)
    sad, sbd, sdd = _dot(ac, dc), _dot(bc, dc), _dot(dc, dc)
    det = np.maximum(saa * sbb - sab * sab, 1e-6)
    wa, wb = (sbb * sad - sab * sbd) / det, (saa * sbd - sab * sad) / det
    rss = np.maximum(sdd - wa * sad - wb * sbd, 0.0).sum(axis=1)
    res = np.sqrt(rss / (3 * mid.shape[2] * mid.shape[3]))
    return np.where((wa > 0).all(axis=1) & (wb > 0).all(axis=1), res, np.inf)


def blend_evidence(pm: np.ndarray, mm: np.ndarray, qm: np.ndarray, p: "CutAnalysis.Params") -> np.ndarray:
    """Which middle frames ``mm`` show two different pictures blending, given the frames ``pm``
    before and ``qm`` after them (each (N, h, w, 3) float32 ``_tiny`` pictures) -> (N,) bool.

    The ends must differ (a mean of at least 4 levels), and the even mix ``(p + q) / 2`` must
    explain the middle frame better than either end as it is (``dissolve_mix_max``). A slow
    change of one picture passes both (a shifted smooth gradient, or a picture gaining
    contrast, is close to a blend of its ends), so the middle frame must also hold a second
    picture: one end alone, moved by up to two pixels and re-toned
    (``single_picture_residual``), either leaves at least ``dissolve_second_min`` of the
    change, and more than noise, unexplained, or explains it at least twice as badly as the
    best blend of both ends (``blend_residual``).
    """
    ax = (1, 2, 3)
    e_mix = np.abs(mm - 0.5 * (pm + qm)).mean(axis=ax)
    e_one = np.minimum(np.abs(mm - pm).mean(axis=ax), np.abs(mm - qm).mean(axis=ax))
    d_pq = np.abs(pm - qm).mean(axis=ax)
    ok = (e_mix <= p.dissolve_mix_max * np.maximum(e_one, 1e-6)) & (d_pq >= 4.0)
    sel = np.flatnonzero(ok)
    if len(sel) == 0:
        return ok
    pm, mm, qm = pm[sel], mm[sel], qm[sel]
    as_is, single = single_picture_residual((pm, qm), mm)
    blend = blend_residual(pm, qm, mm)
    second = (single >= p.dissolve_second_min * as_is) & (single >= _SECOND_MIN_LEVELS)
    ok[sel] = second | (blend <= 0.5 * single)
    return ok


def find_dissolves(sig: FrameSignals, frames: np.ndarray, fps: float, cuts: list[Cut],
                   fades: list[Gradual], p: "CutAnalysis.Params") -> list[Gradual]:
    """Dissolves: a histogram change across ``2k`` frames that a linear blend explains."""
    n = len(sig.content)
    blocked = np.zeros(n, dtype=bool)  # frames inside a fade or at a cut
    for f in fades:
        blocked[max(0, f.first - 1):f.last + 2] = True
    cut_at = np.zeros(n + 1, dtype=np.int64)
    for cut in cuts:
        cut_at[cut.frame] = 1
    cut_cum = np.concatenate([[0], np.cumsum(cut_at)])
    block_cum = np.concatenate([[0], np.cumsum(blocked)])
    hits: list[tuple[int, int]] = []  # (centre frame, scale k)
    batches: list[tuple[int, np.ndarray]] = []  # (scale k, up to 128 candidate centres)
    scales = dissolve_scales(fps, p)
    for k in scales:
        if n <= 2 * k:
            continue
        cand = np.concatenate([_dissolve_candidates(sig.hist_span[k], c0, min(n - k, c0 + _SCAN_CHUNK), k,
                                                    cut_cum, block_cum, p.dissolve_hist_min)
                               for c0 in range(k, n - k, _SCAN_CHUNK)])
        batches.extend((k, cand[s:s + 128]) for s in range(0, len(cand), 128))

    def blended(batch: tuple[int, np.ndarray]) -> list[tuple[int, int]]:
        k, idx = batch
        need = np.unique(np.concatenate([idx - k, idx, idx + k]))
        tiny = _tiny(np.asarray(frames[need]))
        pm, mm, qm = (tiny[np.searchsorted(need, j)] for j in (idx - k, idx, idx + k))
        return [(int(i), k) for i in idx[blend_evidence(pm, mm, qm, p)]]

    for found in _in_order(blended, batches, p.workers):  # batches are independent; hits are sorted below
        hits.extend(found)
    if not hits:
        return []
    hits.sort()
    groups: list[list[tuple[int, int]]] = [[hits[0]]]
    for h in hits[1:]:
        if h[0] - groups[-1][-1][0] <= max(2, scales[0]):
            groups[-1].append(h)
        else:
            groups.append([h])
    out: list[Gradual] = []
    c = sig.content
    for g in groups:
        if len(g) < 3:
            continue
        first, last = g[0][0], g[-1][0]
        # extend to where the per-frame change stops, at most half the smallest scale each way
        level = 0.5 * float(np.median(c[first:last + 1]))
        reach = max(1, scales[0] // 2)
        while first > 1 and g[0][0] - first < reach and c[first - 1] >= level and not blocked[first - 1]:
            first -= 1
        while last < n - 1 and last - g[-1][0] < reach and c[last + 1] >= level and not blocked[last + 1]:
            last += 1
        score = min(1.0, len(g) / (2.0 * scales[0]))
        out.append(Gradual("dissolve", first, last, (first + last + 1) // 2, "", score))
    return out


# --------------------------------------------------------------------------------------------
# the analyzer
# --------------------------------------------------------------------------------------------
class CutAnalysis(Analyzer):
    """Hard cuts, fades and dissolves, frame-exact; one ``shot`` event per shot."""

    name = "cut_analysis"
    original_status = "active"
    version = "1.1.0"
    description = "Shot boundaries: hard cuts (frame-exact), fades through black and dissolves."
    # beside GPU analyzers, in a process of its own: the VLM's chunks wait for its cut list, and here its
    # blocks of frames would take turns on the interpreter's lock with the models' threads
    own_process = True
    provides = ("shots",)

    class Params(Analyzer.Params):
        width: int = Field(96, ge=32, le=640, description="analysis width in pixels (every frame is read)")
        threshold: float = Field(3.0, gt=1.0, description="a cut's score over the mean of its neighbours'")
        min_content: float = Field(15.0, ge=0.0, description="least HSV difference (0..255) for a cut")
        window: int = Field(2, ge=1, le=15, description="neighbours on each side for the adaptive ratio")
        hist_cut_min: float = Field(0.15, gt=0.0, le=1.0,
                                    description="least colour-histogram change (0..1) for a cut found by its histogram")
        min_shot_s: float = Field(0.4, ge=0.0, le=10.0, description="shortest shot between two cuts")
        fades: bool = True
        dark_level: float = Field(16.0, gt=0.0, le=128.0,
                                  description="luma (0..255) under which a pixel is black; a frame is black at 90 %")
        max_fade_s: float = Field(4.0, gt=0.0, description="longest fade-in or fade-out ramp")
        black_hold_s: float = Field(0.5, gt=0.0, description="black held at least this long between a "
                                    "fade-out and a fade-in splits them: the next shot starts with a cut from black")
        dissolves: bool = True
        dissolve_scales_s: list[float] = Field(default_factory=lambda: [0.25, 0.5], min_length=1)
        dissolve_hist_min: float = Field(0.2, gt=0.0, le=1.0, description="histogram change across a dissolve")
        dissolve_mix_max: float = Field(0.6, gt=0.0, le=1.0, description="blend error / single-frame error")
        dissolve_second_min: float = Field(0.25, ge=0.0, le=1.0, description="share of a dissolve's change "
                                           "that one picture moved a little or re-toned must leave unexplained")
        series_max_points: int = Field(4000, ge=10)
        workers: int = Field(0, ge=0, le=64, description="threads for the per-frame signals and the dissolve "
                             "test (the results do not depend on it); 0: the CPUs this process may use, at most 2")

        @field_validator("dissolve_scales_s")
        @classmethod
        def _positive(cls, v: list[float]) -> list[float]:
            if any(s <= 0 or s > 5 for s in v):
                raise ValueError(f"dissolve_scales_s must be in (0, 5] seconds, got {v}")
            return v

    def frame_specs(self) -> list[FrameSpec]:
        return [FrameSpec(fps=None, width=self.params.width, pix_fmt="rgb24")]

    def stream_features(self) -> dict[FrameSpec, list[tuple[str, dict[str, Any]]]]:
        # the per-frame signals, computed by the decode on each segment as it is decoded: the cut list, which
        # the VLM and the per-shot analyzers wait for, is then ready almost as soon as the video is decoded
        return {self.frame_specs()[0]: [(PART_SIGNALS, {"dark_level": self.params.dark_level})]}

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        p = self.params
        stream = inputs.frames(self.frame_specs()[0])
        times = np.asarray(stream.times, dtype=np.float64)
        n = len(times)
        duration = float(inputs.video.duration or 0.0)
        fps = _stream_fps(times, inputs.video.fps)
        if n == 0:
            logger.warning("cut_analysis: %s has no decoded frames; reporting no shots", inputs.video.path)
            return self.track(data={"fps": fps, "frame_count": 0, "shot_count": 0})
        frames = stream.frames
        spans = dissolve_scales(fps, p) if p.dissolves else ()
        parts = stream.features(PART_SIGNALS, {"dark_level": p.dark_level}) if hasattr(stream, "features") else None
        if parts is not None:
            sig = signals_from_parts(frames, parts, spans)
        else:
            sig = frame_signals(frames, dark_level=p.dark_level, progress=inputs.report, spans=spans, workers=p.workers)
        cuts = find_cuts(sig, frames, fps, p)
        fades, from_black = find_fades(sig, cuts, fps, p) if p.fades else ([], [])
        cuts = sorted(cuts + from_black, key=lambda c: c.frame)
        dissolves = find_dissolves(sig, frames, fps, cuts, fades, p) if p.dissolves else []
        inputs.report(1.0)
        return self._build(times, duration, fps, sig, cuts, fades, dissolves,
                           signals_from="decode" if parts is not None else "frames")

    def _build(self, times: np.ndarray, duration: float, fps: float, sig: FrameSignals,
               cuts: list[Cut], fades: list[Gradual], dissolves: list[Gradual], signals_from: str = "frames") -> Track:
        n = len(times)
        frame_dt = 1.0 / fps if fps > 0 else 0.0
        end_time = max(duration, float(times[-1]) + frame_dt)

        def t_end(i: int) -> float:  # end of frame i's display interval
            return float(times[i + 1]) if i + 1 < n else end_time

        boundaries: dict[int, str] = {cut.frame: "cut" for cut in cuts}
        min_gap = max(1, int(round(self.params.min_shot_s * fps)))
        for g in sorted(fades + dissolves, key=lambda g: g.first):
            if g.boundary is None or not 0 < g.boundary < n:
                continue
            if any(abs(g.boundary - b) < min_gap for b in boundaries):
                g.boundary = None  # too close to a stronger boundary: keep it as an effect
                continue
            boundaries[g.boundary] = g.kind
        starts = [0] + sorted(b for b in boundaries if b > 0)

        events: list[Event] = []
        for idx, first in enumerate(starts):
            last = starts[idx + 1] - 1 if idx + 1 < len(starts) else n - 1
            start_t = float(times[first]) if idx > 0 else 0.0
            events.append(Event(start=start_t, end=t_end(last), label="shot", data={
                "index": idx, "first_frame": int(first), "last_frame": int(last),
                "transition_in": "start" if idx == 0 else boundaries[first]}))
        for cut in cuts:
            t = float(times[cut.frame])
            score = min(1.0, (max(cut.ratio, cut.hist_ratio) - 1.0) / (4.0 * self.params.threshold))
            events.append(Event(start=t, end=t, label="cut", score=1.0 if cut.from_black else round(score, 4), data={
                "frame": cut.frame, "ratio": round(cut.ratio, 3), "hist_ratio": round(cut.hist_ratio, 3),
                "content": round(cut.content, 3), "from_black": cut.from_black}))
        for g in fades + dissolves:
            data: dict[str, Any] = {"first_frame": g.first, "last_frame": g.last, "boundary_frame": g.boundary}
            if g.kind == "fade":
                data["kind"] = g.detail
            events.append(Event(start=float(times[g.first]), end=t_end(g.last), label=g.kind,
                                score=round(g.score, 4), data=data))
        events.sort(key=lambda e: (e.start, e.label != "shot"))
        shot_lengths = [e.duration for e in events if e.label == "shot"]
        data = {
            "fps": round(fps, 6), "frame_count": n, "shot_count": len(starts), "cut_count": len(cuts),
            "fade_count": sum(1 for g in fades if g.boundary is not None),
            "dissolve_count": sum(1 for g in dissolves if g.boundary is not None),
            "mean_shot_s": round(float(np.mean(shot_lengths)), 4) if shot_lengths else 0.0,
            "signals_from": signals_from,
        }
        return self.track(events=events, series=[_pooled_series("content_diff", times, sig.content,
                                                                 self.params.series_max_points)], data=data)


def _stream_fps(times: np.ndarray, probed: float | None) -> float:
    """Mean frame rate of the all-frames stream (robust to millisecond-rounded timestamps),
    else the probed rate."""
    if len(times) > 1 and times[-1] > times[0]:
        return float((len(times) - 1) / (times[-1] - times[0]))
    return float(probed or 30.0)


def _pooled_series(name: str, times: np.ndarray, values: np.ndarray, max_points: int) -> Series:
    """A per-frame signal, max-pooled to at most ``max_points`` samples so peaks stay visible."""
    n = len(values)
    if n <= max_points:
        return Series(name=name, times=[float(t) for t in times], values=[round(float(v), 3) for v in values])
    step = int(np.ceil(n / max_points))
    m = n // step * step
    pooled = values[:m].reshape(-1, step).max(axis=1)
    pooled_t = times[:m:step]
    if m < n:
        pooled = np.append(pooled, values[m:].max())
        pooled_t = np.append(pooled_t, times[m])
    return Series(name=name, times=[float(t) for t in pooled_t], values=[round(float(v), 3) for v in pooled])
