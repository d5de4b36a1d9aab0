"""The exporter contract and the views of a Timeline that several exporters share.

An exporter turns a finished ``Timeline`` into files people read. It gets an ``ExportContext``
that carries the (reachable) video, the ``Summary`` and cached helpers, so that the shot list,
the transcript and the thumbnails are computed once per ``write_outputs`` call.

Shots, transcript and summary are found by the capability a track provides (``Track.provides``:
``"shots"``, ``"transcript"``, ``"summary"``), never by an analyzer's name, so a third-party
analyzer that provides shots drives ``cuts.csv``/``cuts.edl`` and the report's shot list as the
built-in one does. When no track provides a capability, tracks that declare no capabilities at
all (saved before capabilities existed, or from a plugin that predates them) are read by their
content instead: ``shot`` events, ``speech`` events with ``data.text``, a ``summary`` in the data.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..timeline import Timeline, Track, atomic_write_bytes, tracks_providing  # noqa: F401 (re-exported)

if TYPE_CHECKING:  # the summary models load only when a run has a summary to read
    from ..summary import Summary

logger = logging.getLogger(__name__)

SHOT_LABEL = "shot"
SPEECH_LABEL = "speech"
SHOTS, TRANSCRIPT, SUMMARY = "shots", "transcript", "summary"  # capabilities (Analyzer.provides)


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
    #: Modules ``export`` will import that take long to import (e.g. ``("opentimelineio",)``): a run
    #: imports them on a background thread while the video is analyzed (``warm_up_imports``), so the
    #: outputs do not wait for them at the end. A module that fails to import there is left for
    #: ``export`` to report.
    warm_imports: ClassVar[tuple[str, ...]] = ()

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
    """One shot of the cut list (from the ``shot`` events of the track providing shots).

    ``first_frame`` / ``last_frame`` are the indices of the shot's first and last decoded frames
    (``data["first_frame"]`` / ``data["last_frame"]`` of its event), ``None`` when the track gave
    none; outputs print these, never a time multiplied by an average frame rate.
    """

    index: int
    start: float
    end: float
    transition_in: str = "cut"
    first_frame: int | None = None
    last_frame: int | None = None

    @property
    def end_frame(self) -> int | None:
        """The frame after the shot's last one (exclusive end; the next shot's first frame)."""
        return None if self.last_frame is None else self.last_frame + 1

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
    :ivar summary: the summary (of the track providing ``"summary"``), or ``None`` when there is none.
    :ivar thumb_sources: older ``thumbs/`` folders whose cached thumbnails may be reused.
    :ivar exporters: the names of the exporters this call runs (``None``: not known, e.g. a test
        calling one exporter), so that a page listing the run's files lists only those.
    """

    timeline: Timeline
    run_dir: Path
    video_path: Path | None = None
    video_note: str = ""
    summary: Summary | None = None
    thumb_sources: tuple[Path, ...] = ()
    exporters: tuple[str, ...] | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def writes(self, exporter: str) -> bool:
        """Whether exporter ``exporter`` runs in this call (True when that is not known)."""
        return self.exporters is None or exporter in self.exporters

    @property
    def fps(self) -> float:
        return float(self.timeline.video.fps or 0.0)

    @property
    def frame_rate(self) -> float | None:
        """The rate frame numbers and timecode count at: the stream's declared rate
        (``video.fps_rational``, e.g. ``30000/1001``) when known, else ``video.fps``."""
        return frame_rate_of(self.timeline)

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


def capability_tracks(timeline: Timeline, capability: str) -> tuple[list[Track], bool]:
    """``(tracks, declared)``: the ``ok`` tracks providing ``capability`` in the timeline's order
    and True; when none does, the ``ok`` tracks that declare no capabilities at all and False
    (the caller then recognises the capability by content: event labels, a summary in the data)."""
    providers = [t for t in tracks_providing(timeline.tracks, capability) if t.status == "ok"]
    if providers:
        return providers, True
    return [t for t in timeline.tracks.values() if t.status == "ok" and not t.provides], False


def shot_track_of(timeline: Timeline) -> Track | None:
    """The track holding the shot list: the first ``ok`` track providing ``"shots"`` that has
    ``shot`` events."""
    return next((t for t in capability_tracks(timeline, SHOTS)[0]
                 if any(e.label == SHOT_LABEL for e in t.events)), None)


def summary_track_of(timeline: Timeline) -> Track | None:
    """The first ``ok`` track providing ``"summary"`` whose data holds one."""
    return next((t for t in capability_tracks(timeline, SUMMARY)[0] if SUMMARY in t.data), None)


def _frame(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


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
        first, last = _frame(e.data.get("first_frame")), _frame(e.data.get("last_frame"))
        if first is None or last is None or last < first:
            first = last = None
        shots.append(Shot(index=int(index) if isinstance(index, (int, float)) else i + 1,
                          start=e.start, end=e.end, transition_in=str(transition),
                          first_frame=first, last_frame=last))
    return shots


def _cues(track: Track) -> list[Cue]:
    cues = []
    for e in track.events:
        text = e.data.get("text") if e.label == SPEECH_LABEL else None
        if isinstance(text, str) and text.strip():
            speaker = e.data.get("speaker")
            cues.append(Cue(e.start, e.end, text.strip(), str(speaker) if speaker else None, track.analyzer))
    return cues


def transcript_of(timeline: Timeline) -> list[Cue]:
    """The transcript in time order: the ``speech`` events with a non-empty ``data.text`` of the
    first ``ok`` track providing ``"transcript"`` that has any (one transcript, not two ASR
    outputs interleaved). With no such track: of every ``ok`` track declaring no capabilities."""
    tracks, declared = capability_tracks(timeline, TRANSCRIPT)
    if declared:
        cues = next((c for c in map(_cues, tracks) if c), [])
    else:
        cues = [c for t in tracks for c in _cues(t)]
    return sorted(cues, key=lambda c: (c.start, c.end))


def frame_rate_of(timeline: Timeline) -> float | None:
    """``video.fps_rational`` as a number when present and valid, else ``video.fps`` (or ``None``)."""
    video = timeline.video
    rational = getattr(video, "fps_rational", None)
    if isinstance(rational, str) and rational.strip():
        try:
            rate = float(Fraction(rational.strip()))
        except (ValueError, ZeroDivisionError):
            logger.info("video.fps_rational %r is not a rate; using video.fps", rational)
        else:
            if rate > 0:
                return rate
    return float(video.fps) if video.fps and video.fps > 0 else None


NTSC_BASES = (24, 30, 48, 60, 120)  # n * 1000/1001 fps


def exact_rate(timeline: Timeline) -> Fraction | None:
    """The frame rate as an exact fraction (``30000/1001``, ``25``), for frame-exact times.

    ``video.fps_rational`` when valid; else ``video.fps`` snapped to an NTSC rate
    (``n * 1000/1001``) when within 0.005 fps of one, else to the nearest fraction with a
    denominator up to 1001. ``None`` when the video has no rate.
    """
    rational = getattr(timeline.video, "fps_rational", None)
    if isinstance(rational, str) and rational.strip():
        try:
            rate = Fraction(rational.strip())
        except (ValueError, ZeroDivisionError):
            rate = None
        if rate is not None and rate > 0:
            return rate
    fps = timeline.video.fps
    return rate_fraction(fps) if fps and fps > 0 else None


def rate_fraction(fps: float) -> Fraction:
    """``fps`` as an exact rate: an NTSC rate (``n * 1000/1001``) when within 0.005 fps of one
    (29.97 -> 30000/1001), else the nearest fraction with a denominator up to 1001."""
    for base in NTSC_BASES:
        ntsc = Fraction(base * 1000, 1001)
        if abs(fps - float(ntsc)) < 0.005:
            return ntsc
    return Fraction(fps).limit_denominator(1001)


def fps_text(rate: float) -> str:
    """``29.97 fps``, ``30 fps``: a frame rate to two decimals, trailing zeros dropped."""
    return f"{rate:.2f}".rstrip("0").rstrip(".") + " fps"


def rate_text(timeline: Timeline) -> str:
    """``29.97 fps`` (the declared rate when known), ``+ (variable)`` for variable-rate video."""
    rate = frame_rate_of(timeline)
    if rate is None:
        return ""
    return fps_text(rate) + (" (variable)" if timeline.video.variable_frame_rate else "")


def stated_duration(timeline: Timeline) -> float | None:
    """The length the file's header states, when decoding stopped before it (a truncated file);
    ``None`` when the analysis covered the whole file or the length is unknown.

    Read from ``run["stated_duration"]`` (seconds) when the runner recorded it."""
    if not was_truncated(timeline):
        return None
    stated = timeline.run.get("stated_duration")
    return float(stated) if isinstance(stated, (int, float)) and stated > timeline.video.duration else None


def was_truncated(timeline: Timeline) -> bool:
    """Whether decoding stopped before the end of the file (``run["decode"]["truncated_at"]``)."""
    decode = timeline.run.get("decode") or {}
    return isinstance(decode, dict) and decode.get("truncated_at") is not None


def run_warnings(timeline: Timeline) -> list[str]:
    """Every warning the run recorded (``run["warnings"]``), as text, without repeats."""
    raw = timeline.run.get("warnings") or []
    out: list[str] = []
    for w in raw if isinstance(raw, list) else [raw]:
        text = " ".join(str(w).split())
        if text and text not in out:
            out.append(text)
    return out


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


