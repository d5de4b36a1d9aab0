"""Chapter files from the summary's chapters, for players and for YouTube.

==================  ==========================  ===============================================
exporter            file                        read by
==================  ==========================  ===============================================
``chapters-vtt``    ``chapters.vtt``            HTML ``<track kind="chapters">`` (the report's player too)
``ffmetadata``      ``chapters.ffmetadata``     ``ffmpeg -i video -i chapters.ffmetadata -map_chapters 1``
``youtube``         ``chapters.youtube.txt``    pasted into a YouTube description
==================  ==========================  ===============================================

Times are frame-accurate: on constant-rate video each chapter boundary is snapped to the nearest
frame boundary at the declared rate (``video.fps_rational``), and a millisecond time is that
frame's start rounded *up* to the next millisecond, so a player seeking there shows that frame and
not the one before (a frame start rounded down would land in the previous frame). FFmpeg metadata
uses a 1/1000 time base for the same reason: MP4 stores chapter times in milliseconds, rounding
down any finer time. On variable-rate video the times are kept as the summary gives them.

Chapters are sorted, clipped to the video, and made not to overlap (a chapter ends where the next
one starts); chapters left shorter than a frame are dropped.

YouTube's rules (the first timestamp is 00:00, each chapter lasts at least 10 s, whole seconds) are
met by merging: the first chapter is extended back to 00:00; then, as long as some chapter lasts
less than 10 s (counted on the whole seconds written), the earliest such chapter is merged with the
shorter of its two neighbours (the one before where they are as long), so that a run of short scenes
becomes several chapters of about 10 s, not one: joined to the one before, that one keeps its title
and now runs to the next chapter; joined to the one after, the longer of the two gives the title.
When the short chapter is the first, it absorbs the chapter after it, keeping its own title. Times are
rounded to the nearest second. YouTube shows chapters only when there are at least three; fewer
are still written, and the log says so.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..timeline import Timeline, atomic_write_text
from .base import ExportContext, Exporter, exact_rate
from .cuts import seconds_to_frame

logger = logging.getLogger(__name__)

YOUTUBE_MIN_S = 10
YOUTUBE_MIN_CHAPTERS = 3


@dataclass(frozen=True)
class ChapterSpan:
    """One chapter as the files write it.

    ``start``/``end`` are exact seconds (a fraction: ``frame / rate`` when snapped);
    ``first_frame``/``end_frame`` the frames (end exclusive), ``None`` on variable-rate video.
    """

    start: Fraction
    end: Fraction
    title: str
    first_frame: int | None = None
    end_frame: int | None = None

    @property
    def start_ms(self) -> int:
        return ceil_ms(self.start)

    @property
    def end_ms(self) -> int:
        return ceil_ms(self.end)


def ceil_ms(t: Fraction) -> int:
    """``t`` in whole milliseconds, rounded up (a frame start rounded up stays in that frame)."""
    return math.ceil(t * 1000)


def _title(text: str, i: int) -> str:
    return " ".join(str(text).split()) or f"Chapter {i}"


def chapter_spans(timeline: Timeline, context: ExportContext) -> list[ChapterSpan]:
    """The summary's chapters, cleaned and (on constant-rate video) snapped to frames."""
    if "chapter_spans" in context._cache:
        return context._cache["chapter_spans"]
    s = context.summary
    spans: list[ChapterSpan] = []
    if s is not None and s.chapters:
        duration = Fraction(context.duration).limit_denominator(10**6)
        rate = None if timeline.video.variable_frame_rate else exact_rate(timeline)
        raw = sorted(((max(0.0, c.start), c.end, _title(c.title, i)) for i, c in enumerate(s.chapters, 1)),
                     key=lambda x: x[0])
        bounds: list[tuple[Fraction, Fraction, str, int | None, int | None]] = []
        for start, end, title in raw:
            if rate is not None:
                total = timeline.video.frame_count or seconds_to_frame(float(duration), float(rate))
                f0 = min(seconds_to_frame(start, float(rate)), total)
                f1 = min(seconds_to_frame(end, float(rate)), total)
                bounds.append((f0 / rate, f1 / rate, title, f0, f1))
            else:
                t0 = Fraction(start).limit_denominator(10**6)
                t1 = min(Fraction(end).limit_denominator(10**6), duration)
                bounds.append((t0, t1, title, None, None))
        for i, (t0, t1, title, f0, f1) in enumerate(bounds):
            if i + 1 < len(bounds) and bounds[i + 1][0] < t1:  # overlaps the next: end where it starts
                t1, f1 = bounds[i + 1][0], bounds[i + 1][3]
            if t1 <= t0:
                logger.info("chapter %r (%.3f s) is shorter than a frame after clean-up; left out of "
                            "the chapter files", title, float(t0))
                continue
            spans.append(ChapterSpan(t0, t1, title, f0, f1))
    context._cache["chapter_spans"] = spans
    return spans


# --- WebVTT -----------------------------------------------------------------------------------------------


def vtt_stamp(ms: int) -> str:
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chapters_vtt(spans: list[ChapterSpan]) -> str:
    """WebVTT for ``<track kind="chapters">``: one cue per chapter, its title as the cue text."""
    blocks = ["WEBVTT\n"]
    for i, c in enumerate(spans, 1):
        blocks.append(f"chapter-{i}\n{vtt_stamp(c.start_ms)} --> {vtt_stamp(c.end_ms)}\n{_vtt_escape(c.title)}\n")
    return "\n".join(blocks)


# --- FFmpeg metadata ----------------------------------------------------------------------------------------


def _ff_escape(text: str) -> str:
    """FFmpeg metadata values escape ``=``, ``;``, ``#``, ``\\`` and newlines with a backslash."""
    out = []
    for ch in " ".join(str(text).split()):
        out.append("\\" + ch if ch in "=;#\\" else ch)
    return "".join(out)


def ffmetadata(spans: list[ChapterSpan], title: str | None = None) -> str:
    """``;FFMETADATA1`` with one ``[CHAPTER]`` per chapter (TIMEBASE=1/1000, START/END, title)."""
    lines = [";FFMETADATA1"]
    if title:
        lines.append(f"title={_ff_escape(title)}")
    for c in spans:
        lines += ["", "[CHAPTER]", "TIMEBASE=1/1000", f"START={c.start_ms}", f"END={c.end_ms}",
                  f"title={_ff_escape(c.title)}"]
    return "\n".join(lines) + "\n"


# --- YouTube ---------------------------------------------------------------------------------------------


def youtube_stamp(seconds: int, long_video: bool) -> str:
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if long_video and seconds >= 3600 else f"{h * 60 + m:02d}:{s:02d}"


def youtube_chapters(spans: list[ChapterSpan], duration: float) -> list[tuple[int, str]]:
    """``(second, title)`` per line after YouTube's rules: first at 0, each at least 10 s (see the
    module's docstring for how shorter chapters are merged)."""
    items = [[int(round(c.start)), c.title] for c in spans]
    if not items:
        return []
    items[0][0] = 0
    end = int(duration)

    def length(i: int) -> int:
        return (items[i + 1][0] if i + 1 < len(items) else end) - items[i][0]

    while len(items) > 1:
        short = next((i for i in range(len(items)) if length(i) < YOUTUBE_MIN_S), None)
        if short is None:
            break
        if short == 0:
            del items[1]  # the first absorbs the next, keeping its title
        elif short == len(items) - 1 or length(short - 1) <= length(short + 1):
            del items[short]  # joins the one before (the shorter neighbour), which keeps its title
        else:  # joins the shorter one after it; the longer of the two gives the title
            if length(short + 1) > length(short):
                items[short][1] = items[short + 1][1]
            del items[short + 1]
    return [(t, title) for t, title in items]


def youtube_text(spans: list[ChapterSpan], duration: float) -> str:
    """``00:00 Title`` lines (``H:MM:SS`` past an hour); angle brackets, which YouTube refuses in
    descriptions, are removed from titles."""
    long_video = duration >= 3600
    lines = []
    for t, title in youtube_chapters(spans, duration):
        clean = " ".join(title.replace("<", " ").replace(">", " ").split()) or "Chapter"
        lines.append(f"{youtube_stamp(t, long_video)} {clean}")
    return "\n".join(lines) + ("\n" if lines else "")


# --- the exporters --------------------------------------------------------------------------------------


class _ChaptersExporter(Exporter):
    def render(self, spans: list[ChapterSpan], context: ExportContext) -> str:
        raise NotImplementedError

    def export(self, timeline: Timeline, run_dir: Path, context: ExportContext) -> list[Path]:
        spans = chapter_spans(timeline, context)
        if not spans:
            return self.nothing_to_write(run_dir, "no chapters (no summary with chapters)")
        return [atomic_write_text(run_dir / self.filenames[0], self.render(spans, context))]


class ChaptersVttExporter(_ChaptersExporter):
    """``chapters.vtt``: WebVTT chapters for an HTML ``<track kind="chapters">``."""

    name = "chapters-vtt"
    filenames = ("chapters.vtt",)
    description = "the summary's chapters as WebVTT chapters"

    def render(self, spans: list[ChapterSpan], context: ExportContext) -> str:
        return chapters_vtt(spans)


class FfmetadataExporter(_ChaptersExporter):
    """``chapters.ffmetadata``: FFmpeg metadata with the chapters, to mux into the video."""

    name = "ffmetadata"
    filenames = ("chapters.ffmetadata",)
    description = "the summary's chapters as FFmpeg metadata (ffmpeg -map_chapters)"

    def render(self, spans: list[ChapterSpan], context: ExportContext) -> str:
        return ffmetadata(spans, context.summary.title if context.summary else None)


class YoutubeExporter(_ChaptersExporter):
    """``chapters.youtube.txt``: chapter lines for a YouTube description."""

    name = "youtube"
    filenames = ("chapters.youtube.txt",)
    description = "the summary's chapters as YouTube description lines"

    def render(self, spans: list[ChapterSpan], context: ExportContext) -> str:
        lines = youtube_chapters(spans, context.duration)
        if len(lines) < YOUTUBE_MIN_CHAPTERS:
            logger.info("chapters.youtube.txt has %d chapter(s) of at least %d s; YouTube shows chapters only "
                        "with %d or more", len(lines), YOUTUBE_MIN_S, YOUTUBE_MIN_CHAPTERS)
        return youtube_text(spans, context.duration)
