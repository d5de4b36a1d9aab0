"""The base of the analyzers that classify face crops with a transformers image classifier
(emotion_detection, age_estimation).

Per sampled frame, on one CPU thread (``preprocess``; mediapipe graphs are not thread-safe):
mediapipe's full-range face detector (``detect.FaceFinder``, bundled) finds the faces, a square
``crop_scale`` times each face box is cut out, and the classifier's own image processor (its
``preprocessor_config.json``: resize, rescale, normalise) makes the pixel values. On the device
(``forward``): ``AutoModelForImageClassification`` (``from_pretrained`` on the snapshot folder the
runner hands over) gives class probabilities (softmax) for every crop of the batch at once. Faces
are then linked into face tracks within shots (``tracks.face_tracks``) and the subclass turns each
track's probabilities into events (``track_events``).

The labels are the model's own (``config.id2label``).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework import AnalyzerInputs, BatchedAnalyzer, Event, FrameSpec, Series, Track

from .._shots import shot_intervals
from .._vision.common import SingleSpecFrames, dtype_of, pick_precision, torch_device
from .detect import FaceBox, FaceFinder, square_crop
from .tracks import FaceTrack, face_tracks

logger = logging.getLogger(__name__)

DETECTOR_ID = "mediapipe-face-detection"


class FaceClassifier(SingleSpecFrames, BatchedAnalyzer):
    """Face detection (mediapipe, bundled) + a transformers image classifier on each face crop.

    Subclasses set ``name``, ``MODEL_ID`` (the classifier's manifest id) and ``models``, and
    implement ``track_events`` and ``summary``.
    """

    MODEL_ID: ClassVar[str] = ""
    device = "auto"
    cuda_stream_local = True  # no device-wide CUDA calls while analyzing: graphs may be captured beside it
    warm_imports = ("transformers.modeling_utils", "transformers.models.vit.modeling_vit", "transformers.models.vit.image_processing_vit")
    depends_on = ("cut_analysis",)
    batch_size = 16
    item_vram_mb = 60.0
    preprocess_threads = 1  # the face detector's graph is used from one thread only
    enabled_by_default = False

    class Params(BatchedAnalyzer.Params):
        fps: float = Field(1.0, gt=0, le=30, description="Frames per second read.")
        width: int = Field(960, ge=128, le=3840, description="Width in pixels of the frames read.")
        max_faces: int = Field(4, ge=1, le=20, description="Most faces classified per frame (most confident first).")
        min_confidence: float = Field(0.6, gt=0, lt=1, description="Face detection confidence threshold.")
        min_face_px: int = Field(24, ge=8, le=512, description="Smallest face height in pixels that is classified.")
        crop_scale: float = Field(1.2, ge=1, le=3, description="Side of the square crop over the face box's longer side.")
        min_iou: float = Field(0.3, ge=0, le=1, description="Box overlap that continues a face track.")
        max_gap: int = Field(2, ge=0, le=50, description="Sampled frames a face may be missing and keep its track.")
        batch_size: int = Field(16, ge=1, le=512, description="Frames per step.")

    finder: FaceFinder | None = None
    model: Any = None

    def frame_specs(self) -> list[FrameSpec]:
        return [FrameSpec(fps=self.params.fps, width=self.params.width)]

    def load(self, device: str, models: dict[str, Path]) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        path = models[self.MODEL_ID]
        self.torch_device = torch_device(device)
        self.run_precision = pick_precision(self.precision, self.torch_device, "fp16", who=self.name)
        self.model = AutoModelForImageClassification.from_pretrained(
            path, dtype=dtype_of(self.run_precision)).to(self.torch_device).eval()
        self.processor = AutoImageProcessor.from_pretrained(path)
        self.labels = [str(self.model.config.id2label[i]) for i in range(self.model.config.num_labels)]
        self.finder = FaceFinder(models.get(DETECTOR_ID), self.name, self.params.min_confidence, self.params.max_faces)
        self.finder_lock = threading.Lock()  # a batch split after running out of memory is preprocessed again elsewhere

    def unload(self) -> None:
        if self.finder is not None:
            self.finder.close()
        self.finder = None
        super().unload()  # the model, and the CUDA cache

    # --- the device step -------------------------------------------------------------------------
    def preprocess(self, items: list[Any]) -> Any:
        assert self.finder is not None
        p = self.params
        faces: list[list[FaceBox]] = []
        crops: list[np.ndarray] = []
        for _, frame in items:
            kept = []
            with self.finder_lock:
                found = self.finder.find(frame)
            for face in found:
                if face.height * frame.shape[0] < p.min_face_px:
                    continue
                crop = square_crop(frame, face.box, p.crop_scale)
                if crop is not None:
                    kept.append(face)
                    crops.append(crop)
            faces.append(kept)
        pixels = self.processor(images=crops, return_tensors="pt")["pixel_values"] if crops else None
        return faces, pixels

    def forward(self, batch: Any) -> Any:
        import torch

        faces, pixels = batch
        if pixels is None:
            return faces, None
        with torch.inference_mode():
            logits = self.model(pixel_values=pixels.to(self.torch_device, dtype=self.model.dtype)).logits
            return faces, logits.float().softmax(dim=-1).cpu().numpy()

    def postprocess(self, outputs: Any, items: list[Any]) -> list[Any]:
        faces, probs = outputs
        out, k = [], 0
        for (t, _), found in zip(items, faces):
            out.append((float(t), found, probs[k:k + len(found)] if probs is not None else np.zeros((0, len(self.labels)))))
            k += len(found)
        return out

    # --- the track ----------------------------------------------------------------------------
    def track_events(self, track: FaceTrack, start: float, end: float, times: list[float],
                     probs: np.ndarray, members: list[tuple[int, int]]) -> list[Event]:
        """The events of one face track; ``probs`` (n, labels) of its samples, in order."""
        raise NotImplementedError

    def summary(self, events: list[Event], observations: np.ndarray) -> dict[str, Any]:
        """Track data beyond the common keys; ``observations`` (n, labels) are every face's probabilities."""
        return {}

    def finish(self, results: list[Any], inputs: AnalyzerInputs) -> Track:
        p = self.params
        times = [r[0] for r in results]
        faces = [r[1] for r in results]
        probs = [r[2] for r in results]
        counts = [len(f) for f in faces]
        shots = shot_intervals(inputs, inputs.video.duration)
        events: list[Event] = []
        tracks = face_tracks(times, faces, shots, p.min_iou, p.max_gap) if times else []
        for t, start, end, members in tracks:
            rows = np.stack([probs[i][j] for i, j in members])
            events += self.track_events(t, start, end, times, rows, members)
        events.sort(key=lambda e: (e.start, e.label))
        observations = np.concatenate([q for q in probs if len(q)]) if any(len(q) for q in probs) else \
            np.zeros((0, len(self.labels)))
        data = {"faces_max": max(counts, default=0),
                "face_presence": round(sum(1 for c in counts if c) / len(counts), 4) if counts else 0.0,
                "face_tracks": len(tracks), "frames": len(results), "labels": list(self.labels),
                "model": self.MODEL_ID, **self.summary(events, observations)}
        series = [Series(name="faces", times=[round(t, 3) for t in times], values=[float(c) for c in counts]),
                  *self.series(times, faces, probs)]
        return self.track(events=events, series=series, data=data)

    def series(self, times: list[float], faces: list[list[FaceBox]], probs: list[np.ndarray]) -> list[Series]:
        """Extra series (default none)."""
        return []
