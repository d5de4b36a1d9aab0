"""``summary.md``: the summary, chapters, key moments with their evidence, and what each analyzer did."""
from __future__ import annotations

import logging
import re
from pathlib import Path

from ..summary import Evidence, Summary
from ..timeline import Timeline, atomic_write_text
from .base import ExportContext, Exporter, clock, paragraphs
from .base import span as _span

logger = logging.getLogger(__name__)

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


def video_line(timeline: Timeline, escape=None) -> str:
    """``name · 0:12 (12.0 s) · 320×180 · 30 fps · audio``; ``escape`` the file name (default: Markdown)."""
    v = timeline.video
    parts = [(escape or md)(Path(v.path).name), clock(v.duration, millis=False) + f" ({v.duration:.1f} s)"]
    if v.has_video and v.width and v.height:
        parts.append(f"{v.width}×{v.height}")
    if v.fps:
        parts.append(f"{v.fps:.3g} fps" + (" (variable)" if v.variable_frame_rate else ""))
    parts.append("audio" if v.has_audio else "no audio")
    return " · ".join(parts)


def summary_markdown(timeline: Timeline, context: ExportContext) -> str:
    """The whole ``summary.md`` text."""
    s: Summary | None = context.summary
    name = Path(timeline.video.path).name
    out = [f"# {md(s.title) if s else md(name)}", "", f"*{video_line(timeline)}*", ""]
    if s is None:
        out += ["> No summary was produced: the fusion analyzer did not run or did not finish "
                f"({_fusion_state(timeline)}). The analyzers' results are below and in results.json.", ""]
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
    out += _shots_section(context)
    out += _transcript_section(context)
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
    out.append(f"*Files: results.json (everything), report.html, {', '.join(_files(context))}.*")
    return "\n".join(out) + "\n"


def _fusion_state(timeline: Timeline) -> str:
    track = timeline.tracks.get("fusion")
    if track is None:
        return "not enabled"
    if track.status != "ok":
        return f"{track.status}: {track.reason or 'no reason given'}"
    return "no summary in its track"


def _shots_section(context: ExportContext) -> list[str]:
    shots = context.shots()
    if not shots:
        return ["## Shots", "", "No shot list (cut_analysis did not run or found nothing).", ""]
    avg = sum(s.duration for s in shots) / len(shots)
    kinds: dict[str, int] = {}
    for s in shots[1:]:
        kinds[s.transition_in] = kinds.get(s.transition_in, 0) + 1
    trans = ", ".join(f"{n} {md(k)}" for k, n in sorted(kinds.items())) or "none"
    return ["## Shots", "", f"{len(shots)} shots, {avg:.1f} s on average; transitions: {trans}. "
            "The list is in cuts.csv and cuts.edl.", ""]


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


def _analyzer_table(timeline: Timeline) -> list[str]:
    rows = ["## Analyzers", "", "| analyzer | version | status | events | series | time | note |",
            "|---|---|---|---|---|---|---|"]
    for t in timeline.tracks.values():
        took = f"{t.duration_s:.1f} s" if t.duration_s is not None else ""
        note = t.reason or ("reused from an earlier run" if t.reused else "")
        name = t.analyzer.replace("`", "")
        rows.append(f"| `{name}` | {md(t.version)} | {t.status} | {len(t.events)} | {len(t.series)} "
                    f"| {took} | {md(note)} |")
    return rows + [""]


def _files(context: ExportContext) -> list[str]:
    files = ["summary.md"]
    if context.transcript():
        files += ["transcript.srt", "transcript.vtt"]
    if context.shots():
        files += ["cuts.csv", "cuts.edl"]
    return files


class MarkdownExporter(Exporter):
    """``summary.md``: readable anywhere, also when there is no fusion summary."""

    name = "markdown"
    filenames = ("summary.md",)
    description = "the summary, chapters and key moments as Markdown"

    def export(self, timeline: Timeline, run_dir: Path, context: ExportContext) -> list[Path]:
        return [atomic_write_text(run_dir / "summary.md", summary_markdown(timeline, context))]
