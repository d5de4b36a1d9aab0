"""``ClipAnalyzer``: the device-step base of content_quality and composition_analysis.

Both read two streams sampled on one grid (``fps``): RGB frames ``image_size`` high for CLIP and
grey frames ``measure_width`` wide for measures that need no model. Items are
``(time, rgb, grey)``; ``preprocess`` (CPU thread) turns the RGB frames into CLIP's input and
takes ``measure(grey)`` of each frame, ``forward`` embeds the images on the device and passes the
measures through. The CLIP model is the shared one of ``_vision.clip`` (loaded once while both
analyzers hold it). Subclasses declare ``Params`` (with ``fps``, ``image_size``,
``measure_width``, ``batch_size``), ``measure``, ``postprocess`` and ``finish``, and encode their
prompts in ``load`` after ``super().load``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np

from framework import AnalyzerInputs, BatchedAnalyzer, FrameSpec

from . import clip as shared_clip


class ClipAnalyzer(BatchedAnalyzer):
    """CLIP image embeddings of an RGB stream plus model-free measures of a grey stream on the same grid."""

    device = "auto"
    cuda_stream_local = True  # no device-wide CUDA calls while analyzing: graphs may be captured beside it
    warm_imports = ("open_clip",)
    depends_on = ("cut_analysis",)
    models = (shared_clip.CLIP_MODEL_ID,)
    batch_size = 64
    item_vram_mb = 12.0

    clip: shared_clip.ClipModel | None = None

    def measure(self, grey: np.ndarray) -> Any:
        """The model-free measures of one grey frame (CPU thread)."""
        raise NotImplementedError

    def frame_specs(self) -> list[FrameSpec]:
        p = self.params
        return [FrameSpec(fps=p.fps, height=p.image_size), FrameSpec(fps=p.fps, width=p.measure_width, pix_fmt="gray")]

    def load(self, device: str, models: dict[str, Path]) -> None:
        self.clip = shared_clip.acquire(models[shared_clip.CLIP_MODEL_ID], device, self.precision, self.name)

    def unload(self) -> None:
        shared_clip.release(self.clip)
        self.clip = None

    # --- the device step -------------------------------------------------------------------------
    def count_items(self, inputs: AnalyzerInputs) -> int | None:
        return len(inputs.frames(self.frame_specs()[0]))

    def items(self, inputs: AnalyzerInputs) -> Iterable[Any]:
        rgb_spec, grey_spec = self.frame_specs()
        rgb, grey = inputs.frames(rgb_spec), inputs.frames(grey_spec)
        greys = grey.frames

        def gen():
            for i, (t, frame) in enumerate(rgb):
                yield t, frame, greys[grey.index_at(t) if len(grey) != len(rgb) else i] if len(grey) else None

        return gen()

    def preprocess(self, items: list[Any]) -> Any:
        assert self.clip is not None
        measures = [None if g is None else self.measure(g) for _, _, g in items]
        return self.clip.to_input([f for _, f, _ in items]), measures

    def forward(self, batch: Any) -> Any:
        assert self.clip is not None
        tensor, measures = batch
        return self.clip.encode_images(tensor), measures
