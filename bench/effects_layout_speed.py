"""visual_effects' layout detection (split screens, picture-in-picture): the code before it was made
faster (kept below, verbatim, as the REFERENCE) against ``analyzers._effects.layout`` now, on the same
windows, in one run, with identical answers required.

The windows are the ones ``VisualEffects._layouts`` tests: each clip is decoded through the framework
(every frame, 96 px wide: ``cut_analysis``'s stream), cut into shots by ``cut_analysis``, and each shot
into equal windows of about ``--window-s`` sampled at ``--fps``. Each window goes through the
reference's ``find_layout(frames) or find_inset(frames)`` and through ``find_window_layout(frames)``
(what ``_layouts`` calls now); before timing, ``find_layout`` and ``find_inset`` are also compared
one by one, so an inset is checked in windows that have a split too. Any difference in a layout
(kind, orientation, box, cover, motion, apart, and the types of their values) stops the script.
Timing: the fastest of ``--repeat`` interleaved passes over all windows of a clip, decoding excluded.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from machine import host_lines, load_text, write_report  # bench/machine.py (scripts run from bench/)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzers._effects.layout import (Layout, _border_break, _near_motion, _shift_series, persistence,  # noqa: E402
                                       _textured, find_inset, find_layout, find_window_layout)

logger = logging.getLogger("effects_layout_speed")


# --- REFERENCE: analyzers/_effects/layout.py at d264582 (before the speed-up): its code verbatim, renamed ref_*,
# most docstrings and comments left out; the helpers it shares unchanged with the module now are imported above ---
def ref_edge_persistence(frames: np.ndarray, edge_min: float) -> tuple[np.ndarray, np.ndarray]:
    """(Pv, Ph): share of frames in which each pixel is a vertical / horizontal edge (local max)."""
    f = frames.astype(np.float32)
    gv = np.zeros(f.shape[:3], np.float32)
    gh = np.zeros(f.shape[:3], np.float32)
    dv = np.abs(f[:, :, 2:] - f[:, :, :-2])
    dh = np.abs(f[:, 2:] - f[:, :-2])
    gv[:, :, 1:-1] = dv.max(axis=-1) if dv.ndim == 4 else dv
    gh[:, 1:-1] = dh.max(axis=-1) if dh.ndim == 4 else dh
    return persistence(gv, gh, edge_min)  # (its unchanged rest: float32 strengths against the float)


def ref_gray(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float32).mean(axis=-1) if frames.ndim == 4 else frames.astype(np.float32)


def ref_motion(frames: np.ndarray) -> np.ndarray:
    return np.abs(np.diff(ref_gray(frames), axis=0))


def ref_independent(motion_a, motion_b, shift_a, shift_b, motion_min, shift_min=1.0):
    ma, mb = float(motion_a.mean()), float(motion_b.mean())
    hi, lo = max(ma, mb), min(ma, mb)
    if hi < motion_min:
        return False, None
    if lo < 0.3 * hi:
        return True, None
    if not len(shift_a) or len(shift_a) != len(shift_b):
        return False, None
    apart = float(np.median(np.hypot(*(shift_a - shift_b).T)))
    return apart >= shift_min, apart


def ref_find_layout(frames, edge_min=10.0, persist=0.7, split_cover=0.95, min_part=0.25, motion_min=2.0):
    m, h, w = frames.shape[:3]
    if m < 3 or h < 16 or w < 16:
        return None
    pv, ph = ref_edge_persistence(frames, edge_min)
    motion = ref_motion(frames)
    sv, sh = pv >= persist, ph >= persist
    moving = motion.mean(axis=0) >= motion_min
    sv, sh = _near_motion(sv, sh, moving)
    gray = ref_gray(frames)
    return ref_split(sv, sh, motion, gray, split_cover, min_part, motion_min)


def ref_split(sv, sh, motion, gray, cover_min, min_part, motion_min):
    h, w = sv.shape
    found = []
    for orientation, mask, length, span in (("vertical", sv, h, w), ("horizontal", sh.T, w, h)):
        cover = mask.mean(axis=0)
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
            ok, apart = ref_independent(sa, sb, sha, shb, motion_min)
            if ok:
                found.append(Layout("split", orientation, box, round(float(cover[x]), 3),
                                    (round(float(sa.mean()), 2), round(float(sb.mean()), 2)),
                                    None if apart is None else round(apart, 2)))
    return max(found, key=lambda l: l.cover) if found else None


def ref_gated_maps(frames, edge_min, persist, motion_min):
    pv, ph = ref_edge_persistence(frames, edge_min)
    gray = ref_gray(frames)
    diffs = np.diff(gray, axis=0)
    moving = np.abs(diffs).mean(axis=0) >= motion_min
    sv, sh = pv >= persist, ph >= persist
    sv, sh = _near_motion(sv, sh, moving)
    return sv, sh, gray, diffs


def ref_longest_run(line):
    best = cur = 0
    for v in line:
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return best


def ref_lines(mask, min_len, keep=8):
    found = sorted(((ref_longest_run(mask[:, x]), x) for x in range(3, mask.shape[1] - 3)), reverse=True)
    kept = []
    for n, x in found:
        if n < min_len or len(kept) >= keep:
            break
        if all(abs(x - k) > 2 for k in kept):
            kept.append(x)
    return kept


def ref_find_inset(frames, edge_min=10.0, persist=0.85, cover_min=0.9, motion_min=2.0, shift_min=2.5):
    m, h, w = frames.shape[:3]
    if m < 3 or h < 16 or w < 16:
        return None
    sv, sh, gray, diffs = ref_gated_maps(frames, edge_min, persist, motion_min)
    min_h, min_w = max(4, int(0.15 * h)), max(4, int(0.15 * w))
    xs = [0, w - 1, *ref_lines(sv, min_h)]
    ys = [0, h - 1, *ref_lines(sh.T, min_w)]
    best = None
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
                    sides = []
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
                        continue
                    so = np.abs(diffs[:, ~ring]).mean(axis=1)
                    strips = [(0, y0 - 2, 0, w), (y1 + 3, h, 0, w), (0, h, 0, x0 - 2), (0, h, x1 + 3, w)]
                    oy0, oy1, ox0, ox1 = max(strips, key=lambda r: max(0, r[1] - r[0]) * max(0, r[3] - r[2]))
                    ok, apart = ref_independent(si, so, _shift_series(gray, y0 + 2, y1 - 1, x0 + 2, x1 - 1),
                                                _shift_series(gray, oy0, oy1, ox0, ox1), motion_min, shift_min)
                    if ok:
                        best_sides = len(sides)
                        best = Layout("pip", None, (x0 / w, y0 / h, (x1 + 1) / w, (y1 + 1) / h), round(cover, 3),
                                      (round(float(si.mean()), 2), round(float(so.mean()), 2)),
                                      None if apart is None else round(apart, 2))
    return best
# --- end of the REFERENCE ---------------------------------------------------------------------------


def layout_key(layout: Layout | None) -> tuple | None:
    """Everything a layout says (and the types of its numbers: a numpy float would change the JSON)."""
    if layout is None:
        return None
    values = (*layout.box, layout.cover, *layout.motion, layout.apart)
    return (layout.kind, layout.orientation, layout.box, layout.cover, layout.motion, layout.apart,
            tuple(type(v).__name__ for v in values))


def clip_windows(path: Path, window_s: float, fps: float) -> list[np.ndarray]:
    """The windows ``VisualEffects._layouts`` tests in ``path`` (in memory), shots from ``cut_analysis``."""
    from analyzers._effects.signals import every_frame_spec
    from analyzers.cut_analysis import CutAnalysis
    from framework import AnalyzerInputs, media

    cache = Path(tempfile.mkdtemp(prefix="effects_layout_speed_"))
    try:
        meta = media.probe(path)
        spec = every_frame_spec(96)
        streams = media.decode(path, meta, [spec], False, cache).streams
        track = CutAnalysis().analyze(AnalyzerInputs(video=meta, streams=streams))
        shots = sorted((e.start, e.end) for e in track.events if e.label == "shot" and e.end > e.start)
        stream = streams[spec]
        times = stream.times
        windows = []
        for s_start, s_end in shots or [(0.0, float(meta.duration or times[-1]))]:
            count = max(1, int(round((s_end - s_start) / window_s)))
            edges = np.linspace(s_start, s_end, count + 1)
            for t, w_end in zip(edges[:-1], edges[1:]):
                idx = np.unique(np.clip(np.searchsorted(times, np.arange(t, w_end, 1.0 / fps)), 0, times.size - 1))
                idx = idx[(times[idx] >= s_start - 1e-6) & (times[idx] < s_end)]
                if idx.size >= 3:
                    windows.append(np.asarray(stream.frames[idx]))
        return windows
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def check_identical(name: str, windows: list[np.ndarray], edge_min: float) -> int:
    """Compare the reference and the module window by window; the number of windows with a layout."""
    found = 0
    for i, frames in enumerate(windows):
        pairs = (("find_layout", ref_find_layout(frames, edge_min), find_layout(frames, edge_min)),
                 ("find_inset", ref_find_inset(frames, edge_min), find_inset(frames, edge_min)))
        old = pairs[0][1] or pairs[1][1]
        pairs += (("find_window_layout", old, find_window_layout(frames, edge_min)),)
        for what, a, b in pairs:
            if layout_key(a) != layout_key(b):
                raise SystemExit(f"{name}: window {i}: {what} differs: reference {a} != now {b}")
        found += old is not None
    return found


def timed(run: Callable[[], object], times: list[float]) -> None:
    """Run ``run`` once and append its wall time (s) to ``times``."""
    t0 = time.perf_counter()
    run()
    times.append(time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  .venv/bin/python bench/effects_layout_speed.py /tmp/fx/clip10.mp4 "
               "/work/shared/media/video/big_buck_bunny_0_30.webm --repeat 3 "
               "--out bench/results/effects_layout_speed_cpu.md")
    ap.add_argument("clips", nargs="+", type=Path, help="video files")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved timing passes per clip (the fastest counts)")
    ap.add_argument("--window-s", type=float, default=2.0, help="window length (visual_effects' layout_window_s)")
    ap.add_argument("--fps", type=float, default=4.0, help="frames per second sampled (visual_effects' layout_fps)")
    ap.add_argument("--edge-min", type=float, default=10.0, help="visual_effects' edge_min")
    ap.add_argument("--out", type=Path, help="also write the markdown report here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    load = load_text()

    rows = ["| clip | windows | with a layout | reference s | now s | reference / now |", "|---|---|---|---|---|---|"]
    total = {"windows": 0, "old": 0.0, "new": 0.0}
    for path in args.clips:
        logger.info("%s: decoding and finding shots", path.name)
        windows = clip_windows(path, args.window_s, args.fps)
        logger.info("%s: %d windows; comparing the answers", path.name, len(windows))
        found = check_identical(path.name, windows, args.edge_min)
        old: list[float] = []
        new: list[float] = []
        for r in range(args.repeat):
            timed(lambda: [ref_find_layout(f, args.edge_min) or ref_find_inset(f, args.edge_min) for f in windows], old)
            timed(lambda: [find_window_layout(f, args.edge_min) for f in windows], new)
            logger.info("%s: pass %d: reference %.3f s, now %.3f s", path.name, r + 1, old[-1], new[-1])
        rows.append(f"| {path.name} | {len(windows)} | {found} | {min(old):.3f} | {min(new):.3f} | "
                    f"{min(old) / max(min(new), 1e-9):.1f}x |")
        total["windows"] += len(windows)
        total["old"] += min(old)
        total["new"] += min(new)
    if len(args.clips) > 1:
        rows.append(f"| all | {total['windows']} | | {total['old']:.3f} | {total['new']:.3f} | "
                    f"{total['old'] / max(total['new'], 1e-9):.1f}x |")
    lines = ["# visual_effects layout detection: reference (before the speed-up) vs now", "",
             f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`", "",
             f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, numpy {np.__version__}",
             *host_lines(load, cuda=False),
             f"- windows: every shot (cut_analysis) in windows of about {args.window_s:g} s at {args.fps:g} fps, "
             f"96 px wide; identical layouts in every window (find_layout, find_inset, find_window_layout)",
             f"- times: fastest of {args.repeat} interleaved passes over a clip's windows, decoding excluded",
             "", *rows]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
