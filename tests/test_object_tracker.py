"""``ObjectTracker``: ByteTrack never reads the frame (no BGR copy is made for it; the tracks are the same),
BoT-SORT's camera-motion compensation still gets it."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ultralytics")
pytest.importorskip("lap")

from analyzers._vision.yolo import FrameDets, ObjectTracker  # noqa: E402


def _frames_dets(n_frames=40, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.random((4, 4)).astype(np.float32) * 200
    base[:, 2:] += base[:, :2] + 30
    out = []
    for i in range(n_frames):
        boxes = base + i * 2.0 + rng.normal(0, 0.5, base.shape).astype(np.float32)  # four objects drifting
        out.append(FrameDets(time=i / 5, width=640, height=360, boxes=boxes, conf=np.full(4, 0.9, np.float32),
                             cls=np.arange(4, dtype=np.int64), kpts=None))
    return out


def test_bytetrack_tracks_the_same_without_the_frame_and_botsort_still_reads_it(monkeypatch):
    frame = np.random.default_rng(1).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    tracker = ObjectTracker("bytetrack", 5.0, 1.0)
    assert not tracker.reads_frames
    seen = []
    real = tracker.tracker.update
    monkeypatch.setattr(tracker.tracker, "update", lambda boxes, img=None: seen.append(img) or real(boxes, img))
    with_frame = [tracker.update(d, frame) for d in _frames_dets()]
    assert seen and all(img is None for img in seen)  # (no BGR copy made for ByteTrack)
    plain = ObjectTracker("bytetrack", 5.0, 1.0)
    alone = [plain.update(d, None) for d in _frames_dets()]
    assert sum(len(t) for t in with_frame) > 0
    assert all(np.array_equal(a, b) for a, b in zip(with_frame, alone))
    bot = ObjectTracker("botsort", 5.0, 1.0)
    assert bot.reads_frames
    got = []
    real_bot = bot.tracker.update
    monkeypatch.setattr(bot.tracker, "update", lambda boxes, img=None: got.append(img) or real_bot(boxes, img))
    bot.update(_frames_dets()[0], frame)
    assert got[0] is not None and got[0].shape == frame.shape and np.array_equal(got[0], frame[..., ::-1])
