"""What the outputs print about the input: frame numbers from the decoded frames (also on
variable-frame-rate video), timecode at the declared rate, run warnings (a truncated file),
which streams were analyzed, and audio-only input described as audio.

Media is generated here: a VFR H.264 file, a faststart file cut short, an audio-only m4a.
"""
from __future__ import annotations

import csv
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from framework.outputs import write_outputs
from framework.outputs.cuts import frames_to_timecode, timecode_base
from framework.outputs.editorial import timecode_rate
from framework.runner import analyze
from framework.testing.synth import _look_image, default_shots, make_audio_only, make_video
from framework.timeline import Event, Timeline, Track, VideoMeta

VFR_CUT = 140  # first frame of the second shot


def make_vfr(path: Path, n: int = 200) -> list[float]:
    """Frames 0-99 every 1/30 s, then every 1/15 s, with a hard cut at frame ``VFR_CUT`` (6.0 s);
    the average rate is about 20 fps, so time x average rate puts the cut at frame 120.
    Returns each frame's presentation time."""
    import av

    tb = Fraction(1, 90000)
    pts = np.cumsum([0] + [3000 if i < 100 else 6000 for i in range(n - 1)])
    a, b = _look_image(1, 160, 96).astype(np.int16), _look_image(4, 160, 96).astype(np.int16)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.codec_context.time_base = stream.time_base = tb
        stream.options = {"crf": "20", "preset": "ultrafast", "g": "60"}
        for i in range(n):
            img = np.clip((a if i < VFR_CUT else b) + rng.integers(-3, 4, a.shape), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = int(pts[i]), tb
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return [float(p * tb) for p in pts]


def _run(path: Path, tmp_path: Path, names: list[str]):
    reg = tmp_path / "registry.yaml"
    reg.write_text("analyzers:\n" + "".join(f"  {n}: {{enabled: true}}\n" for n in names))
    return analyze(path, registry_path=reg, out_dir=tmp_path / "run", only=names, progress=False,
                   load_entrypoints=False)


def _tc_frames(tc: str, base: int) -> int:
    h, m, s, f = (int(x) for x in tc.split(":"))
    return ((h * 60 + m) * 60 + s) * base + f


# --- frame numbers -------------------------------------------------------------------------------


def test_vfr_frame_numbers_come_from_the_decoded_frames(tmp_path):
    times = make_vfr(tmp_path / "vfr.mp4")
    res = _run(tmp_path / "vfr.mp4", tmp_path, ["cut_analysis"])
    video, track = res.timeline.video, res.timeline.tracks["cut_analysis"]
    assert track.status == "ok", track.reason
    shots = [e for e in track.events if e.label == "shot"]
    # cut_analysis' indices are decoded frames at the native rate
    assert [e.data["first_frame"] for e in shots] == [0, VFR_CUT]
    assert [e.data["last_frame"] for e in shots] == [VFR_CUT - 1, len(times) - 1]
    assert shots[1].start == pytest.approx(times[VFR_CUT], abs=1e-3)
    assert video.variable_frame_rate
    assert round(shots[1].start * video.fps) != VFR_CUT  # what time x average rate would print

    run = tmp_path / "run"
    rows = list(csv.DictReader((run / "cuts.csv").open()))
    assert [int(r["start_frame"]) for r in rows] == [0, VFR_CUT]
    assert [int(r["end_frame"]) for r in rows] == [VFR_CUT, len(times)]
    rate = float(Fraction(video.fps_rational)) if getattr(video, "fps_rational", None) else video.fps
    base = timecode_base(rate)
    assert [r["start_timecode"] for r in rows] == [frames_to_timecode(0, base), frames_to_timecode(VFR_CUT, base)]
    edl = (run / "cuts.edl").read_text()
    events = [line.split() for line in edl.splitlines() if re.match(r"^\d{3}\s", line)]
    # the EDL (OpenTimelineIO's CMX 3600 adapter) needs an SMPTE rate: the average 20.07 fps has
    # none, so the decoded frames are counted at 24 fps there (the smallest SMPTE rate above it)
    edl_base = timecode_base(float(timecode_rate(Fraction(rate).limit_denominator(1001))))
    assert edl_base == (base if base in (24, 25, 30, 48, 50, 60) else 24)
    assert [_tc_frames(ev[4], edl_base) for ev in events] == [0, VFR_CUT]
    assert [_tc_frames(ev[5], edl_base) for ev in events] == [VFR_CUT, len(times)]
    assert "VARIABLE FRAME RATE VIDEO: TIMECODES COUNT DECODED FRAMES" in edl
    page = (run / "report.html").read_text()
    assert re.findall(r'class="frames" data-first="(\d+)" data-last="(\d+)"', page) == [
        ("0", str(VFR_CUT - 1)), (str(VFR_CUT), str(len(times) - 1))]
    assert f"frames {VFR_CUT}–{len(times) - 1}" in (run / "summary.md").read_text()


def _one_shot_timeline(fps: float, fps_rational: str | None, **video) -> Timeline:
    meta = VideoMeta(path="/nowhere/clip.mp4", content_hash="b2:" + "0" * 64, size_bytes=1, duration=20.0,
                     has_video=True, width=64, height=36, fps=fps, fps_rational=fps_rational, **video)
    shots = [Event(start=0.0, end=6.006, label="shot", data={"index": 0, "first_frame": 0, "last_frame": 179}),
             Event(start=6.006, end=20.0, label="shot", data={"index": 1, "first_frame": 180, "last_frame": 599})]
    return Timeline(video=meta, tracks={"cuts": Track(analyzer="cuts", version="1", provides=["shots"],
                                                      events=shots)})


def test_timecode_counts_at_the_declared_rate(tmp_path):
    # the probe's average is off (29.67), the stream declares 30000/1001: frame 180 is 00:00:06;00
    # (drop-frame timecode at 29.97, in cuts.csv as in cuts.edl; frame 600 is 00:00:20;00)
    write_outputs(_one_shot_timeline(29.6728, "30000/1001"), tmp_path)
    rows = list(csv.DictReader((tmp_path / "cuts.csv").open()))
    assert rows[1]["start_frame"] == "180" and rows[1]["start_timecode"] == "00:00:06;00"
    edl = (tmp_path / "cuts.edl").read_text()
    assert "FCM: DROP FRAME" in edl and "29.970 FPS VIDEO: DROP-FRAME TIMECODE" in edl
    assert "00:00:06;00 00:00:20;00 00:00:06;00 00:00:20;00" in edl
    assert "29.97 fps" in (tmp_path / "summary.md").read_text()
    assert "29.97 fps" in (tmp_path / "report.html").read_text()


def test_shots_without_frame_numbers_on_vfr_video_print_none(tmp_path):
    tl = _one_shot_timeline(20.07, None, variable_frame_rate=True)
    track = tl.tracks["cuts"]
    bare = [e.model_copy(update={"data": {"index": e.data["index"]}}) for e in track.events]
    tl.tracks["cuts"] = track.model_copy(update={"events": bare})
    write_outputs(tl, tmp_path)
    rows = list(csv.DictReader((tmp_path / "cuts.csv").open()))
    assert [r["start_frame"] for r in rows] == ["", ""]  # not time x average rate
    assert "THE SHOT TRACK GAVE NO FRAME NUMBERS" in (tmp_path / "cuts.edl").read_text()


# --- warnings and the analyzed duration -----------------------------------------------------------------


def test_a_truncated_files_warnings_reach_the_report_and_summary(tmp_path):
    from framework.testing.synth import make_faststart_copy

    make_video(tmp_path / "moov_last.mp4", default_shots(12.0), audio=False)
    full = make_faststart_copy(tmp_path / "moov_last.mp4", tmp_path / "full.mp4")  # cut-off file still opens
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 11 // 20])
    res = _run(cut, tmp_path, ["cut_analysis"])
    warnings = res.timeline.run["warnings"]
    assert any("decoding stopped at" in w for w in warnings), warnings
    assert res.timeline.video.duration < 10
    page = (tmp_path / "run" / "report.html").read_text()
    md = (tmp_path / "run" / "summary.md").read_text()
    for w in warnings:
        assert w.replace("&", "&amp;") in page
        assert " ".join(w.split()) in md.replace("\\", "")
    header = md.split("\n\n")[1]
    assert "analyzed of 0:12 (12.0 s)" in header and "decoding stopped" in header  # the file's own length too
    top = page.split('id="streams"')[0].split('<div class="meta">')[1]
    assert "analyzed of 0:12 (12.0 s)" in top and "decoding stopped" in top
    assert res.timeline.run["stated_duration"] == pytest.approx(12.0, abs=0.05)


def test_the_header_gives_the_files_length_beside_the_analyzed_one(tmp_path):
    tl = _one_shot_timeline(30.0, "30/1")
    tl = tl.model_copy(update={"video": tl.video.model_copy(update={"duration": 13.38}), "run": {
        "decode": {"truncated_at": 13.38}, "stated_duration": 24.02,
        "warnings": ["clip.mp4: decoding stopped at 13.38 s (the file should last 24.02 s)"]}})
    write_outputs(tl, tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "0:13 (13.4 s) analyzed of 0:24 (24.0 s)" in md
    assert "> **Warning:** clip.mp4: decoding stopped at 13.38 s (the file should last 24.02 s)" in md
    page = (tmp_path / "report.html").read_text()
    assert "0:13 (13.4 s) analyzed of 0:24 (24.0 s)" in page and 'id="warnings"' in page


def test_no_warnings_no_warning_section(tmp_path):
    write_outputs(_one_shot_timeline(30.0, "30/1"), tmp_path)
    assert 'id="warnings"' not in (tmp_path / "report.html").read_text()
    md = (tmp_path / "summary.md").read_text()
    assert "Warning" not in md and "analyzed" not in md.split("\n\n")[1]


# --- streams --------------------------------------------------------------------------------------------


def test_streams_analyzed_and_the_others_are_listed(tmp_path):
    streams = [
        {"index": 0, "kind": "video", "codec": "h264", "width": 320, "height": 180, "fps": 25.0, "analyzed": False},
        {"index": 1, "kind": "video", "codec": "h264", "width": 480, "height": 270, "fps": 29.97, "default": True,
         "analyzed": True},
        {"index": 2, "kind": "audio", "codec": "aac", "sample_rate": 48000, "channels": 2, "language": "eng",
         "analyzed": True},
        {"index": 3, "kind": "audio", "codec": "aac", "sample_rate": 44100, "channels": 1, "language": "fra",
         "analyzed": False},
    ]
    tl = _one_shot_timeline(29.97, "30000/1001")
    video = VideoMeta.model_validate({**tl.video.model_dump(), "streams": streams, "video_stream": 1,
                                      "audio_stream": 2})
    write_outputs(tl.model_copy(update={"video": video}), tmp_path)
    md = (tmp_path / "summary.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("Streams:"))
    assert "video \\#1 (h264, 480×270, 29.97 fps, default) **analyzed**" in line
    assert "video \\#0 (h264, 320×180, 25 fps) not analyzed" in line
    assert "audio \\#2 (aac, 48 kHz, 2 ch, eng) **analyzed**" in line
    assert "audio \\#3 (aac, 44.1 kHz, 1 ch, fra) not analyzed" in line
    page = (tmp_path / "report.html").read_text()
    assert page.count('class="stream analyzed"') == 2 and page.count('class="stream"') == 2
    assert "audio #3 (aac, 44.1 kHz, 1 ch, fra) not analyzed" in page


def test_without_stream_facts_nothing_is_rendered(tmp_path):
    write_outputs(_one_shot_timeline(30.0, None), tmp_path)
    assert "Streams:" not in (tmp_path / "summary.md").read_text()
    assert 'id="streams"' not in (tmp_path / "report.html").read_text()


# --- audio-only input ----------------------------------------------------------------------------------


def test_audio_only_input_is_described_as_audio(tmp_path):
    audio = make_audio_only(tmp_path / "talk.m4a", duration=11.0)
    res = _run(audio, tmp_path, ["cut_analysis", "audio_analysis"])
    assert not res.timeline.video.has_video and res.timeline.tracks["audio_analysis"].status == "ok"
    md = (tmp_path / "run" / "summary.md").read_text()
    header = md.split("\n\n")[1]
    assert "0:11 (11.0 s) of audio" in header and "video" not in header and "fps" not in header
    assert "## Shots" not in md and "cuts.csv" not in md
    page = (tmp_path / "run" / "report.html").read_text()
    assert "0:11 (11.0 s) of audio" in page
    assert '<audio id="player"' in page and "<video" not in page
    assert 'id="shots"' not in page and 'class="thumb"' not in page
    assert not (tmp_path / "run" / "cuts.csv").exists()
