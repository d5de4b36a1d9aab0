"""Audio stretches, speech regions, transcript words and pauses, as the speech analyzers share them.

All times are seconds on the video's presentation timeline (``AudioTrack.start_time`` included).
Speech regions come from the upstream track that provides ``"voice_activity"`` (``speech``
events), the transcript from the one providing ``"transcript"`` (``speech`` segments and
``word`` events with ``data["text"]``): found by capability, never by an analyzer's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from framework import AUDIO_SAMPLE_RATE, AnalyzerInputs, AudioTrack, Track, tracks_providing

SR = AUDIO_SAMPLE_RATE
VOICE_ACTIVITY = "voice_activity"  # capability: "speech" events where someone speaks
TRANSCRIPT = "transcript"          # capability: "speech" events with data["text"] (and "word" events)


def read(audio: AudioTrack, start: float, end: float) -> np.ndarray:
    """The samples between ``start`` and ``end`` (presentation seconds), clipped to the audio, as float32."""
    a = max(0, int(round((start - audio.start_time) * SR)))
    b = min(audio.count, int(round((end - audio.start_time) * SR)))
    if b <= a:
        return np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(audio.samples[a:b], dtype=np.float32)


def upstream_providing(inputs: AnalyzerInputs, capability: str) -> Track | None:
    """The first ``ok`` upstream track providing ``capability`` (None when there is none)."""
    return next((t for t in tracks_providing(inputs.upstream, capability) if t.status == "ok"), None)


def speech_regions(inputs: AnalyzerInputs) -> list[tuple[float, float]]:
    """The ``speech`` events of the upstream voice-activity track as sorted (start, end) pairs."""
    track = upstream_providing(inputs, VOICE_ACTIVITY)
    if track is None:
        return []
    return sorted((e.start, e.end) for e in track.events if e.label == "speech" and e.end > e.start)


@dataclass(frozen=True)
class Word:
    """One transcribed word on the timeline."""

    start: float
    end: float
    text: str


def transcript_words(inputs: AnalyzerInputs) -> list[Word] | None:
    """The words of the upstream transcript in time order; None when no track provides one.

    ``word`` events are used when the track has them; otherwise each ``speech`` segment's text is
    split into words spread evenly over the segment.
    """
    track = upstream_providing(inputs, TRANSCRIPT)
    if track is None:
        return None
    words = [Word(e.start, e.end, str(e.data.get("text", "")).strip()) for e in track.events
             if e.label == "word" and str(e.data.get("text", "")).strip()]
    if not words:
        for e in track.events:
            text = e.data.get("text") if e.label == "speech" else None
            parts = str(text).split() if isinstance(text, str) else []
            step = (e.end - e.start) / max(1, len(parts))
            words += [Word(e.start + i * step, e.start + (i + 1) * step, w) for i, w in enumerate(parts)]
    return sorted(words, key=lambda w: (w.start, w.end))


def words_in(words: Iterable[Word], start: float, end: float) -> list[Word]:
    """The words whose middle lies in [start, end)."""
    return [w for w in words if start <= (w.start + w.end) / 2 < end]


def gaps(spans: list[tuple[float, float]], min_s: float) -> list[tuple[float, float]]:
    """The gaps of at least ``min_s`` between consecutive (sorted) spans."""
    out = []
    for (_, a_end), (b_start, _) in zip(spans, spans[1:]):
        if b_start - a_end >= min_s:
            out.append((a_end, b_start))
    return out
