"""The audio and speech analyzers through the real runner: one decode, model resolution from the
caches (a tiny random Whisper in whisper's cache, a tiny wav2vec2 as a Hugging Face snapshot),
dependencies, subtitles written from the transcript, and skips that name the pull command."""
from __future__ import annotations

import re
import shutil

import yaml

from framework.models import load_manifest
from framework.models.roots import CacheRoots
from framework.runner import analyze
from speech_fixtures import hf_snapshot, tiny_ast, tiny_wav2vec2, tiny_whisper_pt  # noqa: F401
from test_docs_analyzers import _track_keys, _undocumented_track_keys, outputs

MINE = ("voice_activity", "speech_transcription", "speech_rate", "speech_flow", "speech_emotion", "audio_environment",
        "sound_effects")

FAST = {"max_new_tokens": 4, "beam_size": 1, "temperature_fallback": False, "no_speech_threshold": None,
        "compression_ratio_threshold": None}


def registry(tmp_path, analyzers: dict) -> str:
    p = tmp_path / "registry.yaml"
    p.write_text(yaml.safe_dump({"analyzers": {n: {"enabled": True, "params": params} for n, params in analyzers.items()}}))
    return str(p)


def stamp_ms(text: str) -> list[int]:
    return [((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms)
            for h, m, s, ms in re.findall(r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d) -->", text)]


def test_the_speech_analyzers_run_together_and_subtitles_come_from_the_transcript(
        tmp_path, sample_video, tiny_whisper_pt, tiny_wav2vec2, tiny_ast):
    whisper_cache = CacheRoots.from_env().whisper
    whisper_cache.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_whisper_pt, whisper_cache / "tiny.pt")
    spec = load_manifest()["wav2vec2-xlsr-speech-emotion"]
    hf_snapshot(spec.locator, tiny_wav2vec2, spec.revision)  # at the commit the manifest pins
    hf_snapshot(load_manifest()["ast-audioset"].locator, tiny_ast)  # unpinned: refs/main names the commit
    reg = registry(tmp_path, {
        "speech_transcription": {"backend": "openai-whisper", "model": "tiny", **FAST},
        "speech_rate": {"transcript": "speech_transcription"},
        "speech_flow": {"transcript": "speech_transcription"},
        "speech_emotion": {},
        "audio_environment": {},               # the AudioSet classifier is cached: it runs
        "sound_effects": {"use_model": False},  # the feature fallback
    })
    res = analyze(sample_video.path, registry_path=reg, out_dir=tmp_path / "run", progress=False,
                  load_entrypoints=False, offline=True)
    tracks = res.timeline.tracks
    assert "voice_activity" in tracks  # pulled in as everyone's dependency
    for name in MINE:
        assert tracks[name].status == "ok", (name, tracks[name].reason)
    vad = tracks["voice_activity"]
    # the sample's speech-like audio is at 0.2-5.4 s; a tone follows at 7.2-11.8 s
    assert vad.events and all(e.end <= 6.0 for e in vad.events)
    st = tracks["speech_transcription"]
    assert st.models[0].id == "whisper-tiny" and st.models[0].revision.startswith("sha256:")
    assert tracks["speech_emotion"].models[0].revision == spec.revision
    assert tracks["speech_rate"].data["rate_source"] == "transcript"
    assert tracks["audio_environment"].data["method"] == "ast-audioset"
    assert tracks["audio_environment"].models[0].revision == "c" * 40
    assert tracks["sound_effects"].data["method"] == "features"
    segments = [e for e in st.events if e.label == "speech"]
    srt = (res.run_dir / "transcript.srt").read_text()
    vtt = (res.run_dir / "transcript.vtt").read_text()
    assert vtt.startswith("WEBVTT")
    assert stamp_ms(srt) == [int(round(e.start * 1000)) for e in segments] == stamp_ms(vtt)
    assert all(e.data["text"].strip() in srt for e in segments)
    for name in MINE:  # what they wrote is documented in docs/analyzers.md
        documented = outputs()[name]
        track = tracks[name]
        assert {e.label for e in track.events} <= documented.labels, name
        for e in track.events:
            for key in e.data:
                assert "*" in documented.event_keys.get(key, set()) or e.label in documented.event_keys.get(key, set()), (
                    name, e.label, key)
        assert not _undocumented_track_keys(_track_keys(track.data), documented.track_keys), name
        assert all(documented.series.get(x.name) == x.unit for x in track.series), name


def test_missing_weights_offline_skip_with_the_pull_command(tmp_path, sample_video):
    reg = registry(tmp_path, {"speech_transcription": {"backend": "faster-whisper", "model": "base"},
                              "speech_emotion": {}, "speech_flow": {"transcript": "speech_transcription"}})
    res = analyze(sample_video.path, registry_path=reg, out_dir=tmp_path / "run", progress=False,
                  load_entrypoints=False, offline=True)
    tracks = res.timeline.tracks
    assert tracks["voice_activity"].status == "ok"
    assert tracks["speech_transcription"].status == "skipped"
    assert "framework models pull faster-whisper-base" in tracks["speech_transcription"].reason
    assert tracks["speech_emotion"].status == "skipped"
    assert "framework models pull wav2vec2-xlsr-speech-emotion" in tracks["speech_emotion"].reason
    assert tracks["speech_flow"].status == "skipped"  # it asked for the transcript, which could not run
    assert not (res.run_dir / "transcript.srt").exists()
