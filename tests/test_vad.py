"""voice_activity: silero-vad's real (bundled) weights on generated audio; block-parallel scoring
against silero's own sequential ``get_speech_timestamps``."""
from __future__ import annotations

import numpy as np
import pytest

from analyzers.voice_activity import VoiceActivity
from speech_fixtures import SR, audio_inputs, chords, formant_speech, noise, silence, silero_path, tone

START = 2.0  # the audio's presentation time offset: every time must include it


def programme() -> tuple[np.ndarray, dict[str, list[tuple[float, float]]]]:
    """Speech, tone, chords, noise and silence with their spans (timeline seconds)."""
    parts = [("silence", silence(1.0)), ("speech", formant_speech(3.0, seed=0).samples), ("silence", silence(1.5)),
             ("tone", tone(3.0)), ("silence", silence(1.0)), ("music", chords(4.0)), ("noise", noise(2.0)),
             ("silence", silence(1.0)), ("speech", formant_speech(3.0, seed=2).samples), ("silence", silence(1.0))]
    spans: dict[str, list[tuple[float, float]]] = {}
    t = START
    for kind, y in parts:
        spans.setdefault(kind, []).append((t, t + y.size / SR))
        t += y.size / SR
    return np.concatenate([y for _, y in parts]), spans


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


@pytest.fixture(scope="module")
def vad() -> VoiceActivity:
    a = VoiceActivity({"block_s": 4.0})  # several blocks side by side on a short file
    a.load("cpu", {"silero-vad": silero_path()})
    return a


@pytest.fixture(scope="module")
def result(vad, tmp_path_factory):
    y, spans = programme()
    track = vad.analyze(audio_inputs(tmp_path_factory.mktemp("vad"), y, start_time=START))
    return y, spans, track


def test_speech_is_found_and_tones_chords_noise_silence_are_not(result):
    _, spans, track = result
    segments = [(e.start, e.end) for e in track.events]
    assert all(e.label == "speech" for e in track.events) and segments
    for s in spans["speech"]:
        covered = sum(overlap(s, g) for g in segments)
        assert covered >= 0.7 * (s[1] - s[0]), (s, segments)
    for kind in ("tone", "music", "noise", "silence"):
        for s in spans[kind]:
            assert sum(overlap(s, g) for g in segments) <= 0.25, (kind, s, segments)
    assert track.data["speech_s"] == pytest.approx(sum(g[1] - g[0] for g in segments), abs=0.01)
    assert 0 < track.data["speech_fraction"] < 0.5
    assert track.data["segments"] == len(segments) and "silero" in track.data["vad"]
    assert all(0.5 <= e.data["probability"] <= 1 for e in track.events)


def test_the_probability_series_is_high_in_speech_and_low_elsewhere(result):
    _, spans, track = result
    s = track.series_by_name("speech_probability")
    t, v = np.array(s.times), np.array(s.values, dtype=float)
    assert t[0] == pytest.approx(START + 0.05) and np.allclose(np.diff(t), 0.1, atol=1e-3)
    a, b = spans["speech"][0]
    assert np.median(v[(t > a + 0.3) & (t < b - 0.3)]) > 0.7
    a, b = spans["tone"][0]
    assert v[(t > a) & (t < b)].max() < 0.5


def test_block_parallel_scoring_agrees_with_silero_sequential(result, vad):
    """The same segments as silero's own one-window-after-another pass, to within 0.15 s (the
    state at a block's start is warmed up by 1 s of pre-roll, not by the whole file)."""
    import torch
    from silero_vad import get_speech_timestamps
    from silero_vad.utils_vad import init_jit_model

    y, _, track = result
    p = vad.params
    ref_model = init_jit_model(str(silero_path() / "data" / "silero_vad.jit"))
    ref = get_speech_timestamps(torch.from_numpy(y), ref_model, threshold=p.threshold,
                                min_speech_duration_ms=p.min_speech_ms, min_silence_duration_ms=p.min_silence_ms,
                                speech_pad_ms=p.speech_pad_ms)
    ours = [(e.start, e.end) for e in track.events]
    theirs = [(START + s["start"] / SR, START + s["end"] / SR) for s in ref]
    assert len(ours) == len(theirs), (ours, theirs)
    for (a, b), (c, d) in zip(ours, theirs):
        assert a == pytest.approx(c, abs=0.15) and b == pytest.approx(d, abs=0.15)
    total = sum(d - c for c, d in theirs)
    assert track.data["speech_s"] == pytest.approx(total, rel=0.05)
    assert track.receipt["step"]["items"] == int(np.ceil(y.size / (4.0 * SR)))


def test_ten_minutes_are_scored_in_one_batch_of_short_blocks():
    """The defaults keep the model calls few: each call of a batch takes the interpreter's lock again,
    and beside a run's other threads a call waited for it (``bench/results/vad_blocks_cpu.md``). Ten
    minutes are one batch of 5 s blocks (with their 1 s pre-roll: 188 calls, not 969 of 30 s blocks)."""
    from analyzers.voice_activity import WINDOW

    vad = VoiceActivity()
    block, pre = vad._geometry()
    assert int(np.ceil(600 * SR / block)) <= vad.params.batch_size
    assert (pre + block) // WINDOW < 200


def test_loading_leaves_torchs_cpu_threads_as_they_were():
    """silero-vad's model module sets torch's CPU threads to 1 on import; voice_activity's load puts the count back,
    so the threads the run starts after it (the other analyzers') compute on every CPU thread. In a fresh interpreter:
    here silero-vad may be imported already, and would not set anything again. Nor does the load print torch's
    warning that ``torch.jit.load`` is deprecated."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = """
import threading, torch
torch.set_num_threads(3)
from analyzers.voice_activity import VoiceActivity
from speech_fixtures import silero_path
VoiceActivity().load("cpu", {"silero-vad": silero_path()})
import silero_vad.model  # (the module that sets them: imported by the load)
seen = []
t = threading.Thread(target=lambda: seen.append(torch.get_num_threads())); t.start(); t.join()
print(torch.get_num_threads(), seen[0])
"""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120,
                          env={**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3", "3"]
    assert "torch.jit.load" not in done.stderr  # (torch's deprecation of TorchScript: nothing a user can act on)
