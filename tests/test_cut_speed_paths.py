"""cut_analysis's fast paths give exactly what the plain formulas give, on one thread or several.

The content score sums 16-bit integer terms with ``cv2.sumElems`` row by row, the weight ramp is
computed instead of looked up, luma and lit fractions are integer row sums, and the frame blocks
and dissolve batches run on a small thread pool: none of this may change a single bit.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import analyzers.cut_analysis as ca


def test_row_sums_are_exact_at_the_largest_values():
    # 640x360 frames (the largest analysis width) of the largest 16-bit term (90 * 576) and of 255
    big = np.full((3, 640 * 360), 90 * 576, dtype=np.uint16)
    full = np.full((2, 640 * 360), 255, dtype=np.uint8)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 65536, size=(5, 9973), dtype=np.uint16)
    for x in (big, full, noise):
        (sums,) = ca._row_sums(x)
        assert sums.dtype == np.float64
        np.testing.assert_array_equal(sums, x.astype(np.int64).sum(axis=1).astype(np.float64))


def test_ramp_is_the_weight_table():
    x = np.arange(256, dtype=np.uint8).reshape(4, 64)
    np.testing.assert_array_equal(ca._ramp(x), np.clip(x.astype(int) - 8, 0, 24))


@pytest.mark.parametrize("dark_level", [16.0, 16.5, 0.5, 128.0])
def test_luma_and_lit_are_the_plain_means(dark_level):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(70, 20, 32, 3), dtype=np.uint8)
    frames[10:20] //= 8  # dark frames around the threshold
    sig = ca.frame_signals(frames, dark_level=dark_level, block=16)
    gray = cv2.cvtColor(frames.reshape(-1, 32, 3), cv2.COLOR_RGB2GRAY).reshape(len(frames), -1)
    np.testing.assert_array_equal(sig.luma, (gray.sum(axis=1) / gray.shape[1]).astype(np.float32))
    np.testing.assert_array_equal(sig.lit, ((gray > dark_level).sum(axis=1) / gray.shape[1]).astype(np.float32))


def _signals(frames: np.ndarray, workers: int, monkeypatch) -> ca.FrameSignals:
    monkeypatch.setattr(ca, "_WORKERS", workers)
    return ca.frame_signals(frames, block=8, spans=(3, 6))


def test_frame_signals_are_the_same_on_one_or_two_threads(monkeypatch):
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, size=(101, 18, 32, 3), dtype=np.uint8)
    frames[40:60] = frames[40]  # a still stretch and a change, across several blocks
    one, two = _signals(frames, 1, monkeypatch), _signals(frames, 2, monkeypatch)
    for name in ("content", "luma", "lit", "hist_step"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name), err_msg=name)
    for k in (3, 6):
        np.testing.assert_array_equal(one.hist_span[k], two.hist_span[k])


def _dissolves(seed: int, repeats: int) -> np.ndarray:
    """``repeats`` times: a held noise picture, a 24-frame blend into another, the other held."""
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(0, 256, size=(18, 32, 3)).astype(np.float32) for _ in range(2))
    mix = np.linspace(0, 1, 24)[:, None, None, None]
    frames = [np.repeat(a[None], 30, 0), a * (1 - mix) + b * mix, np.repeat(b[None], 30, 0)]
    return np.clip(np.concatenate(frames * repeats), 0, 255).astype(np.uint8)


def test_dissolve_search_is_the_same_on_one_or_two_threads(monkeypatch):
    """Many candidate batches (a low histogram threshold) through the thread pool and without it."""
    frames = _dissolves(seed=3, repeats=6)
    params = ca.CutAnalysis.Params(dissolve_hist_min=0.01)
    spans = ca.dissolve_scales(30.0, params)
    found = []
    for workers in (1, 2):
        monkeypatch.setattr(ca, "_WORKERS", workers)
        sig = ca.frame_signals(frames, spans=spans)
        found.append(ca.find_dissolves(sig, frames, 30.0, [], [], params))
    assert found[0], "the blends must be found"
    assert repr(found[0]) == repr(found[1])


def test_in_order_keeps_order_and_stops_early():
    out = list(ca._in_order(lambda x: x * x, range(50), workers=2))
    assert out == [x * x for x in range(50)]
    started = []

    def work(x):
        started.append(x)
        return x

    gen = ca._in_order(work, range(1000), workers=2)
    assert next(gen) == 0
    gen.close()  # the consumer stops: nothing more is started than the few already queued
    assert len(started) <= 8


def test_workers_param_gives_the_same_signals_and_dissolves_and_reaches_the_pool(monkeypatch):
    """``Params.workers`` (explicit counts are not capped to the CPUs) changes threads, not results."""
    frames = _dissolves(seed=4, repeats=4)
    seen = []
    real = ca._in_order

    def recording(fn, items, workers=None):
        seen.append(workers)
        return real(fn, items, workers)

    monkeypatch.setattr(ca, "_in_order", recording)
    results = []
    for workers in (1, 3):
        params = ca.CutAnalysis.Params(dissolve_hist_min=0.01, workers=workers)
        sig = ca.frame_signals(frames, spans=ca.dissolve_scales(30.0, params), workers=params.workers)
        results.append((sig, ca.find_dissolves(sig, frames, 30.0, [], [], params)))
    assert seen == [1, 1, 3, 3]
    (one, d1), (three, d3) = results
    for name in ("content", "luma", "lit", "hist_step"):
        np.testing.assert_array_equal(getattr(one, name), getattr(three, name), err_msg=name)
    assert d1 and repr(d1) == repr(d3)
    with pytest.raises(ValueError):
        ca.CutAnalysis.Params(workers=-1)
