"""Voice activity: where someone speaks, with silero-vad (its weights ship in the wheel).

Silero scores every 32 ms window (512 samples at 16 kHz) with a recurrent model. Scoring one
window after another costs about 1 ms a call on a CPU core, so an hour takes two minutes; here
the audio is cut into ``block_s`` blocks that run side by side as the rows of one batch (the
model keeps one state per row), each block preceded by ``preroll_s`` of the audio before it so
its state is warmed up as in one long pass. A batch makes one call per window of a block, and each
call takes the interpreter's lock again: in a run's process, beside the threads that import and
load the other models, a call waited for it for tens of milliseconds. So the loop makes nothing
but the calls, the blocks are short (5 s) and the batches wide (128 blocks: ten minutes in one batch
of 188 calls instead of 969 with 30 s blocks): on 2 CPUs 10 minutes of real speech took 1.8 s
instead of 2.7 s alone and 5.5 s instead of 31.2 s beside a thread running Python, agreeing with
silero's sequential pass on 99.15 % of 10 ms frames (30 s blocks: 99.50 %; 99.01-99.39 % across the
settings tried; ``bench/results/vad_blocks_cpu.md``). ``tests/test_vad.py`` checks the result against
silero's own ``get_speech_timestamps`` on the same audio. The speech segments are then cut
from the probabilities by silero's ``get_speech_timestamps_from_probs``, with its parameters.

Memory stays flat: a batch reads ``streams`` blocks from the run's audio cache, never the file.

Outputs (``provides = ("voice_activity",)``; the other speech analyzers read these events):

- events ``speech``: each speech segment, ``data={"probability": mean speech probability}``;
- series ``speech_probability`` (0..1), the highest window probability per 0.1 s;
- track data ``speech_s``, ``speech_fraction``, ``segments``, ``vad`` (which model ran).
"""
from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from framework import (AUDIO_SAMPLE_RATE, AnalyzerInputs, AnalyzerUnavailable, BatchedAnalyzer, Event, Series,
                       Track, thread_settings)

logger = logging.getLogger(__name__)

SR = AUDIO_SAMPLE_RATE
WINDOW = 512            # samples per silero window at 16 kHz
SERIES_HOP_S = 0.1      # the probability series' step


class VoiceActivity(BatchedAnalyzer):
    """Speech segments from silero-vad, scored block-parallel; feeds the other speech analyzers."""

    name = "voice_activity"
    version = "1.1.0"
    description = "Speech segments (silero-vad, weights in the wheel) and a speech-probability series."
    needs_audio = True
    requires_audio = True
    device = "cpu"
    models = ("silero-vad",)
    provides = ("voice_activity",)
    prefetch = 1
    preprocess_threads = 1
    # its load imports torch and silero-vad only (nothing lazy): it loads beside the GPU models' loads,
    # so that Whisper, downstream, can start as soon as the audio is there
    load_takes_turns = False

    class Params(BatchedAnalyzer.Params):
        threshold: float = Field(0.5, gt=0, lt=1, description="Windows at or above this probability are speech.")
        min_speech_ms: int = Field(250, ge=0, description="Shorter speech segments are dropped.")
        min_silence_ms: int = Field(300, ge=0, description="Silence needed to end a segment.")
        speech_pad_ms: int = Field(100, ge=0, description="Padding added to each side of a segment.")
        max_speech_s: float | None = Field(None, gt=1, description="Split segments longer than this (None: never).")
        block_s: float = Field(5.0, ge=2, description="Audio per parallel stream.")
        preroll_s: float = Field(1.0, ge=0, description="Audio before each block that warms its state up.")
        batch_size: int = Field(128, ge=1, description="Blocks scored side by side.")

    def load(self, device: str, models: dict[str, Path]) -> None:
        import torch

        # silero-vad's model module sets torch's CPU threads to 1 when imported: every thread started after
        # it (the other analyzers') computed on one CPU thread (bench/torch_threads.py). Put back here too,
        # for a load outside a run (the executor keeps them around every load).
        try:
            with thread_settings.kept("importing silero-vad"):
                from silero_vad import get_speech_timestamps_from_probs  # noqa: F401 (silero-vad >= 6.2)
                from silero_vad.utils_vad import init_jit_model
        except ImportError as exc:
            raise AnalyzerUnavailable(f"voice_activity needs silero-vad >= 6.2 ({exc}): "
                                      "pip install 'silero-vad>=6.2'") from exc
        package = models.get("silero-vad")
        weights = Path(package) / "data" / "silero_vad.jit" if package else None
        if weights is None or not weights.is_file():
            raise AnalyzerUnavailable(f"voice_activity: silero-vad weights not found at {weights}; "
                                      "pip install silero-vad")
        self._torch = torch
        # silero-vad ships TorchScript; torch >= 2.10 warns on every torch.jit.load that it is deprecated, a
        # line in the user's run output about nothing they can change (the filter stays for the process)
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated", category=FutureWarning)
        self.model = init_jit_model(str(weights))
        self.vad_name = f"silero-vad jit ({weights.name})"

    def unload(self) -> None:
        self.model = None
        self._track_audio = None

    # --- the device step ------------------------------------------------------------
    def _geometry(self) -> tuple[int, int]:
        block = max(1, round(self.params.block_s * SR / WINDOW)) * WINDOW
        pre = round(self.params.preroll_s * SR / WINDOW) * WINDOW
        return block, pre

    def items(self, inputs: AnalyzerInputs):
        audio = self._audio(inputs)
        self._track_audio = audio  # read by preprocess / postprocess on the step's threads
        block, _ = self._geometry()
        return range(0, audio.count, block)

    def count_items(self, inputs: AnalyzerInputs) -> int:
        block, _ = self._geometry()
        return math.ceil(self._audio(inputs).count / block)

    def preprocess(self, items: list[int]) -> Any:
        """(rows, pre + block) float32: each block with the audio before it (zeros before the start)."""
        audio = self._track_audio
        block, pre = self._geometry()
        rows = np.zeros((len(items), pre + block), dtype=np.float32)
        for r, start in enumerate(items):
            a = max(0, start - pre)
            b = min(audio.count, start + block)
            chunk = np.asarray(audio.samples[a:b], dtype=np.float32)
            rows[r, pre - (start - a):pre - (start - a) + chunk.size] = chunk
        return self._torch.from_numpy(rows)

    def forward(self, batch: Any) -> Any:
        torch = self._torch
        self.model.reset_states()
        n = batch.shape[1] // WINDOW
        with torch.inference_mode():  # one model call per window and nothing else in the loop (each
            # step of it takes the interpreter's lock again)
            probs = [self.model(window, SR) for window in batch[:, :n * WINDOW].split(WINDOW, dim=1)]
        return torch.cat(probs, dim=1).numpy()  # (rows, windows): the model answers (rows, 1) a call

    def postprocess(self, outputs: Any, items: list[int]) -> list[np.ndarray]:
        block, pre = self._geometry()
        count = self._track_audio.count
        skip = pre // WINDOW
        return [outputs[r, skip:skip + math.ceil(min(block, count - start) / WINDOW)].copy()
                for r, start in enumerate(items)]

    def finish(self, results: list[np.ndarray], inputs: AnalyzerInputs) -> Track:
        from silero_vad import get_speech_timestamps_from_probs

        audio = self._audio(inputs)
        p = self.params
        probs = np.concatenate(results) if results else np.zeros(0, dtype=np.float32)
        stamps = get_speech_timestamps_from_probs(
            probs.tolist(), sampling_rate=SR, threshold=p.threshold, min_speech_duration_ms=p.min_speech_ms,
            max_speech_duration_s=p.max_speech_s or float("inf"), min_silence_duration_ms=p.min_silence_ms,
            speech_pad_ms=p.speech_pad_ms, audio_length_samples=audio.count) if probs.size else []
        t0 = audio.start_time
        events = []
        for s in stamps:
            a, b = int(s["start"]), int(s["end"])
            mean = float(probs[a // WINDOW:max(a // WINDOW + 1, -(-b // WINDOW))].mean())
            events.append(Event(start=round(t0 + a / SR, 3), end=round(t0 + b / SR, 3), label="speech",
                                score=round(mean, 3), data={"probability": round(mean, 3)}))
        speech_s = sum(e.duration for e in events)
        duration = audio.duration
        return self.track(events=events, series=[self._series(probs, t0)], data={
            "speech_s": round(speech_s, 3),
            "speech_fraction": round(speech_s / duration, 4) if duration > 0 else None,
            "segments": len(events),
            "vad": self.vad_name,
        })

    # --- helpers --------------------------------------------------------------------
    @staticmethod
    def _audio(inputs: AnalyzerInputs):
        if inputs.audio is None:  # the runner skips us first (requires_audio); this guards direct calls
            raise AnalyzerUnavailable("voice_activity: the video has no audio stream")
        return inputs.audio

    @staticmethod
    def _series(probs: np.ndarray, t0: float) -> Series:
        per = SERIES_HOP_S * SR / WINDOW  # windows per series step (3.125)
        n = math.ceil(probs.size / per) if probs.size else 0
        edges = np.minimum(probs.size - 1, np.round(np.arange(n + 1) * per).astype(int))
        edges[-1] = probs.size
        values = [round(float(probs[a:max(b, a + 1)].max()), 3) for a, b in zip(edges[:-1], edges[1:])]
        times = [round(t0 + (i + 0.5) * SERIES_HOP_S, 3) for i in range(n)]
        return Series(name="speech_probability", unit="", times=times, values=values)
