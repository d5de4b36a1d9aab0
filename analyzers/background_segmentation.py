"""Background and foreground: SegFormer-b0 (ADE20K) semantic segmentation of sampled frames.

Samples RGB frames (1 fps, ``size`` x ``size`` as SegFormer's processor resizes them) and runs
SegFormer (manifest id ``segformer-b0-ade-512``; ``SegformerForSemanticSegmentation.from_pretrained``
on the snapshot folder the runner hands over, its ``preprocessor_config.json`` giving the input
size and normalisation) through the device step in batches; the per-pixel argmax is taken on the
device and only class maps come back. On a GPU the model and its inputs are channels-last (NHWC):
cuDNN then runs SegFormer's convolutions without converting each batch, 4x faster on an H200
(0.68 against 2.72 ms a frame in fp16, ``bench/results/segformer_step_h200.md``). Each pixel's
class is *foreground* when it is one of ``foreground_classes`` (people, animals, vehicles by
default) and background otherwise.

The ``foreground_ratio`` series is the foreground share of each sampled frame (0..1). Each shot of
the upstream ``cut_analysis`` track (the whole video when there is none) with a sampled frame gets
one ``background`` event::

    Event(start, end, label="background",
          data={"classes": ["sky", "grass", "tree"], "shares": [0.41, 0.22, 0.1],
                "foreground_ratio": 0.18, "frames": 4, "text": "sky, grass, tree"})

``classes`` are the shot's dominant background classes (largest mean share of the frame first,
at most ``top_classes``, each covering at least ``min_share``); ``shares`` their mean shares of
the frame; ``foreground_ratio`` the shot's mean foreground share. Track data: ``background``
(class -> share of the video's sampled pixels, top ``top_classes``), ``foreground_ratio`` (mean),
``foreground_classes`` (those the model knows), ``model``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from framework import AnalyzerInputs, BatchedAnalyzer, Event, FrameSpec, Series, Track

from ._shots import shot_intervals
from ._vision.common import (SingleSpecFrames, by_shot, channels_last_module, dtype_of, in_layout, nchw_batch,
                             pick_precision, torch_device)

logger = logging.getLogger(__name__)

MODEL_ID = "segformer-b0-ade-512"
FOREGROUND = ("person", "animal", "car", "bus", "truck", "van", "bicycle", "minibike", "boat", "ship",
              "airplane", "horse")


class BackgroundSegmentation(SingleSpecFrames, BatchedAnalyzer):
    """Foreground/background ratio over time and the dominant background classes per shot."""

    name = "background_segmentation"
    original_status = "active"
    version = "1.1.0"
    description = "Foreground/background ratio series and dominant background classes per shot (SegFormer-b0, ADE20K)."
    device = "auto"
    cuda_stream_local = True  # no device-wide CUDA calls while analyzing: graphs may be captured beside it
    channels_last = False  # set by ``load``: on a GPU the model and its batches are NHWC
    warm_imports = ("transformers.modeling_utils", "transformers.models.segformer.modeling_segformer",
                    "transformers.models.segformer.image_processing_segformer")
    depends_on = ("cut_analysis",)
    models = (MODEL_ID,)
    batch_size = 16
    item_vram_mb = 120.0

    class Params(BatchedAnalyzer.Params):
        fps: float = Field(1.0, gt=0, le=30, description="Frames per second segmented.")
        size: int = Field(512, ge=32, le=2048, description="Side of the square frames decoded for the model.")
        batch_size: int = Field(16, ge=1, le=512, description="Frames per forward pass.")
        foreground_classes: list[str] = Field(default_factory=lambda: list(FOREGROUND),
                                              description="Class names counted as foreground.")
        top_classes: int = Field(3, ge=1, le=20, description="Background classes named per shot.")
        min_share: float = Field(0.05, ge=0, le=1, description="Least share of the frame a named class covers.")
        channels_last: bool = Field(True, description="On a GPU, the model and its batches channels-last (NHWC): "
                                    "cuDNN's kernels without converting each batch (4x faster on an H200).")

    def frame_specs(self) -> list[FrameSpec]:
        return [FrameSpec(fps=self.params.fps, width=self.params.size, height=self.params.size)]

    def load(self, device: str, models: dict[str, Path]) -> None:
        import torch
        from transformers import AutoImageProcessor, SegformerForSemanticSegmentation

        path = models[MODEL_ID]
        self.torch_device = torch_device(device)
        self.run_precision = pick_precision(self.precision, self.torch_device, "fp16", who=self.name)
        self.model = SegformerForSemanticSegmentation.from_pretrained(
            path, dtype=dtype_of(self.run_precision)).to(self.torch_device).eval()
        self.model, self.channels_last = channels_last_module(self.model, self.torch_device, self.params.channels_last)
        proc = AutoImageProcessor.from_pretrained(path)
        size = getattr(proc, "size", None) or {"height": 512, "width": 512}
        self.input_hw = (int(size.get("height", 512)), int(size.get("width", 512)))
        scale = float(getattr(proc, "rescale_factor", 1 / 255))
        mean = np.asarray(getattr(proc, "image_mean", (0.485, 0.456, 0.406)), np.float32) / scale
        std = np.asarray(getattr(proc, "image_std", (0.229, 0.224, 0.225)), np.float32) / scale
        dtype = dtype_of(self.run_precision)
        self.mean = torch.tensor(mean, dtype=dtype, device=self.torch_device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=dtype, device=self.torch_device).view(1, 3, 1, 1)
        self.labels = {int(k): str(v) for k, v in self.model.config.id2label.items()}
        known = set(self.labels.values())
        self.foreground = [c for c in self.params.foreground_classes if c in known]
        self.fg_ids = np.array([k for k, v in self.labels.items() if v in self.foreground], dtype=np.int64)

    # --- the device step (unload, count_items, items: SingleSpecFrames) ---------------------------
    def preprocess(self, items: list[Any]) -> Any:
        import cv2

        h, w = self.input_hw
        frames = [f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR)
                  for _, f in items]
        t = nchw_batch(np.stack(frames), self.channels_last)
        return t.pin_memory() if self.torch_device.startswith("cuda") else t

    def forward(self, batch: Any) -> Any:
        import torch

        with torch.inference_mode():
            x = (batch.to(self.torch_device, non_blocking=True).to(self.mean.dtype) - self.mean) / self.std
            logits = self.model(pixel_values=in_layout(x, self.channels_last)).logits
            return logits.argmax(dim=1).to(torch.int16).cpu().numpy()

    def postprocess(self, outputs: Any, items: list[Any]) -> list[Any]:
        n = max(self.labels) + 1 if self.labels else 1
        out = []
        for (t, _), classes in zip(items, outputs):
            counts = np.bincount(classes.reshape(-1).astype(np.int64), minlength=n).astype(np.float64)
            out.append((float(t), counts / max(1.0, counts.sum())))
        return out

    def finish(self, results: list[Any], inputs: AnalyzerInputs) -> Track:
        times = [r[0] for r in results]
        shares = np.array([r[1] for r in results]) if results else np.zeros((0, max(self.labels) + 1))
        fg = shares[:, self.fg_ids].sum(axis=1) if len(self.fg_ids) else np.zeros(len(results))
        background = np.ones(shares.shape[1], bool)
        background[self.fg_ids] = False
        events = []
        for start, end, rows in by_shot(shot_intervals(inputs, inputs.video.duration), times):
            names, values = self._top(shares[rows].mean(axis=0), background)
            events.append(Event(start=round(start, 3), end=round(end, 3), label="background",
                                data={"classes": names, "shares": values,
                                      "foreground_ratio": round(float(fg[rows].mean()), 4),
                                      "frames": len(rows), "text": ", ".join(names)}))
        names, values = self._top(shares.mean(axis=0) if len(shares) else np.zeros(shares.shape[1]), background)
        data = {"background": dict(zip(names, values)),
                "foreground_ratio": round(float(fg.mean()), 4) if len(fg) else None,
                "foreground_classes": self.foreground, "model": MODEL_ID}
        series = [Series(name="foreground_ratio", times=[round(t, 3) for t in times],
                         values=[round(float(v), 4) for v in fg])]
        return self.track(events=events, series=series, data=data)

    def _top(self, mean_shares: np.ndarray, background: np.ndarray) -> tuple[list[str], list[float]]:
        order = [int(i) for i in np.argsort(-mean_shares, kind="stable")
                 if background[i] and mean_shares[i] >= self.params.min_share][: self.params.top_classes]
        return [self.labels.get(i, str(i)) for i in order], [round(float(mean_shares[i]), 4) for i in order]
