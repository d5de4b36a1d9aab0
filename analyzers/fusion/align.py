"""Aligning tracks onto the video's units of meaning: scenes, else shots, else fixed windows.

Nothing here copies a track's events: a ``TrackIndex`` keeps the order of events by start
time (a list of ints) and answers "which events overlap [a, b)" by bisection, so aligning a
two-hour timeline costs little more memory than the timeline itself.
"""
from __future__ import annotations

import bisect
import math
from array import array
from dataclasses import dataclass
from typing import Iterator, Sequence

from framework import Event, Series, Track, tracks_providing

SCENE_LABEL = "scene"
SHOT_LABEL = "shot"
SCENES = "scenes"  # the capabilities whose tracks define the units (see Analyzer.provides)
SHOTS = "shots"


@dataclass(frozen=True)
class Unit:
    """One scene (or shot, or window) the digest describes."""

    index: int
    start: float
    end: float
    source: str                   # analyzer the boundaries came from, or "window"
    event_index: int | None       # index of the scene/shot event in that track
    label: str                    # "scene", "shot" or "window"

    @property
    def duration(self) -> float:
        return self.end - self.start


class _Starts:
    """A read-only sequence view of the events' starts (no copy) for ``bisect``."""

    def __init__(self, events: list[Event]):
        self.events = events

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, i: int) -> float:
        return self.events[i].start


class TrackIndex:
    """Events of one track sorted by start, for fast range queries; event indices are preserved.

    A track already in start order (the usual case) is indexed with no copy at all; otherwise
    the order is kept in compact arrays (12 bytes per event).
    """

    def __init__(self, track: Track):
        self.track = track
        events = track.events
        in_order = all(events[i].start <= events[i + 1].start for i in range(len(events) - 1))
        if in_order:
            self.order: Sequence[int] = range(len(events))
            self.starts: Sequence[float] = _Starts(events)
        else:
            self.order = array("l", sorted(range(len(events)), key=lambda i: (events[i].start, events[i].end)))
            self.starts = array("d", (events[i].start for i in self.order))
        self.max_duration = max((e.end - e.start for e in events), default=0.0)

    @property
    def name(self) -> str:
        return self.track.analyzer

    def overlapping(self, a: float, b: float) -> Iterator[tuple[int, Event]]:
        """Events with ``start < b`` and ``end > a`` (instants at ``a <= t < b``), in start order."""
        events = self.track.events
        hi = bisect.bisect_left(self.starts, b)
        lo = bisect.bisect_left(self.starts, a - self.max_duration)
        for k in range(lo, hi):
            i = self.order[k]
            e = events[i]
            if e.end > a or (e.start == e.end and e.start >= a):
                yield i, e

    def starting_in(self, a: float, b: float) -> Iterator[tuple[int, Event]]:
        """Events whose start lies in ``[a, b)``."""
        events = self.track.events
        for k in range(bisect.bisect_left(self.starts, a), bisect.bisect_left(self.starts, b)):
            i = self.order[k]
            yield i, events[i]


@dataclass(frozen=True)
class SeriesStats:
    n: int
    mean: float
    lo: float
    hi: float
    t_hi: float  # time of the maximum


def series_stats(series: Series, a: float, b: float) -> SeriesStats | None:
    """Mean/min/max of the series' non-missing samples in ``[a, b)`` (``None`` if there are none)."""
    times = series.times
    lo_i, hi_i = bisect.bisect_left(times, a), bisect.bisect_left(times, b)
    n, total, lo, hi, t_hi = 0, 0.0, math.inf, -math.inf, a
    for k in range(lo_i, hi_i):
        v = series.values[k]
        if v is None or not math.isfinite(v):
            continue
        n += 1
        total += v
        lo = min(lo, v)
        if v > hi:
            hi, t_hi = v, times[k]
    if n == 0:
        return None
    return SeriesStats(n, total / n, lo, hi, t_hi)


def fraction_above(series: Series, a: float, b: float, threshold: float) -> float | None:
    """Share of the non-missing samples in ``[a, b)`` above ``threshold`` (``None`` if none)."""
    times = series.times
    n = above = 0
    for k in range(bisect.bisect_left(times, a), bisect.bisect_left(times, b)):
        v = series.values[k]
        if v is None or not math.isfinite(v):
            continue
        n += 1
        above += v > threshold
    return above / n if n else None


def _find_track(tracks: dict[str, Track], label: str, capability: str) -> Track | None:
    """The first ok track that provides ``capability`` and has ``label`` events; else any track
    with such events (tracks written before capabilities existed, or that declare none)."""
    for t in tracks_providing(tracks, capability):
        if t.status == "ok" and any(e.label == label for e in t.events):
            return t
    for t in tracks.values():
        if any(e.label == label for e in t.events):
            return t
    return None


def shots_track(tracks: dict[str, Track]) -> Track | None:
    """The track holding "shot" events (one that provides "shots" when present)."""
    return _find_track(tracks, SHOT_LABEL, SHOTS)


def build_units(tracks: dict[str, Track], duration: float, window_s: float = 30.0) -> list[Unit]:
    """Scenes from a track with "scene" events, else shots, else windows of ``window_s`` seconds.

    Units are sorted, clipped to ``[0, duration]`` and never empty; there are none for a video of
    no duration with no scenes or shots.
    """
    for label in (SCENE_LABEL, SHOT_LABEL):
        src = _find_track(tracks, label, SCENES if label == SCENE_LABEL else SHOTS)
        if src is None:
            continue
        found = sorted(((i, e) for i, e in enumerate(src.events) if e.label == label),
                       key=lambda p: p[1].start)
        units: list[Unit] = []
        for i, e in found:
            start, end = max(0.0, e.start), min(duration, e.end) if duration > 0 else e.end
            if end - start <= 1e-6:
                continue
            units.append(Unit(len(units), start, end, src.analyzer, i, label))
        if units:
            return units
    if duration <= 0:
        return []
    n = max(1, int(math.ceil(duration / window_s)))
    step = duration / n
    return [Unit(k, k * step, (k + 1) * step, "window", None, "window") for k in range(n)]
