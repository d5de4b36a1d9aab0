"""Throughput of the speech models at real size (random weights) through the real analyzers.

Whisper (openai-whisper and faster-whisper backends) and the wav2vec2-large emotion classifier
are built from their published architectures with random weights, saved in each library's
on-disk format (``analyzers/_speech/random_models.py``) and loaded by the analyzers' own code.
The audio is generated speech (formant syllables in utterances of 2-8 s, short pauses, and some
stretches of music and silence that voice activity leaves out), ``--minutes`` long.

Random weights never stop on their own, so every Whisper window decodes exactly ``--tokens``
tokens (end-of-text suppressed, no timestamps, greedy unless ``--beam``, no temperature
fallback; one 5 s window is decoded before timing, for numba's and CUDA's first-use work): the
numbers measure the encoder, a fixed decode length and word alignment per 30 s window, not a real
transcript's length. Two quirks, both visible in the ``tokens/window`` column:
openai-whisper's ``transcribe`` decodes a window again from its last word's end when the text
does not end on a timestamp (with random weights: every window, so two passes per window), and
CTranslate2 4.8 stops these random models at half of ``max_length`` (so faster-whisper is asked
for 2N + 4 tokens to decode N). ``audio s/s`` is seconds of the file per wall second of
the transcription step alone (voice activity is timed on its own line); ``speech s/s`` counts
only the speech Whisper heard. Peak memory: on a GPU, device memory in use (``mem_get_info``,
which sees CTranslate2's allocations too) above what was in use before loading; on a CPU, the
process's resident memory above the same baseline.

    # GPU, in two commands that each stay well under 10 minutes on one H200 (large-v3 is built
    # twice at 1.55 B parameters, ~6 GB each in fp32, before it runs):
    python bench/audio_throughput.py --device cuda --minutes 10 --models base --wav2vec2 \\
        --backends openai-whisper,faster-whisper --precision fp16 --tokens 96 --batch 16 \\
        --out bench/results/audio_throughput_h200_base.md
    python bench/audio_throughput.py --device cuda --minutes 10 --models large-v3 \\
        --backends openai-whisper,faster-whisper --precision fp16 --tokens 96 --batch 16 \\
        --out bench/results/audio_throughput_h200_large_v3.md
    # this 2-core machine:
    python bench/audio_throughput.py --device cpu --threads 1 --minutes 2 --models tiny,base --tokens 32 \\
        --batch 4 --out bench/results/audio_throughput_cpu.md
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model, load_text  # noqa: E402

SR = 16_000


def speech_audio(minutes: float, seed: int = 0) -> tuple[np.ndarray, float]:
    """Utterances of formant speech with pauses, and now and then music or silence; (samples, speech s)."""
    from analyzers._speech.synth import chords, formant_speech, noise

    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * SR)
    out = np.zeros(total, dtype=np.float32)
    t, speech, k = 0.5, 0.0, 0
    while t < minutes * 60 - 9:
        if rng.random() < 0.12:  # a stretch of music or silence nobody should transcribe
            d = rng.uniform(4, 8)
            if rng.random() < 0.6:
                out[int(t * SR):int(t * SR) + int(d * SR)] = chords(d)[:total - int(t * SR)]
            t += d
            continue
        d = rng.uniform(2, 8)
        y = formant_speech(d, f0=rng.uniform(95, 150), seed=k).samples
        out[int(t * SR):int(t * SR) + y.size] = y[:total - int(t * SR)]
        speech += d
        t += d + rng.uniform(0.3, 2.0)
        k += 1
    return out + noise(minutes * 60, 0.001)[:total], speech


class PeakMemory:
    """Samples memory in use every 20 ms on a thread: device memory (cuda) or resident memory (cpu)."""

    def __init__(self, device: str):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    def used(self) -> int:
        if self.device.startswith("cuda"):
            import torch

            free, total = torch.cuda.mem_get_info(torch.device(self.device))
            return total - free
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> "PeakMemory":
        self.base = self.used()
        self.peak = self.base
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.used())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.used())

    @property
    def mb(self) -> float:
        return (self.peak - self.base) / 2**20


def build_whisper(size: str, backend: str, folder: Path, precision: str | None) -> tuple[Path, float]:
    from analyzers._speech.random_models import ct2_whisper_folder, hf_whisper_folder, openai_whisper_checkpoint

    t = time.perf_counter()
    if backend == "openai-whisper":
        path = openai_whisper_checkpoint(folder / f"{size}.pt", size)
    else:
        hf = hf_whisper_folder(folder / f"hf-{size}", size)
        quant = {"fp16": "float16", "bf16": "bfloat16", "int8": "int8"}.get(precision or "", None)
        path = ct2_whisper_folder(hf, folder / f"ct2-{size}", quantization=quant)
    return path, time.perf_counter() - t


def warm_up(a) -> None:
    """One 5 s window before timing: numba compiles word alignment on first use, CUDA picks kernels."""
    from analyzers._speech.synth import formant_speech

    a._language = ("en", None)
    a.backend.transcribe([formant_speech(5.0, seed=99).samples], a._options())


def bench_whisper(size, backend, inputs, device, precision, tokens, batch, beam, folder, duration,
                  timestamps=False):
    import torch

    from analyzers.speech_transcription import SpeechTranscription
    from framework.scheduler import Placement

    row = {"model": f"whisper {size}", "backend": backend, "device": device, "precision": precision or "default",
           "batch": batch}
    try:
        path, row["build_s"] = build_whisper(size, backend, folder, precision)
        # CTranslate2 4.8 stops these random models at half its max_length (prompt included): ask
        # faster-whisper for 2N + 4 to decode N (the table shows the tokens each backend decoded)
        request = tokens if backend == "openai-whisper" else 2 * tokens + 4
        a = SpeechTranscription({"backend": backend, "model": size if size != "test-tiny" else "tiny",
                                 "max_new_tokens": request, "suppress_eot": True, "without_timestamps": not timestamps,
                                 "beam_size": beam, "temperature_fallback": False, "no_speech_threshold": None,
                                 "compression_ratio_threshold": None, "language": "en", "batch_size": batch})
        a.placement = Placement(device=device, variant=precision)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        with PeakMemory(device) as mem:
            t = time.perf_counter()
            a.load(device, {a.model_ids()[0]: path})
            row["load_s"] = time.perf_counter() - t
            warm_up(a)
            t = time.perf_counter()
            track = a.analyze(inputs)
            row["run_s"] = time.perf_counter() - t
        row["peak_mb"] = mem.mb
        d = track.data
        row.update(windows=d["windows"], tokens_per_window=d["tokens"] / max(1, d["windows"]),
                   audio_per_s=duration / row["run_s"], speech_per_s=d["speech_s"] / row["run_s"],
                   compute=d["compute"], busy_s=track.receipt["step"]["busy_s"])
        a.unload()
    except Exception as exc:  # noqa: BLE001 - one failing configuration is a row, not the end of the run
        row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return row


def bench_wav2vec2(inputs, device, precision, batch, folder, duration):
    import torch

    from analyzers._speech.random_models import wav2vec2_classifier_folder
    from analyzers.speech_emotion import SpeechEmotion
    from framework.scheduler import Placement

    row = {"model": "wav2vec2-large (XLSR) emotion", "backend": "transformers", "device": device,
           "precision": precision or "default", "batch": batch}
    try:
        t = time.perf_counter()
        path = wav2vec2_classifier_folder(folder / "wav2vec2-large", real_size=True)
        row["build_s"] = time.perf_counter() - t
        a = SpeechEmotion({"batch_size": batch})
        a.placement = Placement(device=device, variant=precision)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        with PeakMemory(device) as mem:
            t = time.perf_counter()
            a.load(device, {"wav2vec2-xlsr-speech-emotion": path})
            row["load_s"] = time.perf_counter() - t
            t = time.perf_counter()
            track = a.analyze(inputs)
            row["run_s"] = time.perf_counter() - t
        row["peak_mb"] = mem.mb
        row.update(windows=track.receipt["step"]["items"], audio_per_s=duration / row["run_s"],
                   speech_per_s=track.data["classified_s"] / row["run_s"], compute=f"{device} {a.dtype}",
                   busy_s=track.receipt["step"]["busy_s"])
        a.unload()
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return row


def table(rows: list[dict]) -> list[str]:
    lines = ["| model | backend | compute | batch | windows | tokens/window | build s | load s | run s | device busy s "
             "| audio s/s | speech s/s | peak MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['backend']} | {r['device']} {r['precision']} | {r['batch']} | "
                         f"failed: {r['error']} |||||||||")
            continue
        tpw = f"{r['tokens_per_window']:.0f}" if "tokens_per_window" in r else "-"
        lines.append(f"| {r['model']} | {r['backend']} | {r['compute']} | {r['batch']} | {r['windows']} | {tpw} | "
                     f"{r['build_s']:.1f} | {r['load_s']:.1f} | {r['run_s']:.1f} | {r['busy_s']:.1f} | "
                     f"{r['audio_per_s']:.1f} | {r['speech_per_s']:.1f} | {r['peak_mb']:.0f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--models", default="base", help="Whisper sizes: tiny, base, small, large-v3 (comma-separated)")
    ap.add_argument("--backends", default="openai-whisper,faster-whisper")
    ap.add_argument("--precision", default=None, help="fp16, bf16, int8 or fp32 (default: fp16 on a GPU, fp32 on CPU)")
    ap.add_argument("--tokens", type=int, default=96, help="tokens decoded per 30 s window")
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--timestamps", action="store_true",
                    help="decode with the timestamp rules on, as speech_transcription does by default")
    ap.add_argument("--batch", type=int, default=8, help="windows (Whisper) / pieces (wav2vec2) per batch")
    ap.add_argument("--wav2vec2", action="store_true", help="also the wav2vec2-large emotion classifier")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch and CTranslate2 (default: theirs); 1 on a shared machine")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # CTranslate2 reads it when a model loads

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from analyzers.voice_activity import VoiceActivity
    from framework import AnalyzerInputs, VideoMeta
    from framework.models import ModelResolver, load_manifest
    from framework.streams import AudioWriter

    device = "cuda:0" if args.device == "cuda" else args.device
    precision = args.precision or ("fp16" if device.startswith("cuda") else None)
    out = io.StringIO()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, redirect_stdout(out):
        folder = Path(tmp)
        gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "none"
        print(f"machine: {cpu_model()} ({os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads), GPU: {gpu}; "
              f"torch {torch.__version__}; load average before: {load_text()}")
        t = time.perf_counter()
        samples, speech_s = speech_audio(args.minutes)
        writer = AudioWriter(folder / "audio.f32", start_time=0.0)
        for k in range(0, samples.size, SR * 60):
            writer.write(samples[k:k + SR * 60])
        audio = writer.close()
        duration = samples.size / SR
        del samples
        meta = VideoMeta(path="generated.wav", content_hash="x", size_bytes=audio.count * 4, duration=duration,
                         has_video=False, audio_streams=[{"codec": "pcm_f32le"}])
        inputs = AnalyzerInputs(video=meta, audio=audio)
        print(f"audio: {duration / 60:.1f} min generated ({speech_s:.0f} s of it speech) in {time.perf_counter() - t:.1f} s")
        silero = ModelResolver(load_manifest(), offline=True).resolve(["silero-vad"])[0]["silero-vad"].path
        vad = VoiceActivity()
        vad.load("cpu", {"silero-vad": silero})
        t = time.perf_counter()
        vtrack = vad.analyze(inputs)
        vad_s = time.perf_counter() - t
        inputs.upstream = {"voice_activity": vtrack}
        print(f"voice_activity (CPU): {vtrack.data['speech_s']:.0f} s of speech in {len(vtrack.events)} segments, "
              f"{vad_s:.1f} s ({duration / vad_s:.0f} s of audio per second)")
        print(f"Whisper: {args.tokens} tokens per window, beam {args.beam}, end-of-text suppressed, "
              f"{'timestamp rules on' if args.timestamps else 'no timestamps'}, "
              f"language en; precision {precision or 'fp32 (CPU)'}")
        print()
        for size in [s.strip() for s in args.models.split(",") if s.strip()]:
            for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
                rows.append(bench_whisper(size, backend, inputs, device, precision, args.tokens, args.batch,
                                          args.beam, folder, duration, args.timestamps))
                sys.stderr.write(f"done: {size} {backend}\n")
        if args.wav2vec2:
            rows.append(bench_wav2vec2(inputs, device, precision, args.batch, folder, duration))
        print("\n".join(table(rows)))
        print()
        print(f"load average after: {load_text()}")
    text = out.getvalue()
    print(text)
    if args.out:
        cmd = "python bench/audio_throughput.py " + " ".join(sys.argv[1:])
        args.out.write_text(f"# Speech model throughput (random weights, real architectures)\n\nCommand: `{cmd}`\n\n{text}")


if __name__ == "__main__":
    main()
