"""The probe's frame rate: the declared rate, exactly, unless the timestamps really disagree.

Files are encoded here with libx264 (B-frames, closed and open GOPs), longer than the probe's
packet budget, so the probe stops part-way through the file in decode order: the case where a
mean of decode-order timestamps lands just off the true rate (29.67 instead of 30000/1001).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from framework.media import probe
from framework.media.probing import PROBE_PACKETS

N_FRAMES = PROBE_PACKETS + 150


def encode(path: Path, pts: list[int], time_base: Fraction, *, declared: Fraction, open_gop: bool = False,
           bframes: int = 16, gop: int = 96) -> Path:
    """H.264 frames presented at ``pts`` ticks of ``time_base``; ``declared``: the rate the stream
    header is given. A bar moves across a gradient so the encoder uses B-frames."""
    w, h = 64, 48
    params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:b-adapt=0:b-pyramid=normal" + (":open-gop=1" if open_gop else "")
    ramp = np.tile(np.linspace(0, 200, w, dtype=np.uint8), (h, 1))
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=declared)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.time_base = time_base
        s.options = {"preset": "veryfast", "x264-params": params}
        for i, t in enumerate(pts):
            img = np.repeat(ramp[:, :, None], 3, axis=2)
            x = (2 * i) % (w - 6)
            img[:, x:x + 6] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = t, time_base
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def reordered(path: Path) -> bool:
    """Whether packets come out of presentation order (the file really has B-frames)."""
    with av.open(str(path)) as c:
        pts = [p.pts for p in c.demux(c.streams.video[0]) if p.size]
    return any(b < a for a, b in zip(pts, pts[1:]))


@pytest.mark.parametrize("fmt, rate, open_gop", [
    ("mp4", Fraction(30000, 1001), False),
    ("mp4", Fraction(30000, 1001), True),
    ("mkv", Fraction(24000, 1001), True),
    ("mp4", Fraction(25), False),
])
def test_constant_rate_with_b_frames_keeps_the_exact_header_rate(tmp_path, fmt, rate, open_gop):
    tb = Fraction(1, rate.numerator) if rate.denominator > 1 else Fraction(1, 12800)
    step = int(1 / (rate * tb))
    path = encode(tmp_path / f"cfr.{fmt}", [i * step for i in range(N_FRAMES)], tb, declared=rate,
                  open_gop=open_gop)
    assert reordered(path), "the encode must have B-frames for this test to mean anything"
    meta = probe(path)
    assert not meta.variable_frame_rate
    assert meta.fps_rational == f"{rate.numerator}/{rate.denominator}"
    assert meta.fps == float(rate)  # exactly: cut lists and EDLs turn times into frame numbers with it


def test_timestamps_that_disagree_with_the_header_win(tmp_path):
    """A Matroska header saying 30 fps over frames timed 40 ms apart (25 fps): the timestamps are the truth."""
    path = encode(tmp_path / "liar.mkv", [i * 40 for i in range(200)], Fraction(1, 1000), declared=Fraction(30))
    with av.open(str(path)) as c:
        assert c.streams.video[0].average_rate == 30  # what the header claims
    meta = probe(path)
    assert meta.fps_rational == "25/1" and meta.fps == 25.0
    assert not meta.variable_frame_rate


def test_one_dropped_frame_keeps_the_header_rate(tmp_path):
    pts = [i * 1001 for i in range(N_FRAMES) if i != 100]
    meta = probe(encode(tmp_path / "drop.mp4", pts, Fraction(1, 30000), declared=Fraction(30000, 1001)))
    assert not meta.variable_frame_rate and meta.fps_rational == "30000/1001"


@pytest.mark.parametrize("fmt", ["mp4", "mkv"])
def test_variable_frame_rate_keeps_its_measured_average(tmp_path, fmt):
    """Stretches at 30, 15 and 60 fps (a screen recording, a phone's low-light slow-down): the
    file is flagged variable and its rate is the average over the file, not any header rate."""
    tb = Fraction(1, 600)
    pts, t = [], 0
    for step, count in [(20, 90), (40, 60), (10, 120), (20, 90), (40, 60), (10, 120), (20, 90)]:
        for _ in range(count):
            pts.append(t)
            t += step
    path = encode(tmp_path / f"vfr.{fmt}", pts, tb, declared=Fraction(30))
    assert reordered(path)
    meta = probe(path)
    assert meta.variable_frame_rate
    average = len(pts) / (t * tb)  # frames over the presented duration (the last frame included)
    assert meta.fps == pytest.approx(float(average), rel=0.02)
    assert meta.frame_count in (None, len(pts))
