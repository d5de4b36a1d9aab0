"""Speech flow: pitch and intonation (librosa pyin), pause structure, and fillers from a transcript.

Pitch is tracked only inside the speech segments of the upstream ``voice_activity`` track
(librosa's probabilistic YIN; costs roughly a tenth of real time per core at the default 20 ms
hop; from 8 CPUs on, segments are tracked in several worker processes, ``workers``). With ``transcript`` naming a transcription analyzer (enabled too), hesitation fillers
(``um``, ``uh``, ``er``, ``hmm``...) in its words become events.

Outputs:

- series ``pitch`` (Hz): the median voiced f0 per ``series_hop_s`` inside speech, ``None`` where unvoiced;
- events ``intonation``: one per speech segment, ``data``: ``f0_median_hz``, ``f0_low_hz`` /
  ``f0_high_hz`` (5th / 95th percentile), ``range_semitones``, ``slope_st_per_s``, ``final``
  (``rising`` / ``falling`` / ``level``: the last 0.5 s), ``voiced_fraction``;
- events ``filler``: each filler word of the transcript, ``data["text"]``;
- track data: ``f0_median_hz``, ``range_semitones`` (over all speech), ``voiced_fraction``,
  ``finals`` (segments per final direction), the pause structure ``pause_count``,
  ``mean_pause_s``, ``median_pause_s``, ``long_pause_count`` (at least ``long_pause_s``),
  ``mean_run_s`` (mean speech run between pauses), and ``filler_count`` / ``fillers_per_min``
  (``None`` without a transcript).
"""
from __future__ import annotations

import collections
import contextlib
from typing import Any, Iterator

import numpy as np
from pydantic import Field, model_validator

from framework import AnalyzerInputs, Event, ProcessWorkers, Series, Track
from framework.devices import cpus_available
from framework.process_workers import default_worker_count

from ._speech.audio import gaps, read, transcript_words
from ._speech.prosody import FILLERS, intonation, is_filler, pitch
from ._speech.segmented import SpeechSegmentAnalyzer


class SpeechFlow(SpeechSegmentAnalyzer):
    """Pitch, intonation per speech segment, pause structure and fillers."""

    name = "speech_flow"
    own_process = True  # mostly Python: beside GPU analyzers, in a process of its own
    cpu_priority = "low"  # nothing on the run's longest path waits for it: the decode and the VLM get the CPUs first
    original_status = "active"
    version = "1.0.0"
    description = "Prosody: pitch (pyin), intonation range and direction, pause structure, fillers."

    class Params(SpeechSegmentAnalyzer.Params):
        transcript: str | None = Field(None, description="Analyzer whose transcript gives fillers "
                                                         "(e.g. speech_transcription; enable it too).")
        fmin: float = Field(65.0, gt=30, description="Lowest pitch tracked (Hz).")
        fmax: float = Field(400.0, le=2000, description="Highest pitch tracked (Hz).")
        hop_s: float = Field(0.02, ge=0.005, le=0.1, description="Pitch frame step.")
        series_hop_s: float = Field(0.1, ge=0.02, le=1.0, description="Step of the pitch series.")
        min_pause_s: float = Field(0.25, gt=0, description="Shortest gap between speech segments counted as a pause.")
        long_pause_s: float = Field(1.0, gt=0, description="Pauses at least this long are long.")
        fillers: tuple[str, ...] = Field(FILLERS, description="Words counted as fillers.")
        workers: int | None = Field(None, ge=1, le=32, description="Processes tracking the pitch of speech "
                                    "segments side by side (default: one per 4 CPUs from 8 CPUs on, at most 8; "
                                    "below 8 CPUs, this process alone).")

        @model_validator(mode="after")
        def _range(self) -> "SpeechFlow.Params":
            if self.fmax <= self.fmin * 1.5:
                raise ValueError(f"fmax ({self.fmax}) must be well above fmin ({self.fmin})")
            return self

    def workers(self) -> int:
        """Processes tracking pitch: ``workers``, else ``default_worker_count`` (one per 4 CPUs from 8 CPUs on)."""
        return self.params.workers or default_worker_count(cpus_available())

    def pitches(self, inputs: AnalyzerInputs, regions: list[tuple[float, float]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Each region's (times, f0), in order. pyin is single-threaded Python and numba (about a tenth
        of real time per core), so with several ``workers`` the regions are tracked in that many
        processes, a few regions per worker at a time so progress moves."""
        p = self.params
        n = min(self.workers(), len(regions))
        if n <= 1:
            for a, b in regions:
                yield pitch(read(inputs.audio, a, b), p.fmin, p.fmax, p.hop_s)
            return
        with ProcessWorkers("analyzers._speech.prosody:PitchTracker", (p.fmin, p.fmax, p.hop_s), n) as pool:
            step = 4 * n
            for k in range(0, len(regions), step):
                yield from pool.map([read(inputs.audio, a, b) for a, b in regions[k:k + step]])

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        p = self.params
        regions = self.speech_regions(inputs)
        events: list[Event] = []
        all_t: list[np.ndarray] = []
        all_f: list[np.ndarray] = []
        finals: collections.Counter[str] = collections.Counter()
        with contextlib.closing(self.pitches(inputs, regions)) as tracked:  # its worker processes end here
            for i, ((a, b), (times, f0)) in enumerate(zip(regions, tracked)):
                shape = intonation(times, f0)
                if shape.final:
                    finals[shape.final] += 1
                events.append(Event(start=round(a, 3), end=round(b, 3), label="intonation", data=shape.as_dict()))
                all_t.append(a + times)
                all_f.append(f0)
                inputs.report((i + 1) / max(1, len(regions)))
        t = np.concatenate(all_t) if all_t else np.zeros(0)
        f = np.concatenate(all_f) if all_f else np.zeros(0)
        overall = intonation(t - t[0] if t.size else t, f).as_dict()

        data: dict[str, Any] = {"f0_median_hz": overall["f0_median_hz"], "range_semitones": overall["range_semitones"],
                                "voiced_fraction": overall["voiced_fraction"], "finals": dict(finals)}
        data.update(self._pauses(regions))
        words = transcript_words(inputs) if p.transcript else None
        fillers = [w for w in (words or []) if is_filler(w.text, tuple(p.fillers))]
        events += [Event(start=round(w.start, 3), end=round(w.end, 3), label="filler", data={"text": w.text})
                   for w in fillers]
        speech_s = sum(b - a for a, b in regions)
        data["filler_count"] = None if words is None else len(fillers)
        data["fillers_per_min"] = (round(len(fillers) * 60.0 / speech_s, 2)
                                   if words is not None and speech_s > 0 else None)
        events.sort(key=lambda e: (e.start, e.label))
        return self.track(events=events, series=[self._series(t, f)], data=data)

    def _pauses(self, regions: list[tuple[float, float]]) -> dict[str, Any]:
        p = self.params
        pauses = [b - a for a, b in gaps(regions, p.min_pause_s)]
        runs: list[float] = []  # speech between pauses: segments closer than min_pause_s are one run
        run_end = 0.0
        for a, b in regions:
            if runs and a - run_end < p.min_pause_s:
                runs[-1] += b - run_end
            else:
                runs.append(b - a)
            run_end = b
        return {"pause_count": len(pauses),
                "mean_pause_s": round(float(np.mean(pauses)), 3) if pauses else None,
                "median_pause_s": round(float(np.median(pauses)), 3) if pauses else None,
                "long_pause_count": sum(d >= p.long_pause_s for d in pauses),
                "mean_run_s": round(float(np.mean(runs)), 3) if runs else None}

    def _series(self, t: np.ndarray, f: np.ndarray) -> Series:
        """Median voiced f0 per series step, only over steps that lie in speech."""
        step = self.params.series_hop_s
        if t.size == 0:
            return Series(name="pitch", unit="Hz", times=[], values=[])
        bins = np.floor(t / step).astype(np.int64)  # t increases, so each bin is one run of frames
        keys, first = np.unique(bins, return_index=True)
        times, values = [], []
        for k, v in zip(keys, np.split(f, first[1:])):
            v = v[np.isfinite(v)]
            times.append(round((k + 0.5) * step, 3))
            values.append(round(float(np.median(v)), 1) if v.size else None)
        return Series(name="pitch", unit="Hz", times=times, values=values)
