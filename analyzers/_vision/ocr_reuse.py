"""Text lines read again only when their pixels changed: a recognizer wrapper for rapidocr.

Overlays stay on screen for seconds (a caption bar, a lower third, a channel logo, a copyright line)
while the picture under them moves, so text_overlay's frames differ (``skip_unchanged`` reads them
all) though most of their text lines are the same pixels as a moment before. Recognizing a line is
most of the CPU's part of OCR (a caption line took 160 ms with two threads on this project's 2-CPU
machine; detection's maps come from the GPU on a GPU machine).

``ReusedReadings`` wraps rapidocr's ``TextRecognizer`` (``engine.text_rec``): a line crop of the same
size as one it recognized recently, whose every cell (the crop shrunk to ``CELL_ROWS`` rows, each
pixel there the mean of a block of the crop's grey levels) is within ``threshold`` grey levels of
that crop's, gets that crop's reading back instead of a pass through the recognizer. A changed
character moves its cells by tens to hundreds of levels (dark strokes on a light bar or the other
way round), the video codec's noise by a few, so the threshold separates the two with room on both
sides (``tests/test_ocr_reuse.py`` measures both on real footage: a burned-in frame counter that
changes every frame, a copyright line that does not). A crop whose box moved or changed size by a
pixel is simply read again.
"""
from __future__ import annotations

import copy
from collections import deque
from typing import Any, Sequence

import numpy as np

#: the rows a crop is shrunk to for the comparison (its columns in proportion): cells of about a stroke's width
CELL_ROWS = 12
#: the default largest difference of one cell's mean grey level for two crops to be the same line
THRESHOLD = 12.0


def cells(crop: np.ndarray) -> np.ndarray:
    """``crop`` (H, W[, 3] uint8) as grey cell means, ``CELL_ROWS`` rows and as many columns as keep its shape."""
    import cv2

    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    h, w = grey.shape[:2]
    cols = max(1, int(round(w * CELL_ROWS / max(h, 1))))
    return cv2.resize(grey, (cols, CELL_ROWS), interpolation=cv2.INTER_AREA).astype(np.float32)


class ReusedReadings:
    """rapidocr's recognizer, called as it is (``(crops, return_word_box) -> (readings, seconds)``), reusing the
    reading of a recently recognized crop of the same pixels (see the module's docstring). ``read`` and
    ``reused`` count the crops recognized and the crops given a reading back."""

    def __init__(self, recognizer: Any, threshold: float = THRESHOLD, keep: int = 64):
        self.recognizer = recognizer
        self.threshold = float(threshold)
        self.recent: deque[tuple[tuple[int, ...], bool, np.ndarray, Any]] = deque(maxlen=keep)
        self.read = 0
        self.reused = 0

    def _known(self, shape: tuple[int, ...], word_boxes: bool, sig: np.ndarray) -> Any:
        for i in range(len(self.recent) - 1, -1, -1):  # (the latest first)
            known_shape, known_word_boxes, known_sig, reading = self.recent[i]
            if known_shape == shape and known_word_boxes == word_boxes and \
                    float(np.abs(known_sig - sig).max()) <= self.threshold:
                return reading
        return None

    def __call__(self, crops: np.ndarray | Sequence[np.ndarray], return_word_box: bool = False) -> tuple[list[Any], float]:
        crops = [crops] if isinstance(crops, np.ndarray) else list(crops)
        sigs = [cells(c) for c in crops]
        out: list[Any] = [None] * len(crops)
        todo = []
        for i, (crop, sig) in enumerate(zip(crops, sigs)):
            known = self._known(crop.shape, return_word_box, sig)
            if known is None:
                todo.append(i)
            else:
                out[i] = copy.deepcopy(known)  # (rapidocr writes into the word boxes of what it gets back)
        elapse = 0.0
        if todo:
            readings, elapse = self.recognizer([crops[i] for i in todo], return_word_box)
            for i, reading in zip(todo, readings):
                out[i] = reading
                self.recent.append((crops[i].shape, return_word_box, sigs[i], copy.deepcopy(reading)))
        self.read += len(todo)
        self.reused += len(crops) - len(todo)
        return out, elapse
