"""Face tracks: the faces of sampled frames linked into the same person's appearances.

Frames are sampled sparsely (a few per second) and nothing identifies a face, so linking is by
position: a face on frame ``i`` continues the track whose last face (at most ``max_gap`` samples
back, and never across a shot boundary) overlaps it best (IoU at least ``min_iou``), or, when
none overlaps, whose centre is nearest within ``max_shift`` face heights. Greedy, best pairs first;
a face that continues no track starts a new one. Good for talking heads and interviews; people
who cross each other can swap tracks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from .._vision.common import shot_of, span
from .detect import Box


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _shift(a: Box, b: Box) -> float:
    """Distance between the centres in face heights (the larger of the two)."""
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    size = max(a[3] - a[1], b[3] - b[1], 1e-6)
    return (dx * dx + dy * dy) ** 0.5 / size


@dataclass
class FaceTrack:
    """One face followed over sampled frames: ``members`` are ``(frame index, face index)``."""

    id: int
    members: list[tuple[int, int]] = field(default_factory=list)

    @property
    def first(self) -> int:
        return self.members[0][0]

    @property
    def last(self) -> int:
        return self.members[-1][0]


def link(boxes: Sequence[Sequence[Box]], shot_of: Sequence[int] | None = None, min_iou: float = 0.3,
         max_shift: float = 0.6, max_gap: int = 2) -> list[FaceTrack]:
    """Face tracks over frames, in order of first appearance.

    :param boxes: per sampled frame, the boxes of its faces.
    :param shot_of: per sampled frame, its shot's index (tracks never continue into another shot).
    :param max_gap: how many sampled frames a face may be missing and still continue its track.
    """
    tracks: list[FaceTrack] = []
    open_: list[FaceTrack] = []
    for i, faces in enumerate(boxes):
        shot = shot_of[i] if shot_of is not None else 0
        open_ = [t for t in open_ if i - t.last <= max_gap + 1
                 and (shot_of is None or shot_of[t.last] == shot)]
        pairs = []
        for ti, t in enumerate(open_):
            lf, lj = t.members[-1]
            last = boxes[lf][lj]
            for j, b in enumerate(faces):
                o = iou(last, b)
                if o >= min_iou:
                    pairs.append((0, -o, ti, j))
                else:
                    d = _shift(last, b)
                    if d <= max_shift:
                        pairs.append((1, d, ti, j))
        used_t: set[int] = set()
        used_f: set[int] = set()
        for _, _, ti, j in sorted(pairs):
            if ti in used_t or j in used_f:
                continue
            used_t.add(ti)
            used_f.add(j)
            open_[ti].members.append((i, j))
        for j in range(len(faces)):
            if j not in used_f:
                t = FaceTrack(id=len(tracks) + 1, members=[(i, j)])
                tracks.append(t)
                open_.append(t)
    return tracks


def face_tracks(times: list[float], boxes: list[list[Any]], shots: list[tuple[float, float]],
                min_iou: float, max_gap: int) -> list[tuple[FaceTrack, float, float, list[tuple[int, int]]]]:
    """Face tracks over sampled frames as ``(track, start, end, members)``; ``boxes`` per frame hold
    objects with a ``box``. Tracks stay within one shot; a track starts and ends at the midpoints to
    the shot's samples before and after it, or at the shot's start / end when there is none."""
    which = [int(s) for s in shot_of(times, shots)] if shots else [0] * len(times)
    tracks = link([[f.box for f in frame] for frame in boxes], which, min_iou=min_iou, max_gap=max_gap)
    out = []
    for t in tracks:
        shot = which[t.first]
        lo, hi = shots[shot] if shots else (0.0, times[-1])
        grid = [k for k in range(len(times)) if which[k] == shot]  # the shot's samples
        start, end = span([times[k] for k in grid], grid.index(t.first), grid.index(t.last), lo, hi)
        out.append((t, start, end, t.members))
    return out
