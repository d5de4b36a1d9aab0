"""Full-text search over a generated library whose texts are known: ranking (all words before some,
rare words before common ones), stemming, phrases, filters, links, odd queries, and the CLI."""
from __future__ import annotations

import json
import random
import re

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import main
from framework.library import Library, LibraryError, search
from framework.library.search import fts_query
from library_helpers import fake_run, fake_video

WORDS = ("boat sea gull wave harbour sand rock cloud wind sail net fish dock rope crane truck road bridge "
         "tower bell tree field horse barn fence gate path hill river stone lamp").split()
PLANTED = "a lighthouse keeper feeds the cat at dusk"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """40 videos x 15 sentences of 4-8 words from a small vocabulary (seeded), plus known texts."""
    root = tmp_path_factory.mktemp("search")
    lib = Library.open(root / "library.db")
    rng = random.Random(16)
    texts: dict[str, list[tuple[float, float, str]]] = {}
    for v in range(40):
        lines = [(float(i * 4), float(i * 4 + 3), " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 8))))
                 for i in range(15)]
        if v == 7:
            lines[9] = (36.0, 39.0, PLANTED)
        if v == 3:
            lines += [(70.0, 72.0, "a red car parked at night by the harbour"), (80.0, 81.0, "a red bus in the morning")]
        if v == 5:
            lines += [(10.5, 12.0, "night traffic: a red car and taxis"), (20.0, 22.0, "the car was red, the night was long")]
        texts[f"video{v:02d}"] = lines
        analyzer = "speech" if v % 2 else "captions"
        lib.add_run(fake_run(root / "runs" / f"video{v:02d}", fake_video(root / f"video{v:02d}.mp4"), lines,
                             analyzer=analyzer))
    return lib, texts


def _stems(text: str) -> set[str]:
    return {w.lower().rstrip("s") for w in re.findall(r"\w+", text)}


def test_a_planted_moment_is_found_first(generated):
    lib, _ = generated
    hits = search(lib, "lighthouse keeper", mode="text").hits
    assert (hits[0].video_name, hits[0].start, hits[0].end, hits[0].text) == ("video07.mp4", 36.0, 39.0, PLANTED)
    assert hits[0].analyzer == "speech" and hits[0].kind == "event" and hits[0].found_by == ["full-text"]
    assert hits[0].link.endswith("/runs/video07/report.html#t=36.00") and hits[0].link.startswith("file://")
    assert hits[0].snippet and "[lighthouse]" in hits[0].snippet and "[keeper]" in hits[0].snippet


def test_every_moment_with_the_word_is_found_and_no_other(generated):
    lib, texts = generated
    for word in ("lamp", "bridge", "gull"):
        expected = {(f"{name}.mp4", s) for name, lines in texts.items() for s, _, t in lines if word in _stems(t)}
        hits = search(lib, word, mode="text", limit=1000).hits
        assert {(h.video_name, h.start) for h in hits} == expected and expected


def test_moments_with_every_word_rank_before_those_with_some(generated):
    lib, texts = generated
    hits = search(lib, "red car night", mode="text", limit=50).hits
    full = [h for h in hits if {"red", "car", "night"} <= _stems(h.text)]
    assert len(full) == 3 and hits[:3] == full
    assert all(not ({"red", "car", "night"} <= _stems(h.text)) for h in hits[3:])
    assert "a red bus in the morning" in [h.text for h in hits[3:]]


def test_a_rare_word_outweighs_a_common_one(generated):
    lib, texts = generated
    # "harbour" is in hundreds of generated lines; "lighthouse" in one: the planted line wins
    counts = sum("harbour" in _stems(t) for lines in texts.values() for _, _, t in lines)
    assert counts > 20
    assert search(lib, "harbour lighthouse", mode="text").hits[0].text == PLANTED


def test_stemming_and_phrases(generated):
    lib, _ = generated
    assert search(lib, "parking", mode="text").hits[0].text == "a red car parked at night by the harbour"
    phrase = [h.text for h in search(lib, '"red car"', mode="text", limit=50).hits]
    assert sorted(phrase) == ["a red car parked at night by the harbour", "night traffic: a red car and taxis"]


def test_analyzer_and_video_filters(generated):
    lib, _ = generated
    assert {h.analyzer for h in search(lib, "boat", analyzers=["captions"], mode="text", limit=200).hits} == {"captions"}
    only = search(lib, "red car", videos=["video05"], mode="text", limit=50).hits
    assert only and {h.video_name for h in only} == {"video05.mp4"}
    assert search(lib, "lighthouse", analyzers=["captions"], mode="text").hits == []
    with pytest.raises(LibraryError, match="not in the library"):
        search(lib, "boat", videos=["nope"], mode="text")
    with pytest.raises(LibraryError, match="empty"):
        search(lib, "   ", mode="text")


def test_ranking_is_said_and_semantic_rankers_say_why_they_are_off(generated, monkeypatch, tmp_path):
    lib, _ = generated
    monkeypatch.setenv("FRAMEWORK_MANIFEST", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("version: 1\nmodels: {}\n")
    from framework.library.encoders import Encoders

    result = search(lib, "boat", encoders=Encoders())
    assert result.ranking == "full-text (SQLite FTS5, BM25)"
    assert any("sentence-embedding ranking off" in n and "all-minilm-l6-v2" in n for n in result.notes)
    assert any("no video in the library has shot embeddings" in n for n in result.notes)
    semantic_only = search(lib, "boat", mode="semantic", encoders=Encoders())
    assert semantic_only.hits == [] and semantic_only.ranking.startswith("none")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=40))
def test_no_query_text_breaks_the_full_text_index(generated, query):
    lib, _ = generated
    if not query.strip():
        return
    result = search(lib, query, mode="text", limit=5)  # FTS5 syntax in the query is never passed through
    assert len(result.hits) <= 5


def test_fts_query_quotes_every_word():
    assert fts_query('red car "at night" NEAR(x) *', False) == '"at night" OR "red" OR "car" OR "NEAR" OR "x"'
    assert fts_query("red car", True) == '"red" AND "car"'
    assert fts_query("!!! ...", True) is None


def test_search_command(generated, monkeypatch):
    lib, _ = generated
    monkeypatch.setenv("FRAMEWORK_LIBRARY", str(lib.path))
    out = CliRunner().invoke(main, ["search", "lighthouse", "keeper", "--ranking", "text", "--json", "--limit", "3"])
    data = json.loads(out.stdout)
    assert data["ranking"] == "full-text (SQLite FTS5, BM25)" and data["hits"][0]["text"] == PLANTED
    assert data["hits"][0]["link"].endswith("report.html#t=36.00")
    text = CliRunner().invoke(main, ["search", "red car", "--analyzer", "captions,speech", "--video", "video03",
                                     "--ranking", "text"]).output
    assert "video03.mp4" in text and "1:10.0" in text and "#t=70.00" in text
