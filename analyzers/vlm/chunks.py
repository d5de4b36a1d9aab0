"""Chunks that follow the video: which stretch of time each VLM call describes, and its frames.

``plan_chunks`` turns the shots of the cut detector into chunks:

- a shot longer than ``chunk_s`` is split into equal windows of at most ``chunk_s``;
- a stretch shorter than ``min_chunk_s`` (a very short shot, a flash cut) is merged with its
  neighbour when the two together stay within ``chunk_s`` (the merged chunk lists every shot it
  spans in ``Chunk.shots``); otherwise no chunk crosses a shot boundary;
- ``mode="fixed"`` ignores the shots: windows of ``chunk_s`` from the start;
- ``mode="whole"``: the whole video as one chunk (``framework describe``).

``pick_frames`` chooses a chunk's frames from the decoded stream by presentation time (the
single decode pass wrote the stream at the model's fps): every frame inside the chunk, thinned
uniformly to ``max_frames``; a chunk shorter than one frame interval gets the frame nearest its
middle. ``pick_spread`` (the whole video in one chunk) takes the frame nearest the middle of each of
N equal parts. Nothing here reads pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Literal, Sequence, TypeVar

import numpy as np

ChunkMode = Literal["shots", "fixed", "whole"]
EPS = 1e-6


@dataclass(frozen=True)
class Chunk:
    """One stretch of the video that one VLM call describes.

    :ivar shots: indices of the shots it overlaps (several only when short shots were merged).
    :ivar split: True when it is one window of a shot longer than ``chunk_s``.
    """

    index: int
    start: float
    end: float
    shots: tuple[int, ...] = ()
    split: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class _Piece:
    start: float
    end: float
    shots: list[int] = field(default_factory=list)
    split: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start


def _split(start: float, end: float, chunk_s: float) -> list[tuple[float, float]]:
    """``[start, end)`` in the fewest equal windows of at most ``chunk_s``."""
    n = max(1, math.ceil((end - start) / chunk_s - 1e-9))
    step = (end - start) / n
    return [(start + i * step, end if i == n - 1 else start + (i + 1) * step) for i in range(n)]


def plan_chunks(shots: Sequence[tuple[float, float]], duration: float, *, chunk_s: float = 10.0,
                min_chunk_s: float = 2.0, mode: ChunkMode = "shots") -> list[Chunk]:
    """The chunks of a video of ``duration`` seconds (see the module docstring).

    :param shots: (start, end) of each shot in order; empty means the video is one shot.
    """
    if chunk_s <= 0:
        raise ValueError(f"chunk_s must be positive, got {chunk_s}")
    end_of_video = max(duration, max((e for _, e in shots), default=0.0))
    if end_of_video <= 0:
        return []
    if mode == "whole":
        return [Chunk(0, 0.0, end_of_video, tuple(range(max(1, len(shots)))))]
    if mode == "fixed" or not shots:
        spans = [(0.0, end_of_video)]
        split_all = mode == "fixed"
    else:
        spans = [(max(0.0, s), e) for s, e in shots if e - s > EPS]
        split_all = False
    pieces: list[_Piece] = []
    for k, (s, e) in enumerate(spans):
        if split_all:
            windows = [(a, min(a + chunk_s, e)) for a in np.arange(s, e - EPS, chunk_s).tolist()]
        else:
            windows = _split(s, e, chunk_s)
        for a, b in windows:
            pieces.append(_Piece(a, b, [k] if mode == "shots" and shots else [], split=len(windows) > 1))
    merged: list[_Piece] = []
    for piece in pieces:
        last = merged[-1] if merged else None
        if (last is not None and (piece.duration < min_chunk_s or last.duration < min_chunk_s)
                and piece.end - last.start <= chunk_s + EPS):
            last.end = piece.end
            last.shots.extend(s for s in piece.shots if s not in last.shots)
            last.split = last.split or piece.split
        else:
            merged.append(piece)
    return [Chunk(i, round(p.start, 4), round(p.end, 4), tuple(p.shots), p.split) for i, p in enumerate(merged)]


def pick_frames(times: np.ndarray, start: float, end: float, max_frames: int,
                min_frames: int = 1) -> list[int]:
    """Indices into a frame stream (its sorted ``times``) of the frames for ``[start, end)``.

    Every frame presented inside the chunk, thinned uniformly (first and last kept) to
    ``max_frames``; when fewer than ``min_frames`` fall inside, the frames nearest the chunk's
    middle (never outside the video's frames).
    """
    if len(times) == 0:
        return []
    lo = int(np.searchsorted(times, start - EPS, side="left"))
    hi = int(np.searchsorted(times, end - EPS, side="left"))
    inside = list(range(lo, hi))
    if len(inside) > max_frames:
        pos = np.linspace(0, len(inside) - 1, max_frames).round().astype(int)
        inside = [inside[i] for i in sorted(set(pos.tolist()))]
    if len(inside) >= min_frames:
        return inside
    mid = (start + end) / 2
    order = np.argsort(np.abs(times - mid), kind="stable")[:max(1, min_frames)]
    return sorted(int(i) for i in order)


def pick_spread(times: np.ndarray, start: float, end: float, n: int) -> list[int]:
    """``n`` frames spread evenly over ``[start, end)``: the frame nearest the middle of each of ``n``
    equal parts (seed 003's "no duplicates" sampling); fewer when the stream has fewer frames."""
    if len(times) == 0 or n <= 0:
        return []
    step = (end - start) / n
    found: list[int] = []
    for k in range(n):
        i = int(np.argmin(np.abs(times - (start + (k + 0.5) * step))))
        if i not in found:
            found.append(i)
    return sorted(found)


T = TypeVar("T")


def bucketed(items: Iterable[T], window: int, key) -> Iterator[T]:
    """``items`` reordered within consecutive windows of ``window`` by ``key`` (e.g. frame count),
    so a batch holds inputs of similar length and less padding; memory holds one window."""
    buf: list[T] = []
    for item in items:
        buf.append(item)
        if len(buf) >= window:
            yield from sorted(buf, key=key)
            buf = []
    yield from sorted(buf, key=key)


__all__ = ["Chunk", "ChunkMode", "bucketed", "pick_frames", "pick_spread", "plan_chunks"]
