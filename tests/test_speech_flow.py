"""speech_flow: pitch and intonation of generated speech with a known pitch glide, pause structure,
fillers from a transcript."""
from __future__ import annotations

import numpy as np
import pytest

from analyzers.speech_flow import SpeechFlow
from framework import Event, Track
from speech_fixtures import audio_inputs, formant_speech, silence


def vad(regions):
    return Track(analyzer="voice_activity", version="1", params={}, params_hash="x", provides=["voice_activity"],
                 events=[Event(start=a, end=b, label="speech") for a, b in regions])


@pytest.fixture(scope="module")
def glides(tmp_path_factory):
    """A rising glide 100 -> 180 Hz, a pause, a falling one 200 -> 120 Hz, a long pause, a short bit."""
    rise = formant_speech(3.0, seed=5, glide=(100.0, 180.0)).samples
    fall = formant_speech(3.0, seed=6, glide=(200.0, 120.0)).samples
    tail = formant_speech(1.0, seed=7).samples
    y = np.concatenate([silence(0.5), rise, silence(0.6), fall, silence(1.5), tail, silence(0.5)])
    regions = [(0.5, 3.5), (4.1, 7.1), (8.6, 9.6)]
    track = SpeechFlow().analyze(audio_inputs(tmp_path_factory.mktemp("flow"), y, upstream={"voice_activity": vad(regions)}))
    return track, regions


def test_intonation_follows_the_pitch_glides(glides):
    track, _ = glides
    rise, fall, _ = [e for e in track.events if e.label == "intonation"]
    assert rise.data["final"] == "rising" and rise.data["slope_st_per_s"] > 2
    assert fall.data["final"] == "falling" and fall.data["slope_st_per_s"] < -2
    full_rise, full_fall = 12 * np.log2(180 / 100), 12 * np.log2(200 / 120)  # 10.2 and 8.8 semitones
    assert rise.data["range_semitones"] == pytest.approx(0.9 * full_rise, abs=1.5)  # 5th-95th percentile
    assert fall.data["range_semitones"] == pytest.approx(0.9 * full_fall, abs=1.5)
    assert rise.data["f0_median_hz"] == pytest.approx(np.sqrt(100 * 180), rel=0.1)
    assert 95 < rise.data["f0_low_hz"] < rise.data["f0_high_hz"] < 185
    assert rise.data["voiced_fraction"] > 0.4


def test_the_pitch_series_lies_in_speech_and_in_range(glides):
    track, regions = glides
    s = track.series_by_name("pitch")
    assert s.unit == "Hz" and s.times
    for t, v in zip(s.times, s.values):
        assert any(a - 0.1 <= t <= b + 0.1 for a, b in regions)
        assert v is None or 65 <= v <= 400
    voiced = [v for v in s.values if v is not None]
    assert len(voiced) > 0.4 * len(s.values)


def test_pause_structure(glides):
    d = glides[0].data
    assert d["pause_count"] == 2 and d["long_pause_count"] == 1
    assert d["mean_pause_s"] == pytest.approx((0.6 + 1.5) / 2, abs=0.01)
    assert d["median_pause_s"] == pytest.approx(1.05, abs=0.01)
    assert d["mean_run_s"] == pytest.approx((3.0 + 3.0 + 1.0) / 3, abs=0.01)
    assert d["filler_count"] is None and d["fillers_per_min"] is None  # no transcript asked for
    assert d["finals"]["rising"] >= 1 and d["finals"]["falling"] >= 1 and sum(d["finals"].values()) <= 3


def test_fillers_come_from_the_transcript(tmp_path):
    y = np.concatenate([silence(0.5), formant_speech(4.0, seed=8).samples, silence(0.5)])
    words = [(0.6, 0.9, "So,"), (1.0, 1.2, "um,"), (1.3, 1.6, "the"), (1.7, 2.0, "UH"), (2.1, 2.5, "hummus"),
             (2.6, 3.0, "Hmm...")]
    transcript = Track(analyzer="speech_transcription", version="1", params={}, params_hash="x",
                       provides=["transcript"],
                       events=[Event(start=a, end=b, label="word", data={"text": w}) for a, b, w in words])
    a = SpeechFlow({"transcript": "speech_transcription"})
    assert "speech_transcription" in a.depends_on
    track = a.analyze(audio_inputs(tmp_path, y, upstream={"voice_activity": vad([(0.5, 4.5)]),
                                                          "speech_transcription": transcript}))
    fillers = [e for e in track.events if e.label == "filler"]
    assert [e.data["text"] for e in fillers] == ["um,", "UH", "Hmm..."]
    assert track.data["filler_count"] == 3 and track.data["fillers_per_min"] == pytest.approx(45.0)


def test_worker_processes_give_what_one_process_gives_and_progress_moves(glides, tmp_path, monkeypatch):
    """``workers: 2`` tracks the segments in two processes: the same track as this process alone,
    and progress reported as the segments come back."""
    track, regions = glides
    rise = formant_speech(3.0, seed=5, glide=(100.0, 180.0)).samples
    fall = formant_speech(3.0, seed=6, glide=(200.0, 120.0)).samples
    tail = formant_speech(1.0, seed=7).samples
    y = np.concatenate([silence(0.5), rise, silence(0.6), fall, silence(1.5), tail, silence(0.5)])
    inputs = audio_inputs(tmp_path, y, upstream={"voice_activity": vad(regions)})
    seen = []
    inputs.progress = seen.append
    started = []
    import framework.process_workers as pw

    real_init = pw.ProcessWorkers.__init__

    def counting(self, factory, settings, count):
        started.append((factory, count))
        real_init(self, factory, settings, count)

    monkeypatch.setattr(pw.ProcessWorkers, "__init__", counting)
    two = SpeechFlow({"workers": 2}).analyze(inputs)
    assert started == [("analyzers._speech.prosody:PitchTracker", 2)]
    assert [e.model_dump() for e in two.events] == [e.model_dump() for e in track.events]
    assert two.model_dump(include={"data", "series"}) == track.model_dump(include={"data", "series"})
    assert seen[-1] == 1.0 and len(seen) == len(regions)


def test_below_eight_cpus_the_pitch_is_tracked_in_this_process(monkeypatch):
    monkeypatch.setattr("analyzers.speech_flow.cpus_available", lambda: 4)
    assert SpeechFlow().workers() == 1
    monkeypatch.setattr("analyzers.speech_flow.cpus_available", lambda: 16)
    assert SpeechFlow().workers() == 4 and SpeechFlow({"workers": 2}).workers() == 2


def test_each_pitch_worker_gets_a_numba_cache_of_its_own(tmp_path):
    """numba's cache is not safe to write from several processes at once (pitch workers compiling
    side by side left a cache that crashed later runs' workers): processes living side by side take
    different cache folders, a later process reuses a freed one, and a process that has imported
    numba already is left with numba's own cache."""
    import subprocess
    import sys

    code = ("import sys, time; from pathlib import Path; from analyzers._speech.prosody import claim_numba_cache; "
            "import os; f = claim_numba_cache(Path(sys.argv[1])); print(f, os.environ.get('NUMBA_CACHE_DIR'), "
            "flush=True); time.sleep(float(sys.argv[2]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), "1.5"], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    lines = [p.communicate(timeout=60)[0].split() for p in procs]
    folders = {folder for folder, _env in lines}
    assert folders == {str(tmp_path / f"slot-{k}") for k in range(3)}
    assert all(folder == env for folder, env in lines)  # NUMBA_CACHE_DIR set to it, before numba is imported
    again = subprocess.run([sys.executable, "-c", code, str(tmp_path), "0"], capture_output=True, text=True, timeout=60)
    assert again.stdout.split()[0] == str(tmp_path / "slot-0")  # freed when its process ended
    late = subprocess.run([sys.executable, "-c", "import numba; " + code, str(tmp_path), "0"], capture_output=True,
                          text=True, timeout=60)
    assert late.stdout.split()[0] == "None"
