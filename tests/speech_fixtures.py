"""Generated audio with known truth, and tiny random speech models built once per test session.

Audio (``analyzers/_speech/synth.py``, numpy only so the benchmarks share it): speech-like formant
bursts (one syllable each: a consonant burst, then a vowel's harmonics shaped by three formants),
steady tones, music-like chords, noise, silence, knocks. Models: the real on-disk formats the
analyzers load (``analyzers/_speech/random_models.py``), built once per session and shared by
every test module.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analyzers._speech.synth import SR, Speech, chords, click, formant_speech, noise, silence, tone  # noqa: F401
from framework import AnalyzerInputs, Track, VideoMeta
from framework.streams import AudioWriter


def audio_inputs(folder: Path, samples: np.ndarray, start_time: float = 0.0,
                 upstream: dict[str, Track] | None = None) -> AnalyzerInputs:
    """``samples`` written to a run-style audio cache, as the decoder does, behind AnalyzerInputs."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = AudioWriter(folder / f"audio{len(list(folder.glob('audio*.f32')))}.f32", start_time=start_time)
    for k in range(0, samples.size, SR * 7):
        writer.write(samples[k:k + SR * 7])
    audio = writer.close()
    video = VideoMeta(path="synthetic.wav", content_hash="x", size_bytes=int(samples.nbytes),
                      duration=start_time + samples.size / SR, has_video=False, audio_streams=[{"codec": "pcm_f32le"}])
    return AnalyzerInputs(video=video, audio=audio, upstream=dict(upstream or {}))


# --- models, once per session ----------------------------------------------------------------------
_BUILT: dict[str, Path] = {}


def _once(name: str, factory, build) -> Path:
    if name not in _BUILT:
        _BUILT[name] = build(factory.mktemp(name))
    return _BUILT[name]


def silero_path() -> Path:
    """The silero-vad package folder, as the runner resolves the bundled ``silero-vad`` model."""
    from framework.models import ModelResolver, load_manifest

    found, missing = ModelResolver(load_manifest(), offline=True).resolve(["silero-vad"])
    assert not missing, missing
    return found["silero-vad"].path


@pytest.fixture(scope="session")
def tiny_whisper_pt(tmp_path_factory) -> Path:
    """A tiny random openai-whisper checkpoint (``whisper.load_model`` format)."""
    from analyzers._speech.random_models import openai_whisper_checkpoint

    return _once("whisper_pt", tmp_path_factory, lambda d: openai_whisper_checkpoint(d / "tiny.pt"))


@pytest.fixture(scope="session")
def tiny_whisper_ct2(tmp_path_factory) -> Path:
    """A tiny random transformers Whisper converted to a CTranslate2 folder for faster-whisper."""
    from analyzers._speech.random_models import ct2_whisper_folder, hf_whisper_folder

    return _once("whisper_ct2", tmp_path_factory,
                 lambda d: ct2_whisper_folder(hf_whisper_folder(d / "hf"), d / "ct2"))


@pytest.fixture(scope="session")
def tiny_wav2vec2(tmp_path_factory) -> Path:
    from analyzers._speech.random_models import wav2vec2_classifier_folder

    return _once("wav2vec2", tmp_path_factory, lambda d: wav2vec2_classifier_folder(d / "snapshot"))


@pytest.fixture(scope="session")
def tiny_ast(tmp_path_factory) -> Path:
    from analyzers._speech.random_models import ast_classifier_folder

    return _once("ast", tmp_path_factory, lambda d: ast_classifier_folder(d / "snapshot"))


def hf_snapshot(repo_id: str, source: Path, commit: str = "c" * 40) -> Path:
    """Copy ``source`` into the Hugging Face cache (``$HF_HOME/hub``) as ``repo_id``'s snapshot at
    ``commit`` (refs/main points to it), where the runner's model resolution finds it."""
    from framework.models.roots import CacheRoots
    from framework.testing.llm import install_in_hf_cache

    return install_in_hf_cache(source, repo_id, CacheRoots.from_env().hf_hub, commit)
