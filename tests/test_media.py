"""framework.media: probe fields, the single decode pass, timestamps, rotation, audio, bad input,
what is demuxed, the package's import order."""
from __future__ import annotations

import hashlib
import logging
import signal
import types
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from framework import media
from framework.errors import EXIT_INPUT, InputError
from framework.media import MediaError, decode, file_hash, probe
from framework.streams import FrameSpec
from framework.testing.synth import AudioSegment, ShotSpec, make_audio_only


# --- helpers: small files with exactly the timing / metadata a test needs ------------------------

def write_clip(path: Path, times: list[float], *, size: tuple[int, int] = (64, 48),
               rgb: tuple[int, int, int] | None = None, audio: list[tuple[float, float]] | None = None,
               ccw_rotation: float | None = None, fmt: str | None = None, pix_fmt: str = "yuv420p",
               gop: int | None = None) -> Path:
    """Encode H.264 frames presented at ``times`` (seconds); optional AAC tone over each ``(start, end)``.

    Frame ``i`` is a flat grey of level ``10 * i`` with a white stripe in its left 8 columns
    (or a flat ``rgb`` colour), so orientation and order are visible in the pixels. ``gop``: a
    keyframe every that many frames.
    """
    w, h = size
    tb = Fraction(1, 1000)
    with av.open(str(path), mode="w", format=fmt) as c:
        vs = c.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.codec_context.time_base = tb
        if gop:
            vs.options = {"g": str(gop)}
        if ccw_rotation is not None:
            vs.set_display_rotation(ccw_rotation)
        aus = None
        if audio is not None:
            aus = c.add_stream("aac", rate=16000)
            aus.layout = "mono"
        for i, t in enumerate(times):
            if rgb is not None:
                img = np.empty((h, w, 3), np.uint8)
                img[:] = rgb
            else:
                img = np.full((h, w, 3), (10 * i) % 200, np.uint8)
                img[:, :8] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pix_fmt == "yuvj420p":  # full-range YUV
                frame = frame.reformat(format="yuvj420p")
            frame.pts, frame.time_base = round(t * 1000), tb
            for packet in vs.encode(frame):
                c.mux(packet)
        for packet in vs.encode():
            c.mux(packet)
        for start, end in audio or []:
            n0, n1 = round(start * 16000), round(end * 16000)
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n1 - n0) / 16000)).astype(np.float32)
            for k in range(0, wave.size, 1024):
                chunk = np.pad(wave[k:k + 1024], (0, max(0, 1024 - wave[k:k + 1024].size)))
                af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
                af.sample_rate, af.pts, af.time_base = 16000, n0 + k, Fraction(1, 16000)
                for packet in aus.encode(af):
                    c.mux(packet)
        if aus is not None:
            for packet in aus.encode():
                c.mux(packet)
    return path


def cfr(n: int, fps: float = 30.0, start: float = 0.0) -> list[float]:
    return [start + i / fps for i in range(n)]


def count_packets(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux() if p.size)


def packets_per_stream(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(packets, bytes) of each stream (keyed by the index as text, as in ``DecodeStats``),
    counted by reading the whole file independently."""
    packets: dict[str, int] = {}
    sizes: dict[str, int] = {}
    with av.open(str(path)) as c:
        for p in c.demux():
            if p.size:
                key = str(p.stream.index)
                packets[key] = packets.get(key, 0) + 1
                sizes[key] = sizes.get(key, 0) + p.size
    return packets, sizes


SPECS = [FrameSpec(None, 64), FrameSpec(2, 96), FrameSpec(8, 160, pix_fmt="gray")]


# --- probe -----------------------------------------------------------------------------------

def test_probe_fields(sample_video):
    meta = probe(sample_video.path)
    assert meta.has_video and meta.has_audio
    assert (meta.width, meta.height) == (320, 180)
    assert meta.fps == pytest.approx(30.0)
    assert not meta.variable_frame_rate
    assert meta.duration == pytest.approx(12.0, abs=0.1)
    assert meta.start_time == pytest.approx(0.0, abs=1e-3)
    assert meta.rotation == 0
    assert meta.video_codec == "h264"
    assert meta.frame_count == 360
    assert "mp4" in (meta.container or "")
    assert meta.size_bytes == sample_video.path.stat().st_size
    assert meta.content_hash == file_hash(sample_video.path) and meta.content_hash.startswith("b2:")
    assert meta.audio_streams == [{"index": 1, "codec": "aac", "sample_rate": 44100, "channels": 1}]
    assert Path(meta.path).is_absolute()


def test_file_hash_streams_in_chunks(tmp_path, monkeypatch):
    data = np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    monkeypatch.setattr(media.probing, "HASH_CHUNK", 777)  # many chunks, the last one partial
    assert file_hash(f) == "b2:" + hashlib.blake2b(data, digest_size=32).hexdigest()
    f.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert file_hash(f) != "b2:" + hashlib.blake2b(data, digest_size=32).hexdigest()


def test_probe_audio_only(tmp_path):
    path = make_audio_only(tmp_path / "voice.m4a", duration=3.0)
    meta = probe(path)
    assert not meta.has_video and meta.has_audio
    assert meta.width is None and meta.fps is None
    assert meta.duration == pytest.approx(3.0, abs=0.1)
    assert meta.audio_streams[0]["sample_rate"] == 44100


def test_probe_detects_variable_frame_rate(tmp_path):
    times = [0, .033, .067, .1, .3, .333, .367, .6, .633, .667, 1.0, 1.033, 1.067, 1.1, 1.4]
    vfr = probe(write_clip(tmp_path / "vfr.mp4", times))
    assert vfr.variable_frame_rate
    assert vfr.fps == pytest.approx(len(times) / vfr.duration, rel=0.05)  # the mean rate
    steady = probe(write_clip(tmp_path / "cfr.mkv", cfr(40)))
    assert not steady.variable_frame_rate
    assert steady.fps == pytest.approx(30.0)


def test_one_dropped_frame_is_not_variable_frame_rate(tmp_path):
    times = cfr(60)
    del times[30]
    assert not probe(write_clip(tmp_path / "drop.mp4", times)).variable_frame_rate


def test_raw_stream_without_timestamps(tmp_path):
    """A raw H.264 stream has no pts: probe counts it, decode spaces frames at 1/fps."""
    path = write_clip(tmp_path / "raw.h264", cfr(20, 25.0), fmt="h264")
    meta = probe(path)
    assert meta.fps == pytest.approx(25.0)
    assert meta.duration == pytest.approx(0.8, abs=0.05)
    out = decode(path, meta, [FrameSpec(None, 32)], False, tmp_path / "cache")
    stream = out.streams[FrameSpec(None, 32)]
    assert len(stream) == 20
    np.testing.assert_allclose(stream.times, np.arange(20) / 25.0, atol=1e-6)


# --- timestamps --------------------------------------------------------------------------------

def test_vfr_frames_keep_their_presentation_times(tmp_path):
    times = [0, .033, .067, .1, .3, .333, .367, .6, .633, .667, 1.0, 1.033, 1.067, 1.1, 1.4]
    path = write_clip(tmp_path / "vfr.mp4", times)
    meta = probe(path)
    every, tenth = FrameSpec(None, 32), FrameSpec(10, 32)
    out = decode(path, meta, [every, tenth], False, tmp_path / "cache")
    np.testing.assert_allclose(out.streams[every].times, times, atol=2e-3)
    # sampled by time, not by frame count: a 0.1 s grid picks the first frame at or after each tick
    np.testing.assert_allclose(out.streams[tenth].times, [0, .1, .3, .6, 1.0, 1.1, 1.4], atol=2e-3)
    # the pixels follow the timestamps (frame i is grey level 10*i)
    grey = out.streams[every].frames[:, :, 20:, :].mean(axis=(1, 2, 3))
    np.testing.assert_allclose(grey, 10 * np.arange(len(times)), atol=4)


def test_delayed_video_start(tmp_path):
    """Audio from 0 s, video from 1.0 s: t = 0 is the container start, so the first frame is at 1.0 s."""
    path = write_clip(tmp_path / "late.mp4", cfr(30, start=1.0), audio=[(0.0, 3.0)])
    meta = probe(path)
    assert meta.start_time == pytest.approx(0.0, abs=0.01)
    out = decode(path, meta, [FrameSpec(None, 32), FrameSpec(2, 32)], True, tmp_path / "cache")
    assert out.streams[FrameSpec(None, 32)].times[0] == pytest.approx(1.0, abs=0.01)
    np.testing.assert_allclose(out.streams[FrameSpec(2, 32)].times, [1.0, 1.5], atol=0.01)
    assert out.audio.start_time == pytest.approx(0.0, abs=0.01)
    assert out.audio.duration == pytest.approx(3.0, abs=0.1)
    assert out.stats.truncated_at is None and not out.stats.warnings


def test_container_start_offset_is_time_zero(tmp_path):
    """An MPEG-TS whose clock starts at 10 s: start_time says so and frame times start at 0."""
    path = write_clip(tmp_path / "offset.ts", cfr(30, start=10.0), fmt="mpegts")
    meta = probe(path)
    assert meta.start_time == pytest.approx(10.0, abs=0.1)
    assert meta.duration == pytest.approx(1.0, abs=0.1)
    out = decode(path, meta, [FrameSpec(None, 32)], False, tmp_path / "cache")
    times = out.streams[FrameSpec(None, 32)].times
    assert times[0] == pytest.approx(0.0, abs=0.01)
    np.testing.assert_allclose(np.diff(times), 1 / 30, atol=2e-3)


# --- geometry and pixels ---------------------------------------------------------------------------

@pytest.mark.parametrize("ccw, expected_cw", [(90, 270), (-90, 90), (180, 180)])
def test_rotation_metadata_gives_display_orientation(tmp_path, ccw, expected_cw):
    path = write_clip(tmp_path / f"rot{ccw}.mp4", cfr(5), size=(64, 32), ccw_rotation=ccw)
    meta = probe(path)
    assert meta.rotation == expected_cw
    assert (meta.width, meta.height) == ((32, 64) if expected_cw in (90, 270) else (64, 32))
    spec = FrameSpec(None, None)
    out = decode(path, meta, [spec, FrameSpec(None, 16, pix_fmt="gray")], False, tmp_path / "cache")
    frame = out.streams[spec].frames[0].mean(axis=2)
    assert frame.shape == (meta.height, meta.width)
    assert out.streams[FrameSpec(None, 16, pix_fmt="gray")].frame_shape == \
        ((32, 16) if expected_cw in (90, 270) else (8, 16))
    # the white stripe (left 8 coded columns) ends up where a player shows it
    edges = {"left": frame[:, :4].mean(), "right": frame[:, -4:].mean(),
             "top": frame[:4].mean(), "bottom": frame[-4:].mean()}
    where = {90: "top", 270: "bottom", 180: "right"}[expected_cw]  # clockwise turn of the left edge
    assert max(edges, key=edges.get) == where and edges[where] > 230


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p"])
def test_colours_and_gray_levels(tmp_path, pix_fmt):
    rgb = (200, 60, 30)
    path = write_clip(tmp_path / "flat.mp4", cfr(3), size=(64, 64), rgb=rgb, pix_fmt=pix_fmt)
    meta = probe(path)
    color, gray = FrameSpec(None, 16), FrameSpec(None, 16, pix_fmt="gray")
    out = decode(path, meta, [color, gray], False, tmp_path / "cache")
    np.testing.assert_allclose(out.streams[color].frames[0].reshape(-1, 3).mean(axis=0), rgb, atol=6)
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    assert out.streams[gray].frames[0].mean() == pytest.approx(luma, abs=4)


# --- the single pass ---------------------------------------------------------------------------

def test_many_specs_one_pass(sample_video, tmp_path):
    meta = probe(sample_video.path)
    seen: list[float] = []
    out = decode(sample_video.path, meta, SPECS + [SPECS[0]], True, tmp_path / "cache", progress=seen.append)
    assert set(out.streams) == set(SPECS)
    every, two, eight = (out.streams[s] for s in SPECS)
    assert len(every) == 360
    np.testing.assert_allclose(every.times, np.arange(360) / 30, atol=1e-3)
    assert len(two) == 24
    np.testing.assert_allclose(np.diff(two.times), 0.5, atol=1e-3)
    assert len(eight) == 96  # a 0.125 s grid: each sample is the first frame at or after its tick
    ticks = np.arange(96) * 0.125
    assert np.all((eight.times >= ticks - 1e-3) & (eight.times < ticks + 1 / 30))
    assert every.frames.shape == (360, 36, 64, 3)
    assert two.frames.shape == (24, 54, 96, 3)
    assert eight.frames.shape == (len(eight), 90, 160)
    # the frames hold the picture: a hard cut at frame 60 changes the image, inside a shot it barely moves
    diff = np.abs(np.diff(every.frames[55:65].astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert diff[4] > 5 * np.median(np.delete(diff, 4))
    # one demux, each packet read once and each frame decoded once however many streams
    stats = out.stats
    packets, sizes = packets_per_stream(sample_video.path)
    assert stats.packets_by_stream == packets and stats.bytes_by_stream == sizes
    assert stats.demux_passes == 1 and stats.packets_peeked == 0
    assert stats.video_frames_decoded == 360
    assert stats.packets == count_packets(sample_video.path) == sum(packets.values())
    assert stats.truncated_at is None and stats.warnings == []
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_streams_of_one_size_share_the_scaling_of_a_frame_they_both_sample(sample_video, tmp_path, monkeypatch):
    """A 1 fps and a 2 fps stream of one size: every 1 fps frame is a 2 fps one, scaled once for both."""
    from av.video.reformatter import VideoReformatter

    calls = []
    real = VideoReformatter.reformat

    def counted(self, frame, width, height, *args, **kwargs):
        calls.append((width, height))
        return real(self, frame, width, height, *args, **kwargs)

    monkeypatch.setattr(VideoReformatter, "reformat", counted)
    meta = probe(sample_video.path)
    one, two, gray = FrameSpec(1, 96), FrameSpec(2, 96), FrameSpec(1, 96, pix_fmt="gray")
    out = decode(sample_video.path, meta, [one, two, gray], False, tmp_path / "cache")
    a, b, g = out.streams[one], out.streams[two], out.streams[gray]
    assert len(a) == 12 and len(b) == 24 and len(g) == 12
    at = {round(t, 3): i for i, t in enumerate(b.times)}
    for i, t in enumerate(a.times):  # the same frames, the same pixels
        assert np.array_equal(a.frames[i], b.frames[at[round(t, 3)]])
    # 24 scalings to 96x54 in colour (not 36), and the gray stream's 12 of its own
    assert len(calls) == 24 + 12


def test_audio_is_16k_mono_and_in_sync(sample_video, tmp_path):
    meta = probe(sample_video.path)
    out = decode(sample_video.path, meta, [], True, tmp_path / "cache")
    audio = out.audio
    assert audio.sample_rate == 16_000
    assert audio.samples.dtype == np.float32
    assert audio.duration == pytest.approx(12.0, abs=0.05)
    assert out.streams == {} and out.stats.video_frames_decoded == 0
    x = np.asarray(audio.samples)

    def rms(a: float, b: float) -> float:
        return float(np.sqrt(np.mean(x[int(a * 16000):int(b * 16000)] ** 2)))

    assert rms(6.0, 7.0) < 0.01 < rms(1.0, 5.0)  # silence between the speech and the tone
    tone = x[8 * 16000:10 * 16000]
    peak = np.argmax(np.abs(np.fft.rfft(tone))) * 16000 / tone.size
    assert peak == pytest.approx(440, abs=2)  # resampled, not sped up


def test_audio_hole_is_filled_with_silence(tmp_path):
    """Audio packets for 0-1 s and 2-3 s: sample i of the track stays at time i / 16000."""
    path = write_clip(tmp_path / "hole.mkv", cfr(90), audio=[(0.0, 1.0), (2.0, 3.0)])
    out = decode(path, probe(path), [], True, tmp_path / "cache")
    x = np.asarray(out.audio.samples)
    assert out.audio.duration == pytest.approx(3.0, abs=0.08)

    def rms(a: float, b: float) -> float:
        return float(np.sqrt(np.mean(x[int(a * 16000):int(b * 16000)] ** 2)))

    assert rms(1.2, 1.8) < 0.01 < 0.1 < rms(0.2, 0.8)
    assert rms(2.2, 2.8) > 0.1


def test_video_only_file_and_audio_not_wanted(tmp_path, video_factory):
    truth = video_factory("silent.mp4", shots=[ShotSpec(2.0)], audio=False)
    meta = probe(truth.path)
    assert not meta.has_audio
    out = decode(truth.path, meta, [FrameSpec(2, 32)], True, tmp_path / "c1")
    assert out.audio is None and len(out.streams[FrameSpec(2, 32)]) == 4
    with_audio = video_factory("loud.mp4", shots=[ShotSpec(2.0)],
                               audio=[AudioSegment(0.1, 1.9, "tone", 440.0, 0.3)])
    out = decode(with_audio.path, probe(with_audio.path), [FrameSpec(2, 32)], False, tmp_path / "c2")
    assert out.audio is None and out.stats.audio_frames_decoded == 0


def test_decode_audio_only_file(tmp_path):
    path = make_audio_only(tmp_path / "voice.m4a", duration=3.0)
    meta = probe(path)
    out = decode(path, meta, [FrameSpec(2, 32)], True, tmp_path / "cache")
    assert out.streams == {}
    assert any("no video stream" in w for w in out.stats.warnings)
    assert out.audio.duration == pytest.approx(3.0, abs=0.05)
    assert out.stats.demux_passes == 1 and out.stats.truncated_at is None


def test_path_with_spaces_and_non_ascii(tmp_path, video_factory):
    truth = video_factory("my clip – été 日本.mp4", shots=[ShotSpec(1.0)])
    meta = probe(truth.path)
    assert meta.path.endswith("my clip – été 日本.mp4")
    out = decode(truth.path, meta, [FrameSpec(None, 32)], True, tmp_path / "cache dir é")
    assert len(out.streams[FrameSpec(None, 32)]) == 30 and out.audio.duration > 0.9


# --- bad and damaged input -----------------------------------------------------------------------

def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
    (tmp_path / "a folder.mp4").mkdir()
    return {"missing": tmp_path / "missing.mp4", "empty": tmp_path / "empty.mp4",
            "text": tmp_path / "notes.mp4", "folder": tmp_path / "a folder.mp4"}


@pytest.mark.parametrize("case, words", [("missing", "not found"), ("empty", "empty (0 bytes)"),
                                         ("text", "not a video or audio file PyAV can read"),
                                         ("folder", "is a folder")])
def test_bad_input_raises_one_line_media_error(tmp_path, case, words, sample_video):
    path = _bad_inputs(tmp_path)[case]
    with pytest.raises(MediaError) as err:
        probe(path)
    msg = str(err.value)
    assert words in msg and str(path) in msg and "\n" not in msg
    assert isinstance(err.value, InputError) and err.value.exit_code == EXIT_INPUT
    with pytest.raises(MediaError, match=words.replace("(", r"\(").replace(")", r"\)")):
        decode(path, probe(sample_video.path), [FrameSpec(2, 32)], True, tmp_path / "cache")


def test_truncated_file_gives_partial_results(tmp_path, video_factory):
    truth = video_factory("whole.mkv", shots=[ShotSpec(4.0)])
    data = truth.path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:len(data) // 2])
    meta = probe(cut)
    assert meta.duration == pytest.approx(4.0, abs=0.1)  # the header still claims the whole length
    out = decode(cut, meta, [FrameSpec(None, 32)], True, tmp_path / "cache")
    n = len(out.streams[FrameSpec(None, 32)])
    assert 10 < n < 110
    assert out.stats.truncated_at is not None
    assert out.stats.truncated_at == pytest.approx(out.streams[FrameSpec(None, 32)].times[-1], abs=0.1)
    assert 0.5 < out.stats.truncated_at < 3.5
    assert any("truncated" in w and "cut.mkv" in w for w in out.stats.warnings)


def test_truncated_mp4_without_its_index_is_a_media_error(tmp_path, video_factory):
    truth = video_factory("whole.mp4", shots=[ShotSpec(2.0)])  # moov atom written at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(truth.path.read_bytes()[: truth.path.stat().st_size // 2])
    with pytest.raises(MediaError, match="damaged or truncated"):
        probe(cut)


# --- decoding in parallel keyframe-aligned segments ----------------------------------------------

def _decode_both(path: Path, specs: list[FrameSpec], want_audio: bool, tmp_path: Path, monkeypatch) -> tuple:
    """(one pass, segmented) decodes of ``path``; segments as on a 4-CPU machine, whatever this one has."""
    meta = probe(path)
    monkeypatch.setattr(media.segments, "cpus_available", lambda: 4)
    monkeypatch.setattr(media.segments, "MIN_SEGMENT_PIXELS", 0)  # small test pictures
    segmented = decode(path, meta, specs, want_audio, tmp_path / "segmented")
    monkeypatch.setattr(media.segments, "MAX_WORKERS", 1)
    one = decode(path, meta, specs, want_audio, tmp_path / "one")
    return one, segmented


SEGMENT_SPECS = SPECS + [FrameSpec(0.7, 48, pix_fmt="gray")]  # a 1.43 s grid: boundaries fall inside it


@pytest.mark.parametrize("case", ["sample", "vfr", "late start", "matroska"])
def test_segments_give_the_same_streams_as_one_pass(case, sample_video, tmp_path, video_factory, monkeypatch):
    if case == "sample":  # 12 s, keyframes every 2 s, AAC audio
        path = sample_video.path
    elif case == "vfr":
        times = [t for t in cfr(240) if not (1.0 < t < 1.4 or 4.2 < t < 4.9)] + [8.2, 8.9]
        path = write_clip(tmp_path / "vfr.mp4", times, gop=25)
    elif case == "late start":
        path = write_clip(tmp_path / "late.mp4", cfr(180, start=1.0), audio=[(0.0, 7.0)], gop=20)
    else:
        path = video_factory("clip.mkv", shots=[ShotSpec(3.0), ShotSpec(3.0, look=5)]).path
    one, seg = _decode_both(path, SEGMENT_SPECS, True, tmp_path, monkeypatch)
    assert one.stats.segments == 0 and seg.stats.segments >= 2, seg.stats
    for spec in SEGMENT_SPECS:
        a, b = one.streams[spec], seg.streams[spec]
        assert len(a) > 0
        np.testing.assert_array_equal(a.times, b.times, err_msg=spec.key)
        np.testing.assert_array_equal(a.frames[:], b.frames[:], err_msg=spec.key)
    if one.audio is not None:
        np.testing.assert_array_equal(one.audio.samples[:], seg.audio.samples[:])
        assert one.audio.start_time == seg.audio.start_time
    # every packet read once, every frame decoded once, in one (split) pass
    for field in ("demux_passes", "packets", "video_frames_decoded", "audio_frames_decoded", "truncated_at"):
        assert getattr(one.stats, field) == getattr(seg.stats, field), field
    assert seg.stats.packets == count_packets(path) and seg.stats.demux_passes == 1
    # counted, not assumed: every packet of each stream read exactly once across the segments
    # and the audio's pass; each segment but the last also read the next one's first packet
    packets, sizes = packets_per_stream(path)
    video_index = probe(path).video_stream
    wanted = {i: n for i, n in packets.items() if i == str(video_index) or one.audio is not None}
    assert seg.stats.packets_by_stream == wanted
    assert seg.stats.bytes_by_stream == {i: sizes[i] for i in wanted}
    assert seg.stats.packets_peeked == seg.stats.segments - 1
    assert seg.stats.warnings == [] and not (tmp_path / "segmented" / "segments").exists()
    # when each segment was joined, and how far into the video the streams then reached: in order, to the end
    joined = seg.stats.segments_joined
    assert one.stats.segments_joined == [] and len(joined) == seg.stats.segments
    assert [at for at, _ in joined] == sorted(at for at, _ in joined) and joined[0][0] >= 0
    reached = [v for _, v in joined]
    last = max(float(st.times[-1]) for st in one.streams.values() if len(st))  # (the last frame any stream kept)
    assert reached == sorted(reached) and last < reached[-1] <= last + 0.1  # (its frame's end)


def _segments_as_on_4_cpus(monkeypatch, processes: str | None = None) -> None:
    """Segments as on a 4-CPU machine for the small test pictures; ``processes``: FRAMEWORK_SEGMENT_PROCESSES."""
    monkeypatch.setattr(media.segments, "cpus_available", lambda: 4)
    monkeypatch.setattr(media.segments, "MIN_SEGMENT_PIXELS", 0)
    if processes is not None:
        monkeypatch.setenv("FRAMEWORK_SEGMENT_PROCESSES", processes)


@pytest.mark.parametrize("setting, duration, expected", [
    ("", 59.9, False), ("", 60.0, True), ("0", 3600.0, False), ("off", 3600.0, False), ("1", 5.0, True),
    ("yes", 5.0, True)])
def test_segments_decode_in_processes_for_videos_of_a_minute_or_as_asked(setting, duration, expected):
    env = {"FRAMEWORK_SEGMENT_PROCESSES": setting} if setting else {}
    assert media.segments.in_processes(duration, env) is expected


@pytest.mark.parametrize("setting, expected", [("", 4), ("2", 2), ("1", 1), ("8", 8), ("9", 4), ("0", 4), ("x", 4)])
def test_the_segment_decoders_can_be_set_for_a_benchmark(setting, expected, caplog):
    """``FRAMEWORK_SEGMENT_DECODERS``: on 8 CPUs 4 decoders by default; a number from 1 to MAX_WORKERS (8) is taken
    as it is, anything else is logged and the default used."""
    env = {"FRAMEWORK_SEGMENT_DECODERS": setting} if setting else {}
    with caplog.at_level(logging.WARNING, logger="framework.media.segments"):
        assert media.segments.decoders_asked(8, env) == expected
    assert ("give a whole number from 1 to 8" in caplog.text) == (setting in ("9", "0", "x"))


def test_fewer_segment_decoders_decode_the_same_streams(sample_video, tmp_path, monkeypatch):
    """Two decoders asked on a 4-CPU machine: two worker processes, the same frames as four; one decodes in one pass."""
    meta = probe(sample_video.path)
    _segments_as_on_4_cpus(monkeypatch, processes="1")
    out = {}
    for setting in ("", "2", "1"):
        monkeypatch.setenv("FRAMEWORK_SEGMENT_DECODERS", setting)
        out[setting] = decode(sample_video.path, meta, SEGMENT_SPECS, False, tmp_path / (setting or "default"))
    assert out[""].stats.segment_processes == 4 and out["2"].stats.segment_processes == 2
    assert out["1"].stats.segments == 0 and out["1"].stats.segment_processes == 0
    for spec in SEGMENT_SPECS:
        for setting in ("2", "1"):
            np.testing.assert_array_equal(out[""].streams[spec].frames[:], out[setting].streams[spec].frames[:],
                                          err_msg=f"{spec.key} with {setting}")


def test_segments_in_worker_processes_give_the_same_streams_and_counts_as_on_threads(sample_video, tmp_path,
                                                                                     monkeypatch):
    meta = probe(sample_video.path)
    _segments_as_on_4_cpus(monkeypatch)
    out = {}
    for setting in ("0", "1"):
        monkeypatch.setenv("FRAMEWORK_SEGMENT_PROCESSES", setting)
        out[setting] = decode(sample_video.path, meta, SEGMENT_SPECS, True, tmp_path / setting)
    threads, procs = out["0"], out["1"]
    assert threads.stats.segment_processes == 0 and procs.stats.segment_processes == 4, procs.stats
    assert procs.stats.segments == threads.stats.segments >= 2
    for spec in SEGMENT_SPECS:
        np.testing.assert_array_equal(threads.streams[spec].times, procs.streams[spec].times, err_msg=spec.key)
        np.testing.assert_array_equal(threads.streams[spec].frames[:], procs.streams[spec].frames[:], err_msg=spec.key)
    # the worker processes' packets are counted as the threads' are: every one read once, the peeks too
    for field in ("packets_by_stream", "bytes_by_stream", "packets_peeked", "video_frames_decoded", "demux_passes"):
        assert getattr(threads.stats, field) == getattr(procs.stats, field), field
    assert procs.stats.packets == count_packets(sample_video.path)


def test_segments_in_processes_that_do_not_fit_give_way_to_one_pass(sample_video, tmp_path, monkeypatch):
    """A segment refused in a worker process (its start is no keyframe) comes back as the refusal: one pass."""
    meta = probe(sample_video.path)
    _segments_as_on_4_cpus(monkeypatch, processes="1")
    real_plan = media.segments.plan

    def off_by_some(path, video, origin):
        planned = real_plan(path, video, origin)
        moved = [media.segments.Segment(s.index, s.start and s.start + 7 * 512, s.stop and s.stop + 7 * 512)
                 for s in planned.segments]
        return media.segments.Plan(moved, planned.anchor, planned.workers)

    monkeypatch.setattr(media.segments, "plan", off_by_some)
    out = decode(sample_video.path, meta, SPECS, False, tmp_path / "cache")
    assert out.stats.segments == 0 and "not at its keyframe" in out.stats.segments_abandoned
    assert len(out.streams[SPECS[0]]) == sample_video.frame_count
    assert not list((tmp_path / "cache" / "frames").glob("*/part*"))


def test_a_stop_kills_the_segments_worker_processes_and_removes_their_parts(sample_video, tmp_path, monkeypatch):
    """Ctrl-C while worker processes hold segments: they are killed, not waited for (each holds its segment
    for minutes here), the parts are removed and the interrupt propagates."""
    meta = probe(sample_video.path)
    _segments_as_on_4_cpus(monkeypatch, processes="1")
    started, children, killed = [], [], []
    real_workers = media.segments.ProcessWorkers

    def slow_workers(factory, settings, count):
        workers = real_workers("slow_segment_worker:SlowSegmentWorker", settings, count)
        children.extend(workers.children)
        real_kill = workers.kill
        workers.kill = lambda: (killed.append(len(workers.children)), real_kill())
        started.append(workers)
        return workers

    monkeypatch.setattr(media.segments, "ProcessWorkers", slow_workers)
    planned = media.segments.plan(sample_video.path, meta, 0.0)

    def progress(fraction):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        media.segments.decode_segments(sample_video.path, meta, SPECS, planned, tmp_path, 0.0, False,
                                       media.tally.DemuxTally(), progress=progress)
    assert killed and killed[0] == 4 == len(children)  # killed while they held their segments, then closed
    assert started[0].children == [] and all(c.proc.returncode == -signal.SIGKILL for c in children)
    assert not list((tmp_path / "frames").glob("*/part*"))


def test_segment_workers_that_cannot_start_leave_the_segments_to_threads(sample_video, tmp_path, monkeypatch,
                                                                        caplog):
    meta = probe(sample_video.path)
    _segments_as_on_4_cpus(monkeypatch, processes="1")

    def refused(factory, settings, count):
        raise media.segments.WorkerError("worker process 0 died (exit code 1): no memory")

    monkeypatch.setattr(media.segments, "ProcessWorkers", refused)
    with caplog.at_level("WARNING"):
        out = decode(sample_video.path, meta, SPECS, False, tmp_path / "cache")
    assert out.stats.segments >= 2 and out.stats.segment_processes == 0
    assert "decode on threads" in caplog.text and "no memory" in caplog.text


def test_segments_that_do_not_fit_give_way_to_one_pass(sample_video, tmp_path, monkeypatch):
    """Segments whose starts are not keyframes (seeking lands elsewhere) are refused: the decoder
    says why, decodes the video in one ordinary pass instead, and counts the second pass."""
    real_plan = media.segments.plan

    def off_by_some(*args, **kwargs):
        planned = real_plan(*args, **kwargs)
        if planned is None:  # the one-pass decode of the comparison
            return None
        moved = [media.segments.Segment(s.index, s.start and s.start + 7 * 512,
                                              s.stop and s.stop + 7 * 512) for s in planned.segments]
        return media.segments.Plan(moved, planned.anchor, planned.workers)

    monkeypatch.setattr(media.segments, "plan", off_by_some)
    one, seg = _decode_both(sample_video.path, SEGMENT_SPECS, True, tmp_path, monkeypatch)
    assert seg.stats.segments == 0 and "not at its keyframe" in seg.stats.segments_abandoned
    # counted: the video packets the given-up segments read are read again by the one pass;
    # the audio was read once, beside them
    packets, _ = packets_per_stream(sample_video.path)
    assert seg.stats.demux_passes >= 2
    assert seg.stats.packets_by_stream["0"] > packets["0"]
    assert seg.stats.packets_by_stream["1"] == packets["1"]
    assert one.stats.demux_passes == 1 and one.stats.packets_by_stream == packets
    for spec in SEGMENT_SPECS:
        np.testing.assert_array_equal(one.streams[spec].frames[:], seg.streams[spec].frames[:])
        np.testing.assert_array_equal(one.streams[spec].times, seg.streams[spec].times)
    np.testing.assert_array_equal(one.audio.samples[:], seg.audio.samples[:])


def test_short_small_or_unindexed_files_are_decoded_in_one_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(media.segments, "cpus_available", lambda: 4)
    monkeypatch.setattr(media.segments, "MIN_SEGMENT_PIXELS", 64 * 48)
    short = write_clip(tmp_path / "short.mp4", cfr(90), gop=10)  # 3 s: under two 2 s segments
    ts = write_clip(tmp_path / "long.ts", cfr(240), fmt="mpegts", gop=30)  # no index to seek in
    small = write_clip(tmp_path / "small.mp4", cfr(240), size=(32, 24), gop=30)  # under the size
    fits = write_clip(tmp_path / "fits.mp4", cfr(240), gop=30)
    for path in (short, ts, small, fits):
        out = decode(path, probe(path), [FrameSpec(None, 32)], False, tmp_path / path.stem)
        assert out.stats.segments_abandoned is None
        assert (out.stats.segments > 0) == (path is fits), path.name
        assert len(out.streams[FrameSpec(None, 32)]) == (90 if path is short else 240)


# --- what the input is: audio, still images --------------------------------------------------------

def test_audio_only_file_is_probed_as_audio(tmp_path):
    path = make_audio_only(tmp_path / "voice.m4a", duration=3.0)
    meta = probe(path)
    assert not meta.has_video and meta.has_audio
    assert meta.video_stream is None and meta.audio_stream == 0
    assert [(s.kind, s.codec, s.analyzed) for s in meta.streams] == [("audio", "aac", True)]
    assert meta.fps is None and meta.fps_rational is None and meta.frame_count is None


def _still(path: Path) -> Path:
    import cv2

    img = np.zeros((48, 64, 3), np.uint8)
    img[10:30, 20:40] = (40, 200, 90)
    assert cv2.imwrite(str(path), img)
    return path


@pytest.mark.parametrize("name", ["poster.png", "photo.jpg", "really-a-png.mp4"])
def test_still_image_is_refused_with_a_clear_message(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".mp4"):
        _still(tmp_path / "x.png").rename(path)
    else:
        _still(path)
    with pytest.raises(MediaError) as err:
        probe(path)
    msg = str(err.value)
    assert str(path) in msg and "still image" in msg and "64x48" in msg
    assert "video files" in msg and "audio files" in msg  # what the framework accepts
    assert err.value.exit_code == EXIT_INPUT


def test_one_frame_image_sequence_is_a_still_but_a_motion_jpeg_video_is_not(tmp_path):
    """PyAV's image2 muxer writes a one-picture "video"; a Motion-JPEG AVI of 10 frames is video."""
    frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 90, np.uint8), format="rgb24")
    with av.open(str(tmp_path / "one.jpg"), "w", format="image2") as c:
        s = c.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        for packet in [*s.encode(frame.reformat(format="yuvj420p")), *s.encode()]:
            c.mux(packet)
    with pytest.raises(MediaError, match="still image"):
        probe(tmp_path / "one.jpg")
    with av.open(str(tmp_path / "mjpeg.avi"), "w") as c:
        s = c.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        for i in range(10):
            f = frame.reformat(format="yuvj420p")
            f.pts = i
            for packet in s.encode(f):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    meta = probe(tmp_path / "mjpeg.avi")
    assert meta.has_video and meta.fps == 25.0


def test_still_image_exits_3_from_the_command_line(tmp_path):
    from test_cli_run import run_cli

    code, out, err = run_cli(["run", _still(tmp_path / "poster.png"), "--no-progress"])
    assert code == EXIT_INPUT, (code, out, err)
    assert "still image" in " ".join(err.split()) and "Traceback" not in err


# --- a truncated file whose index is at the front still gives partial results ---------------------

def test_truncated_faststart_video_gives_partial_results(tmp_path, sample_video):
    """Replaces test_cli_run's test_truncated_video_gives_partial_results, whose file kept its
    index at the end, so cutting it made it unreadable and the partial-result checks never ran."""
    import json

    from test_cli_run import _registry, run_cli

    from framework.testing.synth import make_faststart_copy

    fast = make_faststart_copy(sample_video.path, tmp_path / "fast.mp4")
    with open(fast, "rb") as fh:  # the index (moov) is before the media data (mdat)
        head = fh.read(64 * 1024)
    assert 0 <= head.find(b"moov") < head.find(b"mdat")
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    code, out, err = run_cli(["run", cut, "--registry", _registry(tmp_path), "--out", tmp_path / "run",
                              "--no-progress", "--json"])
    assert code == 0, err
    assert "Traceback" not in err
    assert json.loads(out)["tracks"]["cut_analysis"]["status"] == "ok"
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    warnings = results["run"]["warnings"]
    assert any("truncated.mp4" in w and "truncated" in w for w in warnings), warnings
    truncated_at = results["run"]["decode"]["truncated_at"]
    assert 2.0 < truncated_at < sample_video.duration - 2.0
    assert results["video"]["duration"] == pytest.approx(truncated_at, abs=0.01)
    shots = [e for e in results["tracks"]["cut_analysis"]["events"] if e["label"] == "shot"]
    # the cuts before the break are found (frames 60 and 120 of the sample), the shots end there
    assert [round(e["start"] * 30) for e in shots][:3] == [0, 60, 120]
    assert shots[-1]["end"] <= truncated_at + 0.05


# --- the package's import order ---------------------------------------------------------------

def test_media_modules_import_without_a_cycle():
    """Each module of framework.media imports (at any depth of its code) only modules of the
    package listed before it; the old media.py <-> media_segments.py cycle cannot come back."""
    import ast

    order = ["_container", "selection", "probing", "tally", "sinks", "demux", "audio_child", "segments", "decoding",
             "__init__"]
    folder = Path(media.__file__).parent
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted(order)
    for position, name in enumerate(order):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported |= {node.module} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("framework.media."):
                imported.add(node.module.split(".")[2])
        later = imported - set(order[:position])
        assert not later, f"framework/media/{name}.py imports {sorted(later)}, which come after it"
    assert not (folder.parent / "media.py").exists() and not (folder.parent / "media_segments.py").exists()


# --- open-GOP HEVC, interruption, failures mid-decode, impaired audio tracks ---------------------

def _hevc_open_gop(path: Path, frames: int = 250, size: tuple[int, int] = (160, 96)) -> Path:
    """x265's default GOP structure: open GOPs, so each CRA keyframe is followed (in decoding
    order) by RASL pictures that reference the GOP before it."""
    w, h = size
    with av.open(str(path), mode="w") as c:
        vs = c.add_stream("libx265", rate=25)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": "ultrafast",
                      "x265-params": "keyint=50:min-keyint=50:open-gop=1:bframes=3:scenecut=0:log-level=0"}
        for i in range(frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, :, 0] = (np.arange(w)[None, :] + 5 * i) % 256
            img[(3 * i) % (h - 20):(3 * i) % (h - 20) + 20, 20:60] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in vs.encode(frame):
                c.mux(packet)
        for packet in vs.encode():
            c.mux(packet)
    return path


def test_open_gop_hevc_gives_way_to_one_pass_without_losing_frames(tmp_path, monkeypatch):
    """A segment starting at a CRA keyframe gets a fresh decoder, which drops the RASL pictures
    that follow it: the segment outputs fewer frames than it read packets, and the decode falls
    back to one pass, saying why, instead of silently losing frames."""
    path = _hevc_open_gop(tmp_path / "open_gop.mp4")
    spec = FrameSpec(None, 64)
    one, seg = _decode_both(path, [spec], False, tmp_path, monkeypatch)
    assert len(one.streams[spec]) == 250 == one.stats.video_frames_decoded
    assert seg.stats.segments == 0 and seg.stats.segments_abandoned, seg.stats
    assert "open" in seg.stats.segments_abandoned and "GOP" in seg.stats.segments_abandoned
    np.testing.assert_array_equal(one.streams[spec].times, seg.streams[spec].times)
    np.testing.assert_array_equal(one.streams[spec].frames[:], seg.streams[spec].frames[:])


DECODE_THREADS = ("decode-segment", "decode-audio", "frame-convert")


def test_ctrl_c_stops_a_segmented_decode_at_once(tmp_path, monkeypatch):
    """KeyboardInterrupt while segments decode: every segment and the audio pass stop at their
    next packet, queued segments never start, and the interrupt propagates (counted in packets
    read, not timed)."""
    import threading

    path = write_clip(tmp_path / "long.mp4", cfr(900), audio=[(0.0, 30.0)], gop=30)
    file_packets, _ = packets_per_stream(path)
    meta = probe(path)
    monkeypatch.setattr(media.segments, "cpus_available", lambda: 4)
    monkeypatch.setattr(media.segments, "MIN_SEGMENT_PIXELS", 0)
    monkeypatch.setenv("FRAMEWORK_AUDIO_PROCESS", "0")  # the audio pass on a thread, counted here (its process: below)
    read_by_stream: dict[str, int] = {}
    lock = threading.Lock()
    loops_running = threading.Event()  # the audio pass and some segment have read a few packets
    go = threading.Event()
    real_read = media.tally.LoopTally.read

    made: dict[str, list[threading.Event]] = {"audio": [], "video": []}  # the decode's stop events: the audio
    # pass's (framework.media.decoding) and the segments' (framework.media.segments)

    def recorded(kind):
        class RecordedEvent(threading.Event):
            def __init__(self):
                super().__init__()
                made[kind].append(self)
        return types.SimpleNamespace(Event=RecordedEvent)

    def read(self, packet):
        real_read(self, packet)
        if not packet.size:
            return
        with lock:
            key = str(packet.stream.index)
            read_by_stream[key] = read_by_stream.get(key, 0) + 1
            if len(read_by_stream) == 2 and min(read_by_stream.values()) >= 10:
                loops_running.set()
        if sum(self.packets.values()) >= 10:
            go.wait(timeout=30)  # hold every loop mid-file until the interrupt comes, then until the decode
            # has told that loop to stop (between the two a free-running loop of cheap packets could read
            # hundreds in one of Python's thread switches: a race of the test's own, not the decode's)
            assert all(e.wait(timeout=30) for e in made[packet.stream.type])

    def interrupted_wait(*args, **kwargs):
        assert loops_running.wait(timeout=30)
        go.set()
        raise KeyboardInterrupt

    monkeypatch.setattr(media.decoding, "threading", recorded("audio"))
    monkeypatch.setattr(media.segments, "threading", recorded("video"))
    monkeypatch.setattr(media.tally.LoopTally, "read", read)
    monkeypatch.setattr(media.segments, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        decode(path, meta, [FrameSpec(None, 32)], True, tmp_path / "cache")
    assert [len(made["audio"]), len(made["video"])] == [1, 1] and all(e.is_set() for e in made["audio"] + made["video"])
    for key, total in file_packets.items():
        assert read_by_stream[key] < total / 2, (key, read_by_stream, file_packets)
    alive = [t.name for t in threading.enumerate() if t.name.startswith(DECODE_THREADS)]
    assert alive == []


def _open_files_under(folder: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    found = []
    for fd in fds.iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def test_a_full_disk_mid_decode_stops_the_convert_thread_and_closes_the_files(tmp_path, monkeypatch):
    import errno
    import threading

    from framework import streams

    path = write_clip(tmp_path / "clip.mp4", cfr(60))
    meta = probe(path)
    written = [0]
    real_write = streams.FrameStreamWriter.write

    def write(self, t, pixels):
        written[0] += 1
        if written[0] == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, t, pixels)

    monkeypatch.setattr(streams.FrameStreamWriter, "write", write)
    with pytest.raises(OSError, match="No space left"):
        decode(path, meta, [FrameSpec(None, 32)], False, tmp_path / "cache")
    assert [t.name for t in threading.enumerate() if t.name.startswith(DECODE_THREADS)] == []
    if Path("/proc/self/fd").is_dir():
        assert _open_files_under(tmp_path / "cache") == []


def test_an_impaired_audio_track_is_not_chosen(tmp_path):
    """FFmpeg's av_find_best_stream ranks a track flagged visual_impaired (an audio description)
    below a plain one, even when it has more channels."""
    path = tmp_path / "two_audio.mkv"
    with av.open(str(path), mode="w") as c:
        described = c.add_stream("aac", rate=16000)
        described.layout = "stereo"
        plain = c.add_stream("aac", rate=16000)
        plain.layout = "mono"
        described.disposition = av.stream.Disposition.visual_impaired
        plain.disposition = av.stream.Disposition(0)
        for s in (described, plain):
            n = s.layout.nb_channels
            for k in range(0, 16000, 1024):
                af = av.AudioFrame.from_ndarray(np.zeros((1, 1024 * n), np.float32), format="flt",
                                                layout=s.layout.name)
                af.sample_rate, af.pts, af.time_base = 16000, k, Fraction(1, 16000)
                for packet in s.encode(af):
                    c.mux(packet)
            for packet in s.encode():
                c.mux(packet)
    with av.open(str(path)) as c:  # the file says what the test needs
        assert [s.disposition & av.stream.Disposition.visual_impaired for s in c.streams.audio][0]
        assert [s.channels for s in c.streams.audio] == [2, 1]
    meta = probe(path)
    assert meta.audio_stream == plain.index == 1
    assert decode(path, meta, [], True, tmp_path / "cache").audio.duration > 0.9


def test_decoders_per_cpu_count():
    """One decoder per CPU up to 4 (as before), one per two CPUs above, at most 8 (16 CPUs: 8 decoders
    of 2 threads decoded the end-to-end clip 1.26x faster than 4 of 4, bench/results/decode_phase_h200.md)."""
    from framework.media.segments import decoders

    assert [decoders(c) for c in (1, 2, 3, 4, 8, 9, 12, 16, 64)] == [1, 2, 3, 4, 4, 4, 6, 8, 8]
