"""audio_environment and sound_effects: the feature-based fallback on generated audio with known
classes and sudden sounds; the AudioSet path on a tiny random AST snapshot (random weights: the
method, batching and label plumbing, never which label is right)."""
from __future__ import annotations

import numpy as np
import pytest

from analyzers._speech.random_models import AUDIOSET_SAMPLE_LABELS
from analyzers._speech.sound import label_groups
from analyzers.audio_environment import AudioEnvironment
from analyzers.sound_effects import SoundEffects
from framework import Event, Track
from speech_fixtures import (SR, audio_inputs, chords, click, formant_speech, noise, silence,  # noqa: F401
                             tiny_ast, tone)


def vad(regions):
    return Track(analyzer="voice_activity", version="1", params={}, params_hash="x", provides=["voice_activity"],
                 events=[Event(start=a, end=b, label="speech") for a, b in regions])


START = 3.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    parts = [("silence", silence(2.0)), ("speech", formant_speech(4.0, seed=0).samples), ("tone", tone(3.0, 660)),
             ("music", chords(5.0)), ("noise", noise(3.0, 0.1)), ("silence", silence(2.0))]
    spans, t = [], START
    for kind, y in parts:
        spans.append((kind, t, t + y.size / SR))
        t += y.size / SR
    y = np.concatenate([p for _, p in parts])
    speech = [(a, b) for k, a, b in spans if k == "speech"]
    return audio_inputs(tmp_path_factory.mktemp("env"), y, start_time=START, upstream={"voice_activity": vad(speech)}), spans


def majority(track, a, b):
    """The label covering most of [a, b]."""
    cover = {}
    for e in track.events:
        cover[e.label] = cover.get(e.label, 0.0) + max(0.0, min(b, e.end) - max(a, e.start))
    return max(cover, key=cover.get)


def test_the_feature_fallback_tells_speech_tone_music_noise_and_silence_apart(scene):
    inputs, spans = scene
    a = AudioEnvironment({"use_model": False})
    assert a.model_ids() == []
    a.load("cpu", {})
    track = a.analyze(inputs)
    for kind, s, e in spans:
        assert majority(track, s + 0.5, e - 0.5) == kind, (kind, s, e, [(x.label, x.start, x.end) for x in track.events])
    assert track.data["method"] == "features" and track.data["model"] is None
    assert track.events[0].start == START and track.events[-1].end == pytest.approx(spans[-1][2], abs=0.01)
    assert all(b.start == pytest.approx(a_.end) for a_, b in zip(track.events, track.events[1:]))  # contiguous
    assert sum(track.data["seconds"].values()) == pytest.approx(spans[-1][2] - START, abs=0.01)
    assert track.data["fractions"]["music"] == pytest.approx(5.0 / 19.0, abs=0.06)
    assert all(0 <= e.data["confidence"] <= 1 for e in track.events)


def test_the_two_audioset_analyzers_share_one_classifier_while_either_holds_it(tiny_ast):
    """One folder, device and precision: one classifier in the process while either analyzer holds it;
    another precision loads its own; when neither holds it, it is freed (the process keeps no copy)."""
    import gc
    import weakref

    from framework.scheduler import Placement

    env, effects = AudioEnvironment(), SoundEffects()
    env.load("cpu", {"ast-audioset": tiny_ast})
    effects.load("cpu", {"ast-audioset": tiny_ast})
    assert env.ast is effects.ast is not None
    shared = weakref.ref(env.ast)
    env.unload()
    assert effects.ast is shared()  # still there for the other
    other = SoundEffects()
    other.placement = Placement("cpu", "fp32")  # another precision: a classifier of its own
    other.load("cpu", {"ast-audioset": tiny_ast})
    assert other.ast is not None and other.ast is not effects.ast
    effects.unload()
    other.unload()
    gc.collect()
    assert shared() is None


def test_the_audioset_classifier_runs_when_its_weights_are_there(scene, tiny_ast):
    inputs, spans = scene
    a = AudioEnvironment({"batch_size": 4})
    a.load("cpu", {"ast-audioset": tiny_ast})
    track = a.analyze(inputs)
    assert track.data["method"] == "ast-audioset" and track.data["model"] == "ast-audioset"
    duration = spans[-1][2] - START
    assert track.receipt["step"]["items"] == int(np.floor((duration - 2.0) / 1.0)) + 1
    for e in track.events:
        if e.label == "silence":
            continue
        assert e.label in ("speech", "music", "tone", "noise")
        assert e.data["top_labels"] and set(e.data["top_labels"]) <= set(AUDIOSET_SAMPLE_LABELS)
    assert majority(track, spans[0][1] + 0.5, spans[0][2] - 0.5) == "silence"  # silence is the level


def test_without_the_classifier_the_fallback_runs_and_says_so(scene):
    inputs, _ = scene
    a = AudioEnvironment()  # use_model, but the runner found no weights (models_optional)
    assert a.model_ids() == ["ast-audioset"] and AudioEnvironment.models_optional
    a.load("cpu", {})
    assert a.analyze(inputs).data["method"] == "features"


def test_audioset_label_groups():
    groups = label_groups(AUDIOSET_SAMPLE_LABELS)
    name = lambda k: {AUDIOSET_SAMPLE_LABELS[i] for i in groups[k]}  # noqa: E731
    assert name("speech") == {"Speech", "Male speech, man speaking"}
    assert name("music") == {"Music", "Musical instrument"}
    assert name("tone") == {"Sine wave"}
    assert {"Gunshot, gunfire", "Dog", "White noise"} <= name("noise") and "Silence" not in name("noise")


# --- sound effects -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def knocks(tmp_path_factory):
    """Quiet noise with knocks at 2.0, 5.5 and 15.0 s, a 1 kHz beep at 8.0 s, speech 10-13 s."""
    y = noise(18.0, 0.002, seed=1)
    for t, seed in ((2.0, 1), (5.5, 2), (15.0, 3)):
        c = click(seed=seed)
        y[int(t * SR):int(t * SR) + c.size] += c
    beep = tone(0.3, 1000.0, 0.5)
    y[int(8.0 * SR):int(8.0 * SR) + beep.size] += beep
    sp = formant_speech(3.0, seed=4).samples
    y[10 * SR:10 * SR + sp.size] += sp
    regions = [(START + 10.0, START + 13.0)]
    return audio_inputs(tmp_path_factory.mktemp("sfx"), y, start_time=START, upstream={"voice_activity": vad(regions)})


def test_sudden_sounds_are_found_outside_speech_and_named_by_their_features(knocks):
    a = SoundEffects({"use_model": False})
    a.load("cpu", {})
    track = a.analyze(knocks)
    found = [(round(e.start - START, 2), e.data["kind"]) for e in track.events]
    assert [t for t, _ in found] == [pytest.approx(x, abs=0.05) for x in (2.0, 5.5, 8.0, 15.0)], found
    assert [k for _, k in found] == ["impact", "impact", "beep", "impact"]
    assert all(e.label == "sound_effect" and e.data["rise_db"] >= 15 and e.score == e.data["rise_db"]
               for e in track.events)
    beep = track.events[2]
    assert beep.end - beep.start == pytest.approx(0.3, abs=0.06)
    assert track.data["count"] == 4 and track.data["kinds"] == {"impact": 3, "beep": 1}
    assert track.data["method"] == "features"

    keep_speech = SoundEffects({"use_model": False, "ignore_speech": False})
    keep_speech.load("cpu", {})
    assert keep_speech.analyze(knocks).data["count"] > 4  # speech onsets are sudden too; they are left out above


def test_sudden_sounds_named_by_the_audioset_classifier(knocks, tiny_ast):
    a = SoundEffects()
    a.load("cpu", {"ast-audioset": tiny_ast})
    track = a.analyze(knocks)
    assert track.data["method"] == "ast-audioset" and track.receipt["step"]["items"] == track.data["count"] == 4
    for e in track.events:
        assert e.data["kind"] == e.data["top_labels"][0] and e.data["kind"] in AUDIOSET_SAMPLE_LABELS


def test_a_missing_classifier_is_said_once_for_both_analyzers(caplog):
    from analyzers._speech import sound

    sound._SAID_MISSING.discard("ast-audioset")
    with caplog.at_level("INFO", logger=sound.logger.name):
        assert sound.load_ast({}, "ast-audioset", "cpu", None) is None
        assert sound.load_ast({}, "ast-audioset", "cpu", None) is None
    assert sum("ast-audioset is not cached" in r.getMessage() for r in caplog.records) == 1
