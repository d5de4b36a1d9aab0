"""Speech to text with Whisper (openai-whisper or faster-whisper) that only ever hears speech.

The two complaints about Whisper-based tools are text invented over silence or music, and word
times that drift by seconds on long files. Both are handled by construction:

- Whisper is fed only the speech regions of the upstream ``voice_activity`` track, packed into
  windows of at most ``window_s`` seconds and joined by ``gap_s`` of digital silence (see
  ``analyzers/_speech/windows.py``). Long silences, music and noise between regions are never sent.
  Segments that Whisper itself marks as no speech (``no_speech_threshold`` with
  ``logprob_threshold``) or that repeat themselves (``compression_ratio_threshold``) are dropped
  and counted in the track.
- Every window is decoded on its own (no text carried over) and its times are mapped back through
  the window's pieces, so a time can only be as wrong as Whisper's alignment inside one window;
  nothing accumulates. Each word lies inside the audio and inside one speech region, and word and
  segment times never go backwards. Windows are read from the run's audio cache a batch at a
  time, so memory does not grow with the file.

Windows go through the device step (``BatchedAnalyzer``): faster-whisper decodes a batch of
windows in one call; openai-whisper transcribes the windows of a batch side by side, each round of
their decoding passes (first passes, the rest of a window, a higher temperature) one batched call.
A batch takes as long as its slowest window's passes, so on a GPU the default batch is as many
windows as the VRAM plan allows, up to ``GPU_BATCH`` (a 10-minute file's 18 windows in one batch
instead of 8 + 8 + 2: a third of the decoding rounds); ``CPU_BATCH`` on a CPU. The plan sizes it
with ``item_vram_mb``, each window's decoder caches at the model's size and beam width.

Outputs (``provides = ("transcript",)``, so ``transcript.srt``/``.vtt`` are written from it):

- events ``speech``: one per Whisper segment, ``data["text"]`` what was said, with ``language``,
  ``avg_logprob``, ``no_speech_prob``, ``words`` (count) and ``window``;
- events ``word``: one per word, ``data["text"]`` and ``probability`` (``score`` too);
- track data: ``backend``, ``model``, ``compute``, ``language``, ``language_probability``,
  ``windows``, ``audio_sent_s`` (what Whisper heard, joints included), ``speech_s``,
  ``segments``, ``word_count``, ``tokens`` (decoded) and ``dropped`` (segments dropped, by reason); with
  openai-whisper ``decoding``: its batched decode calls, the window passes they decoded, its batched word
  alignments, and the seconds spent in the decode calls and in the rest of ``whisper.transcribe``.
"""
from __future__ import annotations

import collections
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from framework import (AUDIO_SAMPLE_RATE, AnalyzerInputs, AnalyzerUnavailable, BatchedAnalyzer, DeviceOutOfMemory,
                       Event, Track)

from ._speech.audio import read, speech_regions
from ._speech.whisper_backends import BACKENDS, DecodeOptions, RawSegment, WhisperBackend
from ._speech.windows import Window, pack_windows

logger = logging.getLogger(__name__)

SR = AUDIO_SAMPLE_RATE
#: the default batch on a GPU (the plan caps it to what fits) and on a CPU
GPU_BATCH = 32
CPU_BATCH = 8
#: decoder width and layers of each size (openai-whisper's ModelDimensions: n_text_state, n_text_layer)
DECODER_DIMS = {"tiny": (384, 4), "base": (512, 6), "small": (768, 12), "medium": (1024, 24),
                "large-v2": (1280, 32), "large-v3": (1280, 32), "turbo": (1280, 4)}
AUDIO_CTX, TEXT_CTX = 1500, 448  # encoder frames per 30 s window; the decoder's context
SIZES = ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en", "large-v2", "large-v3",
         "turbo")


def whisper_model_id(backend: str, size: str) -> str:
    """The manifest id of a Whisper size for a backend: ``whisper-base``, ``faster-whisper-large-v3``..."""
    slug = size.replace(".", "-")
    return f"whisper-{slug}" if backend == "openai-whisper" else f"faster-whisper-{slug}"


class SpeechTranscription(BatchedAnalyzer):
    """Whisper over voice-activity windows: segments and words with times that stay put."""

    name = "speech_transcription"
    original_status = "active"
    version = "1.0.0"
    description = "Whisper transcript of the speech regions only (no text over silence or music); words with times."
    needs_audio = True
    requires_audio = True
    device = "auto"
    cuda_stream_local = True  # no device-wide CUDA calls while analyzing: graphs may be captured beside it
    depends_on = ("voice_activity",)
    provides = ("transcript",)
    # in its own process (below) the stream's priority counts only under an MPS server (framework run --mps):
    # there it is a client of below-normal priority, so that the VLM and text_overlay, which the run's end
    # waits for, go first (bench/results/end_to_end_h200_ab33.md: with the YOLOs, the run's median 0.5-0.75 s
    # below the run without MPS on two H200 machines); as a thread of the run's process (own_process: false) "normal"
    gpu_stream_priority = "low"
    # its decoding is a loop of small steps driven from Python: in a process of its own it does not
    # take turns on the interpreter's lock with the other models' threads (framework.own_process)
    own_process = True
    # what its load imports (openai-whisper, and torch with it): imported while the run plans, in the
    # process started for it early (framework.own_process.EarlyChildren), or by the run's warm-up
    warm_imports = ("whisper",)
    batch_size = CPU_BATCH
    prefetch = 2
    preprocess_threads = 1

    class Params(BatchedAnalyzer.Params):
        backend: Literal["openai-whisper", "faster-whisper"] = Field(
            "openai-whisper", description="openai-whisper (PyTorch) or faster-whisper (CTranslate2).")
        model: Literal[SIZES] = Field("base", description="Whisper size.")  # type: ignore[valid-type]
        model_id: str | None = Field(None, description="A manifest id to load instead of the size's default.")
        language: str | None = Field(None, description="Language code (en, de...); None: detected once on the first window.")
        task: Literal["transcribe", "translate"] = "transcribe"
        beam_size: int = Field(5, ge=1, le=16, description="Beam width (1: greedy).")
        temperature_fallback: bool = Field(True, description="Re-decode a failed window at higher temperatures.")
        window_s: float = Field(30.0, ge=5.0, le=30.0, description="Audio per Whisper window (its context is 30 s).")
        gap_s: float = Field(0.3, ge=0.0, le=2.0, description="Silence placed between joined speech regions.")
        max_join_gap_s: float = Field(10.0, ge=0.0, description="Regions further apart never share a window.")
        no_speech_threshold: float | None = Field(0.6, description="With logprob_threshold: drop segments Whisper "
                                                                   "calls no speech (None: keep).")
        logprob_threshold: float | None = Field(-1.0, description="Mean token log-probability below which a "
                                                                  "segment has failed.")
        compression_ratio_threshold: float | None = Field(2.4, description="Drop segments that repeat themselves "
                                                                           "(gzip ratio above this).")
        max_new_tokens: int | None = Field(None, ge=1, le=440, description="Cap on tokens per window (tests, benchmarks).")
        suppress_eot: bool = Field(False, description="Benchmarks only: no end-of-text or special tokens, so "
                                                     "each window decodes exactly max_new_tokens.")
        without_timestamps: bool = Field(False, description="Benchmarks only: one segment per window.")
        words: bool = Field(True, description="Write a word event per word.")
        batch_size: int | None = Field(None, ge=1, le=64, description="Windows per device batch, decoded "
                                       "together (openai-whisper: each round of their passes in one call). "
                                       f"Default: on a GPU as many as the VRAM plan allows, up to {GPU_BATCH}; "
                                       f"{CPU_BATCH} on a CPU.")

        @model_validator(mode="after")
        def _eot_needs_cap(self) -> "SpeechTranscription.Params":
            if self.suppress_eot and not self.max_new_tokens:
                raise ValueError("suppress_eot needs max_new_tokens (else decoding never stops before 448 tokens)")
            return self

    def model_ids(self) -> list[str]:
        return [self.params.model_id or whisper_model_id(self.params.backend, self.params.model)]

    @property
    def item_vram_mb(self) -> float:  # type: ignore[override]
        """Device memory per window beyond the first: for each beam, the decoder's cross-attention keys
        and values over the window's 1,500 audio frames and its self-attention cache, in fp16, with a
        quarter more for the encoder's activations and the search (base, beam 5: ~143 MB; large-v3:
        ~1.9 GB)."""
        width, layers = DECODER_DIMS.get(self.params.model.removesuffix(".en"), DECODER_DIMS["large-v3"])
        per_beam = (AUDIO_CTX + TEXT_CTX) * width * layers * 2 * 2  # keys and values, 2 bytes each
        return round(1.25 * self.params.beam_size * per_beam / 2**20, 1)

    def max_batch_size(self) -> int:
        """``batch_size``, or by default ``GPU_BATCH`` on a GPU (the plan caps it to what fits; before the
        plan, the demand it is planned with) and ``CPU_BATCH`` on a CPU."""
        if self.params.batch_size:
            return self.params.batch_size
        device = self.placement.device if self.placement is not None else getattr(self, "_device", None)
        return GPU_BATCH if device is None or device.startswith("cuda") else CPU_BATCH

    # --- lifecycle ------------------------------------------------------------------
    def load(self, device: str, models: dict[str, Path]) -> None:
        model_id = self.model_ids()[0]
        path = models.get(model_id)
        if path is None:
            raise AnalyzerUnavailable(f"speech_transcription: model {model_id} is not available; "
                                      f"framework models pull {model_id}")
        self.backend: WhisperBackend = BACKENDS[self.params.backend]()
        self.backend.load(Path(path), device, self.precision)
        self._device = device
        self._language: tuple[str, float | None] | None = (
            (self.params.language, None) if self.params.language else None)

    def unload(self) -> None:
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.unload()
        self.backend = None
        self._audio = self._planned_for = None

    # --- the device step ------------------------------------------------------------
    def items(self, inputs: AnalyzerInputs) -> list[Window]:
        return self._plan(inputs)

    def count_items(self, inputs: AnalyzerInputs) -> int:
        return len(self._plan(inputs))

    def _plan(self, inputs: AnalyzerInputs) -> list[Window]:
        """The windows of this input (computed once per ``inputs``)."""
        if getattr(self, "_planned_for", None) is not inputs:
            if inputs.audio is None:
                raise AnalyzerUnavailable("speech_transcription: the video has no audio stream")
            self._audio = inputs.audio
            p = self.params
            self._windows = pack_windows(speech_regions(inputs), p.window_s, p.gap_s, p.max_join_gap_s,
                                         self._quietest)
            self._planned_for = inputs
            self._tokens = 0
        return self._windows

    def preprocess(self, items: list[Window]) -> list[tuple[Window, np.ndarray]]:
        """Each window's audio: its pieces read from the cache, laid at their offsets, zeros between."""
        out = []
        for w in items:
            audio = np.zeros(int(round(w.duration * SR)) + 1, dtype=np.float32)
            for piece in w.pieces:
                samples = read(self._audio, piece.start, piece.end)
                at = int(round(piece.offset * SR))
                audio[at:at + samples.size] = samples[:audio.size - at]
            out.append((w, audio))
        return out

    def forward(self, batch: list[tuple[Window, np.ndarray]]) -> list[list[RawSegment]]:
        if self._language is None:
            self._language = self.backend.detect_language(batch[0][1])
            logger.info("speech_transcription: language %s (p=%.2f), detected on the first window", *self._language)
        try:
            return self.backend.transcribe([a for _, a in batch], self._options())
        except RuntimeError as exc:  # CTranslate2 words its device OOM differently from torch
            text = str(exc).lower()
            if "out of memory" in text:
                raise DeviceOutOfMemory(str(exc)) from exc
            if "libcublas" in text or "libcudnn" in text:
                raise RuntimeError(f"speech_transcription (faster-whisper on {self.backend.compute}): {exc}. "
                                   "CTranslate2 needs CUDA 12 cuBLAS at run time: pip install nvidia-cublas-cu12, "
                                   "or use backend: openai-whisper") from exc
            raise

    def postprocess(self, outputs: list[list[RawSegment]], items: list[Window]) -> list[Any]:
        return [self._map_window(w, segments) for w, segments in zip(items, outputs)]

    def finish(self, results: list[Any], inputs: AnalyzerInputs) -> Track:
        audio = inputs.audio
        lo, hi = audio.start_time, audio.start_time + audio.duration
        language, language_p = self._language or (None, None)
        events: list[Event] = []
        dropped: collections.Counter[str] = collections.Counter()
        last = lo  # words and segments never go backwards
        n_words = n_segments = 0
        for mapped, why in results:
            dropped.update(why)
            for seg in mapped:
                words = []
                for a, b, text, prob in seg["words"]:
                    a = min(hi, max(a, last))
                    b = min(hi, max(a, b))
                    last = b
                    words.append(Event(start=round(a, 3), end=round(b, 3), label="word",
                                       score=None if prob is None else round(prob, 3),
                                       data={"text": text, "probability": None if prob is None else round(prob, 3)}))
                start = words[0].start if words else round(min(hi, max(seg["start"], last)), 3)
                end = words[-1].end if words else round(min(hi, max(start, seg["end"])), 3)
                last = max(last, end)
                events.append(Event(start=start, end=end, label="speech", data={
                    "text": seg["text"], "language": language, "avg_logprob": seg["avg_logprob"],
                    "no_speech_prob": seg["no_speech_prob"], "words": len(words), "window": seg["window"]}))
                n_segments += 1
                n_words += len(words)
                if self.params.words:
                    events.extend(words)
        windows = getattr(self, "_windows", [])
        return self.track(events=events, data={
            "backend": self.params.backend, "model": self.model_ids()[0], "compute": self.backend.compute,
            "language": language, "language_probability": None if language_p is None else round(language_p, 3),
            "windows": len(windows), "audio_sent_s": round(sum(w.duration for w in windows), 3),
            "speech_s": round(sum(w.speech_s for w in windows), 3),
            "segments": n_segments, "word_count": n_words, "tokens": self._tokens, "dropped": dict(dropped),
            **({"decoding": stats} if (stats := self.backend.decoding_stats()) else {}),
        })

    # --- helpers --------------------------------------------------------------------
    def _options(self) -> DecodeOptions:
        p = self.params
        return DecodeOptions(
            language=self._language[0] if self._language else None, task=p.task, beam_size=p.beam_size,
            temperatures=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0) if p.temperature_fallback else (0.0,),
            compression_ratio_threshold=p.compression_ratio_threshold, logprob_threshold=p.logprob_threshold,
            no_speech_threshold=p.no_speech_threshold, max_new_tokens=p.max_new_tokens,
            without_timestamps=p.without_timestamps, suppress_eot=p.suppress_eot)

    def _map_window(self, window: Window, segments: list[RawSegment]) -> tuple[list[dict[str, Any]], list[str]]:
        """Segments of one window on the timeline, and why the others were dropped."""
        p = self.params
        kept, dropped = [], []
        self._tokens += sum(s.tokens for s in segments)
        for s in segments:
            text = s.text.strip()
            if not text:
                dropped.append("empty")
                continue
            if (p.no_speech_threshold is not None and p.logprob_threshold is not None
                    and s.no_speech_prob is not None and s.avg_logprob is not None
                    and s.no_speech_prob > p.no_speech_threshold and s.avg_logprob < p.logprob_threshold):
                dropped.append("no speech")
                continue
            if (p.compression_ratio_threshold is not None and s.compression_ratio is not None
                    and s.compression_ratio > p.compression_ratio_threshold):
                dropped.append("repetition")
                continue
            words = []
            for w in s.words:
                word = w.text.strip()
                if word:
                    a, b = window.span_to_timeline(w.start, w.end)
                    words.append((a, b, word, w.probability))
            start, end = window.to_timeline(s.start), window.to_timeline(s.end)
            kept.append({"start": start, "end": max(start, end), "text": text, "words": words,
                         "avg_logprob": None if s.avg_logprob is None else round(float(s.avg_logprob), 3),
                         "no_speech_prob": None if s.no_speech_prob is None else round(float(s.no_speech_prob), 3),
                         "window": window.index})
        return kept, dropped

    def _quietest(self, lo: float, hi: float) -> float:
        """Where to cut an over-long speech region between ``lo`` and ``hi``: its quietest 20 ms."""
        samples = read(self._audio, lo, hi)
        hop = SR // 50
        n = samples.size // hop
        if n < 2:
            return (lo + hi) / 2
        energy = np.square(samples[:n * hop].reshape(n, hop), dtype=np.float64).mean(axis=1)
        return lo + (int(np.argmin(energy)) + 0.5) * hop / SR
