"""Checking the times an LLM writes against the timeline.

Every chapter boundary must sit on a scene boundary (or, failing that, a shot boundary), and
every key moment on the start or end of an event some analyzer reported (a VLM's description
chunk is such an event). A time within
``eps`` of such a point is *kept*; within ``tolerance`` it is *snapped* to it; otherwise the
chapter or moment is *dropped*. Each outcome is counted in ``Summary.grounding`` and each drop
is explained in its notes. Evidence always points at a real event: (analyzer, event index,
start, end). Chapters and key moments also cite the descriptions (tracks providing
``descriptions``) that cover them, and ``quote`` gives a description's words for a chapter the
model left without a summary.
"""
from __future__ import annotations

import bisect
import math
import re
from typing import Any

from framework.summary import Chapter, Evidence, Grounding, KeyMoment

from .align import SCENE_LABEL, SHOT_LABEL, TrackIndex, Unit

MAX_NOTES = 20
DESCRIPTIONS = "descriptions"
MAX_DESCRIPTION_EVIDENCE = 3
_TIME_RE = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)\s*$|^\s*(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds)?\s*$")


def parse_time(value: Any) -> float | None:
    """Seconds from a number, ``"83.5"``, ``"83.5s"``, ``"1:23.5"`` or ``"0:01:23"``; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) and value >= 0 else None
    if not isinstance(value, str):
        return None
    m = _TIME_RE.match(value)
    if not m:
        return None
    if m.group(4) is not None:
        return float(m.group(4))
    h = int(m.group(1) or 0)
    return h * 3600 + int(m.group(2)) * 60 + float(m.group(3))


class Grounder:
    """Snap-or-drop for chapter boundaries and key-moment times, with counts and notes.

    Queries go through the ``TrackIndex`` of each track (bisection on sorted starts), so the
    grounder holds no copy of the events: only the unit boundaries.
    """

    def __init__(self, indexes: dict[str, TrackIndex], units: list[Unit], duration: float,
                 tolerance: float = 2.0, eps: float = 0.1):
        self.indexes = {n: ix for n, ix in indexes.items() if ix.track.status == "ok"}
        self.duration = duration
        self.tolerance = tolerance
        self.eps = eps
        self.units = units
        self.stats = Grounding()
        # scene boundaries as (time, unit index): Evidence objects are made only when cited
        self._scene_t = [u.start for u in units] + ([units[-1].end] if units else [])
        self._scene_u = list(range(len(units))) + ([len(units) - 1] if units else [])
        self._described = [n for n, ix in self.indexes.items() if DESCRIPTIONS in ix.track.provides]

    @staticmethod
    def _unit_evidence(u: Unit) -> Evidence:
        return Evidence(analyzer=u.source, event_index=u.event_index, start=u.start, end=u.end, label=u.label)

    # --- primitives ----------------------------------------------------------------
    def _nearest_event_point(self, t: float, labels: set[str] | None = None,
                             skip: set[str] = frozenset({SCENE_LABEL})) -> tuple[float, Evidence] | None:
        """The event start or end nearest to ``t`` within tolerance, over every track."""
        best: tuple[float, float, str, int] | None = None  # (distance, time, analyzer, index)
        lo, hi = t - self.tolerance, t + self.tolerance
        for name, ix in self.indexes.items():
            for i, e in ix.overlapping(lo, hi + 1e-9):
                if e.label in skip or (labels is not None and e.label not in labels):
                    continue
                for p in (e.start, e.end):
                    d = abs(p - t)
                    if d <= self.tolerance and (best is None or d < best[0]):
                        best = (d, p, name, i)
        if best is None:
            return None
        e = self.indexes[best[2]].track.events[best[3]]
        return best[1], Evidence(analyzer=best[2], event_index=best[3], start=e.start, end=e.end, label=e.label)

    def snap_boundary(self, t: float) -> tuple[float, Evidence | None, str] | None:
        """A chapter boundary: nearest scene boundary, else shot boundary, within tolerance."""
        if t < -self.eps or t > self.duration + self.tolerance:
            return None
        found: tuple[float, Evidence | None] | None = None
        k = bisect.bisect_left(self._scene_t, t)
        for j in (k - 1, k):
            if 0 <= j < len(self._scene_t):
                pt = self._scene_t[j]
                if abs(pt - t) <= self.tolerance and (found is None or abs(pt - t) < abs(found[0] - t)):
                    found = (pt, self._unit_evidence(self.units[self._scene_u[j]]))
        if found is None:
            found = self._nearest_event_point(t, labels={SHOT_LABEL})
        if found is None:
            for edge in (0.0, self.duration):
                if abs(t - edge) <= self.tolerance:
                    found = (edge, None)
        if found is None:
            return None
        return found[0], found[1], "kept" if abs(found[0] - t) <= self.eps else "snapped"

    def snap_moment(self, t: float) -> tuple[float, Evidence, str] | None:
        """A key moment: the nearest start or end of any reported event, within tolerance."""
        if t < -self.eps or t > self.duration + self.eps:
            return None
        hit = self._nearest_event_point(t)
        if hit is None:
            return None
        return hit[0], hit[1], "kept" if abs(hit[0] - t) <= self.eps else "snapped"

    def _count(self, outcome: str, note: str | None = None) -> None:
        g = self.stats
        g.checked += 1
        if outcome == "kept":
            g.kept += 1
        elif outcome == "snapped":
            g.snapped += 1
        else:
            g.dropped += 1
            if note and len(g.notes) < MAX_NOTES:
                g.notes.append(note)

    # --- descriptions ----------------------------------------------------------------
    def descriptions(self, start: float, end: float, limit: int = MAX_DESCRIPTION_EVIDENCE) -> list[tuple[Evidence, str]]:
        """Description events (tracks providing ``descriptions``) overlapping ``[start, end]``, with their
        text, in time order; an instant (``start == end``) finds the description that covers it."""
        out: list[tuple[Evidence, str]] = []
        a, b = (start, start + 1e-6) if end <= start else (start + self.eps, end - self.eps)
        for name in self._described:
            for i, e in self.indexes[name].overlapping(a, max(b, a + 1e-6)):
                text = e.data.get("text")
                if isinstance(text, str) and text.strip():
                    out.append((Evidence(analyzer=name, event_index=i, start=e.start, end=e.end, label=e.label),
                                " ".join(text.split())))
                    if len(out) >= limit:
                        return out
        return out

    def quote(self, start: float, end: float, chars: int = 160) -> str:
        """``visual: "..."``: the first description of ``[start, end]``, clipped ("" when there is none)."""
        found = self.descriptions(start, end, limit=1)
        if not found:
            return ""
        text = found[0][1]
        return 'visual: "' + (text if len(text) <= chars else text[: chars - 1].rstrip() + "…") + '"'

    # --- what the summarizer calls --------------------------------------------------
    def chapter_evidence(self, start: float, end: float, extra: list[Evidence] | None = None) -> list[Evidence]:
        """The units the chapter covers (scenes/shots), the descriptions that cover it, plus ``extra``
        (e.g. the LLM's cited events)."""
        out = []
        for u in self.units:
            if u.end > start + self.eps and u.start < end - self.eps and u.event_index is not None:
                out.append(Evidence(analyzer=u.source, event_index=u.event_index, start=u.start,
                                    end=u.end, label=u.label))
                if len(out) >= 8:
                    break
        out += [ev for ev, _ in self.descriptions(start, end)]
        return out + (extra or [])

    def _chapter(self, raw: dict[str, Any], window: tuple[float, float] | None) -> tuple[Chapter | None, str]:
        title = str(raw.get("title") or "").strip() or "Untitled"
        s_raw, e_raw = raw.get("start"), raw.get("end")
        s, e = parse_time(s_raw), parse_time(e_raw)
        label = f"chapter {title[:40]!r} ({s_raw!r}-{e_raw!r})"
        if s is None or e is None:
            return None, f"{label}: a time is missing or unreadable"
        if window is not None and not (window[0] - self.tolerance <= s <= window[1] + self.tolerance
                                       and window[0] - self.tolerance <= e <= window[1] + self.tolerance):
            return None, (f"{label}: outside the part of the video it was asked about "
                          f"({window[0]:.1f}-{window[1]:.1f} s)")
        a, b = self.snap_boundary(s), self.snap_boundary(e)
        if a is None or b is None:
            bad = s if a is None else e
            return None, (f"{label}: {bad:.1f} s is not within {self.tolerance:g} s of any scene or "
                          f"shot boundary (the video is {self.duration:.1f} s long)")
        if b[0] - a[0] <= self.eps:
            return None, f"{label}: empty after snapping to {a[0]:.1f}-{b[0]:.1f} s"
        outcome = "kept" if a[2] == b[2] == "kept" else "snapped"
        return Chapter(start=a[0], end=b[0], title=title, summary=str(raw.get("summary") or "").strip(),
                       evidence=self.chapter_evidence(a[0], b[0])), outcome

    def ground_chapters(self, raws: list[Any], window: tuple[float, float] | None = None) -> list[Chapter]:
        """Check the chapters the model wrote: snapped ones in time order; drops counted and noted.

        Overlaps are clipped to the previous chapter's end; a chapter inside the previous one is dropped.
        """
        found: list[tuple[Chapter, str]] = []
        for raw in raws:
            if not isinstance(raw, dict):
                self._count("dropped", f"chapter {str(raw)[:60]!r}: not an object with start, end and title")
                continue
            ch, outcome = self._chapter(raw, window)
            if ch is None:
                self._count("dropped", outcome)
            else:
                found.append((ch, outcome))
        out: list[Chapter] = []
        for ch, outcome in sorted(found, key=lambda p: (p[0].start, p[0].end)):
            if out and ch.start < out[-1].end - self.eps:
                if ch.end <= out[-1].end + self.eps:
                    self._count("dropped", f"chapter {ch.title[:40]!r} ({ch.start:.1f}-{ch.end:.1f} s) lies "
                                           "inside the previous chapter")
                    continue
                ch = ch.model_copy(update={"start": out[-1].end,
                                           "evidence": self.chapter_evidence(out[-1].end, ch.end)})
                outcome = "snapped"
            self._count(outcome)
            out.append(ch)
        return out

    def ground_moments(self, raws: list[Any], window: tuple[float, float] | None = None) -> list[KeyMoment]:
        """Check the key moments the model wrote: each snapped to the event it rests on, or dropped."""
        out: dict[float, KeyMoment] = {}
        for raw in raws:
            if not isinstance(raw, dict):
                self._count("dropped", f"key moment {str(raw)[:60]!r}: not an object with time and text")
                continue
            text = str(raw.get("text") or raw.get("description") or "").strip()
            t_raw = raw.get("time", raw.get("start"))
            t = parse_time(t_raw)
            label = f"key moment {text[:40]!r} ({t_raw!r})"
            if t is None or not text:
                self._count("dropped", f"{label}: {'no readable time' if t is None else 'no text'}")
                continue
            if window is not None and not window[0] - self.tolerance <= t <= window[1] + self.tolerance:
                self._count("dropped", f"{label}: outside {window[0]:.1f}-{window[1]:.1f} s")
                continue
            hit = self.snap_moment(t)
            if hit is None:
                self._count("dropped", f"{label}: no event of any analyzer starts or ends within "
                                       f"{self.tolerance:g} s of {t:.1f} s")
                continue
            self._count(hit[2])
            ev = hit[1]
            if hit[0] not in out:  # two moments on one event: keep the first
                cited = [ev] + [d for d, _ in self.descriptions(hit[0], hit[0], limit=1)
                                if (d.analyzer, d.event_index) != (ev.analyzer, ev.event_index)]
                out[hit[0]] = KeyMoment(time=hit[0], end=ev.end if ev.end > hit[0] else None, text=text,
                                        evidence=cited)
        return [out[t] for t in sorted(out)]
