"""Shared by the analyzers that work per shot: the upstream ``cut_analysis`` shots.

(A private module: the package's auto-registration skips names that start with ``_``.)
"""
from __future__ import annotations

import logging

from framework import AnalyzerInputs, Event

logger = logging.getLogger(__name__)

SHOT_SOURCE = "cut_analysis"


def upstream_shots(inputs: AnalyzerInputs) -> list[Event]:
    """The ``shot`` events of an ``ok`` cut_analysis track, by start time; [] when there are none."""
    track = inputs.upstream.get(SHOT_SOURCE)
    if track is None or track.status != "ok":
        return []
    return sorted((e for e in track.events if e.label == "shot" and e.end > e.start), key=lambda e: e.start)


def shot_intervals(inputs: AnalyzerInputs, duration: float) -> list[tuple[float, float]]:
    """The shots as (start, end) seconds, in order; the whole video as one shot when there is no
    usable cut_analysis track (missing, not ``ok``, or without shots), so an analyzer still works alone."""
    shots = [(e.start, e.end) for e in upstream_shots(inputs)]
    if not shots:
        if SHOT_SOURCE in inputs.upstream:
            logger.info("%s track has no usable shots; treating the video as one shot", SHOT_SOURCE)
        return [(0.0, duration)] if duration > 0 else []
    return shots
