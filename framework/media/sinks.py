"""Sinks for decoded frames: every requested frame stream from the video, 16 kHz mono from the audio.

Private to ``framework.media``; shared by the one-pass decoder (``decoding``) and the parallel
segment decoders (``segments``).
"""
from __future__ import annotations

import contextlib
import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..streams import AUDIO_SAMPLE_RATE, AudioTrack, AudioWriter, FrameSpec, FrameStream, FrameStreamWriter
from ..timeline import VideoMeta
from ._container import display_size

AUDIO_GAP_FILL_S = 0.05      # audio holes longer than this are filled with silence to keep sync
CONVERT_QUEUE = 6            # decoded frames waiting for the scaling thread


class VideoSink:
    """Turns decoded frames into every requested stream; converts a frame only for streams that sample it."""

    def __init__(self, specs: list[FrameSpec], video: VideoMeta, stream: Any, cache_dir: Path,
                 anchor: float | None = None, threaded: bool = True, part: str | None = None):
        """:param anchor: origin (s) of the sampling grid of streams with an fps (default: the first frame).
        :param threaded: scale frames on a second thread (else inline, in ``add``).
        :param part: write each stream to this subfolder of its folder (``frames/<spec.key>/<part>``):
            one segment's part of it (see ``segments``)."""
        from av.video.reformatter import Interpolation, VideoReformatter

        self.rotation = video.rotation
        self.k_ccw = ((-video.rotation) % 360) // 90  # np.rot90 turns counter-clockwise
        self.step = 1.0 / video.fps if video.fps else 1 / 30
        self.writers: list[tuple[FrameStreamWriter, Any, int, int]] = []
        for spec, (w, h), (coded_w, coded_h) in output_sizes(specs, video, stream):
            folder = cache_dir / "frames" / spec.key
            writer = FrameStreamWriter(folder / part if part else folder, spec, w, h, anchor=anchor)
            self.writers.append((writer, VideoReformatter(), coded_w, coded_h))
        self.interpolation = Interpolation.AREA  # a box filter: no aliasing when shrinking a lot
        self.last_t: float | None = None
        # seconds per pts tick, once: a Fraction product per frame is slow
        self.tick = float(stream.time_base) if stream.time_base else None
        self.frames = 0
        self.backwards = 0  # frames whose timestamp went back in time (clamped to keep times sorted)
        # Scaling runs on a second thread so it overlaps decoding (swscale and the decoder release
        # the GIL); a small bounded queue keeps at most a few decoded frames in memory. Scaling
        # small pictures inline was measured too: no faster, and its buffers, made on the main
        # thread, fragmented the main malloc arena (+25 % peak memory over a 60-minute run).
        self._queue: queue.Queue = queue.Queue(maxsize=CONVERT_QUEUE)
        self._error: BaseException | None = None
        self._worker: threading.Thread | None = None
        if threaded:
            self._worker = threading.Thread(target=self._convert_loop, name="frame-convert", daemon=True)
            self._worker.start()

    def time_of(self, frame: Any, origin: float) -> float:
        ts = frame.pts if frame.pts is not None else frame.dts
        tick = self.tick or (float(frame.time_base) if frame.time_base else None)
        if ts is not None and tick:
            t = ts * tick - origin
        else:  # no timestamp: one frame interval after the previous frame
            t = 0.0 if self.last_t is None else self.last_t + self.step
        return max(0.0, t)

    def add(self, frame: Any, origin: float) -> float:
        t = self.time_of(frame, origin)
        if self.last_t is not None and t < self.last_t:
            self.backwards += 1
            t = self.last_t
        self.last_t = t
        self.frames += 1
        wanted = [w for w in self.writers if w[0].wants(t)]  # sampling is decided here, in order
        if wanted:
            if self._worker is None:
                self._convert(frame, t, wanted)
                return t
            if self._error is not None:
                raise self._error
            self._queue.put((frame, t, wanted))
        return t

    def _convert(self, frame: Any, t: float, wanted: list) -> None:
        """Scale ``frame`` for every stream in ``wanted`` and append it to them. Streams of one size
        and pixel format that sample the same frame share one scaling of it (e.g. a 1 fps and a 2 fps
        stream of 960-wide frames: every 1 fps frame is a 2 fps one; scaling a 720p frame to 960x540
        takes longer than decoding it)."""
        src_range = 2 if frame.color_range == 2 else None  # full-range YUV tagged as such (JPEG)
        scaled: dict[tuple[int, int, str], np.ndarray] = {}
        for writer, reformatter, cw, ch in wanted:
            key = (cw, ch, writer.spec.pix_fmt)
            pixels = scaled.get(key)
            if pixels is None:
                # threads=1: this runs beside the decoder's own threads; swscale's slice threads
                # cost ~25 % more CPU on these small outputs and gain nothing
                out = reformatter.reformat(frame, cw, ch, writer.spec.pix_fmt, interpolation=self.interpolation,
                                           src_color_range=src_range, threads=1)
                pixels = out.to_ndarray()
                if self.k_ccw:
                    pixels = np.rot90(pixels, self.k_ccw)
                scaled[key] = pixels
            writer.write(t, pixels)

    def _convert_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # keep draining so the decoder never blocks on a full queue
            try:
                self._convert(*item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the decoding thread
                self._error = exc

    def close(self) -> dict[FrameSpec, FrameStream]:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
        if self._error is not None:
            raise self._error
        return {writer.spec: writer.close() for writer, *_ in self.writers}

    def abort(self) -> None:
        """Stop the frame-convert thread and close the stream files, raising nothing: the decode
        failed, and its own error is the one to report. The streams are left incomplete."""
        if self._worker is not None:
            self._error = self._error or RuntimeError("decoding was aborted")  # the worker drains the rest
            self._queue.put(None)
            self._worker.join()
        for writer, *_ in self.writers:
            with contextlib.suppress(Exception):
                writer.abort()


class AudioSink:
    """Resamples the audio stream to 16 kHz mono float32 on disk, keeping it in sync with its pts."""

    def __init__(self, path: Path):
        self.path = path
        self.writer: AudioWriter | None = None
        self.resampler: Any = None
        self.layout_key: tuple | None = None
        self.frames = 0
        self.last_end = 0.0
        self.track: AudioTrack | None = None  # once closed

    def _resample(self, frame: Any) -> None:
        for out in self.resampler.resample(frame):
            self.writer.write(out.to_ndarray())

    def add(self, frame: Any, origin: float) -> None:
        import av

        self.frames += 1
        t = float(frame.pts * frame.time_base) - origin if frame.pts is not None and frame.time_base else None
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self.writer is None:
            self.writer = AudioWriter(self.path, start_time=max(0.0, t or 0.0))
        elif t is not None:  # fill holes (lost packets, a paused stream) so sample index <-> time holds
            expected = self.writer.start_time + self.writer.count / AUDIO_SAMPLE_RATE
            if t - expected > AUDIO_GAP_FILL_S:
                if self.resampler is not None:
                    self._resample(None)  # flush what the resampler holds before the hole
                    self.resampler, self.layout_key = None, None
                expected = self.writer.start_time + self.writer.count / AUDIO_SAMPLE_RATE
                gap = int(round((t - expected) * AUDIO_SAMPLE_RATE))
                if gap > 0:
                    self.writer.write(np.zeros(gap, dtype=np.float32))
        if key != self.layout_key:  # first frame, or the format changed mid-stream
            if self.resampler is not None:
                self._resample(None)
            self.resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLE_RATE)
            self.layout_key = key
        self._resample(frame)
        self.last_end = self.writer.start_time + self.writer.count / AUDIO_SAMPLE_RATE

    def adopt(self, frames: int, last_end: float) -> AudioTrack:
        """Take over the finished track another process's sink wrote to ``path`` (``audio_child``),
        with its frame count and its last sample's end; ``close`` then returns it."""
        self.frames, self.last_end = frames, last_end
        self.track = AudioTrack(self.path)
        return self.track

    def close(self) -> AudioTrack:
        """The finished track (closing it the first time; later calls return the same track)."""
        if self.track is not None:
            return self.track
        if self.writer is None:  # the stream had no decodable frame: an empty track
            self.writer = AudioWriter(self.path)
        if self.resampler is not None:
            self._resample(None)
        self.last_end = self.writer.start_time + self.writer.count / AUDIO_SAMPLE_RATE
        self.track = self.writer.close()
        return self.track




def output_sizes(specs: list[FrameSpec], video: VideoMeta, stream: Any
                  ) -> list[tuple[FrameSpec, tuple[int, int], tuple[int, int]]]:
    """Each spec's (width, height) as displayed, and as scaled from the coded picture (which is
    turned by the rotation metadata afterwards)."""
    if video.width and video.height:
        disp = (video.width, video.height)
    else:
        disp = display_size(stream, video.rotation)
    turned = ((-video.rotation) % 360) // 90 % 2
    sizes = []
    for spec in specs:
        w, h = spec.output_size(*disp)
        sizes.append((spec, (w, h), (h, w) if turned else (w, h)))
    return sizes


def largest_scale(specs: list[FrameSpec], video: VideoMeta, stream: Any) -> float:
    """The largest output width of ``specs`` over the stream's coded width (1.0 when unknown)."""
    coded = stream.codec_context.width if stream is not None else 0
    if not specs or not coded:
        return 1.0
    return max(cw for _, _, (cw, _) in output_sizes(specs, video, stream)) / coded


def set_threads(stream: Any, skip_deblock: bool, threads: int = 0) -> None:
    """FFmpeg's own threads for ``stream`` (0: as many as it likes), and the deblocking skip."""
    if threads == 1:
        stream.thread_type = "SLICE"
        stream.codec_context.thread_count = 1
    else:
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
    if skip_deblock:
        # every stream is a small fraction of the picture: the in-loop deblocking filter's effect
        # (well under one grey level at full size) vanishes in the box filter, and skipping it
        # makes H.264/HEVC decoding ~10-15 % faster
        stream.codec_context.options = {"skip_loop_filter": "all"}
