"""What the library takes from a run: the moments that carry text, and the shot embeddings.

Moments (one row each, searchable):

- every event of an ``ok`` track whose ``data["text"]`` is a non-empty string (descriptions,
  transcript segments, on-screen text, object labels, chapter titles written by any analyzer);
  word-level events (label ``word``) are left out: the segment that holds them is indexed;
- the summary of the track providing ``summary``: its title and paragraph (the whole video), each
  chapter (title and text, at the chapter's times) and each key moment.

Shot embeddings (for CLIP text-to-image search) are read from any ``ok`` track's
``data["shot_embeddings"]`` (``content_quality`` keeps them there). The format, shared with the
analyzers that write it::

    track.data["shot_embeddings"] = {
        "model": "clip-vit-base-patch32",   # the manifest id of the CLIP model (its image tower made them)
        "dim": 512,                          # vector length
        "times": [[0.0, 2.5], [2.5, 4.0]],  # seconds: one [start, end] per vector (a shot, or a sampled span)
        "dtype": "float16",                  # optional: float16 (default) or float32
        "vectors_b64": "...",               # base64 of little-endian floats, row-major, len(times) x dim
    }

(``content_quality`` writes exactly this through ``analyzers._vision.common.encode_embeddings``.)
``"vectors"`` (a list of lists of floats) is accepted instead of ``"vectors_b64"``. Vectors need
not be normalised; the library normalises them. ``encode_shot_embeddings`` writes the format.
"""
from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ..timeline import Timeline

logger = logging.getLogger(__name__)

SHOT_EMBEDDINGS = "shot_embeddings"
MAX_TEXT = 20_000          # characters kept of one moment's text
SKIPPED_LABELS = frozenset({"word"})


@dataclass(frozen=True)
class MomentRow:
    """One searchable moment before it is stored."""

    analyzer: str
    kind: str      # event | title | summary | chapter | key_moment
    label: str
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class ShotEmbeddings:
    """One track's shot embeddings: ``vectors[i]`` covers ``times[i]`` (float32, L2-normalised)."""

    analyzer: str
    model: str
    times: list[tuple[float, float]]
    vectors: "np.ndarray"


def _clean(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    text = " ".join(text.split())
    return text[:MAX_TEXT] if text else None


def moments_of(timeline: "Timeline") -> list[MomentRow]:
    """Every moment of ``timeline`` that carries text, in time order, without duplicates."""
    rows: list[MomentRow] = []
    duration = max(0.0, float(timeline.video.duration or 0.0))
    for track in timeline.tracks.values():
        if track.status != "ok":
            continue
        for ev in track.events:
            if ev.label in SKIPPED_LABELS:
                continue
            text = _clean(ev.data.get("text"))
            if text:
                rows.append(MomentRow(track.analyzer, "event", ev.label, float(ev.start), float(ev.end), text))
    rows += _summary_moments(timeline, duration)
    seen: set[tuple] = set()
    unique = []
    for r in sorted(rows, key=lambda r: (r.start, r.end, r.analyzer, r.kind)):
        key = (r.analyzer, round(r.start, 3), round(r.end, 3), r.text)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return unique


def _summary_moments(timeline: "Timeline", duration: float) -> list[MomentRow]:
    from ..outputs.base import summary_track_of

    track = summary_track_of(timeline)
    if track is None:
        return []
    from ..summary import Summary

    try:
        s = Summary.from_track(track)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        logger.warning("%s: the summary of %s cannot be read (%s); not indexed", timeline.video.path,
                       track.analyzer, exc)
        return []
    if s is None:
        return []
    name = track.analyzer
    rows = []
    for kind, text in (("title", s.title), ("summary", s.paragraph)):
        text = _clean(text)
        if text:
            rows.append(MomentRow(name, kind, kind, 0.0, duration, text))
    for ch in s.chapters:
        text = _clean(" — ".join(x for x in (ch.title, ch.summary) if x))
        if text:
            rows.append(MomentRow(name, "chapter", "chapter", ch.start, max(ch.end, ch.start), text))
    for m in s.key_moments:
        text = _clean(m.text)
        if text:
            rows.append(MomentRow(name, "key_moment", "key moment", m.time, max(m.end or m.time, m.time), text))
    return rows


def title_and_summary(timeline: "Timeline") -> tuple[str | None, str | None]:
    """The summary's title and paragraph, when the run has a summary."""
    from ..outputs.base import summary_track_of
    from ..summary import Summary

    track = summary_track_of(timeline)
    try:
        s = Summary.from_track(track) if track is not None else None
    except ValueError:
        return None, None
    return (s.title, s.paragraph) if s else (None, None)


# --- shot embeddings ------------------------------------------------------------------------------
def encode_shot_embeddings(model: str, times: list[tuple[float, float]], vectors: Any) -> dict[str, Any]:
    """The ``track.data["shot_embeddings"]`` value for ``vectors`` (n x dim) covering ``times``."""
    import numpy as np

    arr = np.asarray(vectors, dtype="<f2")
    if arr.ndim != 2 or arr.shape[0] != len(times):
        raise ValueError(f"shot embeddings: {arr.shape} vectors for {len(times)} time spans")
    return {"model": model, "dim": int(arr.shape[1]), "times": [[float(a), float(b)] for a, b in times],
            "dtype": "float16", "vectors_b64": base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")}


def decode_shot_embeddings(analyzer: str, value: Any) -> ShotEmbeddings:
    """Read one ``shot_embeddings`` value; ``ValueError`` names what is wrong with it."""
    import numpy as np

    if not isinstance(value, dict):
        raise ValueError("shot_embeddings is not an object")
    model, dim, times = value.get("model"), value.get("dim"), value.get("times")
    if not isinstance(model, str) or not model:
        raise ValueError("shot_embeddings.model must name the CLIP model's manifest id")
    if not isinstance(times, list) or not all(isinstance(t, (list, tuple)) and len(t) == 2 for t in times):
        raise ValueError("shot_embeddings.times must be a list of [start, end]")
    if not times:  # nothing embedded (no frame sampled): nothing to search, nothing wrong
        return ShotEmbeddings(analyzer, model, [], np.zeros((0, 0), np.float32))
    dtype = {"float16": "<f2", "float32": "<f4"}.get(value.get("dtype", "float16"))
    if dtype is None:
        raise ValueError(f"shot_embeddings.dtype {value.get('dtype')!r} is not float16 or float32")
    if "vectors_b64" in value:
        raw = base64.b64decode(value["vectors_b64"], validate=True)
        arr = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    elif "vectors" in value:
        arr = np.asarray(value["vectors"], dtype=np.float32).reshape(-1)
    else:
        raise ValueError("shot_embeddings has neither vectors_b64 nor vectors")
    if not isinstance(dim, int) or dim <= 0 or arr.size != dim * len(times):
        raise ValueError(f"shot_embeddings: {arr.size} numbers are not {len(times)} vectors of dim {dim!r}")
    vectors = arr.reshape(len(times), dim)
    if not np.isfinite(vectors).all():
        raise ValueError("shot_embeddings holds NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms > 0, norms, 1.0)
    return ShotEmbeddings(analyzer, model, [(float(a), float(b)) for a, b in times], vectors)


def shot_embeddings_of(timeline: "Timeline") -> list[ShotEmbeddings]:
    """Every readable ``shot_embeddings`` value of the run's ``ok`` tracks; a bad one is logged and skipped."""
    found = []
    for track in timeline.tracks.values():
        if track.status != "ok" or SHOT_EMBEDDINGS not in track.data:
            continue
        try:
            found.append(decode_shot_embeddings(track.analyzer, track.data[SHOT_EMBEDDINGS]))
        except (ValueError, TypeError) as exc:
            logger.warning("%s: %s.data.shot_embeddings cannot be read (%s); CLIP search skips it",
                           timeline.video.path, track.analyzer, exc)
    return found
