"""Sound effects: sudden sounds (impacts, bangs, beeps, bursts) outside speech.

A sudden sound is a jump of at least ``rise_db`` in the 10 ms level over the median level of the
second before it, reached within 50 ms (``analyzers/_speech/sound.py``, ``sudden_sounds``); it lasts
until the level is back within 6 dB of that background. Jumps inside the speech segments of the
upstream ``voice_activity`` track are speech starting, not effects, and are left out
(``ignore_speech``). Each sound is named by the AudioSet classifier when it is pulled
(``framework models pull ast-audioset``; its ``clip_s`` from the onset, batched through the device
step), else by the feature fallback: ``beep`` (one strong partial), ``impact`` (broadband, at most
0.5 s) or ``burst`` (broadband, longer).

Outputs:

- events ``sound_effect``, ``data``: ``kind`` (the AudioSet label, or the fallback's name),
  ``peak_db``, ``rise_db`` and, with the classifier, ``top_labels``; ``score`` is the rise in dB;
- track data: ``method`` (``"ast-audioset"`` or ``"features"``), ``model``, ``count``,
  ``per_min`` and ``kinds`` (kind -> count).
"""
from __future__ import annotations

import collections
from typing import Any

import numpy as np
from pydantic import Field

from framework import AnalyzerInputs, AnalyzerUnavailable, Event, Track

from ._speech.audio import read, speech_regions
from ._speech.sound import AudioSetAnalyzer, Onset, level_envelope, onset_kind, sudden_sounds


class SoundEffects(AudioSetAnalyzer):
    """Sudden sounds outside speech, named by the AudioSet classifier or by their features."""

    name = "sound_effects"
    original_status = "active"
    version = "1.0.0"
    description = "Sudden sound events (bangs, impacts, beeps) outside speech, named by AudioSet AST when pulled."
    needs_audio = True
    requires_audio = True
    device = "auto"
    cuda_stream_local = True  # no device-wide CUDA calls while analyzing: graphs may be captured beside it
    depends_on = ("voice_activity",)
    models_optional = True
    batch_size = 16
    item_vram_mb = 60.0
    preprocess_threads = 1

    class Params(AudioSetAnalyzer.Params):
        rise_db: float = Field(15.0, gt=3, description="Jump over the preceding level that makes a sudden sound.")
        min_db: float = Field(-40.0, le=0, description="Quieter sounds (dBFS) are ignored.")
        context_s: float = Field(1.0, ge=0.2, le=10, description="The preceding stretch whose median is the background.")
        ignore_speech: bool = Field(True, description="Leave out jumps inside voice-activity speech segments.")
        clip_s: float = Field(1.0, ge=0.25, le=10.24, description="Audio from the onset the classifier hears.")
        batch_size: int = Field(16, ge=1, le=256, description="Sounds per device batch.")

    def unload(self) -> None:
        super().unload()
        self._planned_for = None

    def _plan(self, inputs: AnalyzerInputs) -> list[Onset]:
        """The sudden sounds of this input (found once per ``inputs``)."""
        if getattr(self, "_planned_for", None) is not inputs:
            if inputs.audio is None:
                raise AnalyzerUnavailable("sound_effects: the video has no audio stream")
            p = self.params
            self._audio = inputs.audio
            found = sudden_sounds(level_envelope(inputs.audio), inputs.audio.start_time, p.rise_db, p.min_db,
                                  p.context_s)
            if p.ignore_speech:
                regions = speech_regions(inputs)
                found = [o for o in found if not any(a <= o.start < b for a, b in regions)]
            self._onsets, self._planned_for = found, inputs
        return self._onsets

    # --- the device step (one classifier clip per sound; none for the fallback) -------------
    def items(self, inputs: AnalyzerInputs) -> list[Onset]:
        onsets = self._plan(inputs)
        return onsets if getattr(self, "ast", None) is not None else []

    def count_items(self, inputs: AnalyzerInputs) -> int:
        return len(self.items(inputs))

    def preprocess(self, items: list[Onset]) -> Any:
        return self.ast.features([read(self._audio, o.start, o.start + self.params.clip_s) for o in items])

    def finish(self, results: list[np.ndarray], inputs: AnalyzerInputs) -> Track:
        onsets = self._plan(inputs)
        with_model = self.ast is not None and len(results) == len(onsets)
        events, kinds = [], collections.Counter()
        for i, o in enumerate(onsets):
            data: dict[str, Any] = {"peak_db": o.peak_db, "rise_db": o.rise_db}
            if with_model:
                top = self.ast.top_labels(results[i], 3)
                data["kind"], data["top_labels"] = top[0][0], [name for name, _ in top]
            else:
                data["kind"] = onset_kind(read(self._audio, o.start, min(o.end, o.start + 0.3)), o.end - o.start)
            kinds[data["kind"]] += 1
            events.append(Event(start=o.start, end=o.end, label="sound_effect", score=o.rise_db, data=data))
        duration = inputs.audio.duration
        return self.track(events=events, data={
            "method": "ast-audioset" if with_model else "features",
            "model": self.params.model_id if with_model else None,
            "count": len(events),
            "per_min": round(len(events) * 60.0 / duration, 2) if duration > 0 else None,
            "kinds": dict(kinds),
        })
