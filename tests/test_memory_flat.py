"""Memory that must not grow with the length of the video (issue 10: pipeline peak RSS < +20 %
from 10 to 60 minutes). Each test pins one piece of work that used to scale with the film."""
from __future__ import annotations

import tracemalloc

import numpy as np

from analyzers import scene_segmentation
from analyzers.scene_segmentation import shot_descriptors


class _Stream:
    """The parts of ``FrameStream`` that ``shot_descriptors`` reads, over an in-memory array."""

    def __init__(self, frames: np.ndarray, fps: float) -> None:
        self.frames = frames
        self.times = np.arange(len(frames)) / fps

    def index_at(self, t: float) -> int:
        return int(np.clip(np.searchsorted(self.times, t, "right") - 1, 0, len(self.times) - 1))


def _stream_and_shots(n_frames: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(n_frames, 36, 64, 3), dtype=np.uint8)
    stream = _Stream(frames, fps=2.0)
    shots = [(i / 2.0, (i + 1) / 2.0, "cut") for i in range(n_frames)]  # one frame per shot
    return stream, shots


def test_shot_descriptors_same_in_blocks(monkeypatch):
    stream, shots = _stream_and_shots(50)
    whole = shot_descriptors(stream, shots, per_shot=4)
    monkeypatch.setattr(scene_segmentation, "HIST_BLOCK", 7)  # block edges inside the data
    assert np.array_equal(shot_descriptors(stream, shots, per_shot=4), whole)


def test_shot_descriptors_peak_memory_does_not_follow_the_shot_count():
    # 4000 picked frames are 27 MB of pixels; reading them at once took >100 MB with temporaries
    stream, shots = _stream_and_shots(4000)
    tracemalloc.start()
    try:
        shot_descriptors(stream, shots, per_shot=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 25 * 2**20, f"peak {peak / 2**20:.1f} MB"
