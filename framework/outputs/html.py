"""``report.html``: one self-contained page (inline CSS/JS, thumbnails as data URIs).

It shows the player (when the video is reachable), the summary and key moments, a shared time
axis with one lane per analyzer (events as blocks, series as SVG sparklines), chapters, the shots
with thumbnails, the transcript and what every analyzer did. Clicking a moment, chapter, event,
shot or transcript line seeks the player (``video.currentTime``); so does opening the page as
``report.html#t=SECONDS`` (the links ``framework search`` and the library app give).

Stable hooks for tests and user styles: ``#player``, ``#no-video``, ``#tl``, ``#playhead``,
``.lane[data-analyzer=NAME][data-status=ok|failed|skipped]``, ``.ev[data-t]``, ``.chapters-lane``,
``.moment[data-t]``, ``.chapter[data-t]``, ``.shot[data-t][data-index]``, ``img.thumb``,
``.cue[data-t][data-end]``, ``.frames[data-first][data-last]`` (a shot's decoded frames),
``#warnings`` (the run's warnings), ``#streams`` (the file's streams), ``#chapter-now`` (the
current chapter, from the player's ``<track kind="chapters">``: the cues of ``chapters.vtt``).
Audio-only input gets an ``<audio id="player">`` and no shots section. All text is escaped: labels come from third-party plugins.
"""
from __future__ import annotations

import base64
import bisect
import html
import importlib.resources
import logging
import os
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from .. import __version__
from ..timeline import Event, Series, Timeline, Track, atomic_write_text
from .base import SUMMARY, ExportContext, Exporter, clock, paragraphs, run_warnings, span
from .chapters import chapter_spans, chapters_vtt
from .markdown import summary_state, stream_descriptions, video_line
from .subtitles import to_vtt

if TYPE_CHECKING:  # the summary models load only when a run has a summary to read
    from ..summary import Evidence, Summary

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_LANE = 1500
MAX_ROWS = 4
SPARK_POINTS = 400
_HEX = re.compile(r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def e(text: object) -> str:
    """HTML-escape anything for text or a quoted attribute."""
    return html.escape(str(text), quote=True)


def _t(t: float) -> str:
    return f"{max(0.0, t):.3f}"


def _pct(t: float, duration: float) -> float:
    return 0.0 if duration <= 0 else max(0.0, min(100.0, 100.0 * t / duration))


def label_color(label: str) -> str:
    """A stable colour per label, so the same label looks the same in every lane and report."""
    hue = zlib.crc32(label.encode("utf-8")) % 360
    return f"hsl({hue} 55% 46%)"


def _colors(event: Event) -> list[str]:
    raw = event.data.get("colors")
    if not isinstance(raw, list):
        return []
    return [c for c in raw if isinstance(c, str) and _HEX.match(c)][:8]


_spans = span


# --- the page ---------------------------------------------------------------------------------


def render_report(timeline: Timeline, context: ExportContext) -> str:
    """The whole ``report.html`` text."""
    s = context.summary
    title = s.title if s else Path(timeline.video.path).name
    if s is None:
        badge = '<span class="badge">no summary</span>'
    elif s.extractive:
        badge = '<span class="badge">extractive summary</span>'
    else:
        badge = f'<span class="badge llm">summary by {e(s.model or s.backend)}</span>'
    sections = [_warnings_section(timeline), _hero(timeline, context), _timeline_section(context),
                _chapters_section(s)]
    if timeline.video.has_video:  # audio-only input: no shots, no thumbnails
        sections.append(_shots_section(context))
    sections += [_transcript_section(context), _analyzers_section(timeline)]
    body = "\n".join(x for x in sections if x)
    values = {"title": e(title), "badge": badge, "meta": video_line(timeline, e),
              "streams": _streams(timeline),
              "version": e(__version__), "duration": _t(context.duration), "body": body}
    template = (importlib.resources.files("framework.outputs") / "templates" / "report.html").read_text("utf-8")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _warnings_section(timeline: Timeline) -> str:
    """Every run warning (a truncated file, a stream that could not be read...), above everything."""
    warnings = run_warnings(timeline)
    if not warnings:
        return ""
    items = "".join(f"<li>{e(w)}</li>" for w in warnings)
    return (f'<section id="warnings" class="notice"><b>{"Warning" if len(warnings) == 1 else "Warnings"}'
            f"</b><ul>{items}</ul></section>")


def _streams(timeline: Timeline) -> str:
    """The file's streams and which were analyzed, under the header; empty when unknown."""
    streams = stream_descriptions(timeline)
    if not streams:
        return ""
    items = " · ".join(f'<span class="stream{" analyzed" if used else ""}">{e(text)} '
                       f'{"<b>analyzed</b>" if used else "not analyzed"}</span>' for text, used in streams)
    return f'<div class="meta" id="streams">Streams: {items}</div>'


def _video_src(video: Path, run_dir: Path) -> str:
    try:
        rel = os.path.relpath(video, run_dir.resolve())
    except ValueError:  # another drive (Windows)
        return video.as_uri()
    return quote(Path(rel).as_posix())


def _hero(timeline: Timeline, context: ExportContext) -> str:
    if context.video_path is not None:
        tracks = ""
        cues = context.transcript()
        if cues:
            vtt = base64.b64encode(to_vtt(cues).encode("utf-8")).decode("ascii")
            tracks = (f'<track kind="subtitles" label="Transcript" srclang="{e(_lang(context))}" '
                      f'src="data:text/vtt;base64,{vtt}">')
        spans = chapter_spans(timeline, context)
        if spans:  # the same cues as chapters.vtt; the page shows the current one under the player
            vtt = base64.b64encode(chapters_vtt(spans).encode("utf-8")).decode("ascii")
            tracks += (f'<track kind="chapters" label="Chapters" srclang="{e(_lang(context))}" '
                       f'src="data:text/vtt;base64,{vtt}" default>')
        src = _video_src(context.video_path, context.run_dir)
        if timeline.video.has_video:
            player = (f'<video id="player" controls preload="metadata" src="{e(src)}">{tracks}</video>'
                      + ('<div id="chapter-now" class="chapter-now" hidden></div>' if spans else "") +
                      '<div id="video-error" class="notice" hidden>This browser cannot play the video '
                      f"({e(timeline.video.video_codec or 'unknown codec')}); the timeline still works.</div>")
        else:
            player = (f'<audio id="player" controls preload="metadata" src="{e(src)}"></audio>'
                      '<div id="video-error" class="notice" hidden>This browser cannot play the audio; '
                      "the timeline still works.</div>")
    else:
        why = context.video_note or "the video is not reachable"
        player = (f'<div id="no-video" class="notice">No player: {e(why)}. '
                  "Moments still move the red playhead on the timeline.</div>")
    s = context.summary
    if s is None:
        text = (f'<p class="paragraph">No summary was produced ({e(summary_state(timeline))}). '
                "The analyzers' results are below.</p>")
    else:
        detailed = "".join(f"<p>{e(p)}</p>" for p in paragraphs(s.detailed))
        text = f'<p class="paragraph">{e(s.paragraph)}</p>'
        if detailed:
            text += f'<details class="detailed"><summary>Detailed summary</summary>{detailed}</details>'
        if s.extractive:
            text += ('<p class="ev-note">Extractive: assembled from the analyzers\' events; '
                     "no language model wrote it.</p>")
        if s.key_moments:
            items = "".join(
                f'<li class="moment" tabindex="0" data-t="{_t(m.time)}"><span class="t">{_spans(m.time, m.end)}</span>'
                f"<span>{e(m.text)}{_evidence(m.evidence)}</span></li>" for m in s.key_moments)
            text += f'<h2 style="margin-top:14px">Key moments</h2><ul class="moments">{items}</ul>'
    return (f'<section class="hero" id="overview"><div class="player-wrap">{player}</div>'
            f'<div class="summary-card">{text}</div></section>')


def _lang(context: ExportContext) -> str:
    return context.summary.language if context.summary else "en"


def _evidence(items: list[Evidence]) -> str:
    if not items:
        return ""
    parts = ", ".join(f"{e(x.analyzer)}{' ' + e(x.label) if x.label else ''} @ {_spans(x.start, x.end)}"
                      for x in items[:4])
    more = f" +{len(items) - 4}" if len(items) > 4 else ""
    return f'<div class="evidence">evidence: {parts}{more}</div>'


# --- the time axis and lanes --------------------------------------------------------------------


def _ticks(duration: float) -> list[float]:
    steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200]
    step = next((s for s in steps if duration / s <= 12), steps[-1])
    return [i * step for i in range(int(duration // step) + 1)]


def _timeline_section(context: ExportContext) -> str:
    d = context.duration
    ticks = "".join(f'<span class="tick" style="left:{_pct(t, d):.3f}%">{clock(t)}</span>' for t in _ticks(d))
    lanes = [f'<div class="lane axis"><div class="lane-label"></div><div class="lane-body">{ticks}</div></div>']
    s = context.summary
    if s is not None and s.chapters:
        blocks = "".join(_block(ch.start, ch.end, ch.title, d, f"chapter: {ch.title}", "") for ch in s.chapters)
        lanes.append('<div class="lane chapters-lane" data-kind="chapters"><div class="lane-label">chapters'
                     f'<small>{len(s.chapters)} from the summary</small></div><div class="lane-body">'
                     f'<div class="row">{blocks}</div></div></div>')
    for track in context.timeline.tracks.values():
        lanes.append(_lane(track, d))
    return ('<section id="timeline"><h2>Timeline <span id="time-readout"></span></h2>'
            f'<div class="tl" id="tl">{"".join(lanes)}<div id="playhead"></div></div></section>')


def _block(start: float, end: float, label: str, duration: float, title: str, style: str,
           instant: bool = False) -> str:
    left = _pct(start, duration)
    width = max(0.0, _pct(end, duration) - left)
    cls = "ev instant" if instant else "ev"
    text = "" if instant else e(label)
    return (f'<div class="{cls}" data-t="{_t(start)}" title="{e(title)}" '
            f'style="left:{left:.3f}%;width:{width:.3f}%;{style}">{text}</div>')


def _event_title(track: Track, ev: Event) -> str:
    parts = [f"{track.analyzer}: {ev.label}", _spans(ev.start, ev.end if ev.end > ev.start else None)]
    if ev.score is not None:
        parts.append(f"score {ev.score:.2f}")
    for key, value in list(ev.data.items())[:4]:
        if isinstance(value, (str, int, float, bool)):
            parts.append(f"{key}={str(value)[:60]}")
    return " · ".join(parts)


def _pack(events: list[Event], duration: float) -> list[list[Event]]:
    """Greedy interval packing into at most MAX_ROWS rows; overflow shares the freest row."""
    rows: list[list[Event]] = []
    ends: list[float] = []
    pad = duration * 0.004
    for ev in sorted(events, key=lambda x: (x.start, x.end)):
        end = max(ev.end, ev.start + pad)
        for i, last in enumerate(ends):
            if last <= ev.start:
                rows[i].append(ev)
                ends[i] = end
                break
        else:
            if len(rows) < MAX_ROWS:
                rows.append([ev])
                ends.append(end)
            else:
                i = min(range(len(ends)), key=ends.__getitem__)
                rows[i].append(ev)
                ends[i] = max(ends[i], end)
    return rows


def _lane(track: Track, duration: float) -> str:
    name = e(track.analyzer)
    info = f"v{e(track.version)} · {len(track.events)} events"
    if track.series:
        info += f" · {len(track.series)} series"
    head = (f'<div class="lane {e(track.status)}" data-analyzer="{name}" data-status="{e(track.status)}">'
            f'<div class="lane-label" title="{name}">{name}<small>{info}</small></div><div class="lane-body">')
    if track.status != "ok":
        reason = e(track.reason or "no reason given")
        return head + f'<div class="status {e(track.status)}">{e(track.status)}: {reason}</div></div></div>'
    events = track.events
    note = ""
    if len(events) > MAX_EVENTS_PER_LANE:
        step = len(events) / MAX_EVENTS_PER_LANE
        events = [events[int(i * step)] for i in range(MAX_EVENTS_PER_LANE)]
        note = (f'<div class="status">showing {MAX_EVENTS_PER_LANE} of {len(track.events)} events, evenly '
                "spaced; all are in results.json</div>")
    rows = []
    for row in _pack(events, duration):
        blocks = []
        for ev in row:
            colors = _colors(ev)
            if colors:
                stops = ",".join(f"{c} {100 * i / len(colors):.1f}% {100 * (i + 1) / len(colors):.1f}%"
                                 for i, c in enumerate(colors))
                style = f"background:linear-gradient(90deg,{stops});color:transparent"
            else:
                style = f"background:{label_color(ev.label)}"
            blocks.append(_block(ev.start, ev.end, ev.label, duration, _event_title(track, ev), style,
                                 instant=ev.end <= ev.start))
        rows.append(f'<div class="row">{"".join(blocks)}</div>')
    rows += [_sparkline(s, duration) for s in track.series]
    if not rows:
        rows.append('<div class="status">no events</div>')
    return head + "".join(rows) + note + "</div></div>"


def _sparkline(series: Series, duration: float) -> str:
    """An inline SVG polyline (min/max-decimated so peaks survive); gaps (None) break the line.

    Works on two float arrays (16 bytes a sample), so an hour-long per-frame series costs a few
    MB while the report is written, not a Python tuple per sample.
    """
    import numpy as np

    times = np.asarray(series.times, dtype=np.float64)
    values = np.array(series.values, dtype=np.float64)  # None -> nan
    valid = np.isfinite(values) & np.isfinite(times)
    if not valid.any() or duration <= 0:
        return f'<div class="row series"><span class="series-name">{e(series.name)}: no values</span></div>'
    lo, hi = float(values[valid].min()), float(values[valid].max())
    span = hi - lo or 1.0
    # runs of valid samples: each becomes one polyline
    edges = np.flatnonzero(np.diff(np.concatenate(([0], valid.view(np.int8), [0]))))
    polylines = []
    for a, b in zip(edges[::2], edges[1::2]):
        idx = _decimate(values, int(a), int(b), SPARK_POINTS)
        coords = " ".join(f"{1000 * min(1.0, max(0.0, times[i] / duration)):.1f},"
                          f"{95 - 90 * (values[i] - lo) / span:.1f}" for i in idx)
        if len(idx) == 1:
            coords += f" {float(coords.split(',')[0]) + 2:.1f},{coords.split(',')[1]}"
        polylines.append(f'<polyline points="{coords}"/>')
    unit = f" {series.unit}" if series.unit else ""
    return (f'<div class="row series" data-series="{e(series.name)}"><svg class="spark" viewBox="0 0 1000 100" '
            f'preserveAspectRatio="none" role="img" aria-label="{e(series.name)}">{"".join(polylines)}</svg>'
            f'<span class="series-name">{e(series.name)} {lo:.3g}…{hi:.3g}{e(unit)}</span></div>')


def _decimate(values, start: int, stop: int, limit: int) -> list[int]:
    """Indices in ``[start, stop)`` to draw: all of them, or each bucket's lowest and highest."""
    if stop - start <= limit:
        return list(range(start, stop))
    import numpy as np

    buckets = limit // 2
    bounds = np.linspace(start, stop, buckets + 1).astype(int)
    out: list[int] = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b <= a:
            continue
        chunk = values[a:b]
        out.extend(sorted({int(a + chunk.argmin()), int(a + chunk.argmax())}))
    return out


# --- chapters, shots, transcript, analyzers ---------------------------------------------------


def _chapters_section(s: Summary | None) -> str:
    if s is None or not s.chapters:
        why = "no summary was produced" if s is None else "the summary has no chapters"
        return f'<section id="chapters"><h2>Chapters</h2><p class="notice plain">No chapters: {why}.</p></section>'
    items = "".join(
        f'<li class="chapter" tabindex="0" data-t="{_t(ch.start)}"><span class="t">{_spans(ch.start, ch.end)}</span>'
        f'<span><b>{e(ch.title)}</b>{e(ch.summary)}{_evidence(ch.evidence)}</span></li>' for ch in s.chapters)
    return f'<section id="chapters"><h2>Chapters</h2><ol class="chapters">{items}</ol></section>'


def shot_tags(context: ExportContext) -> dict[int, list[tuple[str, list[str]]]]:
    """Per shot: labels of events from other tracks that span exactly that shot (camera motion,
    palette...) and the scene it belongs to. Each tag is ``(text, colours)``."""
    shots = context.shots()
    fps = context.fps or 25.0
    tol = max(0.05, 1.5 / fps)
    shot_track = context.shot_track()
    tags: dict[int, list[tuple[str, list[str]]]] = {s.index: [] for s in shots}
    for track in context.timeline.tracks.values():
        if track.status != "ok" or track is shot_track or SUMMARY in track.provides or not track.events:
            continue
        events = sorted(track.events, key=lambda x: x.start)
        starts = [x.start for x in events]
        scenes = [x for x in events if x.label == "scene"]
        for shot in shots:
            if scenes:
                number = next((x.data.get("index", i + 1) for i, x in enumerate(scenes)
                               if x.start - tol <= shot.midpoint < x.end + tol), None)
                if number is not None:
                    tags[shot.index].append((f"scene {number}", []))
                continue
            lo = bisect.bisect_left(starts, shot.start - tol)
            hi = bisect.bisect_right(starts, shot.start + tol)
            for ev in events[lo:hi]:
                if abs(ev.end - shot.end) <= tol:
                    tags[shot.index].append((ev.label, _colors(ev)))
    return tags


def _shots_section(context: ExportContext) -> str:
    shots = context.shots()
    if not shots:
        return ('<section id="shots"><h2>Shots</h2><p class="notice plain">No shot list: no analyzer providing '
                "shots, such as cut_analysis, ran or found any.</p></section>")
    thumbs = context.thumbnails()
    v = context.timeline.video
    ar = f"--ar:{v.width}/{v.height}" if v.width and v.height else ""
    tags = shot_tags(context)
    note = ""
    if len(thumbs) < len(shots):
        why = context.video_note if context.video_path is None else "some frames could not be decoded"
        note = (f'<p class="notice plain">{len(shots) - len(thumbs)} of {len(shots)} shots have no thumbnail: '
                f"{e(why)}.</p>")
    cards = []
    for shot in shots:
        path = thumbs.get(shot.index)
        if path is not None:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            img = f'<img class="thumb" alt="shot {shot.index}" src="data:image/jpeg;base64,{data}">'
        else:
            img = '<div class="thumb-missing">no thumbnail</div>'
        chips = "".join(_tag(text, colors) for text, colors in tags.get(shot.index, []))
        frames = ""
        if shot.first_frame is not None:  # the decoded frames the shot's event names, never time x fps
            frames = (f' · <span class="frames" data-first="{shot.first_frame}" data-last="{shot.last_frame}">'
                      f"frames {shot.first_frame}–{shot.last_frame}</span>")
        cards.append(f'<figure class="shot" tabindex="0" data-t="{_t(shot.start)}" data-index="{shot.index}" '
                     f'style="margin:0;{ar}">{img}<figcaption class="cap"><span class="t">#{shot.index} '
                     f"{_spans(shot.start, shot.end)}</span> · {shot.duration:.1f} s · {e(shot.transition_in)}"
                     f'{frames}<div class="tags">{chips}</div></figcaption></figure>')
    return f'<section id="shots"><h2>Shots ({len(shots)})</h2>{note}<div class="shots">{"".join(cards)}</div></section>'


def _tag(text: str, colors: list[str]) -> str:
    if colors:
        sw = "".join(f'<span style="display:inline-block;width:10px;height:10px;background:{c}"></span>'
                     for c in colors)
        return f'<span class="tag" title="{e(text)}">{sw}</span>'
    return f'<span class="tag">{e(text)}</span>'


def _transcript_section(context: ExportContext) -> str:
    cues = context.transcript()
    if not cues:
        return ('<section id="transcript"><h2>Transcript</h2><p class="notice plain">No transcript: no '
                "speech-to-text analyzer produced text for this video.</p></section>")
    rows = "".join(
        f'<div class="cue" tabindex="0" data-t="{_t(c.start)}" data-end="{_t(max(c.end, c.start + 0.5))}">'
        f'<span class="t">{clock(c.start)}</span><span>{"<b>" + e(c.speaker) + ":</b> " if c.speaker else ""}'
        f"{e(c.text)}</span></div>" for c in cues)
    return f'<section id="transcript"><h2>Transcript</h2><div class="transcript">{rows}</div></section>'


def _analyzers_section(timeline: Timeline) -> str:
    rows = []
    for t in timeline.tracks.values():
        models = ", ".join(m.id + (f"@{m.revision[:10]}" if m.revision else "") for m in t.models)
        took = f"{t.duration_s:.1f} s" if t.duration_s is not None else ""
        note = t.reason or ("reused from an earlier run" if t.reused else "")
        rows.append(f"<tr><td><b>{e(t.analyzer)}</b></td><td>{e(t.version)}</td>"
                    f'<td><span class="pill {e(t.status)}">{e(t.status)}</span></td><td>{len(t.events)}</td>'
                    f"<td>{len(t.series)}</td><td>{e(t.device or '')}</td><td>{took}</td><td>{e(models)}</td>"
                    f"<td>{e(note)}</td></tr>")
    head = ("<tr><th>analyzer</th><th>version</th><th>status</th><th>events</th><th>series</th><th>device</th>"
            "<th>time</th><th>models</th><th>note</th></tr>")
    return (f'<section id="analyzers"><h2>Analyzers</h2><table class="analyzers">{head}{"".join(rows)}</table>'
            f"{_receipt(timeline)}</section>")


def _receipt(timeline: Timeline) -> str:
    """How it ran: devices, variants, timings, VRAM and batches (``outputs.receipt``)."""
    from .receipt import COLUMNS, receipt_rows, run_line

    rows = receipt_rows(timeline)
    line = run_line(timeline)
    if not rows and not line:
        return ""
    head = "".join(f"<th>{e(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return (f'<h3 id="receipt">How it ran</h3><p class="receipt">{e(line)}</p>'
            f'<table class="analyzers receipt">{"<tr>" + head + "</tr>"}{body}</table>')


class HtmlExporter(Exporter):
    """``report.html``: the page to open first."""

    name = "html"
    filenames = ("report.html",)
    description = "one self-contained HTML report with the player, lanes and thumbnails"

    def export(self, timeline: Timeline, run_dir: Path, context: ExportContext) -> list[Path]:
        return [atomic_write_text(run_dir / "report.html", render_report(timeline, context))]
