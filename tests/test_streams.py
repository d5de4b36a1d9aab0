from __future__ import annotations

import numpy as np
import pytest

from framework.streams import AudioWriter, DiskArray, FrameSpec, FrameStreamWriter


@pytest.fixture
def array_file(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, size=(50, 4, 6, 3), dtype=np.uint8)
    path = tmp_path / "frames.u8"
    path.write_bytes(data.tobytes())
    return data, DiskArray(path, np.uint8, (4, 6, 3), 50)


@pytest.mark.parametrize("key", [0, -1, 17, slice(None), slice(3, 9), slice(0, 50, 7), slice(40, 10, -3),
                                 [5, 1, 5, 49, 2], np.array([[1, 2], [3, 4]]), np.arange(10, 30), [7], [],
                                 np.array([[10, 11, 12]]), (slice(None), slice(None, None, 2)),
                                 (7, 1), (np.array([4, 8]), 0, 0)])
def test_disk_array_indexes_like_numpy(array_file, key):
    data, disk = array_file
    np.testing.assert_array_equal(disk[key], data[key])


def test_disk_array_mask_shape_len_and_asarray(array_file):
    data, disk = array_file
    mask = np.zeros(50, dtype=bool)
    mask[[3, 4, 30]] = True
    np.testing.assert_array_equal(disk[mask], data[mask])
    assert len(disk) == 50 and disk.shape == data.shape and disk.ndim == 4
    np.testing.assert_array_equal(np.asarray(disk), data)
    with pytest.raises(IndexError):
        disk[50]


def test_frame_stream_sampling_and_batches(tmp_path):
    spec = FrameSpec(fps=2, width=8, height=4, pix_fmt="gray")
    w = FrameStreamWriter(tmp_path / "s", spec, 8, 4)
    for i in range(30):  # 10 fps source for 3 s
        t = i / 10
        if w.wants(t):
            w.write(t, np.full((4, 8), i, dtype=np.uint8))
    stream = w.close()
    assert list(np.round(stream.times, 3)) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    seen = [int(f[0, 0]) for _, f in stream]
    assert seen == [0, 5, 10, 15, 20, 25]
    blocks = list(stream.batches(4))
    assert [len(b[1]) for b in blocks] == [4, 2]
    assert stream.index_at(1.2) == 2


def test_audio_chunks_cover_every_sample_once(tmp_path):
    w = AudioWriter(tmp_path / "a.f32", start_time=1.5)
    data = np.arange(16000 * 5, dtype=np.float32)
    w.write(data)
    track = w.close()
    assert track.duration == 5.0
    chunks = list(track.chunks(2.0))
    assert [round(t, 3) for t, _ in chunks] == [1.5, 3.5, 5.5]
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), data)
    np.testing.assert_array_equal(track.samples[100:200], data[100:200])
