"""Segments are joined into the final streams as they finish, while the others still decode, and
joining copies no frame: the final stream reads the segments' own frame files as its pieces.

A boundary that does not fit, found after earlier segments were already joined, still gives way
to one ordinary pass with the same streams, and leaves no part behind.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from framework import media
from framework.media import decode, probe
from framework.streams import DiskArray, FrameSpec, FrameStream, FrameStreamWriter

SPECS = [FrameSpec(None, 64), FrameSpec(2.0, 32, pix_fmt="gray")]


def _segmented(monkeypatch) -> None:
    monkeypatch.setattr(media.segments, "cpus_available", lambda: 4)
    monkeypatch.setattr(media.segments, "MIN_SEGMENT_PIXELS", 0)  # small test pictures


def _one_pass(path: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(media.segments, "MAX_WORKERS", 1)
    out = decode(path, probe(path), SPECS, False, tmp_path / "one")
    monkeypatch.undo()
    return out


def _parts(cache: Path) -> list[Path]:
    return sorted((cache / "frames").glob("*/part*"))


def test_a_boundary_found_wrong_after_some_joins_gives_way_to_one_pass(sample_video, tmp_path, monkeypatch):
    one = _one_pass(sample_video.path, tmp_path, monkeypatch)
    _segmented(monkeypatch)
    real_add = media.segments._Joiner.add
    added = []

    def add(self, result, at=0.0):
        if len(added) == 2:  # the third segment "does not follow" the second
            raise media.segments.SegmentsUnusable("segments do not follow each other in time")
        added.append(result)
        real_add(self, result, at)

    monkeypatch.setattr(media.segments._Joiner, "add", add)
    seg = decode(sample_video.path, probe(sample_video.path), SPECS, False, tmp_path / "seg")
    assert len(added) == 2 and seg.stats.segments == 0
    assert seg.stats.segments_abandoned == "segments do not follow each other in time"
    for spec in SPECS:
        np.testing.assert_array_equal(one.streams[spec].times, seg.streams[spec].times)
        np.testing.assert_array_equal(one.streams[spec].frames[:], seg.streams[spec].frames[:])
    assert _parts(tmp_path / "seg") == []


def test_joining_copies_no_frame(sample_video, tmp_path, monkeypatch):
    one = _one_pass(sample_video.path, tmp_path, monkeypatch)
    _segmented(monkeypatch)
    seg = decode(sample_video.path, probe(sample_video.path), SPECS, False, tmp_path / "seg")
    assert seg.stats.segments >= 2
    for spec in SPECS:
        stream = seg.streams[spec]
        np.testing.assert_array_equal(one.streams[spec].frames[:], stream.frames[:])
        meta = json.loads((stream.folder / "meta.json").read_text())
        assert len(meta["pieces"]) == seg.stats.segments
        assert not (stream.folder / "frames.u8").exists()  # nothing was copied into one file
    every = seg.streams[SPECS[0]]  # every frame: the parts hold exactly the stream's frames, once
    on_disk = sum(p.stat().st_size for p in every.folder.glob("part*/frames.u8"))
    assert on_disk == len(every) * int(np.prod(every.frame_shape))
    reopened = FrameStream(every.folder, SPECS[0])  # as an analyzer opens it
    np.testing.assert_array_equal(reopened.frames[::7], one.streams[SPECS[0]].frames[::7])


def test_disk_array_reads_across_pieces(tmp_path):
    rng = np.random.default_rng(0)
    whole = rng.integers(0, 256, size=(40, 3, 2), dtype=np.uint8)
    # the 40 items: 5 after 2 items of file a, 20 of file b, 15 after 1 item of file c
    a, b, c = (tmp_path / n for n in ("a.u8", "b.u8", "c.u8"))
    a.write_bytes(rng.integers(0, 256, 12, dtype=np.uint8).tobytes() + whole[:5].tobytes())
    b.write_bytes(whole[5:25].tobytes())
    c.write_bytes(rng.integers(0, 256, 6, dtype=np.uint8).tobytes() + whole[25:].tobytes() + b"tail")
    arr = DiskArray(tmp_path / "unused.u8", np.uint8, (3, 2), 40, pieces=[(a, 2, 5), (b, 0, 20), (c, 1, 15)])
    np.testing.assert_array_equal(arr[:], whole)
    for key in (slice(3, 31), slice(0, 40, 3), slice(24, 26), 4, 5, 24, 25, -1, np.array([39, 0, 6, 5, 30, 24])):
        np.testing.assert_array_equal(arr[key], whole[key])
    with pytest.raises(ValueError):
        DiskArray(a, np.uint8, (3, 2), 41, pieces=[(a, 2, 5), (b, 0, 20), (c, 1, 15)])


def test_appended_streams_are_read_in_place_after_own_frames(tmp_path):
    spec = FrameSpec(None, 4)
    frames = np.arange(10 * 2 * 4 * 3, dtype=np.uint8).reshape(10, 2, 4, 3)
    part = FrameStreamWriter(tmp_path / "s" / "part0", spec, 4, 2)
    for i in range(6):
        part.write(i / 10, frames[i])
    part = part.close()
    joined = FrameStreamWriter(tmp_path / "s", spec, 4, 2)
    joined.write(-0.1, frames[9])  # a frame of its own, then a part (less its first 2), then its own again
    joined.append(part, skip=2)
    joined.write(0.9, frames[8])
    stream = joined.close()
    np.testing.assert_array_equal(stream.frames[:], frames[[9, 2, 3, 4, 5, 8]])
    np.testing.assert_allclose(stream.times, [-0.1, 0.2, 0.3, 0.4, 0.5, 0.9])
    assert [n for *_, n in stream.pieces()] == [1, 4, 1]
