"""torch's CPU threads after voice_activity loads, and what they cost the run's later torch work.

silero-vad's model module calls ``torch.set_num_threads(1)`` when it is imported. voice_activity's
load imports it, in the run's process, before the speech analyzers downstream of it load: every
thread started after that (the executor's analyzer and device-step threads) did its torch work on
the CPU with one intra-op thread, whatever the machine had (Whisper, wav2vec2, AST, CLIP... on a
machine without a GPU, where they all run in the run's process). voice_activity's load now puts
the count back.

Part 1, each condition in a fresh process (``--child``), alternated ``--repeat`` times: the condition,
then a new thread reads ``torch.get_num_threads()`` and times a fixed CPU workload (a 3x3
convolution over 8 x 64 x 128 x 128, and elementwise products, exponentials and sums over 16 M
floats). Conditions: ``none`` (nothing imported), ``silero import`` (``import silero_vad`` on a
thread, what voice_activity's load did), ``voice_activity load`` (the analyzer's load as it is now).
Part 2: voice_activity's analysis of ``--minutes`` of real speech (``../shared/media``, as
``bench/vad_blocks.py`` builds it) with torch at 1 thread and at the machine's default, to show what
the analyzer's own model calls gain or lose from the count it now leaves.

    python bench/torch_threads.py --repeat 3 --out bench/results/torch_threads_cpu.md
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "bench", ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

CONDITIONS = ("none", "silero import", "voice_activity load")


def child(condition: str) -> dict:
    """In this (fresh) process: the condition, then the workload on a new thread."""
    import torch

    if condition == "silero import":
        t = threading.Thread(target=lambda: __import__("silero_vad"))
        t.start()
        t.join()
    elif condition == "voice_activity load":
        from analyzers.voice_activity import VoiceActivity
        from speech_fixtures import silero_path

        VoiceActivity().load("cpu", {"silero-vad": silero_path()})
    out: dict = {}

    def work() -> None:
        x, w = torch.randn(8, 64, 128, 128), torch.randn(64, 64, 3, 3)
        y = torch.randn(4096, 4096)
        torch.nn.functional.conv2d(x, w, padding=1)  # (first call: the allocator, the kernel choice)
        t0 = time.perf_counter()
        for _ in range(5):
            torch.nn.functional.conv2d(x, w, padding=1)
        for _ in range(20):
            (y * 1.5).exp_().sum()
        out.update(threads=torch.get_num_threads(), workload_s=time.perf_counter() - t0)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return out


def vad_walls(minutes: float, repeat: int) -> dict[int, list[float]]:
    """voice_activity's analysis wall time at 1 torch thread and at the default count."""
    import torch

    from analyzers.voice_activity import VoiceActivity
    from speech_fixtures import audio_inputs, silero_path
    from vad_blocks import speech_audio

    default = torch.get_num_threads()
    media = ROOT.parent / "shared" / "media"
    walls: dict[int, list[float]] = {1: [], default: []}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = audio_inputs(Path(tmp) / "cache", speech_audio(media, minutes, Path(tmp)))
        vad = VoiceActivity()
        vad.load("cpu", {"silero-vad": silero_path()})
        assert torch.get_num_threads() == default, "voice_activity's load left torch's threads changed"
        vad.analyze(inputs)  # warm-up (TorchScript's first runs)
        for _ in range(repeat):
            for n in (1, default):
                torch.set_num_threads(n)
                t = time.perf_counter()
                vad.analyze(inputs)
                walls[n].append(time.perf_counter() - t)
        torch.set_num_threads(default)
    return walls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/torch_threads.py --repeat 3 --out bench/results/torch_threads_cpu.md")
    ap.add_argument("--repeat", type=int, default=3, help="runs per condition (fresh processes, alternated)")
    ap.add_argument("--minutes", type=float, default=10.0, help="speech for part 2")
    ap.add_argument("--out", type=Path, help="also write the report (markdown) here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    from machine import cpu_model, load_text, write_report

    lines = [f"# torch's CPU threads after voice_activity's load ({cpu_model()})", "",
             f"command: `python bench/torch_threads.py --repeat {args.repeat} --minutes {args.minutes:g}`; "
             f"load average before: {load_text()}", "",
             "| condition | torch threads seen by a new thread | workload s (median) | runs s |", "|---|---|---|---|"]
    runs: dict[str, list[dict]] = {c: [] for c in CONDITIONS}
    for _ in range(args.repeat):
        for condition in CONDITIONS:
            done = subprocess.run([sys.executable, __file__, "--child", condition], capture_output=True, text=True,
                                  check=True)
            runs[condition].append(json.loads(done.stdout.strip().splitlines()[-1]))
    for condition, rs in runs.items():
        walls = [r["workload_s"] for r in rs]
        lines.append(f"| {condition} | {', '.join(sorted({str(r['threads']) for r in rs}))} | "
                     f"{statistics.median(walls):.2f} | {', '.join(f'{w:.2f}' for w in walls)} |")
    walls = vad_walls(args.minutes, args.repeat)
    lines += ["", f"voice_activity's analysis of {args.minutes:g} min of speech:", "",
              "| torch threads | wall s (median) | runs s |", "|---|---|---|"]
    for n, ws in walls.items():
        lines.append(f"| {n} | {statistics.median(ws):.2f} | {', '.join(f'{w:.2f}' for w in ws)} |")
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
