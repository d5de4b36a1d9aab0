"""The exporter contract and the views of a Timeline that several exporters share.

An exporter turns a finished ``Timeline`` into files people read. It gets an ``ExportContext``
that carries the (reachable) video, the fusion ``Summary`` and cached helpers, so that the
shot list, the transcript and the thumbnails are computed once per ``write_outputs`` call.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..summary import Summary
from ..timeline import Timeline, Track, atomic_write_bytes  # noqa: F401 (re-exported for exporters)

logger = logging.getLogger(__name__)

SHOT_LABEL = "shot"
SPEECH_LABEL = "speech"
PREFERRED_SHOT_TRACK = "cut_analysis"


class Exporter:
    """Base class of every exporter (built-in or registered by a plugin).

    Set ``name`` (unique) and ``filenames`` (what it may write, for ``--help`` and docs), and
    implement ``export``. Write files atomically (``atomic_write_text`` / ``atomic_write_bytes``).
    An exception is logged by ``write_outputs`` and the other exporters still run.
    """

    name: ClassVar[str] = ""
    filenames: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    plugin: ClassVar[str | None] = None  # stamped by the host at registration

    def export(self, timeline: Timeline, run_dir: Path, context: "ExportContext") -> list[Path]:
        """Write this exporter's files into ``run_dir`` and return their paths."""
        raise NotImplementedError(f"exporter {self.name!r} does not implement export()")

    def nothing_to_write(self, run_dir: Path, why: str) -> list[Path]:
        """Log ``why`` nothing is written and remove this exporter's files from an earlier run
        (a stale shot list or transcript would mislead); returns no paths."""
        logger.info("%s: %s not written", why, " and ".join(self.filenames))
        for name in self.filenames:
            (run_dir / name).unlink(missing_ok=True)
        return []


@dataclass(frozen=True)
class Shot:
    """One shot of the cut list (from the ``shot`` events of the cut track)."""

    index: int
    start: float
    end: float
    transition_in: str = "cut"

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def midpoint(self) -> float:
        return (self.start + self.end) / 2


@dataclass(frozen=True)
class Cue:
    """One transcript line: a ``speech`` event with ``data.text``."""

    start: float
    end: float
    text: str
    speaker: str | None = None
    analyzer: str = ""


@dataclass
class ExportContext:
    """What every exporter may use besides the timeline.

    :ivar video_path: the analyzed video if it is reachable now, else ``None``.
    :ivar video_note: why there is no video (empty when there is one).
    :ivar summary: the fusion step's summary, or ``None`` when there is none.
    :ivar thumb_sources: older ``thumbs/`` folders whose cached thumbnails may be reused.
    """

    timeline: Timeline
    run_dir: Path
    video_path: Path | None = None
    video_note: str = ""
    summary: Summary | None = None
    thumb_sources: tuple[Path, ...] = ()
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def fps(self) -> float:
        return float(self.timeline.video.fps or 0.0)

    @property
    def duration(self) -> float:
        video = self.timeline.video
        ends = [e.end for t in self.timeline.tracks.values() for e in t.events]
        ends += [s.times[-1] for t in self.timeline.tracks.values() for s in t.series if s.times]
        return max([video.duration or 0.0, *ends, 0.0])

    def shots(self) -> list[Shot]:
        if "shots" not in self._cache:
            self._cache["shots"] = shots_of(self.timeline)
        return self._cache["shots"]

    def shot_track(self) -> Track | None:
        return shot_track_of(self.timeline)

    def transcript(self) -> list[Cue]:
        if "transcript" not in self._cache:
            self._cache["transcript"] = transcript_of(self.timeline)
        return self._cache["transcript"]

    def thumbnails(self) -> dict[int, Path]:
        """Shot index -> JPEG path, made once per call of ``write_outputs`` (and cached on disk)."""
        if "thumbs" not in self._cache:
            from .thumbnails import shot_thumbnails

            self._cache["thumbs"] = shot_thumbnails(self)
        return self._cache["thumbs"]


def shot_track_of(timeline: Timeline) -> Track | None:
    """The track holding the shot list: ``cut_analysis`` if it has shots, else the first that does."""
    candidates = sorted(timeline.tracks.values(), key=lambda t: t.analyzer != PREFERRED_SHOT_TRACK)
    for track in candidates:
        if track.status == "ok" and any(e.label == SHOT_LABEL for e in track.events):
            return track
    return None


def shots_of(timeline: Timeline) -> list[Shot]:
    """The shots in time order, numbered from 1 when the track gives no ``data.index``."""
    track = shot_track_of(timeline)
    if track is None:
        return []
    events = sorted((e for e in track.events if e.label == SHOT_LABEL), key=lambda e: e.start)
    shots = []
    for i, e in enumerate(events):
        index = e.data.get("index")
        transition = e.data.get("transition_in") or ("start" if i == 0 else "cut")
        shots.append(Shot(index=int(index) if isinstance(index, (int, float)) else i + 1,
                          start=e.start, end=e.end, transition_in=str(transition)))
    return shots


def transcript_of(timeline: Timeline) -> list[Cue]:
    """Every ``speech`` event with a non-empty ``data.text``, from any ok track, in time order."""
    cues = []
    for track in timeline.tracks.values():
        if track.status != "ok":
            continue
        for e in track.events:
            text = e.data.get("text") if e.label == SPEECH_LABEL else None
            if isinstance(text, str) and text.strip():
                speaker = e.data.get("speaker")
                cues.append(Cue(e.start, e.end, text.strip(), str(speaker) if speaker else None,
                                track.analyzer))
    return sorted(cues, key=lambda c: (c.start, c.end))


def clock(t: float, millis: bool = False) -> str:
    """``m:ss`` (or ``h:mm:ss``) for display; with ``millis`` a ``.mmm`` suffix."""
    ms_total = int(round(max(0.0, t) * 1000))
    h, rem = divmod(ms_total, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    out = f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
    return f"{out}.{ms:03d}" if millis else out


def span(start: float, end: float | None) -> str:
    """``0:02`` for an instant (or when both ends show the same second), else ``0:02–0:05``."""
    if end is None or end - start < 0.5 or clock(start) == clock(end):
        return clock(start)
    return f"{clock(start)}–{clock(end)}"


def paragraphs(text: str) -> list[str]:
    """The non-empty lines of a multi-line text (the detailed summary keeps its line structure)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


