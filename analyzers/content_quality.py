"""Picture quality per shot: CLIP quality and aesthetics scores, sharpness, noise and exposure.

Reads two streams sampled on the same grid (1 fps by default): RGB frames ``image_size`` high
for CLIP, and grey frames ``measure_width`` wide for the measures that need no model
(``_vision.quality``: Laplacian-variance sharpness, Immerkaer noise sigma in grey levels, mean
exposure and the shares of clipped highlights and crushed shadows). CLIP ViT-B-32 (manifest id
``open-clip-vit-b-32``, open_clip's format, loaded once and shared with ``composition_analysis``
through ``_vision.clip``) embeds each frame in batches through the device step; each frame is
scored zero-shot against two prompt pairs, CLIP-IQA style: the ``quality`` (``aesthetics``)
score is the softmax probability of the positive prompt of its pair, 0..1.

Each shot of the upstream ``cut_analysis`` track (the whole video when there is none) that has
a sampled frame gets one ``shot_quality`` event::

    Event(start, end, label="shot_quality", score=<quality>,
          data={"quality": 0.71, "aesthetics": 0.64, "sharpness": 212.5, "noise": 2.1,
                "exposure": 0.46, "highlights": 0.002, "shadows": 0.03, "frames": 6,
                "issues": ["blurry"], "text": "blurry"})

(shot means of the per-frame values). ``issues`` names what crossed a threshold (``blurry``,
``noisy``, ``overexposed``, ``underexposed``); ``text`` repeats them for search when there are
any. Series, per sampled frame: ``quality``, ``aesthetics``, ``sharpness``, ``noise``,
``exposure``. Track data: ``quality`` and ``aesthetics`` (duration-weighted means over shots),
``model``, and ``shot_embeddings``, each shot's mean CLIP image embedding for search::

    {"model": "open-clip-vit-b-32", "dim": 512, "times": [[start, end], ...], "dtype": "float16",
     "vectors_b64": <base64 of the row-major float16 array (n, dim), rows L2-normalised>}

(``analyzers._vision.common.decode_embeddings`` reads it back.)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from framework import AnalyzerInputs, BatchedAnalyzer, Event, Series, Track

from ._shots import shot_intervals
from ._vision import clip as shared_clip
from ._vision.clip_base import ClipAnalyzer
from ._vision.common import by_shot, encode_embeddings, unit_rows
from ._vision.quality import frame_measures

logger = logging.getLogger(__name__)

MEASURES = ("sharpness", "noise", "exposure", "highlights", "shadows")


class ContentQuality(ClipAnalyzer):
    """Per-shot CLIP quality/aesthetics scores plus sharpness, noise and exposure."""

    name = "content_quality"
    original_status = "active"
    version = "1.0.0"
    description = "Per-shot quality and aesthetics (CLIP prompt pairs), sharpness, noise and exposure; shot embeddings."

    class Params(BatchedAnalyzer.Params):
        fps: float = Field(1.0, gt=0, le=30, description="Frames per second sampled.")
        image_size: int = Field(224, ge=32, le=1024, description="Height of the frames given to CLIP (its input size).")
        measure_width: int = Field(640, ge=64, le=3840, description="Width of the grey frames measured without a model.")
        batch_size: int = Field(64, ge=1, le=1024, description="Frames per CLIP forward pass.")
        quality_prompts: tuple[str, str] = Field(("a sharp, clear, high quality photo", "a blurry, noisy, low quality photo"),
                                                 description="Positive and negative prompt of the quality score.")
        aesthetic_prompts: tuple[str, str] = Field(("a beautiful, well composed photo", "an ugly, badly composed photo"),
                                                   description="Positive and negative prompt of the aesthetics score.")
        blurry_below: float = Field(60.0, ge=0, description="Sharpness under which a shot is `blurry`.")
        noisy_above: float = Field(6.0, ge=0, description="Noise sigma (grey levels) over which a shot is `noisy`.")
        overexposed_above: float = Field(0.15, ge=0, le=1, description="Share of clipped highlights making it `overexposed`.")
        underexposed_below: float = Field(0.15, ge=0, le=1, description="Mean exposure under which it is `underexposed`.")

    def load(self, device: str, models: dict[str, Path]) -> None:
        super().load(device, models)
        assert self.clip is not None
        p = self.params
        self.prompts = self.clip.encode_texts([*p.quality_prompts, *p.aesthetic_prompts])

    def measure(self, grey: np.ndarray) -> dict[str, float]:
        return frame_measures(grey)

    def postprocess(self, outputs: Any, items: list[Any]) -> list[Any]:
        assert self.clip is not None
        emb, measures = outputs
        probs_q = self.clip.probs(emb, self.prompts[0:2])[:, 0]
        probs_a = self.clip.probs(emb, self.prompts[2:4])[:, 0]
        return [(float(t), emb[k], float(probs_q[k]), float(probs_a[k]), measures[k]) for k, (t, _, _) in enumerate(items)]

    def finish(self, results: list[Any], inputs: AnalyzerInputs) -> Track:
        p = self.params
        duration = inputs.video.duration
        shots = shot_intervals(inputs, duration)
        events: list[Event] = []
        shot_times: list[tuple[float, float]] = []
        vectors: list[np.ndarray] = []
        weighted = {"quality": 0.0, "aesthetics": 0.0, "seconds": 0.0}
        for start, end, idx in by_shot(shots, [r[0] for r in results]):
            rows = [results[i] for i in idx]
            quality = float(np.mean([r[2] for r in rows]))
            aesthetics = float(np.mean([r[3] for r in rows]))
            m = {k: float(np.mean([r[4][k] for r in rows if r[4] is not None] or [np.nan])) for k in MEASURES}
            issues = []
            if m["sharpness"] < p.blurry_below:
                issues.append("blurry")
            if m["noise"] > p.noisy_above:
                issues.append("noisy")
            if m["highlights"] > p.overexposed_above:
                issues.append("overexposed")
            if m["exposure"] < p.underexposed_below:
                issues.append("underexposed")
            data: dict[str, Any] = {"quality": round(quality, 4), "aesthetics": round(aesthetics, 4),
                                    "sharpness": round(m["sharpness"], 2), "noise": round(m["noise"], 3),
                                    "exposure": round(m["exposure"], 4), "highlights": round(m["highlights"], 4),
                                    "shadows": round(m["shadows"], 4), "frames": len(rows), "issues": issues}
            if issues:
                data["text"] = ", ".join(issues)
            events.append(Event(start=round(start, 3), end=round(end, 3), label="shot_quality",
                                score=round(quality, 4), data=data))
            shot_times.append((start, end))
            vectors.append(unit_rows(np.mean([r[1] for r in rows], axis=0)[None])[0])
            weighted["quality"] += quality * (end - start)
            weighted["aesthetics"] += aesthetics * (end - start)
            weighted["seconds"] += end - start
        times = [round(r[0], 3) for r in results]

        def series(name: str, values: list[float | None], unit: str = "") -> Series:
            return Series(name=name, unit=unit, times=times, values=values)

        def measure(k: str, nd: int) -> list[float | None]:
            return [None if r[4] is None else round(r[4][k], nd) for r in results]

        out = [series("quality", [round(r[2], 4) for r in results]),
               series("aesthetics", [round(r[3], 4) for r in results]),
               series("sharpness", measure("sharpness", 2)), series("noise", measure("noise", 3)),
               series("exposure", measure("exposure", 4))]
        secs = weighted["seconds"] or 1.0
        dim = self.clip.dim if self.clip is not None else 0
        data = {"quality": round(weighted["quality"] / secs, 4) if shot_times else None,
                "aesthetics": round(weighted["aesthetics"] / secs, 4) if shot_times else None,
                "model": shared_clip.CLIP_MODEL_ID,
                "shot_embeddings": encode_embeddings(shared_clip.CLIP_MODEL_ID, shot_times,
                                                     np.asarray(vectors, np.float32).reshape(len(vectors), dim))}
        return self.track(events=events, series=out, data=data)
