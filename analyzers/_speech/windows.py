"""Whisper windows made of speech regions only, and the way back to the timeline.

Whisper hallucinates over silence and music, and its timestamps drift when a long file is
decoded as one stream that seeks by its own predicted times. Here it never hears anything but
speech regions: consecutive regions (at most ``max_join_gap_s`` apart) are packed into windows of
at most ``window_s`` seconds of audio, joined by ``gap_s`` of digital silence instead of the
stretch between them. Each window carries its ``Piece``s, (timeline start, timeline end, offset in
the window), so every time Whisper writes is mapped back exactly: a time inside a piece moves by
that piece's shift, a time in a joint belongs to the nearest piece and is clamped into it. Every
window is decoded on its own (no text carried over), and times are computed per window from the
absolute start of its pieces, so errors cannot accumulate over an hour of audio.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

MIN_PIECE_S = 0.05


@dataclass(frozen=True)
class Piece:
    """A stretch of the timeline [start, end) placed at ``offset`` seconds in its window's audio."""

    start: float
    end: float
    offset: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Window:
    """What Whisper hears in one call: pieces of speech, in timeline order, with short joints."""

    index: int
    pieces: tuple[Piece, ...]

    @property
    def duration(self) -> float:
        """Length of the window's audio (seconds)."""
        last = self.pieces[-1]
        return last.offset + last.duration

    @property
    def speech_s(self) -> float:
        return sum(p.duration for p in self.pieces)

    def piece_at(self, t: float) -> int:
        """Index of the piece holding window time ``t``, or of the nearest one when ``t`` is in a joint."""
        best, best_d = 0, math.inf
        for i, p in enumerate(self.pieces):
            if p.offset <= t < p.offset + p.duration:
                return i
            d = min(abs(t - p.offset), abs(t - (p.offset + p.duration)))
            if d < best_d:
                best, best_d = i, d
        return best

    def to_timeline(self, t: float, piece: int | None = None) -> float:
        """Window time ``t`` on the timeline, clamped into ``piece`` (default: the piece holding it)."""
        p = self.pieces[self.piece_at(t) if piece is None else piece]
        return min(p.end, max(p.start, p.start + (t - p.offset)))

    def span_to_timeline(self, start: float, end: float) -> tuple[float, float]:
        """A word's [start, end] in window time on the timeline, inside one piece: the piece holding
        its middle (a word cannot straddle a joint that stands for audio nobody heard)."""
        i = self.piece_at((start + end) / 2)
        a, b = self.to_timeline(start, i), self.to_timeline(end, i)
        return a, max(a, b)


def split_long(regions: list[tuple[float, float]], limit: float,
               cut: Callable[[float, float], float] | None = None) -> list[tuple[float, float]]:
    """Regions longer than ``limit`` cut into parts of at most ``limit``; ``cut(lo, hi)`` picks a
    point between lo and hi (e.g. the quietest moment), else the parts are equal."""
    out: list[tuple[float, float]] = []
    for a, b in regions:
        while b - a > limit:
            n = math.ceil((b - a) / limit)
            ideal = a + (b - a) / n
            lo = max(a + limit * 0.5, ideal - min(5.0, limit * 0.25))
            at = cut(lo, min(a + limit, ideal + min(5.0, limit * 0.25))) if cut else ideal
            at = min(a + limit, max(a + MIN_PIECE_S, at))
            out.append((a, at))
            a = at
        if b - a >= MIN_PIECE_S:
            out.append((a, b))
    return out


def pack_windows(regions: list[tuple[float, float]], window_s: float = 30.0, gap_s: float = 0.3,
                 max_join_gap_s: float = 10.0, cut: Callable[[float, float], float] | None = None) -> list[Window]:
    """Speech regions (timeline seconds) packed, in order, into windows of at most ``window_s``.

    A region longer than a window is split first (``split_long``); regions further apart than
    ``max_join_gap_s`` never share a window.
    """
    if window_s <= gap_s:
        raise ValueError(f"window_s ({window_s}) must be longer than gap_s ({gap_s})")
    parts = split_long(sorted((a, b) for a, b in regions if b - a >= MIN_PIECE_S), window_s, cut)
    windows: list[Window] = []
    pieces: list[Piece] = []
    for a, b in parts:
        if pieces:
            offset = pieces[-1].offset + pieces[-1].duration + gap_s
            if offset + (b - a) > window_s + 1e-9 or a - pieces[-1].end > max_join_gap_s:
                windows.append(Window(len(windows), tuple(pieces)))
                pieces, offset = [], 0.0
        else:
            offset = 0.0
        pieces.append(Piece(a, b, offset))
    if pieces:
        windows.append(Window(len(windows), tuple(pieces)))
    return windows
