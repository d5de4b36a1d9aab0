"""Counting what the decoder actually demuxes: packets and bytes per stream, and how often each
part of the file was read.

Every demux loop (the one ordinary pass, the audio pass beside the segments, each segment
decoder, a fallback pass) reads through a ``LoopTally`` and hands it to the run's
``DemuxTally`` when it ends. A loop reads a stream's packets in file order, so it covers one
byte span of that stream; ``passes`` is the most loops whose spans overlap anywhere, i.e. the
most times any packet was read. Memory stays a few numbers per loop, however long the file.
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoopTally:
    """What one demux loop read: packets and bytes per stream, and each stream's byte span."""

    packets: Counter = field(default_factory=Counter)
    bytes: Counter = field(default_factory=Counter)
    spans: dict[int, list[int]] = field(default_factory=dict)  # stream -> [first pos, last pos]
    unplaced: set[int] = field(default_factory=set)  # streams read with packets of unknown position
    peeked: int = 0  # packets read only to find where the loop ends (a segment's next keyframe)

    def read(self, packet: Any) -> None:
        """Count one demuxed packet (empty flush packets are not data and are not counted)."""
        size = packet.size
        if not size:
            return
        index = packet.stream.index
        self.packets[index] += 1
        self.bytes[index] += size
        pos = packet.pos
        if pos is None or pos < 0:
            self.unplaced.add(index)
            return
        span = self.spans.get(index)
        if span is None:
            self.spans[index] = [pos, pos]
        else:
            span[0], span[1] = min(span[0], pos), max(span[1], pos)


class DemuxTally:
    """The sum of every loop's ``LoopTally`` for one ``decode`` call (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.packets: Counter = Counter()
        self.bytes: Counter = Counter()
        self._spans: dict[int, list[tuple[int, int]]] = {}
        self._unplaced: Counter = Counter()  # stream -> loops that read it without positions
        self.peeked = 0

    def add(self, loop: LoopTally) -> None:
        with self._lock:
            self.packets.update(loop.packets)
            self.bytes.update(loop.bytes)
            for index, (first, last) in loop.spans.items():
                self._spans.setdefault(index, []).append((first, last))
            self._unplaced.update(loop.unplaced)
            self.peeked += loop.peeked

    def passes(self) -> int:
        """The most times any packet was read: overlapping loop spans of one stream (a loop
        without packet positions is taken to overlap every other loop of its stream)."""
        most = 0
        for index in set(self._spans) | set(self._unplaced):
            events = sorted([(a, 1) for a, _ in self._spans.get(index, [])] +
                            [(b, -1) for _, b in self._spans.get(index, [])], key=lambda e: (e[0], -e[1]))
            depth = deepest = 0
            for _, step in events:
                depth += step
                deepest = max(deepest, depth)
            most = max(most, deepest + self._unplaced[index])
        return most
