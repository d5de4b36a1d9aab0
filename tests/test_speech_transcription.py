"""speech_transcription on tiny random Whisper checkpoints in each backend's own format.

Random weights prove loading, windowing, time mapping and the device step, never text quality:
the words asserted on here are noise, and nothing below reads them as a transcript. Decoding is
capped (``max_new_tokens``) so the tests stay fast.
"""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from analyzers.speech_transcription import SpeechTranscription, whisper_model_id
from analyzers.voice_activity import VoiceActivity
from framework import Event, Track
from speech_fixtures import (SR, audio_inputs, chords, formant_speech, silence, silero_path, tiny_whisper_ct2,  # noqa: F401
                             tiny_whisper_pt, tone)

FAST = {"max_new_tokens": 5, "beam_size": 1, "temperature_fallback": False, "no_speech_threshold": None,
        "compression_ratio_threshold": None}
START = 1.5


def vad_track(regions: list[tuple[float, float]]) -> Track:
    """An upstream voice-activity track with these speech regions (as voice_activity writes it)."""
    return Track(analyzer="voice_activity", version="1", params={}, params_hash="x", provides=["voice_activity"],
                 events=[Event(start=a, end=b, label="speech") for a, b in regions])


@pytest.fixture(scope="module")
def programme(tmp_path_factory):
    """Speech, a tone, chords and silence; the real VAD's track; the inputs for transcription."""
    parts = [silence(1.0), formant_speech(3.0, seed=0).samples, silence(2.0), tone(4.0), silence(1.0), chords(4.0),
             silence(1.0), formant_speech(3.0, seed=1).samples, silence(1.0)]
    y = np.concatenate(parts)
    vad = VoiceActivity()
    vad.load("cpu", {"silero-vad": silero_path()})
    folder = tmp_path_factory.mktemp("programme")
    track = vad.analyze(audio_inputs(folder, y, start_time=START))
    assert len(track.events) >= 2
    spans, t = [], START
    for kind, part in zip(["sil", "speech", "sil", "tone", "sil", "music", "sil", "speech", "sil"], parts):
        spans.append((kind, t, t + part.size / SR))
        t += part.size / SR
    return y, track, spans, folder


def transcribe(backend: str, path: Path, y: np.ndarray, vad: Track, folder: Path, **params) -> tuple[SpeechTranscription, Track]:
    a = SpeechTranscription({"backend": backend, "model": "tiny", **FAST, **params})
    assert a.model_ids() == [whisper_model_id(backend, "tiny")]
    a.load("cpu", {a.model_ids()[0]: path})
    return a, a.analyze(audio_inputs(folder, y, start_time=START, upstream={"voice_activity": vad}))


def check_times(track: Track, vad: Track, y: np.ndarray) -> None:
    """Every word inside the audio and inside one speech region; words and segments monotonic."""
    regions = [(e.start, e.end) for e in vad.events]
    words = [e for e in track.events if e.label == "word"]
    segments = [e for e in track.events if e.label == "speech"]
    assert words and segments
    end = START + y.size / SR
    for w in words:
        assert START <= w.start <= w.end <= end
        assert any(a - 1e-3 <= w.start and w.end <= b + 1e-3 for a, b in regions), (w, regions)
        assert w.data["text"]
    for seq in (words, segments):
        assert all(b.start >= a.end - 1e-3 or b.start >= a.start for a, b in zip(seq, seq[1:]))
        assert all(b.start >= a.start for a, b in zip(seq, seq[1:]))
    assert all(b.start >= a.end - 1e-3 for a, b in zip(words, words[1:]))
    for s in segments:
        assert s.data["text"].strip() and s.data["language"] == track.data["language"]


@pytest.mark.parametrize("backend,fixture,batch", [("openai-whisper", "tiny_whisper_pt", 8),
                                                   ("faster-whisper", "tiny_whisper_ct2", 8)])
def test_each_backend_loads_its_own_format_and_writes_words_inside_speech(backend, fixture, batch, programme, request):
    y, vad, _, folder = programme
    _, track = transcribe(backend, request.getfixturevalue(fixture), y, vad, folder, batch_size=batch)
    check_times(track, vad, y)
    d = track.data
    assert d["backend"] == backend and d["model"] == whisper_model_id(backend, "tiny") and "cpu" in d["compute"]
    assert d["windows"] >= 1 and d["segments"] == sum(e.label == "speech" for e in track.events)
    assert d["word_count"] == sum(e.label == "word" for e in track.events)
    assert d["speech_s"] == pytest.approx(sum(e.duration for e in vad.events), abs=0.01)
    import whisper.tokenizer

    assert d["language"] in whisper.tokenizer.LANGUAGES  # detected once, on the first window
    assert 0.0 <= d["language_probability"] <= 1.0
    assert track.provides == ["transcript"]
    assert track.receipt["step"]["items"] == d["windows"]
    if backend == "openai-whisper":  # its account of the decoding: every window decoded at least once, in batches
        dec = d["decoding"]
        assert 1 <= dec["decode_calls"] <= dec["window_passes"] and dec["window_passes"] >= d["windows"]
        assert dec["decode_s"] > 0 and dec["outside_decode_s"] >= 0
    else:
        assert "decoding" not in d


def test_silence_tones_and_music_are_never_sent_to_the_model(programme, tiny_whisper_ct2, monkeypatch):
    """A spy between the analyzer and the backend sees every sample Whisper gets (faster-whisper
    one window per call: its unbatched path)."""
    y, vad, spans, folder = programme
    a = SpeechTranscription({"backend": "faster-whisper", "model": "tiny", "batch_size": 1, **FAST})
    a.load("cpu", {"faster-whisper-tiny": tiny_whisper_ct2})
    heard: list[np.ndarray] = []
    real = a.backend.transcribe

    def spy(audios, opts):
        heard.extend(audios)
        return real(audios, opts)

    monkeypatch.setattr(a.backend, "transcribe", spy)
    track = a.analyze(audio_inputs(folder, y, start_time=START, upstream={"voice_activity": vad}))
    check_times(track, vad, y)
    assert heard and sum(x.size for x in heard) / SR == pytest.approx(track.data["audio_sent_s"], abs=0.01 * len(heard))
    # what it heard is the speech regions only: no stretch of the tone or the chords, no long silence
    for w in a._windows:
        for p in w.pieces:
            for kind, s, e in spans:
                if kind in ("tone", "music"):
                    assert min(p.end, e) - max(p.start, s) <= 0.25, (p, kind, s, e)
    for x in heard:
        spectrum = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(x.size, 1 / SR)
        assert spectrum[np.abs(freqs - 440) < 3].sum() < 0.05 * spectrum.sum()  # no 440 Hz tone in there
        quiet = np.abs(x) < 1e-4
        longest = max((len(r) for r in np.split(quiet, np.flatnonzero(np.diff(quiet.astype(int))) + 1) if r.all()),
                      default=0)
        assert longest / SR < 1.0  # no long silence (the joints are 0.3 s)


def test_audio_without_speech_never_reaches_the_model(tmp_path, tiny_whisper_pt, monkeypatch):
    y = np.concatenate([silence(2.0), tone(5.0), silence(2.0), chords(5.0), silence(1.0)])
    vad = VoiceActivity()
    vad.load("cpu", {"silero-vad": silero_path()})
    vtrack = vad.analyze(audio_inputs(tmp_path, y))
    assert vtrack.events == []
    a = SpeechTranscription({"backend": "openai-whisper", "model": "tiny", **FAST})
    a.load("cpu", {"whisper-tiny": tiny_whisper_pt})
    calls = []
    monkeypatch.setattr(a.backend, "transcribe", lambda audios, opts: calls.append(audios) or [[] for _ in audios])
    monkeypatch.setattr(a.backend, "detect_language", lambda audio: calls.append(audio) or ("en", 1.0))
    track = a.analyze(audio_inputs(tmp_path, y, upstream={"voice_activity": vtrack}))
    assert calls == [] and track.events == [] and track.data["windows"] == 0 and track.data["audio_sent_s"] == 0


def bursts(folder: Path, minutes: float, upstream: bool = True):
    """``minutes`` of silence with a 1.5 s speech burst every 37 s, and the bursts' regions."""
    y = np.zeros(int(minutes * 60 * SR), dtype=np.float32)
    burst = formant_speech(1.5, seed=3).samples
    regions = []
    for t in np.arange(5.0, minutes * 60 - 5, 37.0):
        i = int(t * SR)
        y[i:i + burst.size] = burst
        regions.append((round(START + t, 3), round(START + t + burst.size / SR, 3)))
    return audio_inputs(folder, y, start_time=START, upstream={"voice_activity": vad_track(regions)}), regions


def test_long_audio_in_windows_keeps_every_word_in_place_and_memory_flat(tmp_path, tiny_whisper_ct2):
    """A burst every 37 s: each word lands in its own burst, however late in the file; the peak of
    Python allocations does not grow with the file (12 minutes are 46 MB of samples, never read whole)."""
    a = SpeechTranscription({"backend": "faster-whisper", "model": "tiny", "max_join_gap_s": 0.0, "batch_size": 4,
                             **FAST})
    a.load("cpu", {"faster-whisper-tiny": tiny_whisper_ct2})
    peaks = {}  # both files have more windows than a batch, so only the file's length differs
    for minutes in (3, 12):
        inputs, regions = bursts(tmp_path / str(minutes), minutes)
        tracemalloc.start()
        track = a.analyze(inputs)
        peaks[minutes] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        words = [e for e in track.events if e.label == "word"]
        assert track.data["windows"] == len(regions)  # max_join_gap_s=0: one window per burst
        hit = {next(i for i, (lo, hi) in enumerate(regions) if lo - 1e-3 <= w.start and w.end <= hi + 1e-3)
               for w in words}
        assert max(hit) == len(regions) - 1 and len(hit) >= 0.8 * len(regions)
    assert peaks[12] < 0.5 * 12 * 60 * SR * 4, peaks
    assert peaks[12] - peaks[3] < 3e6, peaks


def test_params_pick_the_manifest_model_and_refuse_impossible_settings():
    assert SpeechTranscription({"model": "large-v3"}).model_ids() == ["whisper-large-v3"]
    assert SpeechTranscription({"backend": "faster-whisper", "model": "base.en"}).model_ids() == ["faster-whisper-base-en"]
    assert SpeechTranscription({"model_id": "my-whisper"}).model_ids() == ["my-whisper"]
    from analyzers.speech_transcription import SIZES
    from framework.models import load_manifest

    manifest = load_manifest()
    for backend in ("openai-whisper", "faster-whisper"):
        for size in SIZES:  # every size of both backends is a model `framework models pull` knows
            assert manifest[whisper_model_id(backend, size)].task == "automatic-speech-recognition"
    with pytest.raises(ValueError, match="suppress_eot needs max_new_tokens"):
        SpeechTranscription({"suppress_eot": True})
    with pytest.raises(ValueError):
        SpeechTranscription({"window_s": 45})


def test_openai_whisper_decodes_the_passes_of_a_batch_of_windows_together(tiny_whisper_pt):
    """transcribe() on three windows runs them in lockstep: each round of decoding passes (first
    passes, passes after a seek, temperature fallbacks) is one batched whisper.decode call per set of
    options, and the segments and words are those of the windows transcribed one at a time (tokens,
    text and times; log-probabilities to rounding)."""
    from analyzers._speech.whisper_backends import DecodeOptions, OpenAIWhisper
    from speech_fixtures import formant_speech

    backend = OpenAIWhisper()
    backend.load(tiny_whisper_pt, "cpu", None)
    audios = [formant_speech(d, seed=i).samples for i, d in enumerate((4.0, 7.0, 2.5))]
    opts = DecodeOptions(language="en", beam_size=2, max_new_tokens=12, temperatures=(0.0, 0.4),
                         no_speech_threshold=None, compression_ratio_threshold=None, logprob_threshold=None)
    alone, calls, aligns = [], [], []
    for a in audios:
        backend.decode_calls = backend.align_calls = 0
        alone.append(backend.transcribe([a], opts)[0])
        calls.append(backend.decode_calls)
        aligns.append(backend.align_calls)
    assert max(calls) > 1  # these windows need more than one pass each: later passes are batched too
    backend.decode_calls = backend.decoded_rows = backend.align_calls = 0
    together = backend.transcribe(audios, opts)
    assert backend.decoded_rows == sum(calls)  # every pass each window makes alone, no more, no fewer
    assert max(calls) <= backend.decode_calls < sum(calls)  # ... in fewer, batched calls
    assert max(aligns) <= backend.align_calls < sum(aligns)  # and their word alignments too
    assert [len(w) for w in together] == [len(w) for w in alone] and all(alone)
    for segs_b, segs_a in zip(together, alone):
        for b, a in zip(segs_b, segs_a):
            assert (b.text, b.tokens, b.start, b.end) == (a.text, a.tokens, a.start, a.end)
            assert [(w.text, w.start, w.end) for w in b.words] == [(w.text, w.start, w.end) for w in a.words]
            assert b.avg_logprob == pytest.approx(a.avg_logprob, abs=1e-3)
    # the same window twice: every round decodes both together
    backend.decode_calls = backend.decoded_rows = 0
    twice = backend.transcribe([audios[1], audios[1]], opts)
    assert [[s.text for s in w] for w in twice] == [[s.text for s in alone[1]]] * 2
    assert backend.decode_calls == calls[1] and backend.decoded_rows == 2 * calls[1]


@pytest.mark.parametrize("logits_mb", [None, 0.001])
def test_batched_word_alignment_gives_what_openai_whispers_find_alignment_gives_each_pass(tiny_whisper_pt, logits_mb,
                                                                                          monkeypatch):
    """``find_alignments`` on several passes at once (token rows of different lengths, one empty)
    against openai-whisper's ``find_alignment`` on each alone: the same words, tokens and times,
    probabilities to rounding; in one forward, and one row at a time when the logits' budget
    (``ALIGN_LOGITS_MB``) holds no more."""
    import torch
    import whisper
    from whisper.tokenizer import get_tokenizer

    from analyzers._speech.whisper_backends import OpenAIWhisper, alignment_dispatch, find_alignments
    from speech_fixtures import formant_speech

    if logits_mb is not None:
        monkeypatch.setattr("analyzers._speech.whisper_backends.ALIGN_LOGITS_MB", logits_mb)
    backend = OpenAIWhisper()
    backend.load(tiny_whisper_pt, "cpu", None)
    alignment_dispatch(whisper)  # (installed: a model not in lockstep still gets openai-whisper's own)
    forwards = []
    hook = backend.model.encoder.register_forward_hook(lambda m, ins, out: forwards.append(out.shape[0]))
    tok = get_tokenizer(backend.model.is_multilingual, num_languages=backend.model.num_languages, language="en",
                        task="transcribe")
    rng = np.random.default_rng(3)
    requests = []
    for i, (seconds, n_tokens) in enumerate(((3.0, 9), (5.0, 17), (2.0, 0), (4.0, 4))):
        mel = whisper.pad_or_trim(whisper.log_mel_spectrogram(formant_speech(seconds, seed=i).samples),
                                  whisper.audio.N_FRAMES)
        text = tok.encode(" hello there, how are you today? fine thanks")[:n_tokens] if i != 3 else \
            [int(t) for t in rng.integers(0, tok.eot, n_tokens)]
        requests.append((text, mel, int(seconds * 100)))
    with torch.no_grad():
        ours = find_alignments(whisper, backend.model, tok, requests)
        assert forwards == ([3] if logits_mb is None else [1, 1, 1])  # the empty pass needs none
        hook.remove()
        theirs = [whisper.timing.find_alignment(backend.model, tok, text, mel, frames) for text, mel, frames in requests]
    assert [len(w) for w in ours] == [len(w) for w in theirs] and ours[2] == [] and all(ours[i] for i in (0, 1, 3))
    for a_words, b_words in zip(ours, theirs):
        assert [(w.word, w.tokens, w.start, w.end) for w in a_words] == [(w.word, w.tokens, w.start, w.end) for w in b_words]
        assert [w.probability for w in a_words] == pytest.approx([w.probability for w in b_words], abs=1e-5)


def test_a_failing_decode_reaches_every_window_of_the_batch(tiny_whisper_pt, monkeypatch):
    from analyzers._speech.whisper_backends import DecodeOptions, OpenAIWhisper
    from speech_fixtures import formant_speech

    backend = OpenAIWhisper()
    backend.load(tiny_whisper_pt, "cpu", None)

    def out_of_memory(mels, options):
        raise MemoryError("device out of memory (simulated)")

    monkeypatch.setattr(backend, "_decode_batch", out_of_memory)
    opts = DecodeOptions(language="en", beam_size=1, max_new_tokens=4, temperatures=(0.0,))
    with pytest.raises(MemoryError, match="simulated"):
        backend.transcribe([formant_speech(2.0, seed=i).samples for i in range(3)], opts)
    assert "decode" not in vars(backend.model)  # the model's own decode is back


def test_batched_beam_search_gives_what_openai_whisper_gives_each_window_alone(tiny_whisper_pt):
    """Our decoding task (audio repeated per beam for a batch; the beam bookkeeping on the host)
    against openai-whisper's own ``whisper.decode`` on each mel alone: the same tokens and scores."""
    import torch
    import whisper

    from analyzers._speech.whisper_backends import OpenAIWhisper
    from speech_fixtures import formant_speech

    backend = OpenAIWhisper()
    backend.load(tiny_whisper_pt, "cpu", None)
    mels = torch.stack([whisper.pad_or_trim(whisper.log_mel_spectrogram(formant_speech(d, seed=i).samples),
                                            whisper.audio.N_FRAMES) for i, d in enumerate((3.0, 5.0, 2.0))])
    for options in (whisper.DecodingOptions(language="en", beam_size=3, sample_len=10, fp16=False),
                    whisper.DecodingOptions(language="en", beam_size=2, patience=2.0, sample_len=8, fp16=False,
                                            without_timestamps=True)):
        ours = backend._decode_batch(mels, options)
        theirs = [whisper.decode(backend.model, mel, options) for mel in mels]
        assert [r.tokens for r in ours] == [r.tokens for r in theirs]
        assert [r.avg_logprob for r in ours] == pytest.approx([r.avg_logprob for r in theirs], abs=1e-5)
        assert [r.text for r in ours] == [r.text for r in theirs]
    with pytest.raises(RuntimeError):  # what the batch works around: openai-whisper's own batched beam search
        whisper.decode(backend.model, mels, whisper.DecodingOptions(language="en", beam_size=2, sample_len=4,
                                                                     fp16=False))


def test_the_default_batch_is_what_the_vram_plan_allows_on_a_gpu_and_eight_elsewhere():
    """On a GPU a batch lasts as long as its slowest window's passes, so by default the plan sizes it
    (up to 32 windows); a CPU gets 8; a configured batch_size is kept. The plan's per-window memory
    follows the model's decoder and the beam width."""
    from analyzers.speech_transcription import CPU_BATCH, GPU_BATCH
    from framework.scheduler import Demand, Placement, plan

    base, large = SpeechTranscription({}), SpeechTranscription({"model": "large-v3"})
    assert base.max_batch_size() == GPU_BATCH == 32  # planning: the demand asks for a full batch
    assert base.item_vram_mb < SpeechTranscription({"model": "small"}).item_vram_mb < large.item_vram_mb
    assert SpeechTranscription({"beam_size": 1}).item_vram_mb * 5 == pytest.approx(base.item_vram_mb, abs=0.2)
    assert SpeechTranscription({"model": "base.en"}).item_vram_mb == base.item_vram_mb
    assert 100 < base.item_vram_mb < 200 and 1500 < large.item_vram_mb < 2500

    def planned_batch(a: SpeechTranscription, weights_mb: float, budget_mb: float) -> int:
        demand = Demand("speech_transcription", "gpu", weights_mb, item_vram_mb=a.item_vram_mb,
                        max_batch=a.max_batch_size())
        return plan([demand], budget_mb, ["cuda:0"]).placements["speech_transcription"].max_batch

    assert planned_batch(base, 1024, 12 * 1024) == 32  # base fits a whole batch on a 3060
    assert planned_batch(large, 4096, 12 * 1024) == 5  # large-v3 at beam 5 does not: 1 + 8 GB // 1.9 GB
    base.placement = Placement("cuda:0", max_batch=5)
    assert base.max_batch_size() == 32  # the device step caps it with the placement's 5
    base.placement = Placement("cpu")
    assert base.max_batch_size() == CPU_BATCH == 8
    assert SpeechTranscription({"batch_size": 4}).max_batch_size() == 4


def test_loaded_on_the_cpu_without_a_plan_the_batch_is_the_cpu_one(tiny_whisper_pt):  # noqa: F811
    a = SpeechTranscription({"model": "tiny", **FAST})
    a.load("cpu", {a.model_ids()[0]: tiny_whisper_pt})
    assert a.max_batch_size() == 8



@pytest.mark.gpu
def test_on_a_gpu_the_windows_work_on_the_analyzers_stream_and_decode_as_on_the_default_one(tiny_whisper_pt):
    """Whisper's window threads carry the analyzer's work stream (``framework.work_streams``): on
    CUDA, the lockstep batch of windows inside a stream of its own gives the segments and words it
    gives on the default stream, and its CUDA work ran on that stream."""
    import torch

    from analyzers._speech.whisper_backends import DecodeOptions, OpenAIWhisper
    from framework.work_streams import torch_stream, using
    from speech_fixtures import formant_speech

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    backend = OpenAIWhisper()
    backend.load(tiny_whisper_pt, "cuda", None)
    audios = [formant_speech(d, seed=i).samples for i, d in enumerate((4.0, 7.0, 2.5))]
    opts = DecodeOptions(language="en", beam_size=2, max_new_tokens=12, temperatures=(0.0, 0.4),
                         no_speech_threshold=None, compression_ratio_threshold=None, logprob_threshold=None)
    plain = backend.transcribe(audios, opts)
    seen = set()
    decode_batch = backend._decode_batch

    def recording(mels, options):
        seen.add(torch.cuda.current_stream().cuda_stream)
        return decode_batch(mels, options)

    backend._decode_batch = recording
    with using(torch_stream(torch, "cuda:0")):
        mine = torch.cuda.current_stream().cuda_stream
        streamed = backend.transcribe(audios, opts)
    assert seen == {mine} and mine != torch.cuda.default_stream().cuda_stream
    assert [[(s.text, s.tokens, s.start, s.end) for s in w] for w in streamed] == \
        [[(s.text, s.tokens, s.start, s.end) for s in w] for w in plain]
    assert [[[(x.text, x.start, x.end) for x in s.words] for s in w] for w in streamed] == \
        [[[(x.text, x.start, x.end) for x in s.words] for s in w] for w in plain]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("initial_index", [None, 50])
def test_the_batched_timestamp_rules_mask_what_openai_whispers_row_by_row_rules_mask(initial_index, device):
    """Our ``ApplyTimestampRules`` (one host copy per step, every row masked at once) against
    openai-whisper's own on the same logits and token histories: texts, timestamp pairs, lone and
    decreasing timestamps, the first step; the same -inf everywhere, the same values elsewhere.
    Likewise the suppressed tokens (a cached index against the list)."""
    import torch
    import whisper
    from whisper.tokenizer import get_tokenizer

    from analyzers._speech.whisper_backends import batched_timestamp_rules, cached_suppress_tokens

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    tok = get_tokenizer(multilingual=True, language="en", task="transcribe")
    begin, vocab, sample_begin = tok.timestamp_begin, 51865, 3
    rng = np.random.default_rng(7)

    def history(n: int) -> list[int]:
        out = []
        for _ in range(n):
            kind = rng.integers(3)
            out.append(int(rng.integers(0, tok.eot)) if kind == 0 else int(rng.integers(begin, vocab)) if kind == 1
                       else begin + int(rng.integers(0, 40)))
        return out

    theirs_rules = whisper.decoding.ApplyTimestampRules(tok, sample_begin, initial_index)
    ours_rules = batched_timestamp_rules(whisper).like(theirs_rules)
    checked = 0
    for length in (0, 1, 2, 5, 12):
        rows = [list(tok.sot_sequence) + history(length) for _ in range(24)]
        rows[0][sample_begin:] = [begin + 5, begin + 5][:length] + rows[0][sample_begin + 2:]  # a closed pair
        tokens = torch.tensor(rows, device=device)
        for scale in (1.0, 8.0):  # with large logits the timestamps sometimes win the last rule
            logits = torch.from_numpy(rng.normal(0, scale, (len(rows), vocab)).astype(np.float32)).to(
                device, torch.float16 if device == "cuda" else torch.float32)
            theirs, ours = logits.clone(), logits.clone()
            theirs_rules.apply(theirs, tokens)
            ours_rules.apply(ours, tokens)
            assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
            assert torch.equal(ours, theirs)
            checked += int(torch.isinf(theirs).any(dim=1).sum())
    assert checked > 50  # the rules did mask something in most rows

    suppress = list(range(tok.eot, vocab))[::3] + [220, 220]
    logits = torch.from_numpy(rng.normal(0, 1, (4, vocab)).astype(np.float32)).to(device)
    theirs, ours = logits.clone(), logits.clone()
    whisper.decoding.SuppressTokens(suppress).apply(theirs, None)
    cached_suppress_tokens(whisper)(suppress).apply(ours, None)
    assert torch.equal(ours, theirs) and torch.isinf(ours[:, 220]).all()
