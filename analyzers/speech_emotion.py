"""Speech emotion per speech segment with a wav2vec2 audio classifier (transformers).

The model is seed 004's ``ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition`` (manifest id
``wav2vec2-xlsr-speech-emotion``; labels angry, calm, disgust, fearful, happy, neutral, sad,
surprised), loaded with ``AutoModelForAudioClassification.from_pretrained`` from the folder the
runner hands over; any audio-classification checkpoint works through ``model_id``. Each speech
segment of the upstream ``voice_activity`` track is cut into pieces of at most ``max_chunk_s``;
the pieces are batched through the device step and a segment's scores are the duration-weighted
mean of its pieces'.

Outputs:

- events ``emotion``: one per speech segment (at least ``min_segment_s``), ``data``: ``emotion``
  (the top label), ``scores`` (label -> probability); ``score`` is the top probability;
- track data: ``model``, ``labels``, ``dominant`` (the label with most speech time),
  ``distribution`` (label -> share of the classified speech time), ``classified_s``.
"""
from __future__ import annotations

import collections
import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from framework import AUDIO_SAMPLE_RATE, AnalyzerInputs, AnalyzerUnavailable, BatchedAnalyzer, Event, Track

from ._speech.audio import read, speech_regions
from ._vision.common import dtype_of, pick_precision, torch_device

logger = logging.getLogger(__name__)

SR = AUDIO_SAMPLE_RATE


class SpeechEmotion(BatchedAnalyzer):
    """wav2vec2 emotion classifier over voice-activity segments, batched on the device."""

    name = "speech_emotion"
    original_status = "active"
    version = "1.0.0"
    description = "Emotion of each speech segment (wav2vec2 audio classification, seed 004's model)."
    needs_audio = True
    requires_audio = True
    device = "auto"
    cuda_stream_local = True  # no device-wide CUDA calls while analyzing: graphs may be captured beside it
    warm_imports = ("transformers.modeling_utils", "transformers.models.wav2vec2.modeling_wav2vec2",
                    "transformers.models.wav2vec2.feature_extraction_wav2vec2")
    depends_on = ("voice_activity",)
    batch_size = 8
    item_vram_mb = 150.0  # an 8 s piece through the 24-layer large model, fp16
    preprocess_threads = 1

    class Params(BatchedAnalyzer.Params):
        model_id: str = Field("wav2vec2-xlsr-speech-emotion", description="Manifest id of the audio classifier.")
        max_chunk_s: float = Field(8.0, ge=1.0, le=30.0, description="Longer segments are classified in pieces.")
        min_segment_s: float = Field(0.5, ge=0.0, description="Shorter speech segments are not classified.")
        batch_size: int = Field(8, ge=1, le=128, description="Pieces per device batch.")

    def model_ids(self) -> list[str]:
        return [self.params.model_id]

    def load(self, device: str, models: dict[str, Path]) -> None:
        import torch
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, Wav2Vec2FeatureExtractor

        path = models.get(self.params.model_id)
        if path is None:
            raise AnalyzerUnavailable(f"speech_emotion: model {self.params.model_id} is not available; "
                                      f"framework models pull {self.params.model_id}")
        device = torch_device(device)
        self.torch, self.dev = torch, torch.device(device)
        self.dtype = dtype_of(pick_precision(self.precision, device, who="speech_emotion"))
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(path)
        except (OSError, ValueError):  # a checkpoint saved without preprocessor_config.json
            logger.info("speech_emotion: %s has no feature extractor config; using wav2vec2's defaults", path)
            self.extractor = Wav2Vec2FeatureExtractor(sampling_rate=SR, do_normalize=True, return_attention_mask=True)
        self.model = AutoModelForAudioClassification.from_pretrained(path, dtype=self.dtype).to(self.dev).eval()
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def unload(self) -> None:
        self.model = self.extractor = None
        self._audio = None

    # --- the device step ------------------------------------------------------------
    def items(self, inputs: AnalyzerInputs) -> list[tuple[int, float, float]]:
        """(segment index, start, end) pieces of the speech segments."""
        if inputs.audio is None:
            raise AnalyzerUnavailable("speech_emotion: the video has no audio stream")
        self._audio = inputs.audio
        p = self.params
        out = []
        for k, (a, b) in enumerate(speech_regions(inputs)):
            if b - a < p.min_segment_s:
                continue
            n = int(np.ceil((b - a) / p.max_chunk_s))
            edges = np.linspace(a, b, n + 1)
            out += [(k, float(x), float(y)) for x, y in zip(edges[:-1], edges[1:])]
        return out

    def preprocess(self, items: list[tuple[int, float, float]]) -> Any:
        clips = [read(self._audio, a, b) for _, a, b in items]
        want_mask = bool(getattr(self.extractor, "return_attention_mask", False))
        return self.extractor(clips, sampling_rate=SR, padding=True, return_tensors="pt",
                              return_attention_mask=want_mask)

    def forward(self, batch: Any) -> Any:
        torch = self.torch
        inputs = {k: (v.to(self.dev, self.dtype) if v.is_floating_point() else v.to(self.dev))
                  for k, v in batch.items()}
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        return logits.float().softmax(-1).cpu().numpy()

    def postprocess(self, outputs: Any, items: list[Any]) -> list[np.ndarray]:
        return list(outputs)

    def finish(self, results: list[np.ndarray], inputs: AnalyzerInputs) -> Track:
        pieces = self.items(inputs)
        by_segment: dict[int, list[tuple[float, float, np.ndarray]]] = collections.defaultdict(list)
        for (k, a, b), probs in zip(pieces, results):
            by_segment[k].append((a, b, probs))
        events, seconds = [], collections.Counter()
        for k in sorted(by_segment):
            parts = by_segment[k]
            weights = np.array([b - a for a, b, _ in parts])
            mean = np.average(np.stack([p for _, _, p in parts]), axis=0, weights=weights)
            top = int(np.argmax(mean))
            start, end = parts[0][0], parts[-1][1]
            events.append(Event(start=round(start, 3), end=round(end, 3), label="emotion",
                                score=round(float(mean[top]), 3),
                                data={"emotion": self.labels[top],
                                      "scores": {lab: round(float(v), 4) for lab, v in zip(self.labels, mean)}}))
            seconds[self.labels[top]] += end - start
        total = sum(seconds.values())
        return self.track(events=events, data={
            "model": self.params.model_id, "labels": self.labels,
            "dominant": seconds.most_common(1)[0][0] if seconds else None,
            "distribution": {lab: round(s / total, 4) for lab, s in seconds.most_common()} if total else {},
            "classified_s": round(total, 3),
        })
