"""``summary.md``: the summary, chapters, key moments with their evidence, and what each analyzer did."""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ..timeline import TEXT_KEYS, Timeline, atomic_write_text, event_text, tracks_providing
from .base import (SUMMARY, ExportContext, Exporter, clock, fps_text, paragraphs, rate_text, run_warnings,
                   stated_duration, was_truncated)
from .base import span as _span

if TYPE_CHECKING:  # the summary models load only when a run has a summary to read
    from ..summary import Evidence, Summary

logger = logging.getLogger(__name__)

MAX_SHOT_LINES = 20
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|#]|(?<!\w)_|_(?!\w))")  # intraword _ is not emphasis


def md(text: object) -> str:
    """Markdown-escape text from analyzers and the LLM, on one line."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))




def _evidence(items: list[Evidence]) -> str:
    if not items:
        return ""
    parts = [f"{md(e.analyzer)} {md(e.label) + ' ' if e.label else ''}@ {_span(e.start, e.end)}" for e in items[:4]]
    more = f" and {len(items) - 4} more" if len(items) > 4 else ""
    return f" _(evidence: {'; '.join(parts)}{more})_"


def _length(seconds: float) -> str:
    return f"{clock(round(seconds, 1))} ({seconds:.1f} s)"


def duration_text(timeline: Timeline) -> str:
    """``0:12 (12.0 s)``; ``… of audio`` for audio-only input; for a file whose decoding stopped
    early, the analyzed length against the file's (``0:13 (13.4 s) analyzed of 0:24 (24.0 s)``)."""
    v = timeline.video
    text = _length(v.duration) + ("" if v.has_video else " of audio")
    if not was_truncated(timeline):
        return text
    stated = stated_duration(timeline)
    if stated is not None:
        return f"{text} analyzed of {_length(stated)}: decoding stopped early, results cover only that part"
    return f"{text} analyzed: decoding stopped before the end of the file, results cover only that part"


def video_line(timeline: Timeline, escape=None) -> str:
    """``name · 0:12 (12.0 s) · 320×180 · 30 fps · audio``, or ``name · 0:11 (11.0 s) of audio``
    for audio-only input; ``escape`` the file name (default: Markdown)."""
    v = timeline.video
    parts = [(escape or md)(Path(v.path).name), duration_text(timeline)]
    if not v.has_video:
        return " · ".join(parts)
    if v.width and v.height:
        parts.append(f"{v.width}×{v.height}")
    rate = rate_text(timeline)
    if rate:
        parts.append(rate)
    parts.append("audio" if v.has_audio else "no audio")
    return " · ".join(parts)


def stream_descriptions(timeline: Timeline) -> list[tuple[str, bool]]:
    """One ``(text, analyzed)`` per stream in the file (``video.streams``); [] when unknown."""
    out = []
    for st in timeline.video.streams:
        bits = [st.codec] if st.codec else []
        if st.width and st.height:
            bits.append(f"{st.width}×{st.height}")
        if st.fps:
            bits.append(fps_text(st.fps))
        if st.sample_rate:
            bits.append(f"{st.sample_rate / 1000:g} kHz")
        if st.channels:
            bits.append(f"{st.channels} ch")
        if st.language:
            bits.append(st.language)
        if st.default:
            bits.append("default")
        out.append((f"{st.kind} #{st.index}" + (f" ({', '.join(bits)})" if bits else ""), st.analyzed))
    return out


def _streams_lines(timeline: Timeline) -> list[str]:
    streams = stream_descriptions(timeline)
    if not streams:
        return []
    items = [f"{md(text)} {'**analyzed**' if used else 'not analyzed'}" for text, used in streams]
    return [f"Streams: {'; '.join(items)}.", ""]


def summary_markdown(timeline: Timeline, context: ExportContext) -> str:
    """The whole ``summary.md`` text."""
    s: Summary | None = context.summary
    name = Path(timeline.video.path).name
    out = [f"# {md(s.title) if s else md(name)}", "", f"*{video_line(timeline)}*", ""]
    out += _streams_lines(timeline)
    warnings = run_warnings(timeline)
    if warnings:
        out += [f"> **Warning:** {md(w)}" + ("  " if i < len(warnings) - 1 else "")
                for i, w in enumerate(warnings)] + [""]
    if s is None:
        out += [f"> No summary was produced ({summary_state(timeline)}). "
                "The analyzers' results are below and in results.json.", ""]
    else:
        if s.extractive:
            out += ["> This summary is **extractive**: no language model wrote it; it was assembled "
                    "from the analyzers' events.", ""]
        else:
            out += [f"> Written by {md(s.backend)}{' (' + md(s.model) + ')' if s.model else ''}; every "
                    "chapter and key moment was checked against the timeline.", ""]
        out += [md(s.paragraph), ""]
        if s.detailed.strip():
            out += [md(p) + "\n" for p in paragraphs(s.detailed)]
        if s.chapters:
            out += ["## Chapters", ""]
            for i, ch in enumerate(s.chapters, 1):
                line = f"{i}. **{_span(ch.start, ch.end)} {md(ch.title)}**"
                if ch.summary:
                    line += f" — {md(ch.summary)}"
                out.append(line + _evidence(ch.evidence))
            out.append("")
        if s.key_moments:
            out += ["## Key moments", ""]
            out += [f"- **{_span(m.time, m.end)}** {md(m.text)}{_evidence(m.evidence)}" for m in s.key_moments]
            out.append("")
    if timeline.video.has_video:
        out += _shots_section(context)
    out += _transcript_section(context)
    if s is None:  # (a summary quotes the events; without one, say what each analyzer found)
        out += _found_section(timeline, context)
    out += _analyzer_table(timeline)
    if s is not None:
        g = s.grounding
        notes = [*s.notes, *g.notes]
        out += ["## Notes", "",
                f"- Grounding: {g.checked} times checked, {g.kept} kept, {g.snapped} snapped to an event, "
                f"{g.dropped} dropped."]
        if s.tokens_used is not None:
            out.append(f"- Tokens: {s.tokens_used}" + (f" of a {s.token_budget} budget" if s.token_budget else ""))
        out += [f"- {md(n)}" for n in notes]
        out.append("")
    out.append(f"*Files: results.json (everything), {', '.join(_files(context))}.*")
    return "\n".join(out) + "\n"


def summary_state(timeline: Timeline) -> str:
    """Why there is no summary, from the tracks providing ``"summary"`` (fusion or a plugin's)."""
    tracks = tracks_providing(timeline.tracks, SUMMARY)
    if not tracks:
        return "no analyzer providing a summary, such as fusion, was enabled"
    t = tracks[0]
    if t.status != "ok":
        return f"{t.analyzer} {t.status}: {t.reason or 'no reason given'}"
    return f"{t.analyzer} put no summary in its track"


def _shots_section(context: ExportContext) -> list[str]:
    shots = context.shots()
    if not shots:
        return ["## Shots", "", "No shot list (no analyzer providing shots, such as cut_analysis, ran or "
                "found any).", ""]
    avg = sum(s.duration for s in shots) / len(shots)
    kinds: dict[str, int] = {}
    for s in shots[1:]:
        kinds[s.transition_in] = kinds.get(s.transition_in, 0) + 1
    trans = ", ".join(f"{n} {md(k)}{'s' if n > 1 else ''}" for k, n in sorted(kinds.items())) or "none"
    many = f"{len(shots)} shots, {avg:.1f} s on average" if len(shots) > 1 else f"1 shot of {avg:.1f} s"
    lines = ["## Shots", "", f"{many}; transitions: {trans}. The full list is in cuts.csv and cuts.edl.", ""]
    for shot in shots[:MAX_SHOT_LINES]:
        frames = (f" frames {shot.first_frame}–{shot.last_frame}," if shot.first_frame is not None else "")
        lines.append(f"- `{clock(shot.start, millis=True)}` #{shot.index}{frames} {shot.duration:.2f} s, "
                     f"{md(shot.transition_in)}")
    if len(shots) > MAX_SHOT_LINES:
        lines.append(f"- … {len(shots) - MAX_SHOT_LINES} more")
    return lines + [""]


def _transcript_section(context: ExportContext) -> list[str]:
    cues = context.transcript()
    if not cues:
        return ["## Transcript", "", "No transcript: no speech-to-text analyzer produced text.", ""]
    lines = ["## Transcript", "", f"{len(cues)} lines (full text in transcript.srt / transcript.vtt):", ""]
    for c in cues[:20]:
        who = f"**{md(c.speaker)}:** " if c.speaker else ""
        lines.append(f"- `{clock(c.start)}` {who}{md(c.text)}")
    if len(cues) > 20:
        lines.append(f"- … {len(cues) - 20} more")
    return lines + [""]


#: without a summary, the events listed per analyzer (all are in results.json and on report.html's timeline)
MAX_FOUND_EVENTS = 8
#: where an event's text is (``timeline.event_text``): a detector's class or a name too
EVENT_TEXT_KEYS = (*TEXT_KEYS, "class", "name")


def _found_section(timeline: Timeline, context: ExportContext) -> list[str]:
    """What each ``ok`` analyzer found, for a summary.md without a summary: its events' labels counted and its
    first events with their times and text. The shot list's and the transcript's tracks are left out: their
    sections above list them."""
    shown = {t.analyzer for t in (context.shot_track(),) if t is not None}
    shown |= {c.analyzer for c in context.transcript()}
    lines = []
    for t in timeline.tracks.values():
        if t.status != "ok" or not t.events or t.analyzer in shown:
            continue
        counts = Counter(ev.label for ev in t.events)
        labels = ", ".join(f"{md(k)}×{n}" if n > 1 else md(k) for k, n in counts.most_common())
        events = sorted(t.events, key=lambda ev: (ev.start, ev.end))
        quoted = "; ".join(_found_event(ev) for ev in events[:MAX_FOUND_EVENTS])
        more = f"; … {len(events) - MAX_FOUND_EVENTS} more" if len(events) > MAX_FOUND_EVENTS else ""
        lines.append(f"- `{t.analyzer.replace('`', '')}` ({len(events)} event{'s' if len(events) > 1 else ''}: "
                     f"{labels}): {quoted}{more}")
    if not lines:
        return []
    return ["## What each analyzer found", "", *lines, "",
            "All events are in results.json and on report.html's timeline.", ""]


def _found_event(ev) -> str:
    text = event_text(ev, EVENT_TEXT_KEYS)
    when = f"`{_span(ev.start, ev.end if ev.end > ev.start else None)}`"
    return f"{when} {md(ev.label)}" + (f" \"{md(text[:80])}\"" if text else "")


def _analyzer_table(timeline: Timeline) -> list[str]:
    rows = ["## Analyzers", "", "| analyzer | version | status | events | series | time | note |",
            "|---|---|---|---|---|---|---|"]
    for t in timeline.tracks.values():
        took = f"{t.duration_s:.1f} s" if t.duration_s is not None else ""
        note = t.reason or ("reused from an earlier run" if t.reused else "")
        name = t.analyzer.replace("`", "")
        rows.append(f"| `{name}` | {md(t.version)} | {t.status} | {len(t.events)} | {len(t.series)} "
                    f"| {took} | {md(note)} |")
    return rows + [""] + _receipt_table(timeline)


def _receipt_table(timeline: Timeline) -> list[str]:
    """How it ran: devices, variants, timings, VRAM and batches (``outputs.receipt``)."""
    from .receipt import COLUMNS, receipt_rows, run_line

    rows, line = receipt_rows(timeline), run_line(timeline)
    if not rows and not line:
        return []
    out = ["### How it ran", "", line, ""] if line else ["### How it ran", ""]
    out += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(md(v) for v in row) + " |" for row in rows]
    return out + [""]


def _files(context: ExportContext) -> list[str]:
    files = ["report.html"] if context.writes("html") else []
    files.append("summary.md")
    if context.transcript() and context.writes("subtitles"):
        files += ["transcript.srt", "transcript.vtt"]
    if context.shots():
        files += ["cuts.csv"] if context.writes("cuts") else []
        files += ["cuts.edl"] if context.frame_rate and context.writes("edl") else []
    if context.frame_rate and context.timeline.video.has_video:
        files += [f for name, f in (("otio", "timeline.otio"), ("fcpxml", "timeline.fcpxml"),
                                    ("fcp7", "timeline.fcp7.xml")) if context.writes(name)]
    if context.summary is not None and context.summary.chapters:
        files += [f for name, f in (("chapters-vtt", "chapters.vtt"), ("ffmetadata", "chapters.ffmetadata"),
                                    ("youtube", "chapters.youtube.txt")) if context.writes(name)]
    return files


class MarkdownExporter(Exporter):
    """``summary.md``: readable anywhere, also when there is no fusion summary."""

    name = "markdown"
    filenames = ("summary.md",)
    description = "the summary, chapters and key moments as Markdown"

    def export(self, timeline: Timeline, run_dir: Path, context: ExportContext) -> list[Path]:
        return [atomic_write_text(run_dir / "summary.md", summary_markdown(timeline, context))]
