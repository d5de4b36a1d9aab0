"""speech_emotion on a tiny random wav2vec2 classifier saved as a snapshot folder (random weights:
the scores prove loading, batching and the mapping to segments, never which emotion it is)."""
from __future__ import annotations

import numpy as np
import pytest

from analyzers._speech.random_models import EMOTIONS
from analyzers.speech_emotion import SpeechEmotion
from framework import AnalyzerUnavailable, Event, Track
from framework.scheduler import Placement
from speech_fixtures import audio_inputs, formant_speech, silence, tiny_wav2vec2  # noqa: F401


def vad(regions):
    return Track(analyzer="voice_activity", version="1", params={}, params_hash="x", provides=["voice_activity"],
                 events=[Event(start=a, end=b, label="speech") for a, b in regions])


def test_each_speech_segment_gets_scores_from_batched_pieces(tmp_path, tiny_wav2vec2):
    y = np.concatenate([silence(1.0), formant_speech(12.0, seed=0).samples, silence(1.0),
                        formant_speech(2.0, seed=1).samples, silence(0.5), formant_speech(0.3, seed=2).samples])
    regions = [(1.0, 13.0), (14.0, 16.0), (16.5, 16.8)]  # 12 s -> two 6 s pieces; 0.3 s is too short
    a = SpeechEmotion({"batch_size": 2})
    a.load("cpu", {"wav2vec2-xlsr-speech-emotion": tiny_wav2vec2})
    track = a.analyze(audio_inputs(tmp_path, y, start_time=0.0, upstream={"voice_activity": vad(regions)}))
    events = [e for e in track.events if e.label == "emotion"]
    assert [(e.start, e.end) for e in events] == [(1.0, 13.0), (14.0, 16.0)]
    for e in events:
        assert set(e.data["scores"]) == set(EMOTIONS)
        assert sum(e.data["scores"].values()) == pytest.approx(1.0, abs=1e-3)
        assert e.data["scores"][e.data["emotion"]] == max(e.data["scores"].values())
        assert e.score == pytest.approx(e.data["scores"][e.data["emotion"]], abs=1e-3)
    step = track.receipt["step"]
    assert step["items"] == 3 and step["batch_sizes"] == [2, 1]
    d = track.data
    assert d["labels"] == EMOTIONS and d["model"] == "wav2vec2-xlsr-speech-emotion"
    assert d["classified_s"] == pytest.approx(14.0) and sum(d["distribution"].values()) == pytest.approx(1.0, abs=1e-3)
    assert d["dominant"] in EMOTIONS


def test_without_the_model_or_with_an_unsupported_precision_it_says_how_to_fix_it(tiny_wav2vec2):
    with pytest.raises(AnalyzerUnavailable, match="framework models pull wav2vec2-xlsr-speech-emotion"):
        SpeechEmotion().load("cpu", {})
    a = SpeechEmotion()
    a.placement = Placement(device="cuda:0", variant="int8")
    with pytest.raises(AnalyzerUnavailable, match="int8"):
        a.load("cuda:0", {"wav2vec2-xlsr-speech-emotion": tiny_wav2vec2})
