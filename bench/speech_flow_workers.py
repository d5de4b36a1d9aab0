"""speech_flow's pitch tracking in worker processes: the analyzer's time against ``workers``.

On an H200 host, end to end, speech_flow was on the critical path (43.4 s in its own process, run G in
``bench/results/end_to_end_h200_streams.md``): librosa's pyin is single-threaded. This times
``SpeechFlow({"workers": N}).analyze`` on generated speech with the voice-activity track of the real
silero-vad (weights in its wheel), for each N, in one run, and checks the tracks are the same.
Timed in-process (the analyzer's call, its worker processes' start included); each N runs in a
fresh interpreter, so librosa's imports and numba's compile count for every N as in a real run.

    .venv/bin/python bench/speech_flow_workers.py --minutes 10 --workers 1,2 --out bench/results/speech_flow_workers_cpu.md
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "bench", ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from machine import cpu_model, load_text  # noqa: E402


def one(folder: Path, workers: int) -> dict:
    """In this (fresh) process: voice activity, then speech_flow with ``workers``; seconds and the track."""
    import numpy as np

    from analyzers.speech_flow import SpeechFlow
    from analyzers.voice_activity import VoiceActivity
    from speech_fixtures import audio_inputs, silero_path

    y = np.load(folder / "speech.npy")
    inputs = audio_inputs(folder / f"cache{workers}", y)
    vad = VoiceActivity()
    vad.load("cpu", {"silero-vad": silero_path()})
    inputs.upstream = {"voice_activity": vad.analyze(inputs)}
    t0 = time.perf_counter()
    track = SpeechFlow({"workers": workers}).analyze(inputs)
    seconds = time.perf_counter() - t0
    return {"workers": workers, "seconds": round(seconds, 2), "segments": len(inputs.upstream["voice_activity"].events),
            "track": json.loads(track.model_dump_json(include={"events", "series", "data"}))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: .venv/bin/python bench/speech_flow_workers.py --minutes 10 --workers 1,2")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--workers", default="1,2", help="comma list of worker counts to time")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here too")
    ap.add_argument("--one", nargs=2, metavar=("FOLDER", "WORKERS"), help=argparse.SUPPRESS)  # the child's part
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(Path(args.one[0]), int(args.one[1]))))
        return 0

    import numpy as np

    from audio_throughput import speech_audio

    load_before = load_text()
    with tempfile.TemporaryDirectory(prefix="speech_flow_") as tmp:
        folder = Path(tmp)
        y, speech_s = speech_audio(args.minutes)
        np.save(folder / "speech.npy", y)
        rows = []
        for n in [int(w) for w in args.workers.split(",")]:
            out = subprocess.run([sys.executable, __file__, "--one", str(folder), str(n)], capture_output=True,
                                 text=True, check=True, cwd=ROOT)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    same = all(r["track"] == rows[0]["track"] for r in rows)
    lines = [f"# speech_flow: pitch tracking in worker processes ({args.minutes:g} min of generated speech)", "",
             f"command: `python bench/speech_flow_workers.py --minutes {args.minutes:g} --workers {args.workers}`",
             f"machine: {cpu_model()} ({os.cpu_count()} CPUs); load before {load_before}, after {load_text()}",
             f"audio: {args.minutes * 60:.0f} s, {speech_s:.1f} s of it speech; {rows[0]['segments']} speech segments "
             "(silero-vad)", "",
             "| workers | speech_flow s | speech s per s | x one process |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workers']} | {r['seconds']:.1f} | {speech_s / r['seconds']:.1f} | "
                     f"{rows[0]['seconds'] / r['seconds']:.2f} |")
    lines += ["", f"same track for every worker count: {'yes' if same else 'NO'}",
              "Timed in-process around `SpeechFlow.analyze` (worker start included), each count in a fresh interpreter."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
