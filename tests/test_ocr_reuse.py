"""text_overlay's line reuse: a crop of the same pixels as one recognized just before gets that reading back; a
changed character, another size or a codec's worth of noise beyond the threshold is read again. On real footage
(MEDIA.md) with rapidocr's real weights: every frame's lines come out as without the reuse."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from analyzers._vision.ocr_reuse import ReusedReadings, cells

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


class CountingRecognizer:
    """Stands in for rapidocr's TextRecognizer: reads a crop as its mean grey level, counts the crops it read."""

    def __init__(self):
        self.crops = 0

    def __call__(self, crops, return_word_box=False):
        self.crops += len(crops)
        return [(f"mean {float(c.mean()):.1f}", 0.9, [["w"], [[0, 1]]] if return_word_box else None) for c in crops], 0.01


def line(seed: int = 0, shape=(32, 200, 3)) -> np.ndarray:
    """A dark bar with light 'letters' (blocks at places the seed decides)."""
    rng = np.random.default_rng(seed)
    crop = np.full(shape, 30, np.uint8)
    for x in rng.choice(np.arange(4, shape[1] - 16, 14), size=8, replace=False):
        crop[8:24, x:x + 10] = 230
    return crop


def test_the_same_pixels_are_recognized_once_and_a_changed_letter_again():
    rec = CountingRecognizer()
    reuse = ReusedReadings(rec, threshold=12)
    first, _ = reuse([line(0), line(1)])
    assert rec.crops == 2
    noisy = np.clip(line(0).astype(int) + np.random.default_rng(5).integers(-3, 4, line(0).shape), 0, 255).astype(np.uint8)
    again, _ = reuse([noisy, line(1)])  # a codec's noise: the same line
    assert rec.crops == 2 and again == first and (reuse.read, reuse.reused) == (2, 2)
    changed = line(0)
    changed[8:24, 180:190] = 230  # one more letter
    moved = line(0, shape=(33, 200, 3))  # the box a pixel taller
    out, _ = reuse([changed, moved])
    assert rec.crops == 4 and out[0][0] != first[0][0]  # both read again (the changed one reads otherwise)
    assert (reuse.read, reuse.reused) == (4, 2)


def test_a_reading_given_back_is_a_copy_and_word_boxes_are_asked_for_alike():
    rec = CountingRecognizer()
    reuse = ReusedReadings(rec, threshold=12)
    (first,), _ = reuse([line(3)], True)
    first[2][0].append("changed by the caller")  # (rapidocr writes into the word boxes it gets back)
    (again,), _ = reuse([line(3)], True)
    assert again[2] == [["w"], [[0, 1]]] and rec.crops == 1
    reuse([line(3)], False)  # without word boxes: read again (its reading has none)
    assert rec.crops == 2


def test_cells_keep_the_crops_shape_at_twelve_rows():
    assert cells(line(0)).shape == (12, 75) and cells(line(0)[..., 0]).shape == (12, 75)


def _frames(name: str, seconds: float):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from ocr_reuse import frames_of

    path = MEDIA / name
    if not path.is_file():
        pytest.skip(f"{path} is not here (../shared/media)")
    return frames_of(path, 2.0, seconds=seconds)


@pytest.mark.parametrize("name, seconds, reused_at_least", [
    ("pyscenedetect/testvideo.mp4", 12.0, 10),  # a copyright line over moving footage: mostly reused
    ("video/smpte-2997.mp4", 8.0, 0),  # a frame counter and a timecode that change every frame
])
def test_on_real_footage_every_frames_lines_are_the_ones_read_without_reuse(name, seconds, reused_at_least):
    import rapidocr_onnxruntime

    from analyzers._vision.ocr import RapidOcr

    frames = _frames(name, seconds)
    folder = Path(rapidocr_onnxruntime.__file__).parent / "models"
    texts = {}
    for reuse in (None, 12.0):
        engine = RapidOcr(folder, 2, 0.6, det_side=640, workers=1, reuse_threshold=reuse)
        texts[reuse] = [[ln.text for ln in f] for f in engine.read_many(frames)]
        rec = engine.reader.engine.text_rec
        engine.close()
    assert isinstance(rec, ReusedReadings) and rec.reused >= reused_at_least, (rec.read, rec.reused)
    assert sum(map(len, texts[None])) >= len(frames)  # (text was found: the comparison means something)
    assert texts[12.0] == texts[None]
