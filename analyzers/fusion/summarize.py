"""Writing the summary with an LLM: one call when the digests fit, map-reduce when they do not.

Map-reduce follows seed 001's reconcile step: each chunk of consecutive scene digests (as many
as fit the token budget) is described first; the chunk descriptions, with their grounded
chapters and moments, are then reconciled into one global summary. When even the chunk
descriptions overflow the budget they are merged in groups first, level by level (a tree): each
description is rendered in at most half the room, so every level at least halves their number
and none is left out; ``CallStats`` counts the map calls and the merge calls of each level.

Every prompt is measured with the backend's tokenizer and kept under the budget; every time the
model writes goes through the ``Grounder``; an answer that is not usable JSON is read leniently
(``start-end title`` lines, ``[time] text`` lines) and, failing that, replaced by the extractive
text for that part, and the summary's notes say so.
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from framework.llm.backend import LLMBackend, LLMError, Message
from framework.summary import Chapter, KeyMoment

from .digest import Digest, _clip, fit_digests, fmt_time
from .grounding import Grounder

logger = logging.getLogger(__name__)


class BackendCallError(LLMError):
    """A backend's ``generate`` raised something other than ``LLMError``; the original is the cause.

    Fusion falls back to an extractive summary on ``LLMError`` only, so a bug in fusion's own code
    (a ``TypeError`` in the reduce step, say) fails the track instead of hiding behind a fallback.
    """

MAX_MERGE_LEVELS = 8  # a safety valve: each level at least halves the notes, so 256 chunks fit

FINAL_SCHEMA = ('{"title": "...", "paragraph": "one paragraph", "detailed": "a detailed account", '
                '"chapters": [{"start": 0.0, "end": 42.5, "title": "...", "summary": "..."}], '
                '"key_moments": [{"time": 12.3, "text": "..."}]}')
CHUNK_SCHEMA = ('{"summary": "what happens in this part", '
                '"chapters": [{"start": 0.0, "end": 42.5, "title": "...", "summary": "..."}], '
                '"key_moments": [{"time": 12.3, "text": "..."}]}')


def system_prompt(language: str, medium: str = "video") -> str:
    """The system message: use only the notes, cite only their times, answer in JSON, in ``language``."""
    what = "audio recordings" if medium == "audio" else "videos"
    return (f"You summarize {what} from the notes of automatic analyzers (shots, scenes, speech transcripts, "
            "visual descriptions, objects, on-screen text, audio, camera). Use only what the notes say: never "
            "invent people, events or times. Every time you write must be a time in seconds that appears in "
            f"the notes. Reply with one JSON object and nothing else. Write all text in {language}.")


# --- reading answers -------------------------------------------------------------------
_LINE_CHAPTER = re.compile(r"(\d+(?::\d{1,2}){0,2}(?:\.\d+)?)\s*s?\s*(?:-|–|to)\s*(\d+(?::\d{1,2}){0,2}(?:\.\d+)?)\s*s?\s*[:\-–]?\s*(.*)")
_LINE_MOMENT = re.compile(r"^\W*\[?(\d+(?::\d{1,2}){0,2}(?:\.\d+)?)\s*s?\]?\s*[:\-–]?\s*(.+)$")


def extract_json(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (code fences and chatter around it are ignored)."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def lenient_read(text: str) -> dict[str, Any]:
    """Chapters (``12.0s - 40.5s Title``) and moments (``[12.0s] text``) from free text."""
    chapters, moments = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _LINE_CHAPTER.search(line)
        if m:
            chapters.append({"start": m.group(1), "end": m.group(2), "title": m.group(3).strip() or "Untitled"})
            continue
        m = _LINE_MOMENT.match(line)
        if m:
            moments.append({"time": m.group(1), "text": m.group(2).strip()})
    return {"chapters": chapters, "key_moments": moments}


def read_answer(text: str) -> tuple[dict[str, Any], bool]:
    """(fields, was_json). Non-string fields and non-list chapters are discarded."""
    obj = extract_json(text)
    was_json = obj is not None
    if obj is None:
        obj = lenient_read(text)
    out: dict[str, Any] = {}
    for key in ("title", "paragraph", "detailed", "summary"):
        v = obj.get(key)
        if isinstance(v, str) and v.strip():
            out[key] = v.strip()
    for key in ("chapters", "key_moments"):
        v = obj.get(key)
        out[key] = v if isinstance(v, list) else []
    return out, was_json


# --- bookkeeping ---------------------------------------------------------------------------
@dataclass
class CallStats:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    max_prompt_tokens: int = 0
    unusable_answers: int = 0
    map_calls: int = 0
    merge_calls_per_level: list[int] = field(default_factory=list)  # reduce level 1, 2, ... (LLM calls)
    batch_sizes: list[int] = field(default_factory=list)  # prompts per backend call (1: generate alone)


@dataclass
class Part:
    """One map or merge prompt to write: the texts it describes, its span, what the texts are
    (``digests`` or ``parts``), its salience, and the note that stands in for an unusable answer."""

    texts: list[str]
    start: float
    end: float
    kind: str
    salience: float
    fallback: Callable[[], "ChunkNote"]


@dataclass
class ChunkNote:
    """What one part of the video is about, as the map step (or a merge) wrote it."""

    start: float
    end: float
    text: str
    chapters: list[Chapter]
    moments: list[KeyMoment]
    salience: float
    from_llm: bool

    def render(self, index: int, text_chars: int | None = None, max_items: int | None = None) -> str:
        """The note as a prompt reads it; ``text_chars`` and ``max_items`` shorten it (the most
        chapters and moments listed, the rest counted)."""
        text = self.text if text_chars is None else _clip(self.text, text_chars)
        rows = [f"[part {index} | {fmt_time(self.start)}-{fmt_time(self.end)}] {text}"]
        if self.chapters:
            rows.append("  chapters: " + _listing([f"{fmt_time(c.start)}-{fmt_time(c.end)} {_clip(c.title, 50)}"
                                                   for c in self.chapters], max_items))
        if self.moments:
            rows.append("  moments: " + _listing([f"{fmt_time(m.time)} {_clip(m.text, 60)}" for m in self.moments],
                                                 max_items))
        return "\n".join(rows)


def _listing(items: list[str], most: int | None) -> str:
    if most is None or len(items) <= most:
        return "; ".join(items)
    return "; ".join(items[:most] + [f"(+{len(items) - most} more)"])


@dataclass
class Plan:
    """What the summary will cost, estimated before any call (shown in the log and stored)."""

    units: int
    digest_tokens: int
    budget: int
    overhead: int
    mode: str                    # extractive | single | map-reduce | fitted
    chunks: int
    est_calls: int
    est_prompt_tokens: int
    est_new_tokens: int
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"{self.units} digests, {self.digest_tokens} tokens in all; budget {self.budget} tokens per "
                f"call; plan: {self.mode}" + (f" over {self.chunks} chunks" if self.chunks > 1 else "")
                + f", ~{self.est_calls} LLM call(s), ~{self.est_prompt_tokens} prompt tokens, "
                f"<= {self.est_new_tokens} generated tokens")


def chunk_digests(digests: list[Digest], room: int) -> list[list[Digest]]:
    """Consecutive digests in chunks whose full texts fit ``room`` tokens (one digest at least)."""
    chunks: list[list[Digest]] = [[]]
    used = 0
    for d in digests:
        cost = d.tokens + 1
        if chunks[-1] and used + cost > room:
            chunks.append([])
            used = 0
        chunks[-1].append(d)
        used += cost
    return [c for c in chunks if c]


class LLMSummarizer:
    """Runs the calls for one video; ``run`` returns the raw final fields plus chunk notes."""

    def __init__(self, backend: LLMBackend, grounder: Grounder, digests: list[Digest], header: str,
                 duration: float, *, budget: int, max_new_tokens: int, chunk_new_tokens: int, language: str,
                 temperature: float, max_chapters: int, max_key_moments: int, map_reduce: bool,
                 progress: Callable[[float], None] | None = None, medium: str = "video"):
        self.backend, self.grounder, self.digests = backend, grounder, digests
        self.header, self.duration = header, duration
        self.budget, self.max_new, self.chunk_new = budget, max_new_tokens, chunk_new_tokens
        self.language, self.temperature = language, temperature
        self.max_chapters, self.max_key_moments, self.map_reduce = max_chapters, max_key_moments, map_reduce
        self.progress = progress
        self.stats = CallStats()
        self.notes: list[str] = []
        self.medium = medium
        self.system = system_prompt(language, medium)
        self._done = 0
        self.plan = self._plan()

    # --- prompts ---------------------------------------------------------------------
    def _final_messages(self, body: str, kind: str) -> list[Message]:
        scenes = "parts" if self.medium == "audio" else "scenes"
        what = f"Notes on the {self.medium}'s {scenes}, in time order" if kind == "digests" else \
            f"Descriptions of consecutive parts of the {self.medium}, in time order"
        length = "Audio length" if self.medium == "audio" else "Video length"
        user = (f"{length}: {fmt_time(self.duration)}. {self.header}\n\n{what}:\n{body}\n\n"
                f"Write the summary as JSON: {FINAL_SCHEMA}\nChapters: at most {self.max_chapters} consecutive "
                f"parts covering the {self.medium}, each starting and ending at a time from the notes. Key moments: "
                f"at most {self.max_key_moments}, each at a time from the notes.")
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def _chunk_messages(self, body: str, a: float, b: float, kind: str) -> list[Message]:
        what = "Notes on its scenes" if kind == "digests" else "Descriptions of its consecutive parts"
        whole = f"{fmt_time(self.duration)} of audio" if self.medium == "audio" else \
            f"a {fmt_time(self.duration)} video"
        user = (f"This is the part {fmt_time(a)}-{fmt_time(b)} of {whole}. "
                f"{what}, in time order:\n{body}\n\nDescribe this part as JSON: {CHUNK_SCHEMA}\nUse only "
                f"times between {fmt_time(a)} and {fmt_time(b)} that appear above.")
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def _overhead(self, final: bool) -> int:
        msgs = self._final_messages("", "digests") if final else self._chunk_messages("", 0.0, self.duration, "digests")
        return self.backend.count_messages(msgs) + 8

    # --- planning --------------------------------------------------------------------
    def _plan(self) -> Plan:
        total = sum(d.tokens + 1 for d in self.digests)
        overhead = max(self._overhead(True), self._overhead(False))
        room = self.budget - overhead
        if room < 32:
            raise ValueError(f"analyzers.fusion.params.token_budget ({self.budget}) leaves no room for scene "
                             f"notes after the {overhead}-token instructions; raise it")
        if total <= room:
            return Plan(len(self.digests), total, self.budget, overhead, "single", 1, 1, total + overhead, self.max_new)
        if not self.map_reduce:
            return Plan(len(self.digests), total, self.budget, overhead, "fitted", 1, 1, self.budget, self.max_new,
                        ["map_reduce is off: the least salient digests are shortened or left out"])
        n = len(chunk_digests(self.digests, room))
        note_tokens = n * (self.chunk_new + 40)
        merges = 0
        level = n
        while level * (self.chunk_new + 40) > room and level > 1:
            level = math.ceil(level * (self.chunk_new + 40) / room)
            merges += level
        calls = n + merges + 1
        return Plan(len(self.digests), total, self.budget, overhead, "map-reduce", n, calls,
                    total + overhead * calls + note_tokens, n * self.chunk_new + merges * self.chunk_new + self.max_new)

    # --- calls -----------------------------------------------------------------------
    def _call(self, messages: list[Message], max_new: int) -> str:
        return self._calls([messages], max_new)[0]

    def _calls(self, chats: list[list[Message]], max_new: int) -> list[str]:
        """Independent prompts: answered together where the backend batches them
        (``LLMBackend.generate_many`` overridden: one batch on a local model), else one by one."""
        counts = [self.backend.count_messages(m) for m in chats]
        for n in counts:
            if n > self.budget:
                raise AssertionError(f"internal: prompt of {n} tokens exceeds the budget of {self.budget}")
        together = len(chats) > 1 and type(self.backend).generate_many is not LLMBackend.generate_many
        answers: list[str] = []
        try:
            if together:
                try:
                    answers = self.backend.generate_many(chats, max_new_tokens=max_new, temperature=self.temperature)
                except Exception as exc:  # count the prompts answered before the failure (``partial_answers``)
                    for n, text in zip(counts, getattr(exc, "partial_answers", None) or []):
                        self._count(n, text)
                    raise
                if len(answers) != len(chats):
                    raise BackendCallError(f"generate_many answered {len(answers)} of {len(chats)} prompts")
                self.stats.batch_sizes.append(len(chats))
                for n, text in zip(counts, answers):
                    self._count(n, text)
            else:
                for n, m in zip(counts, chats):
                    answers.append(self.backend.generate(m, max_new_tokens=max_new, temperature=self.temperature))
                    self.stats.batch_sizes.append(1)
                    self._count(n, answers[-1])
        except LLMError:  # BackendCallError included
            raise
        except Exception as exc:  # the backend's own failure (HTTP, transformers, torch), not fusion's
            raise BackendCallError(f"{type(exc).__name__}: {exc}") from exc
        return answers

    def _count(self, prompt_tokens: int, answer: str) -> None:
        self.stats.calls += 1
        self.stats.prompt_tokens += prompt_tokens
        self.stats.max_prompt_tokens = max(self.stats.max_prompt_tokens, prompt_tokens)
        self.stats.completion_tokens += self.backend.count_tokens(answer)
        self._done += 1
        if self.progress:
            self.progress(min(0.99, self._done / max(1, self.plan.est_calls)))

    def _fit_body(self, texts: list[str], messages: Callable[[str], list[Message]]) -> str:
        """Join ``texts``; if the prompt overflows (token estimates can be off), drop from the end."""
        body = "\n".join(texts)
        while texts and self.backend.count_messages(messages(body)) > self.budget:
            texts = texts[:-1]
            body = "\n".join(texts)
        return body

    def _describe_chunks(self, parts: list[Part]) -> list[ChunkNote]:
        """One note per part (its texts, times, kind, salience and the note that stands in when the
        answer is unusable), the prompts answered together."""
        prompts = []
        for part in parts:
            def messages(body: str, part: Part = part) -> list[Message]:
                return self._chunk_messages(body, part.start, part.end, part.kind)

            prompts.append(messages(self._fit_body(part.texts, messages)))
        answers = self._calls(prompts, self.chunk_new) if prompts else []
        return [self._chunk_note(answer, p) for answer, p in zip(answers, parts)]

    def _chunk_note(self, answer: str, part: Part) -> ChunkNote:
        a, b = part.start, part.end
        fields, was_json = read_answer(answer)
        chapters = self.grounder.ground_chapters(fields["chapters"], window=(a, b))
        moments = self.grounder.ground_moments(fields["key_moments"], window=(a, b))
        text = fields.get("summary") or fields.get("paragraph")
        if not text:
            self.stats.unusable_answers += 1
            note = part.fallback()
            note.chapters = chapters or note.chapters
            note.moments = moments or note.moments
            self.notes.append(f"part {fmt_time(a)}-{fmt_time(b)}: the model's answer had no usable description "
                              f"({'JSON without one' if was_json else 'not JSON'}); the scene notes stand in for it")
            return note
        return ChunkNote(a, b, _clip(text, 1200), chapters, moments, part.salience, True)

    def _digest_note(self, chunk: list[Digest]) -> ChunkNote:
        best = sorted(chunk, key=lambda d: -d.salience)[:3]
        text = " ".join(_clip(d.brief, 200) for d in sorted(best, key=lambda d: d.unit.start))
        a, b = chunk[0].unit.start, chunk[-1].unit.end
        return ChunkNote(a, b, text, [], [], max(d.salience for d in chunk), False)

    def _render_note(self, note: ChunkNote, index: int, cap: int) -> str:
        """``note`` rendered in at most ``cap`` tokens: the description is shortened first, then
        fewer chapters and moments are listed (the note itself keeps them all)."""
        count = self.backend.count_tokens
        text = note.render(index)
        if count(text) <= cap:
            return text
        for chars in (600, 300, 150, 80):
            text = note.render(index, text_chars=chars)
            if count(text) <= cap:
                return text
        for items in (8, 4, 2, 1, 0):
            text = note.render(index, text_chars=80, max_items=items)
            if count(text) <= cap:
                return text
        while len(text) > 16 and count(text) > cap:
            text = _clip(text, int(len(text) * 0.8))
        return text

    def _render_notes(self, notes: list[ChunkNote], cap: int) -> list[str]:
        return [self._render_note(n, i + 1, cap) for i, n in enumerate(notes)]

    def _reduce(self, notes: list[ChunkNote], room: int) -> list[ChunkNote]:
        """Merge consecutive notes in groups that fit ``room`` until all of them fit it.

        Each note is rendered in at most half the room, so every group holds two notes or more
        and each level at least halves their number: the tree is at most log2(chunks) levels
        deep, and no part of the video is left out on the way.
        """
        cap = max(32, room // 2 - 1)
        while len(notes) > 1:
            texts = self._render_notes(notes, cap)
            costs = [self.backend.count_tokens(t) + 1 for t in texts]
            if sum(costs) <= room:
                break
            if len(self.stats.merge_calls_per_level) >= MAX_MERGE_LEVELS:
                return self._keep_most_salient(notes, costs, room)
            groups: list[list[ChunkNote]] = [[]]
            used = 0
            for n, cost in zip(notes, costs):
                if groups[-1] and used + cost > room:
                    groups.append([])
                    used = 0
                groups[-1].append(n)
                used += cost
            if len(groups) == len(notes):  # cannot happen with cap <= room / 2; never loop without progress
                return self._keep_most_salient(notes, costs, room)
            merges = [g for g in groups if len(g) > 1]
            self.stats.merge_calls_per_level.append(len(merges))
            described = iter(self._describe_chunks([
                Part(self._render_notes(g, cap), g[0].start, g[-1].end, "parts", max(n.salience for n in g),
                     lambda g=g: ChunkNote(g[0].start, g[-1].end, " ".join(_clip(n.text, 300) for n in g),
                                           [c for n in g for c in n.chapters], [m for n in g for m in n.moments],
                                           max(n.salience for n in g), False))
                for g in merges]))
            notes = [g[0] if len(g) == 1 else next(described) for g in groups]
        return notes

    def _keep_most_salient(self, notes: list[ChunkNote], costs: list[int], room: int) -> list[ChunkNote]:
        keep, used = [], 0
        for i in sorted(range(len(notes)), key=lambda i: -notes[i].salience):
            if used + costs[i] <= room:
                keep.append(i)
                used += costs[i]
        self.notes.append(f"after {len(self.stats.merge_calls_per_level)} merge levels the part descriptions still "
                          f"overflowed; kept the {len(keep)} most salient of {len(notes)}")
        return [notes[i] for i in sorted(keep)]

    def run(self) -> tuple[dict[str, Any], list[ChunkNote], bool]:
        """Returns (final fields, chunk notes, final answer was JSON)."""
        room = self.budget - self.plan.overhead
        if self.plan.mode == "single":
            body = self._fit_body([d.text for d in self.digests], lambda x: self._final_messages(x, "digests"))
            answer = self._call(self._final_messages(body, "digests"), self.max_new)
            fields, was_json = read_answer(answer)
            return fields, [], was_json
        if self.plan.mode == "fitted":
            fitted = fit_digests(self.digests, room)
            self.notes.append(f"the scene notes did not fit the budget of {self.budget} tokens: {fitted.full} in "
                              f"full, {fitted.brief} shortened and {fitted.dropped} left out by salience")
            body = self._fit_body(fitted.texts, lambda x: self._final_messages(x, "digests"))
            answer = self._call(self._final_messages(body, "digests"), self.max_new)
            fields, was_json = read_answer(answer)
            return fields, [], was_json
        # map: describe each chunk of scene digests (the prompts answered together)
        chunks = chunk_digests(self.digests, room)
        notes = self._describe_chunks([Part([d.text for d in c], c[0].unit.start, c[-1].unit.end, "digests",
                                            max(d.salience for d in c), lambda c=c: self._digest_note(c))
                                       for c in chunks])
        self.stats.map_calls += len(chunks)
        # reduce: merge groups of notes, level by level, until they fit one final prompt
        notes = self._reduce(notes, room)
        body = self._fit_body(self._render_notes(notes, max(32, room // 2 - 1)),
                              lambda x: self._final_messages(x, "parts"))
        answer = self._call(self._final_messages(body, "parts"), self.max_new)
        fields, was_json = read_answer(answer)
        return fields, notes, was_json
