"""The Qwen families patch frames at the size they were decoded, whatever transformers' default for its per-frame
pixel cap (``analyzers.vlm.families.qwen.keep_frame_sizes``)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from analyzers.vlm.families import family_class
from analyzers.vlm.families.base import GenerationOptions, Request
from analyzers.vlm.families.qwen import keep_frame_sizes
from vlm_fixtures import tiny_vlm  # noqa: F401  (a fixture)

pytest.importorskip("transformers")


def test_the_cap_is_set_off_where_the_video_processor_has_it_and_left_alone_where_not():
    with_cap, without = SimpleNamespace(cap_pixels_per_frame=None), SimpleNamespace()
    assert keep_frame_sizes(with_cap) is True and with_cap.cap_pixels_per_frame is False
    assert keep_frame_sizes(without) is False and not hasattr(without, "cap_pixels_per_frame")


def test_a_qwen2_vl_chunk_reaches_the_video_processor_with_the_cap_off(tiny_vlm):  # noqa: F811
    fam = family_class("qwen2_vl")(GenerationOptions())
    fam.load_processor(tiny_vlm("qwen2-vl"), "cpu")
    video_processor = fam.processor.video_processor
    if not hasattr(video_processor, "cap_pixels_per_frame"):
        pytest.skip("this transformers has no per-frame pixel cap")
    seen = []
    patch = video_processor._preprocess
    video_processor._preprocess = lambda *a, **k: seen.append(k.get("cap_pixels_per_frame")) or patch(*a, **k)
    frames = np.random.default_rng(3).integers(0, 255, (4, 56, 100, 3), dtype=np.uint8)
    fam.prepare([Request(0, 0.0, 1.0, [0.25 * k for k in range(4)], frames, "Describe.")])
    assert seen == [False]
