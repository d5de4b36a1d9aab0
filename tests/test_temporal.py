"""temporal_consistency and temporal_flow on generated media whose truth is known (tests/effects_media.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from effects_media import consistency_clip, effects_clip
from framework.runner import analyze
from framework.testing import AudioSegment, ShotSpec, make_video


def run(video, folder, name, params=None, also=()):
    """Run ``name`` (what it depends on, and ``also``) through the real pipeline; all tracks by name."""
    folder.mkdir(parents=True, exist_ok=True)
    registry = folder / "registry.yaml"
    registry.write_text(f"analyzers:\n  {name}: {{params: {params or {}}}}\n" + "".join(f"  {a}: {{}}\n" for a in also))
    result = analyze(video, registry_path=registry, out_dir=folder / "run", progress=False,
                     load_entrypoints=False, offline=True)
    return result.timeline.tracks


@pytest.fixture(scope="module")
def consistency(tmp_path_factory):
    folder = tmp_path_factory.mktemp("consistency")
    clip = consistency_clip(folder / "tc.mp4")
    return clip, run(clip.path, folder, "temporal_consistency")


def test_flicker_and_jumps_are_found_inside_shots(consistency):
    clip, tracks = consistency
    track = tracks["temporal_consistency"]
    assert track.status == "ok", track.reason
    by = {}
    for e in track.events:
        by.setdefault(e.label, []).append(e)
    assert set(by) == {"flicker", "exposure_jump", "color_jump"}, [(e.label, e.start) for e in track.events]
    (flicker,) = by["flicker"]
    assert flicker.start == pytest.approx(1.0, abs=0.2) and flicker.end == pytest.approx(3.0, abs=0.2)
    assert flicker.data["frequency_hz"] == pytest.approx(6.25, rel=0.2)
    assert flicker.data["amplitude"] == pytest.approx(8.0, rel=0.3)
    (exposure,) = by["exposure_jump"]
    assert exposure.start == pytest.approx(6.6, abs=0.05) and exposure.data["delta_luma"] == pytest.approx(40, abs=6)
    (colour,) = by["color_jump"]
    assert colour.start == pytest.approx(8.4, abs=0.05)
    assert colour.data["delta_rgb"][2] > 20 and colour.data["delta_rgb"][0] < -15
    # the slow brightening (3.5-5.0 s) and the real cut at 5.0 s are not inconsistencies
    assert not [e for e in track.events if 3.3 < e.start < 5.3]
    assert track.data["counts"] == {"flicker": 1, "exposure_jump": 1, "color_jump": 1}
    assert "flicker at 0:01.0" in flicker.data["text"]


def test_thresholds_change_the_result(consistency, tmp_path):
    clip, _ = consistency
    track = run(clip.path, tmp_path, "temporal_consistency",
                {"flicker_amp": 40.0, "exposure_jump": 60.0, "color_jump": 60.0})["temporal_consistency"]
    assert track.status == "ok" and track.events == []


def test_edits_and_effects_are_not_inconsistencies(tmp_path):
    """The effects clip: a flash, a freeze, black frames, cuts, slow motion, a split screen and an
    inset, but no flicker and no exposure or colour jump inside a shot."""
    clip = effects_clip(tmp_path / "fx.mp4")
    track = run(clip.path, tmp_path, "temporal_consistency")["temporal_consistency"]
    assert track.status == "ok" and track.events == [], [(e.label, e.start) for e in track.events]


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """20 s: a still, silent 10 s shot, then ten 1 s shots that pan and shake under a loud tone."""
    folder = tmp_path_factory.mktemp("flow")
    shots = [ShotSpec(10.0, "static", look=0)] + [ShotSpec(1.0, "shake" if i % 2 else "pan", look=1 + i)
                                                  for i in range(10)]
    truth = make_video(folder / "flow.mp4", shots, fps=15, width=160, height=90, text=None,
                       audio=[AudioSegment(10.0, 19.9, "tone", 440.0, 0.5)])
    return truth, run(truth.path, folder, "temporal_flow", {"loudness": "audio_analysis"}, also=["audio_analysis"])


def test_flow_finds_the_lull_and_the_peak(flow):
    truth, tracks = flow
    track = tracks["temporal_flow"]
    assert track.status == "ok", track.reason
    assert tracks["audio_analysis"].status == "ok" and track.data["loudness_source"] == "audio_analysis"
    lulls = [e for e in track.events if e.label == "lull"]
    peaks = [e for e in track.events if e.label == "peak"]
    assert len(lulls) == 1 and lulls[0].start == pytest.approx(0.0, abs=0.5) and 6.0 < lulls[0].end < 10.5
    assert len(peaks) == 1 and 9.0 < peaks[0].start < 13.0 and peaks[0].end > 18.0
    assert peaks[0].data["energy"] > 0.6 > 0.1 > lulls[0].data["energy"]
    assert peaks[0].data["loudness_db"] > -20 and peaks[0].data["cut_rate"] > 20
    assert track.data["shot_count"] == 11 and track.data["pacing"] == "fast"  # median shot 1 s
    assert track.data["pace_trend"] == "steady"  # the first half has one shot: no trend to tell
    energy = track.series_by_name("energy")
    early = [v for t, v in zip(energy.times, energy.values) if t < 5]  # the 10 s cut-rate window reaches the cuts after
    late = [v for t, v in zip(energy.times, energy.values) if 12 < t < 19]
    assert max(early) < 0.1 and min(late) > 0.5


def test_flow_without_audio_uses_motion_and_cuts(tmp_path):
    shots = [ShotSpec(4.0, "static", look=0)] + [ShotSpec(0.5, "pan", look=1 + i) for i in range(8)]
    truth = make_video(tmp_path / "silent.mp4", shots, fps=15, width=160, height=90, text=None, audio=False)
    tracks = run(truth.path, tmp_path, "temporal_flow")
    track = tracks["temporal_flow"]
    assert track.status == "ok", track.reason
    assert "audio_analysis" not in tracks
    assert track.data["loudness_source"] is None and track.series_by_name("loudness") is None
    peaks = [e for e in track.events if e.label == "peak"]
    assert peaks and all(e.end > 4.0 for e in peaks)
    # the default reads the audio itself: audio_analysis is not pulled in


def test_a_steady_video_has_no_peak(tmp_path):
    """Energy on fixed scales: a steady pan under a steady tone is neither a peak nor a lull."""
    truth = make_video(tmp_path / "steady.mp4", [ShotSpec(8.0, "pan", look=0)], fps=15, width=160, height=90,
                       text=None, audio=[AudioSegment(0.0, 8.0, "tone", 440.0, 0.3)])
    track = run(truth.path, tmp_path, "temporal_flow")["temporal_flow"]
    assert track.status == "ok", track.reason
    assert [e.label for e in track.events] == [], [(e.label, e.start, e.end) for e in track.events]
    assert track.data["loudness_source"] == "audio" and track.data["pacing"] == "slow"
    loud = [v for v in track.series_by_name("loudness").values if v is not None]
    assert -16 < min(loud) and max(loud) < -10  # a 0.3 sine is -13.5 dBFS


def test_a_clip_shorter_than_every_window(tmp_path):
    """Half a second at 10 fps: shorter than the flicker, slow-motion and energy windows."""
    truth = make_video(tmp_path / "short.mp4", [ShotSpec(0.5, "pan")], fps=10, width=64, height=36, text=None)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "registry.yaml").write_text("analyzers:\n  visual_effects: {}\n  temporal_consistency: {}\n"
                                          "  temporal_flow: {}\n")
    tracks = analyze(truth.path, registry_path=folder / "registry.yaml", out_dir=folder / "out", progress=False,
                     load_entrypoints=False, offline=True).timeline.tracks
    for name in ("visual_effects", "temporal_consistency", "temporal_flow"):
        assert tracks[name].status == "ok", (name, tracks[name].reason)


def test_the_effect_analyzers_share_one_computation_of_the_frame_signals(consistency, tmp_path, monkeypatch):
    """temporal_flow, temporal_consistency and visual_effects read the same stream at the same
    thresholds in one run: the signals are computed once (read-only, shared); another pair of
    thresholds is computed on its own."""
    from analyzers._effects import signals

    clip, _ = consistency
    computed = []
    compute = signals._compute
    monkeypatch.setattr(signals, "_compute", lambda inputs, stream, *a: computed.append(a[:2]) or compute(inputs, stream, *a))
    tracks = run(clip.path, tmp_path / "shared", "visual_effects", also=("temporal_flow", "temporal_consistency"))
    assert all(tracks[n].status == "ok" for n in ("visual_effects", "temporal_flow", "temporal_consistency"))
    assert computed == [(12.0, 32.0)]
    computed.clear()
    tracks = run(clip.path, tmp_path / "two", "visual_effects", {"dark_level": 20.0}, also=("temporal_flow",))
    assert sorted(computed) == [(12.0, 20.0), (12.0, 32.0)]


def test_another_process_of_the_run_reads_the_signals_the_first_one_computed(consistency, tmp_path, monkeypatch):
    """Beside GPU analyzers, temporal_flow and visual_effects run in processes of their own: the
    signals are kept beside the stream in the run cache, and a process that finds them there (here:
    this one, its in-process share cleared) reads them instead of computing them again."""
    from analyzers._effects import signals

    clip, _ = consistency
    first = {}
    compute = signals._compute

    def remember(inputs, stream, *a):
        first["sig"] = compute(inputs, stream, *a)
        first["folder"] = stream.folder
        return first["sig"]

    monkeypatch.setattr(signals, "_compute", remember)
    (tmp_path / "registry.yaml").write_text("analyzers:\n  visual_effects: {}\n  temporal_flow: {}\n")
    analyze(clip.path, registry_path=tmp_path / "registry.yaml", out_dir=tmp_path / "run", progress=False,
            load_entrypoints=False, offline=True, keep_cache=True)  # the stream folder outlives the run
    saved = list(Path(first["folder"]).glob("signals-*.npz"))
    assert [p.name for p in saved] == ["signals-12-32.npz"]

    def refuse(*_a):
        raise AssertionError("computed again")

    monkeypatch.setattr(signals, "_compute", refuse)
    signals._SHARED.clear()  # as in another process
    stream = type("Stream", (), {"folder": first["folder"]})()
    again = signals._computed_once(None, stream, 12.0, 32.0, None, 512)
    for name in signals._ARRAYS:
        assert np.array_equal(getattr(again, name), getattr(first["sig"], name), equal_nan=True)
        assert not getattr(again, name).flags.writeable
    assert again.end == first["sig"].end
