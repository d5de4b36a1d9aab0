"""``depth_estimation``: how deep each shot is: relative depth statistics from a monocular depth model.

The original system's analyzer of this name (seed 004; disabled there) ran MiDaS (manifest
``midas-small``, kept as that reference). Here the model is Depth Anything V2 Small
(``depth-anything-v2-small``, Apache-2.0, ~25 M parameters; any transformers depth model with a
``preprocessor_config.json``, such as DPT, can be named with ``model``), loaded with
``AutoModelForDepthEstimation`` / ``AutoImageProcessor`` from the snapshot folder the runner hands
over, and run through the device step: frames sampled at ``fps`` (decoded ``size`` px high, the
processor resizing them as the model expects) go in batches; the statistics are computed on the
device and only a few numbers per frame come back.

The model predicts *relative inverse depth* (disparity: larger is nearer), known only up to scale
and shift, so nothing here is in metres. Per frame, with ``D`` the disparity map and ``q(p)`` its
p-th percentile:

- ``mean_depth``: mean of ``1 - n``, where ``n`` is ``D`` scaled to 0..1 between ``q(2)`` and
  ``q(98)`` (0: as near as anything in the frame, 1: as far): where the frame's pixels lie
  between its nearest and farthest parts;
- ``near_share`` / ``far_share``: shares of pixels with ``1 - n`` below ``near`` (1/3) / above
  ``far`` (2/3);
- ``depth_range``: ``1 - q(5) / q(95)``, i.e. ``1 - z_near / z_far`` when disparity is ``1 / z``:
  0 when everything is at one distance (a wall), towards 1 when the background is much farther
  than the nearest things (a landscape; sky has disparity ~0);
- ``foreground_distance``: ``q(50) / q(90)``: the distance of the nearest tenth of the frame as a
  share of the median pixel's distance (small: a subject close to the camera against a far
  background; 1: no foreground nearer than the rest).

The last two treat the model's disparity as proportional to ``1 / distance``; with the model's
unknown shift they are approximate. A frame with one disparity everywhere is flat: 0.5, 0, 0, 0, 1.

Each shot of the upstream ``cut_analysis`` track (the whole video without one) gets one ``depth``
event with the means over its frames, a rough ``layout`` (``shallow`` when ``depth_range`` < 0.5,
``deep`` from 0.8, else ``medium``) and ``data["text"]`` such as ``deep depth, close foreground``
(``close foreground``: ``foreground_distance`` < 0.5). Series per sampled frame: ``mean_depth``,
``near_share``, ``depth_range``, ``foreground_distance``. Disabled by default, as in the original
system.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from framework import AnalyzerInputs, AnalyzerUnavailable, BatchedAnalyzer, Event, FrameSpec, Series, Track

from ._shots import shot_intervals
from ._vision.common import SingleSpecFrames, by_shot, dtype_of, pick_precision, torch_device

logger = logging.getLogger(__name__)

MODEL_ID = "depth-anything-v2-small"
STATS = ("mean_depth", "near_share", "far_share", "depth_range", "foreground_distance")
QUANTILES = (0.02, 0.05, 0.5, 0.9, 0.95, 0.98)
SHALLOW, DEEP, CLOSE = 0.5, 0.8, 0.5


def depth_stats(disparity: Any, near: float = 1 / 3, far: float = 2 / 3) -> Any:
    """The statistics of a batch of disparity maps (B, H, W) as a (B, 5) float32 tensor in the order
    of ``STATS`` (see the module docstring); runs on the maps' device."""
    import torch

    d = disparity.detach().float().clamp_min(0).flatten(1)
    q02, q05, q50, q90, q95, q98 = quantiles(d, QUANTILES).unbind(1)
    span = q98 - q02
    flat = span <= 1e-6 * q98.abs().clamp_min(1e-12)
    n = ((d - q02[:, None]) / span.clamp_min(1e-12)[:, None]).clamp(0, 1)
    rel = torch.where(flat[:, None], torch.full_like(n, 0.5), 1 - n)
    mean_depth = rel.mean(dim=1)
    near_share = torch.where(flat, torch.zeros_like(q50), (rel < near).float().mean(dim=1))
    far_share = torch.where(flat, torch.zeros_like(q50), (rel > far).float().mean(dim=1))
    depth_range = torch.where((q95 > 0) & ~flat, (1 - q05 / q95.clamp_min(1e-12)).clamp(0, 1), torch.zeros_like(q95))
    foreground = torch.where((q90 > 0) & ~flat, (q50 / q90.clamp_min(1e-12)).clamp(0, 1), torch.ones_like(q90))
    return torch.stack([mean_depth, near_share, far_share, depth_range, foreground], dim=1)


def quantiles(rows: Any, qs: tuple[float, ...]) -> Any:
    """Per-row quantiles (B, len(qs)) with ``torch.quantile``'s linear interpolation, by sorting each row
    (``torch.quantile`` refuses inputs of more than 2**24 elements: a batch of large maps)."""
    import torch

    ordered = rows.sort(dim=1).values
    pos = torch.tensor(qs, dtype=torch.float64, device=rows.device) * (rows.shape[1] - 1)
    lo, hi = pos.floor().long(), pos.ceil().long()
    frac = (pos - lo).to(rows.dtype)
    return ordered[:, lo] + (ordered[:, hi] - ordered[:, lo]) * frac


def layout_of(depth_range: float) -> str:
    return "shallow" if depth_range < SHALLOW else ("deep" if depth_range >= DEEP else "medium")


class DepthEstimation(SingleSpecFrames, BatchedAnalyzer):
    """Relative depth per frame and per shot: how deep the scene is and how near its foreground."""

    name = "depth_estimation"
    original_status = "disabled"
    version = "1.0.0"
    description = ("Relative depth per shot (Depth Anything V2 Small; the original used MiDaS): mean depth, "
                   "near/far shares, depth range, foreground distance. Disabled in the original system.")
    device = "auto"
    cuda_stream_local = True  # no device-wide CUDA calls while analyzing: graphs may be captured beside it
    warm_imports = ("transformers.modeling_utils",)
    depends_on = ("cut_analysis",)
    models = (MODEL_ID,)
    enabled_by_default = False
    batch_size = 8
    item_vram_mb = 90.0  # a 518x924 input through a ViT-S encoder and the DPT head

    class Params(BatchedAnalyzer.Params):
        model: str = Field(MODEL_ID, description="models-manifest id of a transformers depth-estimation model")
        fps: float = Field(1.0, gt=0, le=30, description="Frames per second measured.")
        size: int = Field(518, ge=28, le=2048, description="Height the frames are decoded at (the processor "
                          "resizes them as the model expects; Depth Anything: 518).")
        batch_size: int = Field(8, ge=1, le=256, description="Frames per forward pass.")
        near: float = Field(1 / 3, gt=0, lt=1, description="Relative depth below which a pixel counts as near.")
        far: float = Field(2 / 3, gt=0, lt=1, description="Relative depth above which a pixel counts as far.")

        @model_validator(mode="after")
        def _check(self) -> "DepthEstimation.Params":
            if self.near > self.far:
                raise ValueError(f"near ({self.near}) must not be above far ({self.far})")
            return self

    def model_ids(self) -> list[str]:
        return [self.params.model]

    def frame_specs(self) -> list[FrameSpec]:
        return [FrameSpec(fps=self.params.fps, height=self.params.size)]

    def load(self, device: str, models: dict[str, Path]) -> None:
        import torch  # noqa: F401
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        path = models.get(self.params.model)
        if path is None:
            raise AnalyzerUnavailable(f"model {self.params.model} was not handed to {self.name}: run "
                                      f"`framework models pull {self.params.model}`")
        self.torch_device = torch_device(device)
        self.run_precision = pick_precision(self.precision, self.torch_device, "fp16", who=self.name)
        try:
            self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
            self.model = AutoModelForDepthEstimation.from_pretrained(
                path, dtype=dtype_of(self.run_precision), local_files_only=True).to(self.torch_device).eval()
        except (OSError, ValueError) as exc:
            raise AnalyzerUnavailable(f"cannot load a depth model from {path}: {exc}; run "
                                      f"`framework models verify` or pull {self.params.model} again") from exc

    # --- the device step (unload, count_items, items: SingleSpecFrames) ---------------------------
    def preprocess(self, items: list[Any]) -> Any:
        pixels = self.processor(images=[f for _, f in items], return_tensors="pt")["pixel_values"]
        return pixels.pin_memory() if self.torch_device.startswith("cuda") else pixels

    def forward(self, batch: Any) -> Any:
        import torch

        with torch.inference_mode():
            x = batch.to(self.torch_device, non_blocking=True).to(dtype_of(self.run_precision))
            depth = self.model(pixel_values=x).predicted_depth
            return depth_stats(depth, self.params.near, self.params.far).cpu().numpy()

    def postprocess(self, outputs: Any, items: list[Any]) -> list[Any]:
        return [(float(t), row.astype(np.float64)) for (t, _), row in zip(items, outputs)]

    def finish(self, results: list[Any], inputs: AnalyzerInputs) -> Track:
        times = [r[0] for r in results]
        stats = np.array([r[1] for r in results]) if results else np.zeros((0, len(STATS)))
        events = []
        for start, end, rows in by_shot(shot_intervals(inputs, inputs.video.duration), times):
            mean = stats[rows].mean(axis=0)
            values = {k: round(float(v), 4) for k, v in zip(STATS, mean)}
            layout = layout_of(values["depth_range"])
            text = f"{layout} depth" + (", close foreground" if values["foreground_distance"] < CLOSE else "")
            events.append(Event(start=round(start, 3), end=round(end, 3), label="depth",
                                data={**values, "layout": layout, "frames": len(rows), "text": text}))
        rounded = [round(t, 3) for t in times]
        series = [Series(name=k, times=rounded, values=[round(float(v), 4) for v in stats[:, i]])
                  for i, k in enumerate(STATS) if k != "far_share"]
        data = {"model": self.params.model, "frames": len(results),
                "depth": "relative (from inverse depth known up to scale and shift): no metric distances",
                **{k: (round(float(stats[:, i].mean()), 4) if len(stats) else None) for i, k in enumerate(STATS)}}
        return self.track(events=events, series=series, data=data)


__all__ = ["DepthEstimation", "STATS", "depth_stats", "layout_of", "quantiles"]
