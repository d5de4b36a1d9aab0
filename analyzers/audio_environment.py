"""Audio environment: speech, music, tone, noise and silence segments over the whole soundtrack.

With the AudioSet classifier pulled (``framework models pull ast-audioset``: the Audio Spectrogram
Transformer, ``MIT/ast-finetuned-audioset-10-10-0.4593``), overlapping ``ast_window_s`` windows are
classified through the device step and each 0.5 s block takes the class group (speech, music,
tone, noise) with the highest AudioSet probability of the windows around it. Without it, a
documented feature-based fallback needs no weights (``analyzers/_speech/sound.py``): the level,
the upstream ``voice_activity`` segments, and the spectrum's shape. Silence is always the level
under ``silence_db``. Blocks are smoothed by a 3-block majority and merged into segments.

Outputs:

- events ``speech``, ``music``, ``tone``, ``noise``, ``silence``: the segments, ``data``:
  ``confidence`` (mean class probability, or the fallback's 0..1 confidence) and, with the
  classifier, ``top_labels`` (the three likeliest AudioSet labels over the segment);
- track data: ``method`` (``"ast-audioset"`` or ``"features"``: which one ran), ``model`` (the
  classifier's manifest id, ``None`` for the fallback), ``seconds`` and ``fractions`` (per class).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydantic import Field

from framework import AnalyzerInputs, AnalyzerUnavailable, Event, Track

from ._speech.audio import read, speech_regions
from ._speech.sound import (CLASSES, AudioSetAnalyzer, block_features, feature_classes, mode_filter, runs,
                            speech_coverage)

logger = logging.getLogger(__name__)


class AudioEnvironment(AudioSetAnalyzer):
    """Music / speech / tone / noise / silence segments: AudioSet classifier, or a feature fallback."""

    name = "audio_environment"
    original_status = "active"
    version = "1.0.0"
    description = "Speech, music, tone, noise and silence segments (AudioSet AST when pulled, else audio features)."
    needs_audio = True
    requires_audio = True
    device = "auto"
    cuda_stream_local = True  # no device-wide CUDA calls while analyzing: graphs may be captured beside it
    depends_on = ("voice_activity",)
    models_optional = True  # the feature fallback runs when the classifier is not cached
    batch_size = 16
    item_vram_mb = 60.0  # one 10.24 s AST input (1212 patches), fp16
    preprocess_threads = 1

    class Params(AudioSetAnalyzer.Params):
        hop_s: float = Field(0.5, ge=0.1, le=5.0, description="Block length of the classes.")
        silence_db: float = Field(-45.0, le=0, description="Blocks quieter than this (dBFS) are silence.")
        ast_window_s: float = Field(2.0, ge=0.5, le=10.24, description="Audio per classifier window.")
        ast_hop_s: float = Field(1.0, ge=0.25, le=10.0, description="Step between classifier windows.")
        smooth_blocks: int = Field(3, ge=1, le=15, description="Majority filter width (blocks).")
        batch_size: int = Field(16, ge=1, le=256, description="Classifier windows per device batch.")

    # --- the device step (classifier windows; none for the fallback) ----------------------
    def _starts(self, inputs: AnalyzerInputs) -> list[float]:
        audio = inputs.audio
        p = self.params
        last = max(0.0, audio.duration - p.ast_window_s)
        n = int(np.floor(last / p.ast_hop_s + 1e-9)) + 1
        starts = [audio.start_time + i * p.ast_hop_s for i in range(n)]
        if audio.start_time + last - starts[-1] > 1e-6:
            starts.append(audio.start_time + last)  # one window ending at the end
        return starts

    def items(self, inputs: AnalyzerInputs) -> list[float]:
        if inputs.audio is None:
            raise AnalyzerUnavailable("audio_environment: the video has no audio stream")
        self._audio = inputs.audio
        return self._starts(inputs) if getattr(self, "ast", None) is not None else []

    def count_items(self, inputs: AnalyzerInputs) -> int | None:
        return len(self._starts(inputs)) if getattr(self, "ast", None) is not None and inputs.audio else 0

    def preprocess(self, items: list[float]) -> Any:
        return self.ast.features([read(self._audio, s, s + self.params.ast_window_s) for s in items])

    def finish(self, results: list[np.ndarray], inputs: AnalyzerInputs) -> Track:
        p = self.params
        audio = inputs.audio
        feats = block_features(audio, p.hop_s)
        speech = speech_coverage(feats.times, p.hop_s, speech_regions(inputs))
        if self.ast is not None and results:
            classes, conf, block_scores = self._model_classes(feats, np.stack(results), self._starts(inputs))
        else:
            classes, conf = feature_classes(feats, speech, p.silence_db)
            block_scores = None
        classes = mode_filter(classes, p.smooth_blocks)
        end_of_audio = audio.start_time + audio.duration
        events = []
        seconds = dict.fromkeys(CLASSES, 0.0)
        for a, b, label in runs(classes):
            start, end = float(feats.times[a]), min(end_of_audio, float(feats.times[b - 1]) + p.hop_s)
            data: dict[str, Any] = {"confidence": round(float(np.mean(conf[a:b])), 3)}
            if block_scores is not None:
                data["top_labels"] = [name for name, _ in self.ast.top_labels(block_scores[a:b].mean(axis=0))]
            events.append(Event(start=round(start, 3), end=round(end, 3), label=label, data=data))
            seconds[label] += end - start
        total = sum(seconds.values())
        return self.track(events=events, data={
            "method": "ast-audioset" if block_scores is not None else "features",
            "model": p.model_id if block_scores is not None else None,
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "fractions": {k: round(v / total, 4) if total else 0.0 for k, v in seconds.items()},
        })

    def _model_classes(self, feats: Any, scores: np.ndarray,
                       starts: list[float]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Per block: the class group with the highest probability in the windows around its middle."""
        p = self.params
        starts_a = np.asarray(starts)
        block = np.zeros((feats.times.size, scores.shape[1]))
        for i, t in enumerate(feats.times + p.hop_s / 2):
            inside = (starts_a <= t) & (t < starts_a + p.ast_window_s)
            if not inside.any():
                inside = np.abs(starts_a + p.ast_window_s / 2 - t) == np.abs(starts_a + p.ast_window_s / 2 - t).min()
            block[i] = scores[inside].mean(axis=0)
        groups = self.ast.group_scores(block)
        names = ("speech", "music", "tone", "noise")
        stacked = np.stack([groups[n] for n in names], axis=1)
        classes, conf = [], []
        for i, db in enumerate(feats.rms_db):
            if db < p.silence_db:
                classes.append("silence")
                conf.append(1.0)
            else:
                k = int(np.argmax(stacked[i]))
                classes.append(names[k])
                conf.append(float(stacked[i, k]))
        return classes, np.asarray(conf), block
