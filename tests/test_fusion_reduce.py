"""The summary's LLM paths, driven by the scripted LLM of ``framework.testing.llm``: a reduce
tree deep enough that the reduce step itself is chunked (levels, calls, and every part kept),
and the single-call paths (``map_reduce: false``)."""
from __future__ import annotations

import json
import re

from analyzers.fusion import Fusion
from analyzers.fusion.align import build_units
from analyzers.fusion.digest import DigestBuilder, score_salience
from analyzers.fusion.synthetic import synthetic_timeline
from framework import AnalyzerInputs
from framework.llm import estimate_tokens
from framework.testing.llm import ScriptedCall, ScriptedLLM, backend_plugin
from framework.plugins import build_plugin_manager
from framework.summary import Summary

DURATION = 600.0
HEADER = re.compile(r"\[(scene|part) \d+ \| ([\d.]+)s-([\d.]+)s\]")
# long enough that each part's description is a real share of the budget, as a model's would be
FILLER = " ".join(["the crew walks along the river and talks about the bridge"] * 10)


def kind(call: ScriptedCall) -> str:
    """map (a chunk of scene notes), merge (a group of part descriptions) or final."""
    if "Describe this part as JSON" not in call.user:
        return "final"
    return "map" if "Notes on its scenes" in call.user else "merge"


def spans(call: ScriptedCall) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for _, a, b in HEADER.findall(call.user)]


def faithful(call: ScriptedCall) -> str:
    """A model that describes what it was given: one chapter per scene or part in the prompt."""
    chapters = [{"start": a, "end": b, "title": f"from {a:g} to {b:g}"} for a, b in spans(call)]
    moments = [{"time": chapters[0]["start"], "text": "the part begins"}]
    if kind(call) == "final":
        return json.dumps({"title": "Along the river", "paragraph": "A walk.", "detailed": FILLER,
                           "chapters": chapters, "key_moments": moments})
    return json.dumps({"summary": FILLER, "chapters": chapters, "key_moments": moments})


def _summarize(backend: type[ScriptedLLM], params: dict, duration: float = DURATION, seed: int = 4):
    tl = synthetic_timeline(duration, seed=seed)
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[backend_plugin(backend)])
    fusion = Fusion({"backend": backend.name, **params})
    track = fusion.analyze(AnalyzerInputs(video=tl.video, upstream=dict(tl.tracks), host=host))
    fusion.unload()
    return tl, track, Summary.from_track(track)


def _scenes(tl) -> list[tuple[float, float]]:
    return [(round(e.start, 1), round(e.end, 1)) for e in tl.tracks["scene_segmentation"].events
            if e.label == "scene"]


def _chapters(summary: Summary) -> list[tuple[float, float]]:
    """Chapter bounds as the prompts print times (0.1 s); grounding snapped them to the scenes."""
    return [(round(c.start, 1), round(c.end, 1)) for c in summary.chapters]


def _assert_scene_evidence(summary: Summary, tl) -> None:
    scenes = tl.tracks["scene_segmentation"].events
    for chapter in summary.chapters:
        assert chapter.evidence, chapter
        for ev in chapter.evidence:
            event = tl.tracks[ev.analyzer].events[ev.event_index]
            assert (event.start, event.end, event.label) == (ev.start, ev.end, ev.label)
        assert any(ev.analyzer == "scene_segmentation" for ev in chapter.evidence)
    bounds = {round(e.start, 3) for e in scenes} | {round(scenes[-1].end, 3)}
    assert all(round(c.start, 3) in bounds and round(c.end, 3) in bounds for c in summary.chapters)


REDUCE = {"token_budget": 900, "chunk_new_tokens": 120, "max_new_tokens": 200, "max_chapters": 40}


def test_reduce_tree_merges_merged_parts_and_counts_every_level():
    llm = ScriptedLLM.scripted(faithful, name="faithful")
    tl, track, s = _summarize(llm, REDUCE)
    stats = track.data["fusion"]
    kinds = [kind(c) for c in llm.calls]
    levels = stats["merge_calls_per_level"]

    assert stats["mode"] == "map-reduce" and stats["map_calls"] == stats["plan"]["chunks"] == kinds.count("map") >= 6
    assert len(levels) >= 2 and all(n >= 1 for n in levels), levels  # the reduce step itself was chunked
    assert sum(levels) == kinds.count("merge")
    assert kinds == ["map"] * stats["map_calls"] + ["merge"] * sum(levels) + ["final"]
    assert stats["calls"] == len(llm.calls) == stats["map_calls"] + sum(levels) + 1
    assert max(c.prompt_tokens for c in llm.calls) <= REDUCE["token_budget"] and s.tokens_used <= REDUCE["token_budget"]

    # the tree: the map step covers the video in consecutive chunks; each merge reads parts that
    # are unions of those chunks, and a later level reads parts merged at an earlier one
    maps = [spans(c) for c in llm.calls if kind(c) == "map"]
    chunk_bounds = [(m[0][0], m[-1][1]) for m in maps]
    assert chunk_bounds[0][0] == 0.0 and chunk_bounds[-1][1] == DURATION
    assert all(a[1] == b[0] for a, b in zip(chunk_bounds, chunk_bounds[1:]))
    starts, ends = {a for a, _ in chunk_bounds}, {b for _, b in chunk_bounds}
    merges = [spans(c) for c in llm.calls if kind(c) == "merge"]
    assert all(a in starts and b in ends for m in merges for a, b in m)
    widest_read = max(sum(1 for a, b in chunk_bounds if lo <= a and b <= hi) for m in merges for lo, hi in m)
    assert widest_read >= 2  # some merge read a part that an earlier merge had written

    # the final prompt sees every part of the video, and its chapters keep their evidence
    final = spans(llm.calls[-1])
    assert final[0][0] == 0.0 and final[-1][1] == DURATION
    assert all(a[1] == b[0] for a, b in zip(final, final[1:]))
    assert _chapters(s) == final
    assert not s.extractive and s.title == "Along the river" and stats["chapters_from"] == "model"
    _assert_scene_evidence(s, tl)
    assert not any("most salient of" in n for n in s.notes)  # no part was left out


def test_unusable_merges_keep_every_map_chapter_through_the_levels():
    """Merges and the final call answer prose with no times: the chapters the map step grounded
    travel up the tree untouched, so the summary still has one chapter per scene, with evidence."""
    def answer(call: ScriptedCall) -> str:
        return faithful(call) if kind(call) == "map" else "I would rather talk about something else. " + FILLER

    llm = ScriptedLLM.scripted(answer, name="wanders")
    tl, track, s = _summarize(llm, REDUCE)
    stats = track.data["fusion"]
    assert len(stats["merge_calls_per_level"]) >= 2
    assert stats["unusable_answers"] == sum(stats["merge_calls_per_level"])
    assert stats["chapters_from"] == "parts"
    assert _chapters(s) == _scenes(tl)  # every scene's chapter survived
    _assert_scene_evidence(s, tl)
    assert any("not JSON" in n for n in s.notes)


def _ranked_digests(tl, scene_tokens: int = 160):
    """The digests the fusion step builds (from its ok tracks, in name order), most salient first."""
    tracks = {n: tl.tracks[n] for n in sorted(tl.tracks) if tl.tracks[n].status == "ok"}
    units = build_units(tracks, tl.video.duration)
    builder = DigestBuilder(tracks, tl.video.duration, estimate_tokens, scene_tokens)
    digests = [builder.build(u) for u in units]
    score_salience(digests)
    return sorted(digests, key=lambda d: -d.salience)


def test_map_reduce_off_sends_one_call_with_the_most_salient_digests():
    llm = ScriptedLLM.scripted(faithful, name="single_fitted")
    budget = 1500
    tl, track, s = _summarize(llm, {"token_budget": budget, "map_reduce": False, "max_new_tokens": 200})
    stats = track.data["fusion"]
    assert stats["mode"] == "fitted" and stats["calls"] == len(llm.calls) == 1
    assert stats["plan"]["digest_tokens"] > budget  # it really did not fit: map-reduce was refused
    (call,) = llm.calls
    assert kind(call) == "final" and call.prompt_tokens <= budget
    ranked = _ranked_digests(tl)
    assert ranked[0].text in call.user  # the most salient scene in full
    assert ranked[-1].text not in call.user  # the least salient shortened or left out
    assert any("did not fit the budget" in n for n in s.notes)
    assert _chapters(s) == spans(call)  # each chapter a scene the call saw
    _assert_scene_evidence(s, tl)


def test_a_short_video_is_one_call_with_every_digest_in_full():
    llm = ScriptedLLM.scripted(faithful, name="single_fits")
    tl, track, s = _summarize(llm, {"token_budget": 6000, "map_reduce": False}, duration=60.0, seed=2)
    stats = track.data["fusion"]
    assert stats["mode"] == "single" and stats["calls"] == len(llm.calls) == 1
    (call,) = llm.calls
    assert all(d.text in call.user for d in _ranked_digests(tl))
    assert _chapters(s) == _scenes(tl)
    _assert_scene_evidence(s, tl)
