"""Composition per shot: shot size and camera angle (CLIP zero-shot), symmetry, balance, thirds.

Disabled by default. Uses the same CLIP ViT-B-32 as ``content_quality`` (manifest id
``open-clip-vit-b-32``): when both run in one wave, ``_vision.clip`` hands this analyzer the
model ``content_quality`` already loaded instead of loading it twice.

Frames are sampled on one grid (1 fps by default) as RGB ``image_size`` high for CLIP and grey
``measure_width`` wide for the model-free measures (``_vision.quality``). Per frame, CLIP picks
a shot size among ``extreme close-up``, ``close-up``, ``medium shot``, ``wide shot``,
``extreme wide shot`` and a camera angle among ``low angle``, ``eye level``, ``high angle``,
``aerial`` (softmax over one prompt per class). Each shot (of the upstream ``cut_analysis``
track, or the whole video) with a sampled frame gets one ``composition`` event::

    Event(start, end, label="composition",
          data={"shot_size": "close-up", "shot_size_scores": {"close-up": 0.61, ...},
                "angle": "eye level", "angle_scores": {"eye level": 0.7, ...},
                "symmetry": 0.83, "balance": [0.05, -0.12], "thirds": 1.2, "frames": 5,
                "text": "close-up, eye level"})

Scores are the shot's mean probabilities; ``symmetry`` (1 = left-right mirror image), ``balance``
(edge energy's centre of mass as x, y offsets from the centre, -1..1) and ``thirds`` (edge energy
near the rule-of-thirds lines relative to an even spread) are shot means. Track data:
``shot_sizes`` and ``angles`` (shots per class), ``model``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from framework import AnalyzerInputs, BatchedAnalyzer, Event, Track

from ._shots import shot_intervals
from ._vision import clip as shared_clip
from ._vision.clip_base import ClipAnalyzer
from ._vision.common import by_shot
from ._vision.quality import layout

logger = logging.getLogger(__name__)

SHOT_SIZES = {
    "extreme close-up": "an extreme close-up shot of a detail",
    "close-up": "a close-up shot of a face",
    "medium shot": "a medium shot of a person from the waist up",
    "wide shot": "a wide shot showing people and their surroundings",
    "extreme wide shot": "an extreme wide shot of a vast landscape",
}
ANGLES = {
    "low angle": "a photo taken from a low angle, looking up",
    "eye level": "a photo taken at eye level",
    "high angle": "a photo taken from a high angle, looking down",
    "aerial": "an aerial photo taken from a drone",
}


class CompositionAnalysis(ClipAnalyzer):
    """Shot size, camera angle, symmetry, balance and rule-of-thirds per shot (shares CLIP with content_quality)."""

    name = "composition_analysis"
    original_status = "disabled"
    version = "1.0.0"
    description = "Shot size and camera angle (CLIP zero-shot), symmetry, balance and rule of thirds per shot."
    enabled_by_default = False

    class Params(BatchedAnalyzer.Params):
        fps: float = Field(1.0, gt=0, le=30, description="Frames per second sampled.")
        image_size: int = Field(224, ge=32, le=1024, description="Height of the frames given to CLIP.")
        measure_width: int = Field(320, ge=64, le=3840, description="Width of the grey frames for symmetry/balance.")
        batch_size: int = Field(64, ge=1, le=1024, description="Frames per CLIP forward pass.")

    def load(self, device: str, models: dict[str, Path]) -> None:
        super().load(device, models)
        assert self.clip is not None
        self.size_text = self.clip.encode_texts(list(SHOT_SIZES.values()))
        self.angle_text = self.clip.encode_texts(list(ANGLES.values()))

    def measure(self, grey: np.ndarray) -> tuple[float, float, float, float]:
        return layout(grey)

    def postprocess(self, outputs: Any, items: list[Any]) -> list[Any]:
        assert self.clip is not None
        emb, measures = outputs
        sizes = self.clip.probs(emb, self.size_text)
        angles = self.clip.probs(emb, self.angle_text)
        return [(float(t), sizes[k], angles[k], measures[k]) for k, (t, _, _) in enumerate(items)]

    def finish(self, results: list[Any], inputs: AnalyzerInputs) -> Track:
        shots = shot_intervals(inputs, inputs.video.duration)
        events: list[Event] = []
        size_counts: dict[str, int] = {}
        angle_counts: dict[str, int] = {}
        for start, end, idx in by_shot(shots, [r[0] for r in results]):
            rows = [results[i] for i in idx]
            size_p = np.mean([r[1] for r in rows], axis=0)
            angle_p = np.mean([r[2] for r in rows], axis=0)
            size = list(SHOT_SIZES)[int(size_p.argmax())]
            angle = list(ANGLES)[int(angle_p.argmax())]
            m = np.array([r[3] for r in rows if r[3] is not None] or [[np.nan] * 4], dtype=np.float64).mean(axis=0)
            size_counts[size] = size_counts.get(size, 0) + 1
            angle_counts[angle] = angle_counts.get(angle, 0) + 1
            events.append(Event(
                start=round(start, 3), end=round(end, 3), label="composition",
                data={"shot_size": size, "shot_size_scores": {k: round(float(v), 4) for k, v in zip(SHOT_SIZES, size_p)},
                      "angle": angle, "angle_scores": {k: round(float(v), 4) for k, v in zip(ANGLES, angle_p)},
                      "symmetry": round(float(m[0]), 4), "balance": [round(float(m[1]), 4), round(float(m[2]), 4)],
                      "thirds": round(float(m[3]), 4), "frames": len(rows), "text": f"{size}, {angle}"}))
        return self.track(events=events, data={"shot_sizes": size_counts, "angles": angle_counts,
                                               "model": shared_clip.CLIP_MODEL_ID})
