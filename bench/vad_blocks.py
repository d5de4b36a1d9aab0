"""voice_activity's block size: speed alone and beside a thread running Python, and agreement with
silero's own sequential pass, on 10 minutes of real speech.

silero-vad scores 32 ms windows one after another with a recurrent model; voice_activity cuts the
audio into ``block_s`` blocks scored side by side as the rows of one batch (``batch_size`` blocks),
each after ``preroll_s`` of the audio before it. A batch costs one model call per window of a block,
and in a run's process each call takes the interpreter's lock again, while the import warm-up and
the models' loads hold it (in the end-to-end runs on an H200 the analysis took 4.0-6.1 s there and
1.3-1.5 s in a process of its own). Shorter blocks in larger batches make fewer calls of more rows.

The audio: ``../shared/media`` speech (jfk.flac, sample.wav, the speech of auto_editor_example.mp4),
decoded by the framework's own pass (16 kHz mono), laid end to end with 1 s of silence between
them until ``--minutes``. The reference: silero's ``get_speech_timestamps`` over the whole audio,
one window after another, with voice_activity's parameters. "Beside a busy thread": one more
thread of this process runs a Python loop while the analyzer works (a stand-in for the imports and
loads of a run's process); the analyzer's wall time is measured from outside it.

    python bench/vad_blocks.py --out bench/results/vad_blocks.md
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "bench", ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from audio_eval import SR, decode, mask  # noqa: E402  (mask: agreement counted on 10 ms frames)
from machine import cpu_model, load_text  # noqa: E402
SETTINGS = "30/32/1,10/64/1,5/128/1,3/256/1"  # block_s/batch_size/preroll_s; 30 s / 32 / 1 s was the default


def speech_audio(media: Path, minutes: float, cache: Path) -> np.ndarray:
    """The media's speech files end to end (1 s of silence between them), repeated to ``minutes``."""
    pieces = []
    for rel in ("speech/jfk.flac", "speech/sample.wav", "video/auto_editor_example.mp4"):
        audio = decode(media / rel, cache).audio
        pieces += [np.asarray(audio.samples[:], dtype=np.float32), np.zeros(SR, np.float32)]
    one = np.concatenate(pieces)
    n = int(minutes * 60 * SR)
    return np.tile(one, int(np.ceil(n / one.size)))[:n]


def boundary_gaps(ours: list[tuple[float, float]], theirs: list[tuple[float, float]]) -> list[float]:
    """For each reference boundary, how far the nearest boundary of ours is (seconds)."""
    mine = np.array(sorted(t for seg in ours for t in seg)) if ours else np.zeros(1)
    return [float(np.abs(mine - t).min()) for seg in theirs for t in seg]


def busy_thread(stop: threading.Event) -> threading.Thread:
    def spin() -> None:
        n = 0
        while not stop.is_set():
            for i in range(1000):
                n += i * i
    thread = threading.Thread(target=spin, name="busy-python", daemon=True)
    thread.start()
    return thread


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3, help="timed analyses per setting and condition (median)")
    ap.add_argument("--settings", default=SETTINGS, help="comma list of BLOCK_S/BATCH_SIZE/PREROLL_S to compare")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import torch
    from silero_vad import get_speech_timestamps
    from silero_vad.utils_vad import init_jit_model

    from analyzers.voice_activity import VoiceActivity
    from speech_fixtures import audio_inputs, silero_path

    silero = silero_path()
    lines = [f"# voice_activity's block size on {args.minutes:g} min of real speech", "",
             f"machine: {cpu_model()}, {torch.get_num_threads()} torch threads; load average before: {load_text()}",
             f"command: `python bench/vad_blocks.py --minutes {args.minutes:g} --repeat {args.repeat} --settings {args.settings}`", ""]
    with tempfile.TemporaryDirectory() as tmp:
        samples = speech_audio(args.media, args.minutes, Path(tmp))
        duration = samples.size / SR
        inputs = audio_inputs(Path(tmp) / "cache", samples)
        p = VoiceActivity().params
        t = time.perf_counter()
        ref_model = init_jit_model(str(Path(silero) / "data" / "silero_vad.jit"))
        ref = get_speech_timestamps(torch.from_numpy(samples), ref_model, threshold=p.threshold,
                                    min_speech_duration_ms=p.min_speech_ms, min_silence_duration_ms=p.min_silence_ms,
                                    speech_pad_ms=p.speech_pad_ms)
        ref_s = time.perf_counter() - t
        theirs = [(s["start"] / SR, s["end"] / SR) for s in ref]
        ref_speech = sum(b - a for a, b in theirs)
        lines += [f"reference: silero's get_speech_timestamps, one window after another: {len(theirs)} segments, "
                  f"{ref_speech:.1f} s of speech, {ref_s:.1f} s", "",
                  "| block_s | batch_size | preroll_s | model calls | wall alone s | wall beside a busy thread s | segments | "
                  "speech s | frames agreeing with the reference | boundaries off by > 0.1 s | largest offset s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        print("\n".join(lines), flush=True)
        for setting in args.settings.split(","):
            block_s, batch, preroll = (float(x) for x in setting.split("/"))
            vad = VoiceActivity({"block_s": block_s, "batch_size": int(batch), "preroll_s": preroll})
            vad.load("cpu", {"silero-vad": silero})
            walls: dict[str, list[float]] = {"alone": [], "busy": []}
            track = None
            for _ in range(args.repeat):
                for condition in ("alone", "busy"):
                    stop = threading.Event()
                    spinner = busy_thread(stop) if condition == "busy" else None
                    t = time.perf_counter()
                    track = vad.analyze(inputs)
                    walls[condition].append(time.perf_counter() - t)
                    stop.set()
                    if spinner is not None:
                        spinner.join()
            ours = [(e.start, e.end) for e in track.events]
            agree = float((mask(ours, duration) == mask(theirs, duration)).mean())
            gaps = boundary_gaps(ours, theirs)
            blocks = int(np.ceil(samples.size / (block_s * SR)))
            calls = int(np.ceil(blocks / batch)) * int(round((block_s + preroll) * SR / 512))
            row = (f"| {block_s:g} | {batch:g} | {preroll:g} | {calls} | {np.median(walls['alone']):.2f} | "
                   f"{np.median(walls['busy']):.2f} | {len(ours)} | {sum(b - a for a, b in ours):.1f} | "
                   f"{100 * agree:.2f} % | {sum(g > 0.1 for g in gaps)} of {len(gaps)} | {max(gaps):.2f} |")
            lines.append(row)
            print(row, flush=True)
    lines += ["", f"Medians of {args.repeat} analyses each (the analyzer's `analyze`, its device step with the "
              "preprocessing thread, on this process's CPU threads). Model calls: one per 32 ms window of a block "
              "and its pre-roll, per batch."]
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
