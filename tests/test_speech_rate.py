"""speech_rate: syllable nuclei counted in generated speech of known syllables; words per minute
and pauses from a transcript; pauses between and inside speech segments."""
from __future__ import annotations

import numpy as np
import pytest

from analyzers._speech.prosody import syllable_nuclei
from analyzers.speech_rate import SpeechRate
from framework import Event, Track
from speech_fixtures import audio_inputs, formant_speech, silence


def vad(regions):
    return Track(analyzer="voice_activity", version="1", params={}, params_hash="x", provides=["voice_activity"],
                 events=[Event(start=a, end=b, label="speech") for a, b in regions])


def transcript(words):
    """A transcript track: one segment, and a word event per (start, end, text)."""
    return Track(analyzer="speech_transcription", version="1", params={}, params_hash="x", provides=["transcript"],
                 events=[Event(start=words[0][0], end=words[-1][1], label="speech",
                               data={"text": " ".join(w for _, _, w in words)})]
                 + [Event(start=a, end=b, label="word", data={"text": w}) for a, b, w in words])


@pytest.mark.parametrize("seed,f0", [(0, 120.0), (4, 150.0), (7, 100.0)])
def test_syllable_nuclei_match_the_generated_syllables(seed, f0):
    speech = formant_speech(8.0, f0=f0, seed=seed)
    nuclei = syllable_nuclei(speech.samples)
    truth = len(speech.syllables)
    assert abs(nuclei.size - truth) <= max(2, 0.15 * truth), (nuclei.size, truth)
    found = nuclei * 0.01
    near = sum(np.min(np.abs(found - t)) < 0.12 for t in speech.syllables)
    assert near >= 0.8 * truth


def test_syllable_rate_and_pauses_without_a_transcript(tmp_path):
    a_ = formant_speech(4.0, seed=1)
    b_ = formant_speech(3.0, seed=2)
    y = np.concatenate([silence(1.0), a_.samples, silence(0.8), b_.samples, silence(2.0), a_.samples, silence(1.0)])
    start = 10.0
    first = (start + 1.0, start + 1.0 + 4.0 + 0.8 + 3.0)      # one segment with a 0.8 s pause inside
    second = (start + 1.0 + 7.8 + 2.0, start + 1.0 + 7.8 + 2.0 + 4.0)
    track = SpeechRate().analyze(audio_inputs(tmp_path, y, start_time=start, upstream={"voice_activity": vad([first, second])}))
    rates = [e for e in track.events if e.label == "speech_rate"]
    assert [(e.start, e.end) for e in rates] == [pytest.approx(first), pytest.approx(second)]
    n1 = len(a_.syllables) + len(b_.syllables)
    assert rates[0].data["syllables"] == pytest.approx(n1, abs=max(2, 0.15 * n1))
    assert rates[0].data["syllables_per_s"] == pytest.approx(rates[0].data["syllables"] / 7.8, abs=0.01)
    assert rates[0].data["articulation_rate"] > rates[0].data["syllables_per_s"]  # the inner pause is left out
    assert rates[0].data["wpm"] is None and rates[0].data["words"] is None
    pauses = [e for e in track.events if e.label == "pause"]
    within = [e for e in pauses if e.data["kind"] == "within"]
    between = [e for e in pauses if e.data["kind"] == "between"]
    assert len(within) == 1 and within[0].start == pytest.approx(start + 5.0, abs=0.15)
    assert within[0].data["duration_s"] == pytest.approx(0.8, abs=0.2)
    assert len(between) == 1 and (between[0].start, between[0].end) == (pytest.approx(first[1]), pytest.approx(second[0]))
    d = track.data
    assert d["rate_source"] == "syllables" and d["wpm"] is None and d["pause_count"] == 2
    assert d["speech_s"] == pytest.approx(11.8, abs=0.01) and 2.0 < d["syllables_per_s"] < 7.0


def test_words_per_minute_and_pauses_from_the_transcript(tmp_path):
    y = np.concatenate([silence(0.5), formant_speech(6.0, seed=3).samples, silence(0.5)])
    words = [(0.6 + 0.4 * i, 0.9 + 0.4 * i, f"w{i}") for i in range(6)]          # 6 words, 0.1 s apart
    words += [(4.0 + 0.4 * i, 4.3 + 0.4 * i, f"v{i}") for i in range(5)]         # after a 1.4 s gap
    a = SpeechRate({"transcript": "speech_transcription"})
    assert a.depends_on == ("voice_activity", "speech_transcription")  # the runner then runs it first
    upstream = {"voice_activity": vad([(0.5, 6.5)]), "speech_transcription": transcript(words)}
    track = a.analyze(audio_inputs(tmp_path, y, upstream=upstream))
    (rate,) = [e for e in track.events if e.label == "speech_rate"]
    assert rate.data["words"] == 11 and rate.data["wpm"] == pytest.approx(11 * 60 / 6.0, abs=0.1)
    (pause,) = [e for e in track.events if e.label == "pause"]
    assert (pause.start, pause.end) == (pytest.approx(2.9), pytest.approx(4.0)) and pause.data["kind"] == "within"
    assert track.data["rate_source"] == "transcript" and track.data["wpm"] == pytest.approx(110.0, abs=0.1)
