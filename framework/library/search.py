"""Search inside every video of the library: moments with their video, times, text and analyzer.

Rankers, fused by reciprocal rank (each hit's score is the sum of ``1 / (60 + rank)`` over the
rankers that found it) when more than one ran:

- **full text**, always: SQLite FTS5 with BM25 over ``moments.text`` (Porter stemming, accents
  folded). Moments holding every query word come first, then those holding some of them (words in
  more than half of all moments, which BM25 gives no weight, are left out of that second pass).
  ``"quoted words"`` are matched as a phrase.
- **sentence embeddings**, when the sentence model (default ``all-minilm-l6-v2``) is cached:
  cosine similarity between the query and each moment's text. Texts are embedded on the first
  semantic search after they were added (and kept in the library).
- **CLIP text-to-image**, when some video has shot embeddings (``content_quality`` keeps them;
  format in ``framework.library.extract``) and their CLIP model is cached: cosine similarity between
  the query's CLIP text vector and each shot's image vector. A shot hit's text is the text of a
  moment it overlaps, else ``visual match``.

``SearchResult.ranking`` says which rankers ran; ``notes`` says why any did not. Nothing is ever
downloaded here: a missing model names the ``framework models pull`` command.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .encoders import DEFAULT_TEXT_MODEL, Encoders
from .store import Library, LibraryError, report_link

logger = logging.getLogger(__name__)

RRF_K = 60
EMBED_BATCH = 256
Mode = Literal["auto", "text", "semantic"]
_SHARED_ENCODERS: Encoders | None = None


@dataclass
class Hit:
    """One moment found: which video, when, what it says, which analyzer said it."""

    video_id: int
    video_name: str
    video_path: str
    start: float
    end: float
    text: str
    analyzer: str
    kind: str
    score: float
    found_by: list[str]
    link: str
    run_dir: str
    snippet: str | None = None  # the text with the matched words in [brackets] (full-text hits)
    moment_id: int | None = None  # the stored moment (None for a shot found by CLIP)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    """The hits, best first, and how they were ranked."""

    query: str
    hits: list[Hit]
    ranking: str
    rankers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    took_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "ranking": self.ranking, "rankers": self.rankers, "notes": self.notes,
                "took_ms": round(self.took_ms, 2), "hits": [h.to_dict() for h in self.hits]}


@dataclass
class _Found:
    key: tuple[str, int]
    video_id: int
    analyzer: str
    kind: str
    start: float
    end: float
    text: str
    raw: float


def clock(t: float) -> str:
    """``m:ss.s`` (or ``h:mm:ss.s``): a moment's time for display (without importing the outputs)."""
    tenths = int(round(max(0.0, t) * 10))
    h, rem = divmod(tenths, 36_000)
    m, rem = divmod(rem, 600)
    s = f"{rem // 10:02d}.{rem % 10}"
    return f"{h}:{m:02d}:{s}" if h else f"{m}:{s}"


def shared_encoders() -> Encoders:
    """One ``Encoders`` per process (models stay loaded between searches)."""
    global _SHARED_ENCODERS
    if _SHARED_ENCODERS is None:
        _SHARED_ENCODERS = Encoders()
    return _SHARED_ENCODERS


def fts_query(query: str, all_terms: bool) -> str | None:
    """An FTS5 MATCH expression for free text: every word quoted (no syntax from the user reaches
    FTS5), ``"phrases"`` kept together, joined with AND or OR. None when there is no word."""
    phrases = [" ".join(re.findall(r"\w+", p)) for p in re.findall(r'"([^"]*)"', query)]
    rest = re.sub(r'"[^"]*"', " ", query)
    parts = [f'"{p}"' for p in phrases if p] + [f'"{w}"' for w in re.findall(r"\w+", rest)]
    if not parts:
        return None
    return (" AND " if all_terms else " OR ").join(dict.fromkeys(parts))


def search(library: Library, query: str, *, analyzers: list[str] | None = None, videos: list[str] | None = None,
           limit: int = 20, mode: Mode = "auto", text_model: str = DEFAULT_TEXT_MODEL,
           encoders: Encoders | None = None) -> SearchResult:
    """Search the library for ``query``.

    :param analyzers: only moments from these analyzers.
    :param videos: only these videos (anything ``Library.find`` accepts: number, file, name, hash).
    :param mode: ``auto`` (full text, plus the semantic rankers whose models are cached),
        ``text`` (full text only) or ``semantic`` (only the embedding rankers).
    :raises LibraryError: an empty query, or a ``videos`` entry the library does not have.
    """
    started = time.perf_counter()
    query = query.strip()
    if not query:
        raise LibraryError("the search query is empty")
    video_ids = sorted({library.find(v).id for v in videos}) if videos else None
    filters = _Filters(analyzers or None, video_ids)
    depth = max(limit * 3, 50)
    lists: list[tuple[str, list[_Found]]] = []
    notes: list[str] = []
    if mode != "semantic":
        lists.append(("full-text (SQLite FTS5, BM25)", _full_text(library, query, filters, depth)))
    if mode != "text":
        encoders = encoders or shared_encoders()
        for name, found, note in (_sentence(library, query, filters, depth, encoders, text_model),
                                  *_clip(library, query, filters, depth, encoders)):
            if found is not None:
                lists.append((name, found))
            if note:
                notes.append(note)
    hits = _fuse(library, lists, limit)
    for hit in hits:
        if "full-text" in hit.found_by:
            hit.snippet = _snippet(library, query, hit.moment_id)
    names = [n for n, _ in lists]
    if not names:
        ranking = "none: no semantic ranker is available"
    elif len(names) == 1:
        ranking = names[0]
    else:
        ranking = "hybrid: " + " + ".join(names) + ", fused by reciprocal rank"
    return SearchResult(query, hits, ranking, names, notes, (time.perf_counter() - started) * 1000)


@dataclass(frozen=True)
class _Filters:
    analyzers: list[str] | None
    video_ids: list[int] | None

    def sql(self, alias: str = "m") -> tuple[str, list[Any]]:
        where, args = "", []
        if self.analyzers:
            where += f" AND {alias}.analyzer IN ({', '.join('?' * len(self.analyzers))})"
            args += list(self.analyzers)
        if self.video_ids:
            where += f" AND {alias}.video_id IN ({', '.join('?' * len(self.video_ids))})"
            args += list(self.video_ids)
        return where, args

    def mask(self, video_ids: Any, analyzers: list[str]) -> Any:
        import numpy as np

        keep = np.ones(len(analyzers), dtype=bool)
        if self.video_ids:
            keep &= np.isin(video_ids, np.array(self.video_ids, dtype=np.int64))
        if self.analyzers:
            wanted = set(self.analyzers)
            keep &= np.fromiter((a in wanted for a in analyzers), dtype=bool, count=len(analyzers))
        return keep


def _loose_query(library: Library, query: str) -> str | None:
    """The any-word pass without the words that are in more than half of all moments (stop words, in
    effect): FTS5's BM25 gives them no weight (their IDF is floored), yet scoring every moment that
    holds one costs a document-size lookup each. With nothing left, every word is kept."""
    parts = (fts_query(query, False) or "").split(" OR ")
    if len(parts) < 2:
        return fts_query(query, False)
    db = library.connection()
    gen = library.generation()
    counts = library.cache.setdefault(("df", gen), {})
    for k in [k for k in library.cache if k[0] == "df" and k != ("df", gen)]:
        del library.cache[k]
    if "*" not in counts:
        counts["*"] = db.execute("SELECT count(*) FROM moments").fetchone()[0]
    for p in parts:
        if p not in counts:
            counts[p] = db.execute("SELECT count(*) FROM moments_fts WHERE moments_fts MATCH ?", (p,)).fetchone()[0]
    kept = [p for p in parts if counts[p] * 2 <= counts["*"]]
    return " OR ".join(kept or parts)


def _full_text(library: Library, query: str, filters: _Filters, depth: int) -> list[_Found]:
    """BM25 order first (only rowids and scores: the cost is scoring every match), then the rows of
    the few kept; snippets are made later, for the hits returned."""
    db = library.connection()
    where, args = filters.sql()
    if where:
        sql = ("SELECT m.id, bm25(moments_fts) FROM moments_fts JOIN moments m ON m.id = moments_fts.rowid "
               f"WHERE moments_fts MATCH ?{where} ORDER BY 2 LIMIT ?")
    else:
        sql = "SELECT rowid, bm25(moments_fts) FROM moments_fts WHERE moments_fts MATCH ? ORDER BY 2 LIMIT ?"
    ranked: dict[int, float] = {}
    strict, loose = fts_query(query, True), _loose_query(library, query)
    for expr in dict.fromkeys(e for e in (strict, loose) if e):
        for rowid, score in db.execute(sql, [expr, *args, depth]):
            if rowid not in ranked and len(ranked) < depth:
                ranked[rowid] = -score
    moments = library.moments_by_id(list(ranked))
    return [_Found(("m", m.id), m.video_id, m.analyzer, m.kind, m.start, m.end, m.text, ranked[i])
            for i in ranked if (m := moments.get(i)) is not None]


def _snippet(library: Library, query: str, moment_id: int) -> str | None:
    """The moment's text with the query's words in [brackets] (FTS5's ``snippet``)."""
    expr = fts_query(query, False)
    if not expr:
        return None
    row = library.connection().execute(
        "SELECT snippet(moments_fts, 0, '[', ']', '…', 24) FROM moments_fts WHERE moments_fts MATCH ? AND rowid = ?",
        (expr, moment_id)).fetchone()
    return row[0] if row else None


def _top(scores: Any, keep: Any, depth: int) -> Any:
    import numpy as np

    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return idx
    if idx.size > depth:
        part = np.argpartition(-scores[idx], depth - 1)[:depth]
        idx = idx[part]
    return idx[np.argsort(-scores[idx], kind="stable")]


def _sentence(library: Library, query: str, filters: _Filters, depth: int, encoders: Encoders,
              model: str) -> tuple[str, list[_Found] | None, str | None]:
    name = f"sentence embeddings ({model})"
    encoder, why = encoders.sentence(model)
    if encoder is None:
        return name, None, f"sentence-embedding ranking off: {why}"
    if library.cache.get(("embedded", model)) != library.generation():  # texts added since the last look
        todo = library.texts_without_vectors(model)
        if todo:
            logger.info("embedding %d new text(s) of the library with %s (once)", len(todo), model)
            for i in range(0, len(todo), EMBED_BATCH):
                chunk = todo[i:i + EMBED_BATCH]
                library.store_text_vectors(model, [k for k, _ in chunk], encoder.encode([t for _, t in chunk]))
        library.cache[("embedded", model)] = library.generation()
    key = ("text", model, library.generation())
    if key not in library.cache:
        library.cache = {k: v for k, v in library.cache.items() if k[:2] != key[:2]}
        library.cache[key] = library.text_vectors(model)
    ids, vids, analyzers, matrix = library.cache[key]
    if len(ids) == 0:
        return name, [], None
    q = encoders.query_vector(encoder, query)
    if q.shape[0] != matrix.shape[1]:
        return name, None, (f"sentence-embedding ranking off: the library holds {matrix.shape[1]}-dim vectors of "
                            f"{model} but the model gives {q.shape[0]}; run `framework library reindex`")
    scores = matrix @ q
    order = _top(scores, filters.mask(vids, analyzers), depth)
    moments = library.moments_by_id([int(ids[i]) for i in order])
    found = []
    for i in order:
        m = moments.get(int(ids[i]))
        if m is not None:
            found.append(_Found(("m", m.id), m.video_id, m.analyzer, m.kind, m.start, m.end, m.text, float(scores[i])))
    return name, found, None


def _clip(library: Library, query: str, filters: _Filters, depth: int,
          encoders: Encoders) -> list[tuple[str, list[_Found] | None, str | None]]:
    models = library.shot_models()
    if not models:
        return [("CLIP", None, "CLIP text-to-image ranking off: no video in the library has shot embeddings "
                               "(content_quality keeps them)")]
    out = []
    for model in models:
        name = f"CLIP text-to-image ({model})"
        encoder, why = encoders.clip(model)
        if encoder is None:
            out.append((name, None, f"CLIP text-to-image ranking off for {model}: {why}"))
            continue
        key = ("shots", model, library.generation())
        if key not in library.cache:
            library.cache = {k: v for k, v in library.cache.items() if k[:2] != key[:2]}
            library.cache[key] = library.shot_vectors(model)
        ids, vids, analyzers, spans, matrix = library.cache[key]
        q = encoders.query_vector(encoder, query)
        if len(ids) and q.shape[0] != matrix.shape[1]:
            out.append((name, None, f"CLIP ranking off for {model}: shot vectors have {matrix.shape[1]} dims, "
                                    f"the model's text vectors {q.shape[0]}"))
            continue
        keep = filters.mask(vids, analyzers)  # a shot belongs to the analyzer that kept its embedding
        scores = matrix @ q if len(ids) else q[:0]
        found = [_Found(("s", int(ids[i])), int(vids[i]), analyzers[i], "shot", float(spans[i][0]), float(spans[i][1]),
                        "", float(scores[i])) for i in _top(scores, keep, depth)]
        out.append((name, found, None))
    return out


def _fuse(library: Library, lists: list[tuple[str, list[_Found]]], limit: int) -> list[Hit]:
    """Reciprocal-rank fusion of the rankers' lists (one list: its own order and scores)."""
    best: dict[tuple[str, int], _Found] = {}
    scores: dict[tuple[str, int], float] = {}
    by: dict[tuple[str, int], list[str]] = {}
    for name, found in lists:
        for rank, f in enumerate(found):
            best.setdefault(f.key, f)
            scores[f.key] = scores.get(f.key, 0.0) + (f.raw if len(lists) == 1 else 1.0 / (RRF_K + rank + 1))
            by.setdefault(f.key, []).append(name.split(" (")[0])
    order = sorted(scores, key=lambda k: -scores[k])[:limit]
    records: dict[int, Any] = {}
    hits = []
    for key in order:
        f = best[key]
        if f.video_id not in records:
            try:
                records[f.video_id] = library.get(f.video_id)
            except LibraryError:
                continue
        v = records[f.video_id]
        text = f.text or _overlapping_text(library, f) or "visual match"
        hits.append(Hit(v.id, v.name, v.path, f.start, f.end, text, f.analyzer, f.kind, round(scores[key], 6),
                        by[key], report_link(v.run_dir, f.start), v.run_dir,
                        moment_id=key[1] if key[0] == "m" else None))
    return hits


def _overlapping_text(library: Library, f: _Found) -> str | None:
    """For a shot found by CLIP: the text of a moment inside it (an event first, the summary last)."""
    moments = [m for m in library.moments(f.video_id, f.start, f.end) if m.kind not in ("title", "summary")]
    inside = [m for m in moments if m.start >= f.start - 0.5]
    pick = (inside or moments)
    return pick[0].text if pick else None
