"""The extractive summary: written from the timeline alone, with no language model.

Chapters are runs of consecutive scenes (one chapter per scene when there are at most
``max_chapters``; otherwise about ``duration / max_chapters`` long, cut at scene boundaries).
Key moments are the most salient events (speech, descriptions, on-screen text, transitions,
first appearances of objects, strong emotions, long silences, the loudness peak), spread out
over the video. The title and paragraph are assembled from counts; the detailed summary is the
scene digests, ranked by salience and fitted to the token budget. Everything says it is
extractive.
"""
from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from framework.summary import Chapter, Evidence, KeyMoment

from .align import SCENE_LABEL, SHOT_LABEL, TrackIndex, series_stats
from .digest import (CAMERA_MOVES, EMOTIONS, TEXT_HEADINGS, TRANSITION_ORDER, TRANSITIONS, Digest, _clip,
                     event_text, fit_digests, fmt_time)
from .grounding import Grounder


def group_units(digests: list[Digest], duration: float, max_chapters: int) -> list[list[Digest]]:
    """Consecutive digests grouped into at most about ``max_chapters`` chapters of similar length."""
    if len(digests) <= max_chapters:
        return [[d] for d in digests]
    target = max(duration, 1e-6) / max_chapters
    groups: list[list[Digest]] = [[]]
    chapter_start = digests[0].unit.start
    for d in digests:
        if groups[-1] and d.unit.start - chapter_start >= target * 0.999 and len(groups) < max_chapters:
            groups.append([])
            chapter_start = d.unit.start
        groups[-1].append(d)
    return groups


def _chapter_phrase(group: list[Digest]) -> str:
    return max(group, key=lambda d: d.salience).headline


def extractive_chapters(groups: list[list[Digest]], grounder: Grounder) -> list[Chapter]:
    """One chapter per group: its time range, a title from its most salient line, evidence = its units."""
    out = []
    for k, group in enumerate(groups):
        a, b = group[0].unit, group[-1].unit
        kind = "Scene" if a.label == SCENE_LABEL else ("Shot" if a.label == SHOT_LABEL else "Part")
        name = f"{kind} {a.index + 1}" if a is b else f"{kind}s {a.index + 1}-{b.index + 1}"
        top = sorted(group, key=lambda d: -d.salience)[:2]
        summary = " ".join(_clip("; ".join(ln.text for ln in lines[:2]), 160)
                           for lines in (d.lines for d in top) if lines)
        out.append(Chapter(start=a.start, end=b.end, title=f"{name}: {_chapter_phrase(group)}",
                           summary=summary, evidence=grounder.chapter_evidence(a.start, b.end)))
    return out


@dataclass
class _Candidate:
    score: float
    time: float
    text: str
    analyzer: str
    index: int | None
    start: float
    end: float
    label: str

    @property
    def key(self) -> tuple[float, float]:
        return (self.score, -self.time)  # higher score first, then earlier

    def moment(self) -> KeyMoment:
        return KeyMoment(time=self.time, end=self.end if self.end > self.time else None, text=self.text,
                         evidence=[Evidence(analyzer=self.analyzer, event_index=self.index, start=self.start,
                                            end=self.end, label=self.label)])


def _score_event(e, name: str, seen_labels: set[str], seen_texts: set[str]) -> tuple[float, str] | None:
    label = e.label
    if label in (SCENE_LABEL, SHOT_LABEL, "cut", "palette", "static", "unknown"):
        return None
    text = event_text(e)
    if text is not None:
        if text in seen_texts:
            return None
        if len(seen_texts) < 4096:
            seen_texts.add(text)
        head = TEXT_HEADINGS.get(label.lower(), name)
        return 1.0 + math.log1p(len(text.split())) / 2, f'{head}: "{_clip(text, 90)}"'
    if label in TRANSITIONS:
        return 1.2, f"{label} transition"
    if label == "silence":
        if e.end - e.start < 2.0:
            return None
        return 0.5 + min(1.0, (e.end - e.start) / 10), f"silence of {e.end - e.start:.1f} s"
    if label in CAMERA_MOVES:
        return 0.4 + 0.3 * (e.score or 0.0), f"camera {label}"
    if label.lower() in EMOTIONS:
        if label.lower() in ("neutral", "calm"):
            return None
        return 0.8 * (e.score if e.score is not None else 0.5) + 0.3, f"{label} expression"
    if label in seen_labels:  # objects and anything a third-party analyzer reports: first appearance
        return None
    seen_labels.add(label)
    return 0.7 + 0.3 * (e.score if e.score is not None else 0.5), f"{label} first appears ({name})"


def _event_candidates(ix: TrackIndex, duration: float, bins: int, per_bin: int = 3) -> list[_Candidate]:
    """The best ``per_bin`` candidates of one track in each of ``bins`` equal stretches of the video."""
    best: dict[int, list[tuple[tuple[float, float], int, _Candidate]]] = {}
    seen_labels: set[str] = set()
    seen_texts: set[str] = set()
    width = max(duration, 1e-6) / bins
    for k in ix.order:
        e = ix.track.events[k]
        scored = _score_event(e, ix.name, seen_labels, seen_texts)
        if scored is None:
            continue
        cand = _Candidate(round(scored[0], 4), e.start, scored[1], ix.name, k, e.start, e.end, e.label)
        heap = best.setdefault(min(bins - 1, int(e.start / width)), [])
        item = (cand.key, -k, cand)
        if len(heap) < per_bin:
            heapq.heappush(heap, item)
        elif item[:2] > heap[0][:2]:
            heapq.heapreplace(heap, item)
    return [c for heap in best.values() for _, _, c in heap]


def extractive_moments(indexes: dict[str, TrackIndex], duration: float, k: int) -> list[KeyMoment]:
    """Up to ``k`` key moments: in each of ``k`` equal stretches of the video, the most salient event
    (with a penalty for an analyzer already chosen, for variety). Returned in time order."""
    if k <= 0:
        return []
    cands: list[_Candidate] = []
    for ix in indexes.values():
        if ix.track.status != "ok":
            continue
        cands.extend(_event_candidates(ix, duration, k))
        loud = ix.track.series_by_name("loudness")
        if loud is not None and loud.times:
            st = series_stats(loud, -1.0, math.inf)
            if st is not None:
                cands.append(_Candidate(0.9, st.t_hi, f"loudest point of the audio ({st.hi:.0f} dBFS)",
                                        ix.name, None, st.t_hi, st.t_hi, "loudness"))
    width = max(duration, 1e-6) / k
    windows: dict[int, list[_Candidate]] = {}
    for c in cands:
        windows.setdefault(min(k - 1, int(c.time / width)), []).append(c)
    chosen: list[_Candidate] = []
    per_track: Counter[str] = Counter()
    for w in sorted(windows):
        c = max(windows[w], key=lambda c: (c.score * 0.6 ** per_track[c.analyzer], -c.time))
        chosen.append(c)
        per_track[c.analyzer] += 1
    return [c.moment() for c in chosen]


#: what an on-screen text event of no length counts for when the title is chosen (``extractive_title``)
ON_SCREEN_AT_LEAST_S = 0.1
#: an on-screen text read with a lower mean confidence is the title only where no text was read more surely
#: (Big Buck Bunny's stylised title read "BOKY", "BORKY", "BOBKSY"... at 0.75, beside "THE PEACH OPEN MOVIE PROJECT"
#: at 0.94)
TITLE_MIN_CONFIDENCE = 0.8


def extractive_title(indexes: dict[str, TrackIndex], duration: float, n_units: int, unit_label: str,
                     medium: str = "video") -> str:
    """The on-screen text shown longest (its events' time summed: a title card's full line, not the half of it
    read as it appeared) among those read with a mean confidence of at least ``TITLE_MIN_CONFIDENCE`` (any,
    where none was), else the first description, else a plain description (``medium`` ``audio``:
    "11 seconds of audio", never "an 11-second video")."""
    sure: Counter[str] = Counter()
    doubtful: Counter[str] = Counter()
    first_desc = None
    for ix in indexes.values():
        for e in ix.track.events[:5000]:
            t = event_text(e)
            if t is None:
                continue
            if e.label.lower() in ("text", "ocr"):
                read = sure if e.score is None or e.score >= TITLE_MIN_CONFIDENCE else doubtful
                read[t] += max(e.end - e.start, ON_SCREEN_AT_LEAST_S)
            elif e.label.lower() in ("description", "caption") and first_desc is None:
                first_desc = t
    length = _duration_words(duration)
    plural = "s" if n_units != 1 else ""
    ocr = sure or doubtful
    if medium == "audio" and not ocr and not first_desc:
        return f"{_length_words(duration).capitalize()} of audio" + (f" in {n_units} {unit_label}s" if n_units > 1 else "")
    if ocr:
        return f'"{_clip(ocr.most_common(1)[0][0], 60)}": a {length} video'
    if first_desc:
        return _clip(first_desc, 80)
    return f"A {length} video in {n_units} {unit_label}{plural}"


def _length_words(duration: float) -> str:
    """``11 seconds``, ``3 minutes``, ``1.5 hours``."""
    if duration < 90:
        n = round(duration)
        return f"{n} second{'s' if n != 1 else ''}"
    if duration < 5400:
        return f"{duration / 60:.0f} minutes"
    return f"{duration / 3600:.1f} hours"


def _duration_words(duration: float) -> str:
    if duration < 90:
        return f"{duration:.0f}-second"
    if duration < 5400:
        return f"{duration / 60:.0f}-minute"
    return f"{duration / 3600:.1f}-hour"


def extractive_paragraph(digests: list[Digest], indexes: dict[str, TrackIndex], duration: float,
                         used: list[str], medium: str = "video") -> str:
    """Counts in a paragraph: units, shots, how many units have speech / text / objects, audio."""
    heads: Counter[str] = Counter()
    for d in digests:
        for head in d.heads:
            heads[head] += 1
    unit_label = digests[0].unit.label if digests else "part"
    unit_label = "part" if unit_label == "window" else unit_label
    n_shots = sum(1 for ix in indexes.values() for e in ix.track.events if e.label == SHOT_LABEL) \
        if unit_label == SCENE_LABEL else 0
    what = f"{duration:.1f} s of audio" if medium == "audio" else f"A {duration:.1f}-second video"
    parts = [f"{what} in {len(digests)} {unit_label}{'s' if len(digests) != 1 else ''}"
             + (f" ({n_shots} shot{'s' if n_shots != 1 else ''})" if n_shots else "") + "."]
    facts = []
    for head, n in heads.most_common(6):
        facts.append(f"{head} in {n} of {len(digests)}")
    if facts:
        parts.append("Observed: " + "; ".join(facts) + ".")
    trans = Counter(e.label for ix in indexes.values() for e in ix.track.events if e.label in TRANSITIONS)
    fades = Counter(str((e.data or {}).get("kind", "")) for ix in indexes.values() for e in ix.track.events
                    if e.label == "fade")
    said = []  # every kind, cuts too: beside "(5 shots)", 3 cuts and 1 dissolve add up
    for kind in TRANSITION_ORDER:
        if trans[kind]:
            said.append(f"{trans[kind]} {kind}{'s' if trans[kind] > 1 else ''}")
            if kind == "fade" and set(fades) <= {"in", "out"}:  # (fades in and out are counted apart)
                said[-1] += " (" + ", ".join(f"{fades[d]} {d}" for d in ("in", "out") if fades[d]) + ")"
    if said:
        parts.append("Transitions: " + ", ".join(said) + ".")
    parts.append("Analyzers: " + (", ".join(used) or "none") + ".")
    return " ".join(parts)


@dataclass
class ExtractiveParts:
    title: str
    paragraph: str
    detailed: str
    chapters: list[Chapter]
    key_moments: list[KeyMoment]
    tokens: int
    fitted: object


def write_extractive(digests: list[Digest], indexes: dict[str, TrackIndex], grounder: Grounder, duration: float,
                     used: list[str], count: Callable[[str], int], budget: int, max_chapters: int,
                     max_key_moments: int, medium: str = "video") -> ExtractiveParts:
    """The whole extractive summary, its text fitted to ``budget`` tokens; ``medium`` is
    ``video`` or ``audio`` (an input with no picture is described as audio)."""
    unit_label = digests[0].unit.label if digests else "part"
    unit_label = "part" if unit_label == "window" else unit_label  # fixed windows read as "parts"
    title = extractive_title(indexes, duration, len(digests), unit_label, medium)
    paragraph = extractive_paragraph(digests, indexes, duration, used, medium)
    chapters = extractive_chapters(group_units(digests, duration, max_chapters), grounder)
    moments = extractive_moments(indexes, duration, max_key_moments)

    def cost(chs: list[Chapter], kms: list[KeyMoment]) -> int:
        return count("\n".join([title, paragraph]
                               + [f"{fmt_time(c.start)}-{fmt_time(c.end)} {c.title} {c.summary}" for c in chs]
                               + [f"{fmt_time(m.time)} {m.text}" for m in kms]))

    fixed = cost(chapters, moments)
    limit = budget * 0.6  # the rest is for the detailed summary
    if fixed > limit:  # shorten chapter summaries, then drop them, then drop moments
        chapters = [c.model_copy(update={"summary": _clip(c.summary, 80)}) for c in chapters]
        if cost(chapters, moments) > limit:
            chapters = [c.model_copy(update={"summary": ""}) for c in chapters]
        while moments and cost(chapters, moments) > limit:
            moments = moments[:-1]
        fixed = cost(chapters, moments)
    fitted = fit_digests(digests, max(0, budget - fixed - 8))
    detailed = "\n".join(fitted.texts)
    return ExtractiveParts(title, paragraph, detailed, chapters, moments, fixed + fitted.tokens, fitted)
