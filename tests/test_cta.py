"""comment_cta_detection: calls to action in a transcript track (times narrowed to the words) and in
on-screen text that rapidocr (real weights from the wheel) reads off a generated video, in a real
run beside text_overlay; the phrase table in six languages; sources optional."""
from __future__ import annotations

import pytest
import vision_fixtures as vf

from analyzers.comment_cta_detection import CommentCtaDetection, find_ctas, normalise
from framework import AnalyzerInputs, Event, Track
from framework.runner import analyze


def _transcript(segments: list[tuple[float, float, str]], with_words: bool = True) -> Track:
    events = []
    for a, b, text in segments:
        events.append(Event(start=a, end=b, label="speech", data={"text": text}))
        if with_words:
            words = text.split()
            step = (b - a) / len(words)
            events += [Event(start=round(a + i * step, 3), end=round(a + (i + 1) * step, 3), label="word",
                             data={"text": w}) for i, w in enumerate(words)]
    return Track(analyzer="speech_transcription", version="1", provides=["transcript"], events=events)


def _ocr(captions: list[tuple[float, float, str]]) -> Track:
    return Track(analyzer="text_overlay", version="1", events=[
        Event(start=a, end=b, label="text", score=0.9, data={"text": t}) for a, b, t in captions])


def _run(upstream: dict[str, Track], **params) -> Track:
    return CommentCtaDetection(params).analyze(AnalyzerInputs(video=vf.meta(30.0), upstream=upstream))


@pytest.mark.parametrize("line, kinds", [
    ("So please LIKE and SUBSCRIBE!", {"like", "subscribe"}),
    ("Don't forget to like, comment and subscribe", {"like", "comment", "subscribe"}),
    ("Abonnez-vous à la chaîne et activez les notifications", {"subscribe", "notify"}),
    ("Lasst ein Abo da und schreibt es in die Kommentare", {"subscribe", "comment"}),
    ("Suscríbete y dale like", {"subscribe", "like"}),
    ("Inscreva-se e ative o sininho", {"subscribe", "notify"}),
    ("Iscriviti e lascia un commento", {"subscribe", "comment"}),
    ("Link in bio 👇 follow for more", {"link", "follow"}),
    ("Swipe up to shop now", {"swipe_up", "shop"}),
    ("I like turtles and I follow the news", set()),
    ("unsubscribed", set()),
])
def test_phrases_in_six_languages(line, kinds):
    assert {m.kind for m in find_ctas(line)} == kinds


def test_ocr_text_without_spaces_is_matched_only_when_asked():
    assert normalise("Abonnez-vous !") == "abonnez vous"
    assert find_ctas("LINKINBIO") == []
    assert [m.kind for m in find_ctas("LINKINBIO", compact=True)] == ["link"]
    assert find_ctas("UNSUBSCRIBED", compact=True) == []  # single words are never looked for inside others


def test_transcript_and_screen_ctas_with_their_times():
    speech = _transcript([(0.0, 4.0, "Welcome back to the channel everyone"),
                          (10.0, 14.0, "if you enjoyed it hit the bell and subscribe now")])
    screen = _ocr([(20.0, 23.5, "LINK IN BIO"), (24.0, 26.0, "Chapter two")])
    track = _run({"speech_transcription": speech, "text_overlay": screen})
    said, shown = track.events
    assert said.data["source"] == "speech" and said.data["kinds"] == ["notify", "subscribe"]
    # narrowed to the words "hit the bell and subscribe" (words 5..9 of 10, 0.4 s each)
    assert said.start == pytest.approx(11.6) and said.end == pytest.approx(13.6)
    assert "subscribe" in said.data["text"] and said.data["analyzer"] == "speech_transcription"
    assert shown.data["source"] == "screen" and shown.data["kinds"] == ["link"]
    assert (shown.start, shown.end, shown.score) == (20.0, 23.5, 0.9)
    assert track.data["sources"] == {"speech_transcription": "speech", "text_overlay": "screen"}
    assert track.data["by_kind"] == {"notify": 1, "subscribe": 1, "link": 1}
    assert track.data["first_cta"] == pytest.approx(11.6)


def test_either_source_alone_or_none():
    speech = _transcript([(2.0, 5.0, "comment below what you think")], with_words=False)
    only_speech = _run({"speech_transcription": speech})
    (e,) = only_speech.events
    assert (e.start, e.end, e.data["kinds"]) == (2.0, 5.0, ["comment"])  # no words: the segment's times
    only_screen = _run({"text_overlay": _ocr([(1.0, 2.0, "Shop now")])})
    assert [e.data["kinds"] for e in only_screen.events] == [["shop"]]
    skipped = Track(analyzer="speech_transcription", version="1", provides=["transcript"], status="skipped",
                    events=speech.events)
    nothing = _run({"speech_transcription": skipped})
    assert nothing.events == [] and nothing.data["sources"] == {} and nothing.data["first_cta"] is None
    assert _run({}).data["count"] == 0


def test_kinds_filter_and_named_sources():
    speech = _transcript([(0.0, 3.0, "like and subscribe")], with_words=False)
    assert [e.data["kinds"] for e in _run({"s": speech}, kinds=["like"]).events] == [["like"]]
    assert CommentCtaDetection().depends_on == ("*",)
    named = CommentCtaDetection({"sources": ["speech_transcription", "text_overlay"]})
    assert named.depends_on == ("speech_transcription", "text_overlay")
    with pytest.raises(ValueError, match="unknown kinds"):
        CommentCtaDetection({"kinds": ["subscribe", "donate"]})


def test_a_cta_burned_into_a_video_is_found_in_a_run_with_text_overlay(tmp_path):
    start, end = 1.0, 2.6
    video = vf.caption_video(tmp_path / "cta.mp4", "Link in bio", start, end, duration=3.5, pan=False)
    registry = vf.registry(tmp_path, {"text_overlay": {"width": 640, "threads": 1}, "comment_cta_detection": {},
                                      "fusion": {"backend": "extractive"}})
    result = analyze(video, registry_path=registry, out_dir=tmp_path / "run", progress=False, load_entrypoints=False)
    ocr = result.timeline.tracks["text_overlay"]
    track = result.timeline.tracks["comment_cta_detection"]
    assert ocr.status == "ok" and track.status == "ok", (ocr.reason, track.reason)
    (event,) = track.events
    assert event.data["kinds"] == ["link"] and event.data["source"] == "screen", event.data
    assert normalise(event.data["line"]).replace(" ", "") == "linkinbio"  # what rapidocr really read
    assert abs(event.start - start) <= 0.5 and abs(event.end - end) <= 0.5, (event.start, event.end)
    assert track.data["sources"] == {"text_overlay": "screen"}
    # fusion, which also reads every track, runs after it: the summary's key moments cite the call to action
    moments = (tmp_path / "run" / "summary.md").read_text().split("## Key moments")[1].split("\n## ")[0]
    assert "comment_cta_detection" in moments and "Link in bio" in moments, moments
