"""Scene digests: what every analyzer saw and heard in one scene, in a few lines of text.

Each unit (scene, shot or window) gets one ``Digest``: its time range and one line per track
that has something to say there. Known built-in tracks get a specific renderer (cuts, camera,
colour, audio); everything else, including any third-party analyzer, goes through the generic
renderer, which needs no code change: it quotes ``data["text"]`` of events that carry text
(speech transcripts, VLM descriptions, on-screen text), counts the other labels, and summarises
the track's series. Each line is capped, so a digest never grows past ``max_tokens``.

Salience (how much happens in a unit) decides which digests survive when they do not all fit the
token budget. It adds, each normalised by its maximum over the video: words spoken or written,
distinct object/generic labels, loudness peak above the video's median, camera motion and
transitions, emotions other than neutral, and log duration.
"""
from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from framework import Track
from framework.timeline import event_text

from .align import SCENE_LABEL, SCENES, SHOT_LABEL, TrackIndex, Unit, fraction_above, series_stats

# How a few well-known labels are headed in a digest (any other label: the analyzer's name).
TEXT_HEADINGS = {"description": "visual", "caption": "visual", "speech": "speech", "transcript": "speech",
                 "text": "on-screen text", "ocr": "on-screen text"}
EMOTIONS = {"happy", "happiness", "sad", "sadness", "angry", "anger", "surprise", "surprised", "fear",
            "fearful", "disgust", "disgusted", "contempt", "neutral", "calm", "joy"}
TRANSITION_ORDER = ("cut", "dissolve", "fade", "wipe")  # the labels of transitions, in the order a summary lists them
TRANSITIONS = set(TRANSITION_ORDER)
CAMERA_MOVES = {"pan", "tilt", "zoom", "shake", "dolly", "truck", "handheld"}
STRUCTURAL = {"scene_segmentation"}  # results written before capabilities: define the units, add no line


def fmt_time(t: float) -> str:
    """Seconds as the digest writes them (``83.5s``); the LLM is asked to answer in seconds."""
    return f"{t:.1f}s"


@dataclass
class Line:
    """One track's contribution to a digest, with its raw salience features."""

    analyzer: str
    text: str
    features: dict[str, float] = field(default_factory=dict)
    priority: int = 5  # lower first when a digest must be cut
    short: str = ""    # a few words for a chapter title ("pan camera", "quiet", 'speech: "hello"')
    observed: bool = True  # False: only a series' measurements (OCR's "text_lines 0"), nothing found in the unit


class Digest:
    """The digest of one unit: sizes, salience and a headline are kept; the text itself is
    rendered again from the tracks whenever it is asked for (``text``, ``brief``, ``lines``), so
    holding the digests of a two-hour film costs a few hundred bytes per scene."""

    __slots__ = ("unit", "builder", "tokens", "brief_tokens", "salience", "features", "heads", "headline")

    def __init__(self, unit: Unit, builder: "DigestBuilder"):
        self.unit = unit
        self.builder = builder
        self.tokens = 0
        self.brief_tokens = 0
        self.salience = 0.0
        self.features: dict[str, float] = {}
        self.heads: tuple[str, ...] = ()   # the heading of each line that observed something ("speech", "camera", ...)
        self.headline = ""                 # the first line, clipped (chapter titles)

    @property
    def header(self) -> str:
        kind = {"scene": "scene", "shot": "shot"}.get(self.unit.label, "part")
        return f"[{kind} {self.unit.index + 1} | {fmt_time(self.unit.start)}-{fmt_time(self.unit.end)}]"

    @property
    def lines(self) -> list["Line"]:
        return self.builder.lines(self.unit)

    @property
    def text(self) -> str:
        return self.builder.full_text(self, self.lines)

    @property
    def brief(self) -> str:
        return self.builder.brief_text(self, self.lines)


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(0, chars - 1)].rstrip() + "…"


def _counts(labels: Iterable[str], top: int = 6) -> str:
    c = Counter(labels)
    return ", ".join(f"{k}×{n}" if n > 1 else k for k, n in c.most_common(top))


# --- renderers: (track, index, unit, context) -> Line | None ------------------------------
Renderer = Callable[[Track, TrackIndex, Unit, "Context"], "Line | None"]


@dataclass
class Context:
    """Video-wide facts the renderers compare a unit against."""

    duration: float
    loudness_median: float | None = None
    line_chars: int = 240


def render_cuts(track: Track, idx: TrackIndex, unit: Unit, ctx: Context) -> Line | None:
    shots, trans = 0, []
    for _, e in idx.overlapping(unit.start, unit.end):
        if e.label == SHOT_LABEL:
            shots += 1
        elif e.label in TRANSITIONS and e.label != "cut" and unit.start <= e.start < unit.end:
            trans.append(f"{e.label} at {fmt_time(e.start)}")
    if not shots and not trans:
        return None
    text = f"{shots} shot{'s' if shots != 1 else ''}" + (f"; {', '.join(trans[:3])}" if trans else "")
    short = " and ".join(sorted({t.split(" at ")[0] for t in trans}))
    return Line(track.analyzer, "shots: " + text, {"transitions": float(len(trans))}, priority=7, short=short)


def render_camera(track: Track, idx: TrackIndex, unit: Unit, ctx: Context) -> Line | None:
    moves = [e.label for _, e in idx.overlapping(unit.start, unit.end)]
    if not moves:
        return None
    moving = sum(1 for m in moves if m in CAMERA_MOVES)
    motion = track.series_by_name("motion")
    extra = ""
    if motion is not None:
        st = series_stats(motion, unit.start, unit.end)
        if st is not None:
            extra = f" (motion {st.mean:.2g})"
    top = Counter(moves).most_common(1)[0][0]
    return Line(track.analyzer, f"camera: {_counts(moves, 4)}{extra}", {"motion": moving / len(moves)}, priority=6,
                short=f"{top} camera" if top != "unknown" else "")


def render_color(track: Track, idx: TrackIndex, unit: Unit, ctx: Context) -> Line | None:
    parts = []
    for name in ("brightness", "saturation"):
        s = track.series_by_name(name)
        st = series_stats(s, unit.start, unit.end) if s is not None else None
        if st is not None:
            parts.append(f"{name} {st.mean:.2g}")
    for _, e in idx.overlapping(unit.start, unit.end):
        names = e.data.get("names") or e.data.get("colors") or e.data.get("palette")
        if isinstance(names, list) and names:
            parts.insert(0, "palette " + " ".join(str(n) if not isinstance(n, (list, dict)) else "" for n in names[:4]).strip())
            break
    parts = [p for p in parts if p and p != "palette"]
    if not parts:
        return None
    return Line(track.analyzer, "colour: " + ", ".join(parts), {}, priority=8)


def render_audio(track: Track, idx: TrackIndex, unit: Unit, ctx: Context) -> Line | None:
    parts, feats = [], {}
    loud = track.series_by_name("loudness")
    st = series_stats(loud, unit.start, unit.end) if loud is not None else None
    if st is not None:
        rel = ""
        if ctx.loudness_median is not None:
            feats["loudness_peak"] = max(0.0, st.hi - ctx.loudness_median)
            share = fraction_above(loud, unit.start, unit.end, ctx.loudness_median)
            if share is not None and share >= 0.8:
                rel = "louder than usual"
            elif share is not None and share <= 0.2:
                rel = "quieter than usual"
        parts.append(f"{st.mean:.0f} dBFS mean, peak {st.hi:.0f} at {fmt_time(st.t_hi)}" + (f" ({rel})" if rel else ""))
    other = []
    silent = 0.0
    for _, e in idx.overlapping(unit.start, unit.end):
        if e.label == "silence":
            silent += min(e.end, unit.end) - max(e.start, unit.start)
            other.append(f"silence {fmt_time(max(e.start, unit.start))}-{fmt_time(min(e.end, unit.end))}")
        else:
            other.append(e.label)
    if other:
        parts.append(", ".join(_clip(o, 40) for o in other[:4]) + (f" (+{len(other) - 4})" if len(other) > 4 else ""))
    if not parts:
        return None
    short = "mostly silent" if silent > 0.5 * unit.duration else (rel if st is not None else "")
    return Line(track.analyzer, "audio: " + "; ".join(parts), feats, priority=4, short=short)


def render_generic(track: Track, idx: TrackIndex, unit: Unit, ctx: Context) -> Line | None:
    """Any track: quoted texts, label counts (objects, emotions, anything), series means."""
    texts: list[str] = []
    labels: list[str] = []
    heading = None
    for _, e in idx.overlapping(unit.start, unit.end):
        t = event_text(e)
        if t is not None:
            if not texts or texts[-1] != t:
                texts.append(t)
            heading = heading or TEXT_HEADINGS.get(e.label.lower())
        else:
            labels.append(e.label)
    series_parts = []
    for s in track.series:
        st = series_stats(s, unit.start, unit.end)
        if st is not None:
            series_parts.append(f"{s.name} {st.mean:.3g}{s.unit and ' ' + s.unit}")
    if not texts and not labels and not series_parts:
        return None
    feats: dict[str, float] = {}
    words = sum(len(t.split()) for t in texts)
    if texts:
        feats["words"] = float(words)
    is_emotion = labels and all(lbl.lower() in EMOTIONS for lbl in labels)
    if is_emotion:
        strong = [lbl for lbl in labels if lbl.lower() not in ("neutral", "calm")]
        feats["emotion"] = len(strong) / len(labels)
        heading = heading or "emotion"
    elif labels:
        feats["labels"] = float(len(set(labels)))
    name = heading or track.analyzer
    parts = []
    if texts:
        parts.append(_clip(" / ".join(f'"{t}"' for t in texts), ctx.line_chars))
    if labels:
        parts.append(_counts(labels))
    parts.extend(series_parts[:3])
    # (a line of measurements alone, "eye_tracking: faces 0", after every line that found something: chapter
    # summaries quote a unit's first lines)
    priority = {"visual": 1, "speech": 2, "on-screen text": 2}.get(name, 3) if texts or labels else 6
    short = _clip(f"{name}: " + parts[0], 60) if (texts or labels) else ""
    return Line(track.analyzer, f"{name}: " + "; ".join(parts), feats, priority=priority, short=short,
                observed=bool(texts or labels))


# Built-in analyzers with a specific renderer; every other track uses ``render_generic``.
RENDERERS: dict[str, Renderer] = {
    "cut_analysis": render_cuts,
    "camera_analysis": render_camera,
    "color_analysis": render_color,
    "audio_analysis": render_audio,
}


def renderer_for(track: Track) -> Renderer | None:
    if SCENES in track.provides or track.analyzer in STRUCTURAL:  # they define the units
        return None
    return RENDERERS.get(track.analyzer, render_generic)


def _median(values: Iterable[float | None], lo: float = -120.0, hi: float = 20.0, step: float = 0.25) -> float | None:
    """Median of a long series in constant memory (a histogram of ``step``-wide bins)."""
    n_bins = int((hi - lo) / step) + 1
    counts = [0] * n_bins
    n = 0
    for v in values:
        if v is None or not math.isfinite(v):
            continue
        counts[min(n_bins - 1, max(0, int((v - lo) / step)))] += 1
        n += 1
    if n == 0:
        return None
    acc = 0
    for i, c in enumerate(counts):
        acc += c
        if acc * 2 >= n:
            return lo + (i + 0.5) * step
    return hi


def make_context(tracks: dict[str, Track], duration: float, line_chars: int) -> Context:
    audio = tracks.get("audio_analysis")
    loud = audio.series_by_name("loudness") if audio is not None else None
    median = _median(loud.values) if loud is not None else None
    return Context(duration=duration, loudness_median=median, line_chars=line_chars)


class DigestBuilder:
    """Builds one ``Digest`` per unit from the ``ok`` tracks, under a per-digest token cap."""

    def __init__(self, tracks: dict[str, Track], duration: float, count_tokens: Callable[[str], int],
                 max_tokens: int = 160):
        self.tracks = {n: t for n, t in tracks.items() if t.status == "ok"}
        self.indexes = {n: TrackIndex(t) for n, t in self.tracks.items()}
        self.count = count_tokens
        self.max_tokens = max_tokens
        self.ctx = make_context(self.tracks, duration, line_chars=max(60, int(max_tokens * 1.2)))

    def lines(self, unit: Unit) -> list[Line]:
        out = []
        for name, track in self.tracks.items():
            render = renderer_for(track)
            if render is None:
                continue
            line = render(track, self.indexes[name], unit, self.ctx)
            if line is not None:
                out.append(line)
        out.sort(key=lambda ln: ln.priority)
        return out

    def full_text(self, d: Digest, lines: list[Line]) -> str:
        return self._fit([d.header] + [f"  {ln.text}" for ln in lines], self.max_tokens)

    def brief_text(self, d: Digest, lines: list[Line]) -> str:
        return self._fit([d.header + (" " + lines[0].text if lines else " (nothing detected)")],
                         max(16, self.max_tokens // 5))

    def build(self, unit: Unit) -> Digest:
        lines = self.lines(unit)
        d = Digest(unit, self)
        feats: dict[str, float] = {"duration": math.log1p(unit.duration)}
        for ln in lines:
            for k, v in ln.features.items():
                feats[k] = feats.get(k, 0.0) + v
        d.features = feats
        d.tokens = self.count(self.full_text(d, lines))
        d.brief_tokens = self.count(self.brief_text(d, lines))
        d.heads = tuple(sys.intern(ln.text.split(":", 1)[0]) for ln in lines if ln.observed)
        d.headline = headline(lines)
        return d

    def _fit(self, rows: list[str], cap: int) -> str:
        """Join rows, dropping the last ones and then clipping, until the text fits ``cap`` tokens."""
        text = "\n".join(rows)
        if self.count(text) <= cap:
            return text
        while len(rows) > 1 and self.count("\n".join(rows)) > cap:
            rows = rows[:-1]
        text = "\n".join(rows)
        chars = len(text)
        while chars > 20 and self.count(text) > cap:
            chars = int(chars * 0.8)
            text = _clip("\n".join(rows), chars)
        return text


def headline(lines: list[Line]) -> str:
    """A chapter-title phrase: the first content line (text, objects...), else camera/audio/transitions."""
    content = [ln.short for ln in lines if ln.priority <= 3 and ln.short]
    if content:
        return content[0]
    words = [ln.short for ln in lines if ln.short]
    return ", ".join(words[:3]) if words else "nothing detected"


FEATURE_WEIGHTS = {"words": 3.0, "labels": 1.5, "emotion": 1.0, "loudness_peak": 1.0, "motion": 0.7,
                   "transitions": 0.7, "duration": 1.0}


def score_salience(digests: list[Digest]) -> None:
    """Set ``salience`` on every digest: weighted features, each normalised by its video-wide max."""
    peaks: dict[str, float] = {}
    for d in digests:
        for k, v in d.features.items():
            peaks[k] = max(peaks.get(k, 0.0), v)
    for d in digests:
        s = 0.0
        for k, v in d.features.items():
            if peaks.get(k, 0.0) > 0:
                s += FEATURE_WEIGHTS.get(k, 1.0) * v / peaks[k]
        d.salience = round(s, 4)


@dataclass
class Fitted:
    """Digests chosen to fit a budget, in time order, and what it cost."""

    texts: list[str]
    tokens: int
    full: int
    brief: int
    dropped: int


def fit_digests(digests: list[Digest], budget: int) -> Fitted:
    """Fit digests into ``budget`` tokens: all brief first, then upgrade the most salient to full;
    if even the brief forms overflow, drop the least salient. Returned in time order."""
    ranked = sorted(range(len(digests)), key=lambda i: -digests[i].salience)
    chosen: dict[int, str] = {}
    used = 0
    for i in ranked:  # brief forms, most salient first, while they fit
        cost = digests[i].brief_tokens + 1
        if used + cost > budget:
            continue
        chosen[i] = "brief"
        used += cost
    for i in ranked:  # upgrade to the full digest where the budget allows
        if chosen.get(i) != "brief":
            continue
        extra = digests[i].tokens - digests[i].brief_tokens
        if used + extra <= budget:
            chosen[i] = "full"
            used += extra
    order = sorted(chosen)
    texts = [digests[i].text if chosen[i] == "full" else digests[i].brief for i in order]
    full = sum(1 for v in chosen.values() if v == "full")
    return Fitted(texts, used, full, len(chosen) - full, len(digests) - len(chosen))


__all__ = ["Context", "Digest", "DigestBuilder", "Fitted", "Line", "RENDERERS", "SCENE_LABEL", "fit_digests",
           "fmt_time", "renderer_for", "score_salience"]
