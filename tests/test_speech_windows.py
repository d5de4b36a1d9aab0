"""Whisper windows (analyzers/_speech/windows.py): packing speech regions and mapping times back."""
from __future__ import annotations

import numpy as np
import pytest

from analyzers._speech.windows import Window, pack_windows, split_long


def test_regions_are_packed_in_order_with_joints_and_never_over_the_window():
    regions = [(1.0, 4.0), (5.0, 9.0), (9.5, 20.0), (21.0, 29.0), (31.0, 33.0)]
    windows = pack_windows(regions, window_s=30.0, gap_s=0.3)
    assert [w.index for w in windows] == list(range(len(windows)))
    pieces = [(p.start, p.end) for w in windows for p in w.pieces]
    assert pieces == regions  # every region once, in order, nothing else
    for w in windows:
        assert w.duration <= 30.0 + 1e-9
        for a, b in zip(w.pieces, w.pieces[1:]):
            assert b.offset == pytest.approx(a.offset + a.duration + 0.3)
    assert windows[0].pieces[0].offset == 0.0
    assert sum(w.speech_s for w in windows) == pytest.approx(sum(b - a for a, b in regions))


def test_regions_far_apart_never_share_a_window():
    windows = pack_windows([(0.0, 2.0), (3.0, 4.0), (60.0, 61.0)], max_join_gap_s=10.0)
    assert [[(p.start, p.end) for p in w.pieces] for w in windows] == [[(0.0, 2.0), (3.0, 4.0)], [(60.0, 61.0)]]


def test_a_long_region_is_split_at_the_chosen_point_into_window_sized_parts():
    parts = split_long([(10.0, 80.0)], 30.0, cut=lambda lo, hi: lo + 0.5)
    assert parts[0][0] == 10.0 and parts[-1][1] == 80.0
    assert all(b - a <= 30.0 + 1e-9 for a, b in parts)
    assert all(parts[i][1] == parts[i + 1][0] for i in range(len(parts) - 1))  # contiguous, no overlap
    windows = pack_windows([(10.0, 80.0)], window_s=30.0)
    assert all(w.duration <= 30.0 + 1e-9 for w in windows)
    assert sum(w.speech_s for w in windows) == pytest.approx(70.0)


def test_times_map_back_exactly_and_joint_times_are_clamped_into_one_piece():
    (w,) = pack_windows([(100.0, 102.0), (110.0, 111.0)], gap_s=0.5)
    assert isinstance(w, Window) and w.duration == pytest.approx(3.5)
    assert w.to_timeline(1.25) == pytest.approx(101.25)
    assert w.to_timeline(2.75) == pytest.approx(110.25)  # second piece starts at offset 2.5
    assert w.to_timeline(2.1) == pytest.approx(102.0)    # in the joint, nearer the first piece: its end
    assert w.to_timeline(2.4) == pytest.approx(110.0)    # nearer the second: its start
    a, b = w.span_to_timeline(1.8, 2.9)                   # straddles the joint: the piece holding its middle
    assert (a, b) == (pytest.approx(110.0), pytest.approx(110.4))
    assert w.span_to_timeline(-0.3, 0.2) == (pytest.approx(100.0), pytest.approx(100.2))  # clamped into the audio
    assert w.span_to_timeline(3.4, 4.0) == (pytest.approx(110.9), pytest.approx(111.0))


def test_no_drift_over_two_hours_of_windows():
    """A word at a known timeline time, written in window time, maps back to that time exactly,
    however far into a two-hour file it is (times are computed per window, nothing accumulates)."""
    rng = np.random.default_rng(0)
    t, regions = 3.0, []
    while t < 7200:
        d = rng.uniform(0.4, 45.0)  # some regions longer than a window
        regions.append((t, t + d))
        t += d + rng.uniform(0.1, 15.0)
    windows = pack_windows(regions, window_s=30.0, gap_s=0.3)
    worst = 0.0
    for w in windows:
        for p in w.pieces:
            for truth in np.linspace(p.start, p.end, 5)[1:-1]:
                in_window = p.offset + (truth - p.start)
                worst = max(worst, abs(w.to_timeline(in_window) - truth))
    assert windows[-1].pieces[-1].end > 7000
    assert worst < 1e-6
