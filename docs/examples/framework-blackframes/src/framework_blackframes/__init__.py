"""Black and frozen frames: a complete framework analyzer plugin.

Finds stretches where the picture is black (a fade through black, a missing feed) or frozen
(the same frame repeated), and says whether a black stretch is also silent ("dead air").
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from framework import Analyzer, AnalyzerInputs, Event, FrameSpec, Series, Track, hookimpl


class BlackFrozenFrames(Analyzer):
    """Black and frozen stretches of the picture, with a brightness and a motion series."""

    name = "black_frozen"
    version = "0.1.0"
    description = "Black and frozen stretches of the picture (broadcast QC)."
    device = "cpu"          # plain numpy: no model, no GPU
    needs_audio = True      # read the audio when there is some ...
    requires_audio = False  # ... but run on silent videos too

    class Params(Analyzer.Params):
        fps: float = Field(10.0, gt=0, le=60, description="frames analysed per second")
        black_level: float = Field(0.1, ge=0, le=1, description="a pixel darker than this (0-1) is black")
        black_share: float = Field(0.98, gt=0, le=1, description="share of black pixels in a black frame")
        freeze_change: float = Field(0.002, ge=0, description="mean change (0-1) under which a frame repeats")
        min_duration: float = Field(0.3, ge=0, description="shortest stretch reported, in seconds")
        silence_db: float = Field(-50.0, description="audio quieter than this (dBFS) is silent")

    def frame_specs(self) -> list[FrameSpec]:
        # Small grey frames are plenty to judge brightness and change, and cheap to decode.
        return [FrameSpec(fps=self.params.fps, width=96, pix_fmt="gray")]

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        p = self.params
        stream = inputs.frames(self.frame_specs()[0])
        times: list[float] = []
        brightness: list[float] = []
        change: list[float | None] = []
        black: list[bool] = []
        previous = None
        for batch_times, frames in stream.batches(256):  # bounded memory, however long the video
            pixels = frames.astype(np.float32) / 255.0   # (n, height, width), 0..1
            before = np.concatenate([pixels[:1] if previous is None else previous[None], pixels[:-1]])
            diffs: list[float | None] = np.abs(pixels - before).mean(axis=(1, 2)).tolist()
            if previous is None:
                diffs[0] = None  # the first frame has nothing to repeat
            change.extend(diffs)
            brightness.extend(pixels.mean(axis=(1, 2)).tolist())
            black.extend(((pixels < p.black_level).mean(axis=(1, 2)) >= p.black_share).tolist())
            times.extend(batch_times.tolist())
            previous = pixels[-1]
            inputs.report(len(times) / max(1, len(stream)))

        step = 1.0 / p.fps
        end_of_video = inputs.video.duration or (times[-1] + step if times else 0.0)
        frozen = [c is not None and c < p.freeze_change and not b for c, b in zip(change, black)]
        events = []
        for first, last in _runs(black):
            start, end = times[first], min(times[last] + step, end_of_video)
            if end - start >= p.min_duration:
                events.append(Event(start=round(start, 3), end=round(end, 3), label="black",
                                    data={"silent": self._silent(inputs, start, end)}))
        for first, last in _runs(frozen):
            start, end = times[first - 1], min(times[last] + step, end_of_video)  # the frame that froze
            if end - start >= p.min_duration:
                events.append(Event(start=round(start, 3), end=round(end, 3), label="frozen"))
        events.sort(key=lambda e: e.start)
        return self.track(
            events=events,
            series=[Series(name="brightness", times=times, values=brightness),
                    Series(name="change", times=times, values=change)],
            data={"black_seconds": round(sum(e.duration for e in events if e.label == "black"), 3),
                  "frozen_seconds": round(sum(e.duration for e in events if e.label == "frozen"), 3)},
        )

    def _silent(self, inputs: AnalyzerInputs, start: float, end: float) -> bool | None:
        """Whether the audio is silent from ``start`` to ``end`` seconds (None: no audio stream)."""
        audio = inputs.audio
        if audio is None:
            return None
        a = max(0, int((start - audio.start_time) * audio.sample_rate))
        b = max(a, int((end - audio.start_time) * audio.sample_rate))
        samples = np.asarray(audio.samples[a:b], dtype=np.float64)
        if samples.size == 0:
            return None
        rms = float(np.sqrt(np.mean(samples ** 2)))
        return bool(20 * np.log10(rms + 1e-12) < self.params.silence_db)


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(first, last) indices of each run of True values."""
    runs, first = [], None
    for i, flag in enumerate(flags + [False]):
        if flag and first is None:
            first = i
        elif not flag and first is not None:
            runs.append((first, i - 1))
            first = None
    return runs


@hookimpl
def register_analyzers(register):
    """Tell the framework about the analyzer (called once when plugins load)."""
    register(BlackFrozenFrames)
