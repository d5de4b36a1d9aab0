"""Shared by the analyzers that work per shot: the shots of an upstream track providing ``"shots"``.

Shots are found by capability (``Track.provides``), not by an analyzer's name, so a third-party
cut detector that provides shots feeds the per-shot analyzers as ``cut_analysis`` does. (The
track must still reach ``inputs.upstream``, i.e. be named in the analyzer's ``depends_on``.)

(A private module: the package's auto-registration skips names that start with ``_``.)
"""
from __future__ import annotations

import logging

from framework import AnalyzerInputs, Event, Track, tracks_providing

logger = logging.getLogger(__name__)

SHOTS = "shots"


def shot_source(inputs: AnalyzerInputs) -> Track | None:
    """The first upstream track providing ``"shots"`` (an ``ok`` one when there is one).

    When none provides shots, a track that declares no capabilities at all (saved before they
    existed, or from a plugin that predates them) is recognised by its ``shot`` events."""
    tracks = tracks_providing(inputs.upstream, SHOTS)
    if not tracks:
        tracks = sorted((t for t in inputs.upstream.values()
                         if not t.provides and any(e.label == "shot" for e in t.events)),
                        key=lambda t: t.status != "ok")
    return tracks[0] if tracks else None


def upstream_shots(inputs: AnalyzerInputs) -> list[Event]:
    """The ``shot`` events of the ``ok`` upstream track providing shots, by start time; [] when
    there is none."""
    track = shot_source(inputs)
    if track is None or track.status != "ok":
        return []
    return sorted((e for e in track.events if e.label == "shot" and e.end > e.start), key=lambda e: e.start)


def shot_intervals(inputs: AnalyzerInputs, duration: float) -> list[tuple[float, float]]:
    """The shots as (start, end) seconds, in order; the whole video as one shot when no usable
    upstream track provides shots (missing, not ``ok``, or without shots), so an analyzer still works alone."""
    shots = [(e.start, e.end) for e in upstream_shots(inputs)]
    if not shots:
        source = shot_source(inputs)
        if source is not None:
            logger.info("%s track (providing shots) has no usable shots; treating the video as one shot",
                        source.analyzer)
        return [(0.0, duration)] if duration > 0 else []
    return shots
