"""openai-whisper and faster-whisper behind one interface: windows of audio in, segments with
word times (in window seconds) out.

- ``OpenAIWhisper``: ``whisper.load_model(path)`` on the checkpoint the runner hands over, fed
  numpy audio (no ffmpeg binary). ``whisper.transcribe`` runs each window as always (its
  temperature fallback, seeking, word timestamps), the windows of a batch side by side, and
  their decoding passes meet: each round of passes is one batched ``whisper.decode`` call, and each
  round of their word alignments one batched forward (``Lockstep``, ``find_alignments``).
- ``FasterWhisper``: ``faster_whisper.WhisperModel(folder)`` on a CTranslate2 model folder. A batch
  of windows goes through ``BatchedInferencePipeline`` in one call (the windows laid end to end,
  ``clip_timestamps`` at their borders), a single window through ``WhisperModel.transcribe``.

Both decode every window on its own (``condition_on_previous_text=False``: no text, and no
mistake, carried from one window to the next) with word timestamps. The language, when not
given, is detected once on the first window and then fixed for the whole file.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from framework import AUDIO_SAMPLE_RATE, AnalyzerUnavailable, carry_work_stream, random_init

logger = logging.getLogger(__name__)

SR = AUDIO_SAMPLE_RATE
EOT = 50257  # <|endoftext|> in both Whisper vocabularies


@dataclass
class RawWord:
    start: float
    end: float
    text: str
    probability: float | None = None


@dataclass
class RawSegment:
    """One segment as the backend wrote it; times are seconds in the window's audio."""

    start: float
    end: float
    text: str
    words: list[RawWord] = field(default_factory=list)
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    temperature: float | None = None
    tokens: int = 0  # text and timestamp tokens decoded for it


@dataclass
class DecodeOptions:
    """How to decode; mirrors the analyzer's parameters.

    ``max_new_tokens`` caps the tokens per window (tests, benchmarks); ``suppress_eot`` forbids
    end-of-text and every other special token (random weights favour them), so every window
    decodes exactly ``max_new_tokens`` text tokens and word alignment runs on all of them
    (benchmarks only).
    """

    language: str | None = None
    task: str = "transcribe"
    beam_size: int = 5
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    max_new_tokens: int | None = None
    without_timestamps: bool = False
    suppress_eot: bool = False
    initial_prompt: str | None = None


class WhisperBackend:
    """The interface: ``load``, ``detect_language``, ``transcribe`` (a batch of windows), ``unload``."""

    name = ""

    def load(self, path: Path, device: str, precision: str | None) -> None:
        raise NotImplementedError

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        raise NotImplementedError

    def transcribe(self, audios: list[np.ndarray], opts: DecodeOptions) -> list[list[RawSegment]]:
        raise NotImplementedError

    def unload(self) -> None:
        self.model = None

    @property
    def compute(self) -> str:
        """What ran, for the track (device and precision)."""
        return ""

    def decoding_stats(self) -> dict[str, Any]:
        """How the decoding went, for the track (backend-specific; empty when it keeps none)."""
        return {}


def _device_index(device: str) -> tuple[str, int]:
    """``cuda:1`` -> (``cuda``, 1); ``gpu`` (legacy) -> (``cuda``, 0); ``cpu`` -> (``cpu``, 0)."""
    if device in ("gpu", "cuda"):
        return "cuda", 0
    if device.startswith("cuda:"):
        return "cuda", int(device.split(":", 1)[1])
    return "cpu", 0


class OpenAIWhisper(WhisperBackend):
    """openai-whisper: fp16 on a GPU (bf16 runs as fp16, the only half precision it has), fp32 on CPU."""

    name = "openai-whisper"

    def load(self, path: Path, device: str, precision: str | None) -> None:
        try:
            import whisper
        except ImportError as exc:
            raise AnalyzerUnavailable("speech_transcription (openai-whisper): pip install openai-whisper") from exc
        kind, index = _device_index(device)
        if precision in ("int8", "int4"):
            raise AnalyzerUnavailable(f"openai-whisper has no {precision} variant; use backend: faster-whisper "
                                      "for int8, or fp16/fp32")
        self.fp16 = kind == "cuda" and precision != "fp32"
        self.device = f"cuda:{index}" if kind == "cuda" else "cpu"
        # (it builds the model, then loads the checkpoint into it strictly: no random initialisation in between)
        with random_init.skipped():
            self.model = whisper.load_model(str(path), device=self.device)
        self.whisper = whisper
        self.decode_calls = self.decoded_rows = 0  # batched whisper.decode calls, and the mels they decoded
        self.decode_s = self.transcribe_s = 0.0  # in those calls; in transcribe() altogether
        self.align_calls = 0  # batched word alignments

    @property
    def compute(self) -> str:
        return f"{self.device} {'fp16' if self.fp16 else 'fp32'}"

    def decoding_stats(self) -> dict[str, Any]:
        """Batched decode calls and the window passes they decoded, and where the time went: in those
        calls (the device's token loop) and in the rest of ``whisper.transcribe`` (mels, word alignment,
        segment bookkeeping, one window at a time)."""
        return {"decode_calls": self.decode_calls, "window_passes": self.decoded_rows, "align_calls": self.align_calls,
                "decode_s": round(self.decode_s, 3), "outside_decode_s": round(self.transcribe_s - self.decode_s, 3)}

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        import torch

        w = self.whisper
        if not self.model.is_multilingual:
            return "en", 1.0
        mel = w.log_mel_spectrogram(audio, self.model.dims.n_mels, padding=w.audio.N_SAMPLES)
        mel = w.pad_or_trim(mel, w.audio.N_FRAMES).to(self.model.device)
        with torch.inference_mode():
            _, probs = self.model.detect_language(mel.to(torch.float16 if self.fp16 else torch.float32))
        lang = max(probs, key=probs.get)
        return lang, float(probs[lang])

    def transcribe(self, audios: list[np.ndarray], opts: DecodeOptions) -> list[list[RawSegment]]:
        decode: dict[str, Any] = {"task": opts.task, "language": opts.language, "fp16": self.fp16,
                                  "without_timestamps": opts.without_timestamps}
        if opts.max_new_tokens:
            decode["sample_len"] = opts.max_new_tokens
        if opts.suppress_eot:
            decode["suppress_tokens"] = [-1, *range(EOT, self.model.dims.n_vocab)]
        if opts.beam_size > 1:
            decode["beam_size"] = opts.beam_size  # used at temperature 0; best_of at higher ones
            decode["best_of"] = opts.beam_size
        kwargs = dict(verbose=None, temperature=opts.temperatures,
                      compression_ratio_threshold=opts.compression_ratio_threshold,
                      logprob_threshold=opts.logprob_threshold, no_speech_threshold=opts.no_speech_threshold,
                      condition_on_previous_text=False, initial_prompt=opts.initial_prompt, word_timestamps=True,
                      **decode)
        out = []
        t0 = time.perf_counter()
        try:
            results = self._transcribe_windows(audios, kwargs)
        finally:
            self.transcribe_s += time.perf_counter() - t0
        for result in results:
            out.append([RawSegment(
                start=float(s["start"]), end=float(s["end"]), text=s["text"],
                words=[RawWord(float(w["start"]), float(w["end"]), w["word"], float(w.get("probability", 0.0)))
                       for w in s.get("words", [])],
                avg_logprob=s.get("avg_logprob"), no_speech_prob=s.get("no_speech_prob"),
                compression_ratio=s.get("compression_ratio"), temperature=s.get("temperature"),
                tokens=len(s.get("tokens", ())))
                for s in result["segments"]])
        return out

    def _decode_batch(self, mels: Any, options: Any) -> list[Any]:
        """``whisper.decode`` on a batch of mels, beam search and best-of included (``decoding_task``)."""
        import torch

        self.decode_calls += 1
        self.decoded_rows += mels.shape[0]
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                return decoding_task(self.whisper)(self.model, options).run(mels)  # (results on the host)
        finally:
            self.decode_s += time.perf_counter() - t0

    def _align_batch(self, tokenizer: Any, requests: list[tuple[list[int], Any, int]],
                     kwargs: dict[str, Any]) -> list[Any]:
        """``find_alignment`` on a batch of windows' passes (``find_alignments``)."""
        self.align_calls += 1
        return find_alignments(self.whisper, self.model, tokenizer, requests, **kwargs)

    def _transcribe_windows(self, audios: list[np.ndarray], kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        """``whisper.transcribe`` on each window, in lockstep (``Lockstep``): its decode passes batched."""
        import concurrent.futures
        import contextlib

        import torch

        lockstep = Lockstep(self._decode_batch, len(audios), self._align_batch)
        alignment_dispatch(self.whisper)
        device = self.model.device

        def transcribe_one(audio: np.ndarray) -> dict[str, Any]:
            # the current CUDA device is per thread: kernels that follow it (word alignment's) must find the model's
            with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
                return self.whisper.transcribe(self.model, audio, **kwargs)

        self.model.decode = lockstep.decode  # an instance attribute: transcribe calls model.decode(segment, options)
        self.model.lockstep = lockstep  # (where alignment_dispatch finds it)
        try:
            with concurrent.futures.ThreadPoolExecutor(len(audios), thread_name_prefix="speech_transcription-window") as pool:
                # the windows' CUDA work (mels, word alignment, and the batched decodes, which run in
                # whichever window leads) goes to this analyzer's stream, as in the analyzer's own thread
                run = carry_work_stream(lockstep.run)
                futures = [pool.submit(run, transcribe_one, a) for a in audios]
                return [f.result() for f in futures]
        finally:
            del self.model.decode
            del self.model.lockstep


@functools.lru_cache(maxsize=None)
def decoding_task(whisper: Any) -> type:
    """openai-whisper's ``DecodingTask`` with two changes that leave its results as they were:

    - the encoded audio is repeated once per beam (or best-of sample) when more than one mel is
      decoded, as the tokens are: openai-whisper (20231117 to 20250625 at least) no longer does,
      which broadcasts for one mel and fails for a batch (openai/whisper#2197, #2843);
    - beam search keeps its per-step bookkeeping on host copies (``host_beam_search``);
    - the timestamp rules and the suppressed tokens are applied to all rows at once
      (``batched_timestamp_rules``, ``cached_suppress_tokens``).
    """
    beam_search = host_beam_search(whisper)
    timestamp_rules = batched_timestamp_rules(whisper)
    suppress_tokens = cached_suppress_tokens(whisper)

    class DecodingTask(whisper.decoding.DecodingTask):
        def __init__(self, model: Any, options: Any):
            super().__init__(model, options)
            self.inference.rearrange_kv_cache = functools.partial(rearrange_kv_cache, self.inference)
            rows_on_host = None
            if isinstance(self.decoder, whisper.decoding.BeamSearchDecoder):
                self.decoder = beam_search(options.beam_size, self.tokenizer.eot, self.inference, options.patience)
                rows_on_host = self.decoder.rows_on_host
            self.logit_filters = [timestamp_rules.like(f, rows_on_host)
                                  if type(f) is whisper.decoding.ApplyTimestampRules
                                  else suppress_tokens(f.suppress_tokens)
                                  if type(f) is whisper.decoding.SuppressTokens else f
                                  for f in self.logit_filters]

        def _get_audio_features(self, mel: Any) -> Any:
            features = super()._get_audio_features(mel)
            if features.shape[0] > 1 and self.n_group > 1:
                features = features.repeat_interleave(self.n_group, dim=0)
            return features

        def _detect_language(self, audio_features: Any, tokens: Any) -> Any:
            # called before the tokens are repeated: one row of features per mel again
            return super()._detect_language(audio_features[:: audio_features.shape[0] // tokens.shape[0]], tokens)

    return DecodingTask


def alignment_dispatch(whisper: Any) -> None:
    """Put a dispatcher in front of ``whisper.timing.find_alignment`` (once): a model being
    transcribed in lockstep (``model.lockstep`` set) has its windows' alignments batched by it;
    any other call goes to openai-whisper's own function."""
    timing = whisper.timing
    if getattr(timing.find_alignment, "lockstep_dispatch", False):
        return
    original = timing.find_alignment

    def find_alignment(model: Any, tokenizer: Any, text_tokens: list[int], mel: Any, num_frames: int,
                       **kwargs: Any) -> Any:
        lockstep = getattr(model, "lockstep", None)
        if lockstep is None:
            return original(model, tokenizer, text_tokens, mel, num_frames, **kwargs)
        return lockstep.align(tokenizer, text_tokens, mel, num_frames, kwargs)

    find_alignment.lockstep_dispatch = True  # type: ignore[attr-defined]
    timing.find_alignment = find_alignment


#: the most device memory a batched word alignment's logits may take at once (with their softmax: twice
#: this); more windows than fit go through the model in several chunks (18 windows of base, fp16, ~230
#: tokens: 430 MB of logits in one forward, over the plan's estimate for the model)
ALIGN_LOGITS_MB = 128


def find_alignments(whisper: Any, model: Any, tokenizer: Any, requests: list[tuple[list[int], Any, int]], *,
                    medfilt_width: int = 7, qk_scale: float = 1.0) -> list[Any]:
    """openai-whisper's ``find_alignment`` for several windows' passes at once: forwards of the model
    over chunks of their mels and token rows (each row padded after its end-of-text, which no earlier
    position attends to; as many rows a chunk as keep its logits within ``ALIGN_LOGITS_MB``), one read
    of the text tokens' probabilities; then per row what ``find_alignment`` does with its
    cross-attention weights (normalised, median-filtered, DTW) and the same words, times and
    probabilities. ``requests``: (text tokens, mel, number of frames)."""
    import torch

    timing = whisper.timing
    out: list[Any] = [[] for _ in requests]
    rows = [i for i, (text, _, _) in enumerate(requests) if len(text)]
    if not rows:
        return out
    sot = list(tokenizer.sot_sequence)
    seqs = [sot + [tokenizer.no_timestamps] + list(requests[i][0]) + [tokenizer.eot] for i in rows]
    heads = model.alignment_heads.indices().T.tolist()  # (layer, head) pairs
    wanted = {layer: sorted({h for ly, h in heads if ly == layer}) for layer, _ in heads}
    # per row, per layer: its alignment heads' weights (only those kept: a window's weights for every head
    # of every layer of large-v3 would be 768 MB)
    qks: list[dict[int, Any]] = [{} for _ in rows]
    chunk: list[int] = []  # the rows of the forward under way

    def keep(layer: int, qk: Any) -> None:  # (a forward hook's work: each row of the chunk its heads' weights)
        for r, weights in zip(chunk, qk[:, wanted[layer]]):
            qks[r][layer] = weights

    hooks = [block.cross_attn.register_forward_hook(lambda _, ins, outs, index=i: keep(index, outs[-1]))
             for i, block in enumerate(model.decoder.blocks) if i in wanted]
    width = max(len(seq) for seq in seqs)
    per_row = 2 * width * model.dims.n_vocab * next(model.parameters()).element_size()
    size = max(1, int(ALIGN_LOGITS_MB * 2**20 // per_row))
    picked_parts = []
    try:
        with torch.no_grad(), whisper.model.disable_sdpa():
            for first in range(0, len(rows), size):
                chunk[:] = range(first, min(len(rows), first + size))
                w = max(len(seqs[r]) for r in chunk)
                tokens = torch.tensor([seqs[r] + [tokenizer.eot] * (w - len(seqs[r])) for r in chunk]).to(model.device)
                mels = torch.stack([requests[rows[r]][1] for r in chunk])
                probs = model(mels, tokens)[:, len(sot):, :tokenizer.eot].softmax(dim=-1)
                at = [(c, k, t) for c, r in enumerate(chunk) for k, t in enumerate(requests[rows[r]][0])]
                picked_parts.append(probs[[a[0] for a in at], [a[1] for a in at], [a[2] for a in at]])
                del probs
            picked = torch.cat(picked_parts).tolist()
    finally:
        for hook in hooks:
            hook.remove()
    start = 0
    for r, i in enumerate(rows):
        text_tokens, _, num_frames = requests[i]
        text_token_probs = picked[start:start + len(text_tokens)]
        start += len(text_tokens)
        weights = torch.stack([qks[r][layer][wanted[layer].index(head)] for layer, head in heads]
                              )[:, :len(seqs[r]), : num_frames // 2]
        weights = (weights * qk_scale).softmax(dim=-1)
        std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
        weights = timing.median_filter((weights - mean) / std, medfilt_width)
        matrix = weights.mean(axis=0)[len(sot):-1]
        text_indices, time_indices = timing.dtw(-matrix)
        out[i] = _word_timings(timing, tokenizer, list(text_tokens), text_token_probs, text_indices, time_indices)
    return out


def _word_timings(timing: Any, tokenizer: Any, text_tokens: list[int], text_token_probs: list[float],
                  text_indices: Any, time_indices: Any) -> list[Any]:
    """The end of openai-whisper's ``find_alignment``: words from the DTW path's jumps."""
    words, word_tokens = tokenizer.split_to_word_tokens(text_tokens + [tokenizer.eot])
    if len(word_tokens) <= 1:
        return []  # the end-of-text alone
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / timing.TOKENS_PER_SECOND
    starts, ends = jump_times[boundaries[:-1]], jump_times[boundaries[1:]]
    probabilities = [np.mean(text_token_probs[i:j]) for i, j in zip(boundaries[:-1], boundaries[1:])]
    return [timing.WordTiming(word, tokens, start, end, probability)
            for word, tokens, start, end, probability in zip(words, word_tokens, starts, ends, probabilities)]


def rearrange_kv_cache(inference: Any, source_indices: list[int], index: Any = None) -> None:
    """``PyTorchInference.rearrange_kv_cache`` with one index tensor for every cached layer (``index``,
    already on the device, or made once here) instead of a list turned into a tensor per layer: the
    same rows, one host-to-device copy instead of one per key and value of each block."""
    import torch

    if source_indices == list(range(len(source_indices))):
        return
    for module in inference.kv_modules:
        cached = inference.kv_cache[module]
        if index is None or index.device != cached.device:
            index = torch.tensor(source_indices, dtype=torch.int64, device=cached.device)
        inference.kv_cache[module] = cached.index_select(0, index)


@functools.lru_cache(maxsize=None)
def batched_timestamp_rules(whisper: Any) -> type:
    """openai-whisper's ``ApplyTimestampRules`` computing the same masks with one device-to-host copy
    per step. Its ``apply`` loops over the rows (every window's every beam: 90 at 18 windows and
    beam 5), each row a ``tolist``, a boolean index and a comparison read back: about 300 waits
    and 1,000 kernel launches per token. Here the token history is copied once, each row's
    forbidden ranges are worked out on the host, and one mask (built on the device from a
    ``rows x 4`` table of range bounds) and one comparison cover every row."""

    class BatchedTimestampRules(whisper.decoding.ApplyTimestampRules):
        rows_on_host: Any = None  # the beam search's host copy of the token rows (``HostBeamSearch.rows_on_host``)

        @classmethod
        def like(cls, rules: Any, rows_on_host: Any = None) -> "BatchedTimestampRules":
            made = cls(rules.tokenizer, rules.sample_begin, rules.max_initial_timestamp_index)
            made.rows_on_host = rows_on_host
            return made

        def forbidden_ranges(self, sampled: list[list[int]], vocab: int) -> list[list[int]]:
            """Per row, two [start, end) ranges of tokens to forbid ([0, 0) when none): the
            pairing rule's, and the rule that timestamps never decrease (and segments are not empty)."""
            begin, eot = self.tokenizer.timestamp_begin, self.tokenizer.eot
            out = []
            for seq in sampled:
                last = len(seq) >= 1 and seq[-1] >= begin
                penultimate = len(seq) < 2 or seq[-2] >= begin
                pairing = ([begin, vocab] if penultimate else [0, eot]) if last else [0, 0]
                stamps = [t for t in seq if t >= begin]
                floor = (stamps[-1] if last and not penultimate else stamps[-1] + 1) if stamps else begin
                out.append(pairing + [begin, floor])
            return out

        def apply(self, logits: Any, tokens: Any) -> None:
            import torch
            import torch.nn.functional as F

            tok = self.tokenizer
            begin = tok.timestamp_begin
            if tok.no_timestamps is not None:
                logits[:, tok.no_timestamps] = -np.inf
            rows = self.rows_on_host(tokens) if self.rows_on_host is not None else tokens.tolist()
            ranges = self.forbidden_ranges([row[self.sample_begin:] for row in rows], logits.shape[-1])
            bounds = torch.tensor(ranges, dtype=torch.int64).to(logits.device, non_blocking=True)
            cols = torch.arange(logits.shape[-1], device=logits.device)
            mask = (((cols >= bounds[:, 0:1]) & (cols < bounds[:, 1:2]))
                    | ((cols >= bounds[:, 2:3]) & (cols < bounds[:, 3:4])))
            logits.masked_fill_(mask, -np.inf)
            if tokens.shape[1] == self.sample_begin:
                logits[:, :begin] = -np.inf  # no text token first
                if self.max_initial_timestamp_index is not None:
                    logits[:, begin + self.max_initial_timestamp_index + 1:] = -np.inf
            # a timestamp is sampled when the timestamps together are likelier than any text token
            logprobs = F.log_softmax(logits.float(), dim=-1)
            stamp = logprobs[:, begin:].logsumexp(dim=-1) > logprobs[:, :begin].max(dim=-1).values
            logits[:, :begin].masked_fill_(stamp[:, None], -np.inf)

    return BatchedTimestampRules


@functools.lru_cache(maxsize=None)
def cached_suppress_tokens(whisper: Any) -> type:
    """openai-whisper's ``SuppressTokens`` with its token list made a device tensor once, not at every
    step (a list of 1,600 ids when every special token is suppressed)."""

    class CachedSuppressTokens(whisper.decoding.SuppressTokens):
        index: Any = None

        def apply(self, logits: Any, tokens: Any) -> None:
            import torch

            if self.index is None or self.index.device != logits.device:
                self.index = torch.tensor(self.suppress_tokens, dtype=torch.int64, device=logits.device)
            logits.index_fill_(1, self.index, -np.inf)

    return CachedSuppressTokens


def host_beam_search(whisper: Any) -> type:
    """openai-whisper's ``BeamSearchDecoder`` computing the same thing with one device-to-host copy
    per step. Its ``update`` asks the device for every candidate of every beam (a ``topk`` per row
    and an ``.item()`` per candidate: 30 waits per beam per token at beam 5, 1,200 per token for a
    batch of 8 windows); here one ``topk`` over all rows is copied once (log-probabilities and token
    ids in one tensor), and the same float32 sums, ranking and ties are worked out on the host. The
    token rows and sums it hands back are kept on the host as well (``rows_on_host``; the timestamp
    rules read them there too), so the next step reads neither back: on a GPU shared with other
    processes each read waits for this process's turn on the device, one wait instead of five."""

    class HostBeamSearch(whisper.decoding.BeamSearchDecoder):
        _rows: tuple[Any, list[list[int]]] | None = None  # (the tokens tensor last returned, its rows)
        _sums: tuple[Any, np.ndarray] | None = None  # (the sum_logprobs tensor last written, its values)

        def reset(self) -> None:
            super().reset()
            self._rows = self._sums = None

        def rows_on_host(self, tokens: Any) -> list[list[int]]:
            """``tokens.tolist()``, from the host copy when ``tokens`` is the tensor the last update returned."""
            if self._rows is not None and self._rows[0] is tokens:
                return self._rows[1]
            return tokens.tolist()

        def update(self, tokens: Any, logits: Any, sum_logprobs: Any) -> tuple[Any, bool]:
            import torch
            import torch.nn.functional as F

            if tokens.shape[0] % self.beam_size != 0:
                raise ValueError(f"{tokens.shape}[0] % {self.beam_size} != 0")
            n_audio = tokens.shape[0] // self.beam_size
            if self.finished_sequences is None:  # for the first update
                self.finished_sequences = [{} for _ in range(n_audio)]
            width = self.beam_size + 1
            top_logprobs, top_tokens = F.log_softmax(logits.float(), dim=-1).topk(width)
            # token ids below 2**24 are exact in float32: both in one copy
            both = torch.cat([top_logprobs, top_tokens.float()], dim=1).cpu().numpy()
            top_logprobs, top_tokens = both[:, :width], both[:, width:].astype(np.int64).tolist()
            if self._sums is not None and self._sums[0] is sum_logprobs:
                sums = self._sums[1]
            else:
                sums = sum_logprobs.cpu().numpy()  # float32, as the device adds them
            new_sums = sums.copy()
            prefixes = self.rows_on_host(tokens)
            next_tokens, source_indices, finished_sequences = [], [], []
            for i in range(n_audio):
                scores, sources, finished = {}, {}, {}
                for j in range(self.beam_size):
                    idx = i * self.beam_size + j
                    for logprob, token in zip(top_logprobs[idx], top_tokens[idx]):
                        sequence = tuple(prefixes[idx] + [token])
                        scores[sequence] = float(sums[idx] + logprob)
                        sources[sequence] = idx
                saved = 0
                for sequence in sorted(scores, key=scores.get, reverse=True):
                    if sequence[-1] == self.eot:
                        finished[sequence] = scores[sequence]
                    else:
                        new_sums[len(next_tokens)] = scores[sequence]
                        next_tokens.append(sequence)
                        source_indices.append(sources[sequence])
                        saved += 1
                        if saved == self.beam_size:
                            break
                finished_sequences.append(finished)
            sum_logprobs.copy_(torch.from_numpy(new_sums))
            self._sums = (sum_logprobs, new_sums)
            # the rows' sources and new tokens in one copy to the device; the rows made there from them
            sent = torch.tensor(source_indices + [seq[-1] for seq in next_tokens], dtype=torch.int64).to(tokens.device)
            source, new = sent[:len(source_indices)], sent[len(source_indices):]
            tokens = torch.cat([tokens.index_select(0, source), new[:, None].to(tokens.dtype)], dim=1)
            self._rows = (tokens, [list(seq) for seq in next_tokens])
            self.inference.rearrange_kv_cache(source_indices, index=source)
            for previously_finished, newly_finished in zip(self.finished_sequences, finished_sequences):
                for seq in sorted(newly_finished, key=newly_finished.get, reverse=True):
                    if len(previously_finished) >= self.max_candidates:
                        break  # the candidate list is full
                    previously_finished[seq] = newly_finished[seq]
            completed = all(len(sequences) >= self.max_candidates for sequences in self.finished_sequences)
            return tokens, completed

    return HostBeamSearch


class Lockstep:
    """Windows transcribed side by side, whose ``model.decode`` calls meet and run as one batch, and
    so do their word alignments (``whisper.timing.find_alignment``, through ``alignment_dispatch``).

    ``whisper.transcribe`` decodes a window in several passes: the first, then the rest of the
    window after it seeks past the last word, and a higher temperature when a pass fails its
    checks. Each window runs in its own thread; a thread that asks for a decode waits until every
    window still running has asked too (or finished), and the last to ask decodes them all, grouped
    by identical ``DecodingOptions`` (``OpenAIWhisper._decode_batch``). One thread runs at a time
    (the condition's lock is a baton, released only while waiting), so the model's hooks (the
    decoder's key/value cache, word alignment's attention hooks) are never used by two at once:
    the decodes are batched, nothing else runs concurrently, and every window makes exactly the
    decode calls it makes alone.
    """

    def __init__(self, decode_batch: Any, windows: int, align_batch: Any = None):
        self.decode_batch = decode_batch
        self.align_batch = align_batch
        self.baton = threading.Condition(threading.Lock())
        self.active = windows
        self.pending: list[dict[str, Any]] = []

    def decode(self, segment: Any, options: Any) -> Any:
        """``model.decode`` for the windows' threads (called holding the baton)."""
        return self._ask({"kind": "decode", "segment": segment, "key": options})

    def align(self, tokenizer: Any, text_tokens: list[int], mel: Any, num_frames: int, kwargs: dict[str, Any]) -> Any:
        """``whisper.timing.find_alignment`` for the windows' threads (called holding the baton):
        the word alignments asked for in a round run as one batch too (``align_batch``)."""
        return self._ask({"kind": "align", "args": (text_tokens, mel, num_frames),
                          "key": (id(tokenizer), tuple(sorted(kwargs.items()))), "tokenizer": tokenizer,
                          "kwargs": kwargs})

    def _ask(self, request: dict[str, Any]) -> Any:
        self.pending.append(request)
        self._maybe_lead()
        while "result" not in request and "error" not in request:
            self.baton.wait()
        if "error" in request:
            raise request["error"]
        return request["result"]

    def run(self, transcribe: Any, audio: Any) -> Any:
        """Run ``transcribe(audio)`` in this thread, holding the baton; leave the lockstep after it."""
        with self.baton:
            try:
                return transcribe(audio)
            finally:
                self.active -= 1
                self._maybe_lead()

    def _maybe_lead(self) -> None:
        import torch

        if not self.pending or len(self.pending) < self.active:
            return
        pending, self.pending = self.pending, []
        group: list[dict[str, Any]] = []
        try:
            while pending:
                kind, key = pending[0]["kind"], pending[0]["key"]
                same = [r["kind"] == kind and r["key"] == key for r in pending]  # options hold lists: not hashable
                group = [r for r, s in zip(pending, same) if s]
                pending = [r for r, s in zip(pending, same) if not s]
                if kind == "decode":
                    results = self.decode_batch(torch.stack([r["segment"] for r in group]), key)
                else:
                    results = self.align_batch(group[0]["tokenizer"], [r["args"] for r in group], group[0]["kwargs"])
                for r, result in zip(group, results):
                    r["result"] = result
        except BaseException as exc:  # the device's error (out of memory...) reaches every waiting window
            for r in pending + [r for r in group if "result" not in r]:
                r["error"] = exc
        finally:
            self.baton.notify_all()


def preload_cuda12_libraries() -> list[str]:
    """Load CUDA 12 cuBLAS from the ``nvidia-cublas-cu12`` wheel when it is installed, so that
    CTranslate2 (which opens ``libcublas.so.12`` by name at run time) finds it without
    ``LD_LIBRARY_PATH``. Returns the files loaded (none when the wheel is absent or they already load)."""
    import ctypes
    import importlib.util

    loaded = []
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        for name in ("cublas/lib/libcublasLt.so.12", "cublas/lib/libcublas.so.12"):
            path = Path(root) / name
            if path.is_file():
                try:
                    ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
                    loaded.append(str(path))
                except OSError as exc:
                    logger.info("could not preload %s: %s", path, exc)
    return loaded


# CTranslate2 compute types for the plan's precision variants (None: CTranslate2's default for the model)
CT2_COMPUTE = {"cuda": {"fp16": "float16", "bf16": "bfloat16", "int8": "int8_float16", "fp32": "float32"},
               "cpu": {"fp16": "float32", "bf16": "float32", "int8": "int8", "fp32": "float32"}}


class FasterWhisper(WhisperBackend):
    """faster-whisper (CTranslate2); int8 works on both devices. A GPU needs CUDA 12 cuBLAS at run time."""

    name = "faster-whisper"

    def load(self, path: Path, device: str, precision: str | None) -> None:
        try:
            import faster_whisper
        except ImportError as exc:
            raise AnalyzerUnavailable("speech_transcription (faster-whisper): pip install faster-whisper") from exc
        kind, index = _device_index(device)
        if precision == "int4":
            raise AnalyzerUnavailable("faster-whisper has no int4 variant; use int8, fp16 or fp32")
        self.compute_type = CT2_COMPUTE[kind].get(precision or "", "default")
        self.device = f"{kind}:{index}" if kind == "cuda" else "cpu"
        if kind == "cuda":
            preload_cuda12_libraries()
        try:
            self.model = faster_whisper.WhisperModel(str(path), device=kind, device_index=index,
                                                     compute_type=self.compute_type)
        except RuntimeError as exc:
            if kind == "cuda" and ("cublas" in str(exc).lower() or "cudnn" in str(exc).lower()):
                raise AnalyzerUnavailable(f"faster-whisper on {device}: {exc}. CTranslate2 loads CUDA 12 "
                                          "libraries at run time: pip install nvidia-cublas-cu12 and put its lib "
                                          "folder on LD_LIBRARY_PATH") from exc
            raise
        self.pipeline = faster_whisper.BatchedInferencePipeline(self.model)

    @property
    def compute(self) -> str:
        return f"{self.device} {self.compute_type}"

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        if not self.model.model.is_multilingual:
            return "en", 1.0
        lang, prob, _ = self.model.detect_language(audio=audio)
        return lang, float(prob)

    def _kwargs(self, opts: DecodeOptions) -> dict[str, Any]:
        kw: dict[str, Any] = {"language": opts.language, "task": opts.task, "beam_size": opts.beam_size,
                              "word_timestamps": True, "without_timestamps": opts.without_timestamps,
                              "initial_prompt": opts.initial_prompt}
        if opts.max_new_tokens:
            kw["max_new_tokens"] = opts.max_new_tokens
        if opts.suppress_eot:
            kw["suppress_tokens"] = [-1, *range(EOT, self.model.hf_tokenizer.get_vocab_size())]
        return kw

    def transcribe(self, audios: list[np.ndarray], opts: DecodeOptions) -> list[list[RawSegment]]:
        if len(audios) == 1:
            segments, _info = self.model.transcribe(
                audios[0], vad_filter=False, condition_on_previous_text=False, temperature=list(opts.temperatures),
                compression_ratio_threshold=opts.compression_ratio_threshold,
                log_prob_threshold=opts.logprob_threshold, no_speech_threshold=opts.no_speech_threshold,
                **self._kwargs(opts))
            return [[_from_faster(s, 0.0) for s in segments]]
        # one batched call: the windows end to end, each one a clip (times at sample centres so that
        # faster-whisper's int(t * 16000) lands on the exact first and last sample)
        starts = np.cumsum([0] + [a.size for a in audios])
        joined = np.concatenate(audios).astype(np.float32, copy=False)
        clips = [{"start": (a + 0.5) / SR, "end": (b - 0.5) / SR} for a, b in zip(starts[:-1], starts[1:])]
        segments, _info = self.pipeline.transcribe(
            joined, clip_timestamps=clips, batch_size=len(audios), temperature=opts.temperatures[0],
            vad_filter=False, **self._kwargs(opts))
        out: list[list[RawSegment]] = [[] for _ in audios]
        bounds = starts / SR
        for s in segments:
            k = int(np.clip(np.searchsorted(bounds, (s.start + s.end) / 2, side="right") - 1, 0, len(audios) - 1))
            out[k].append(_from_faster(s, float(bounds[k])))
        return out


def _from_faster(s: Any, shift: float) -> RawSegment:
    return RawSegment(start=s.start - shift, end=s.end - shift, text=s.text,
                      words=[RawWord(w.start - shift, w.end - shift, w.word, w.probability) for w in (s.words or [])],
                      avg_logprob=s.avg_logprob, no_speech_prob=s.no_speech_prob,
                      compression_ratio=s.compression_ratio, temperature=s.temperature, tokens=len(s.tokens or ()))


BACKENDS: dict[str, type[WhisperBackend]] = {OpenAIWhisper.name: OpenAIWhisper, FasterWhisper.name: FasterWhisper}
