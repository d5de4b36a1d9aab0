"""The run's one decode pass alone: the frame streams of a set of analyzers, timed per configuration.

On the H200 machine (16 CPUs) the decode pass of the end-to-end run took 16-18 s for a 10-minute 720p
clip, more than any analyzer but two. This script decodes the same streams (``media.decode``, as the
runner calls it) with the number of parallel segment decoders set (``segments.MAX_WORKERS``; FFmpeg
threads each: the CPUs over the decoders), optionally beside the run's import warm-up thread
(``framework.warm_imports``: the analyzers' slow modules), each configuration in a fresh process,
and reports wall seconds, CPU seconds and, with ``--sample``, where the decode threads spent their
time (``framework.stack_sampler``; own time on top of the stacks).

    python bench/decode_phase.py CLIP --workers 4,8 --warm off,on --sample --out bench/results/decode_phase.md

``--segments-in threads,processes`` compares the segments decoded on threads of one process with worker processes
(``FRAMEWORK_SEGMENT_PROCESSES``), ``--busy 0,10`` with that many processes keeping a CPU busy each beside the
decode, as the run's other work does (``bench/results/decode_phase_h200_procs.md``).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model, load_text, write_report  # noqa: E402 - bench/machine.py

ROOT = Path(__file__).resolve().parents[1]
#: the end-to-end set's analyzers that read frames or audio (bench/end_to_end_gpu.py)
E2E_SET = ("qwen2_vl_temporal speech_transcription speech_emotion object_detection product_detection "
           "background_segmentation content_quality age_estimation voice_activity audio_environment sound_effects "
           "text_overlay eye_tracking cut_analysis scene_segmentation color_analysis camera_analysis audio_analysis "
           "visual_effects temporal_flow speech_flow speech_rate").split()

CHILD = r'''
import json, resource, sys, tempfile, threading, time
from pathlib import Path
clip, names, workers, warm, sample = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4] == "on", sys.argv[5] == "on"
if float(sys.argv[6]) > 0:
    sys.setswitchinterval(float(sys.argv[6]) / 1000)
from framework import media
from framework.media import segments
from framework.plugins import build_plugin_manager
from framework.outputs.thumbnails import thumbnail_spec
from framework.warm_imports import warm_up_imports
segments.MAX_WORKERS = workers
host = build_plugin_manager(load_entrypoints=False)
analyzers = [host.analyzers[n](host.analyzers[n].Params()) for n in names if n in host.analyzers]
meta = media.probe(clip)
specs = sorted({s for a in analyzers for s in a.frame_specs()} | {thumbnail_spec()}, key=lambda s: s.key)
out = {"specs": [s.key for s in specs]}
warming = warm_up_imports([type(a) for a in analyzers], name="analyzer-imports") if warm else None
sampler = None
if sample:
    from framework.stack_sampler import StackSampler
    sampler = StackSampler("decode", interval_s=0.01)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as cache:
    if sampler:
        sampler.__enter__()
    out["audio_at_s"] = None  # when the audio was handed over (media.decode's on_audio), before the video ended
    decoded = media.decode(clip, meta, specs, True, Path(cache),
                           on_audio=lambda track: out.__setitem__("audio_at_s", time.perf_counter() - t0))
    if sampler:
        sampler.__exit__(None, None, None)
    out["decode_s"] = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_s"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the segments' worker processes (and the audio's), ended
    out["children_cpu_s"] = c1.ru_utime + c1.ru_stime
    out["segments"], out["frames"] = decoded.stats.segments, decoded.stats.video_frames_decoded
    out["warm_done_at_s"] = None
    if warming is not None:
        warming.join()
        out["warm_done_at_s"] = time.perf_counter() - t0
    if sampler:
        out["report"] = sampler.report(top=15)
print("RESULT " + json.dumps(out))
'''


BUSY = "import time\nwhile True:\n    sum(range(10_000))\n"  # a process that keeps one CPU busy


def run_one(clip: str, names: list[str], workers: int, warm: str, sample: bool, switch_ms: float,
            audio: str = "process", segments_in: str = "threads", busy: int = 0) -> dict:
    burners = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    try:
        return _run_one(clip, names, workers, warm, sample, switch_ms, audio, segments_in)
    finally:
        for b in burners:
            b.kill()
            b.wait()


def _run_one(clip: str, names: list[str], workers: int, warm: str, sample: bool, switch_ms: float,
             audio: str, segments_in: str) -> dict:
    t0 = time.perf_counter()
    env = dict(os.environ, FRAMEWORK_AUDIO_PROCESS="1" if audio == "process" else "0",
               FRAMEWORK_SEGMENT_PROCESSES="1" if segments_in == "processes" else "0")
    proc = subprocess.run([sys.executable, "-c", CHILD, clip, ",".join(names), str(workers), warm,
                           "on" if sample else "off", str(switch_ms)], capture_output=True, text=True, cwd=ROOT,
                          env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        return {"error": (proc.stderr or proc.stdout)[-1500:]}
    out = json.loads(line[len("RESULT "):])
    out["process_s"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/decode_phase.py clip.mp4 --workers 4,8 --warm off,on")
    ap.add_argument("clip")
    ap.add_argument("--analyzers", default=",".join(E2E_SET), help="whose frame streams to decode (default: the e2e set)")
    ap.add_argument("--workers", default="4,8", help="parallel segment decoders to try (comma-separated)")
    ap.add_argument("--warm", default="off,on", help="the import warm-up thread beside the decode: off, on or both")
    ap.add_argument("--switch-ms", default="0", help="the interpreter's thread switch intervals to try, in ms "
                    "(comma-separated; 0: Python's 5 ms)")
    ap.add_argument("--audio", default="process", help="where the audio's pass runs: process (its own, the "
                    "default), thread (FRAMEWORK_AUDIO_PROCESS=0), or both: process,thread")
    ap.add_argument("--segments-in", default="threads", help="where the segments decode: threads (the default), "
                    "processes (FRAMEWORK_SEGMENT_PROCESSES=1), or both: threads,processes")
    ap.add_argument("--busy", default="0", help="processes keeping a CPU busy each beside the decode, as the run's "
                    "other work does (comma-separated counts to try; default 0)")
    ap.add_argument("--sample", action="store_true", help="sample the decode threads' stacks (own time)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    names = [n for n in args.analyzers.split(",") if n]
    load_before = load_text()
    rows, reports = [], []
    for workers in (int(w) for w in args.workers.split(",")):
        for warm in args.warm.split(","):
            for switch in (float(x) for x in args.switch_ms.split(",")):
                for audio, where, busy in itertools.product(args.audio.split(","), args.segments_in.split(","),
                                                            (int(b) for b in args.busy.split(","))):
                    r = run_one(args.clip, names, workers, warm, args.sample, switch, audio, where, busy)
                    rows.append((workers, warm, switch, audio, where, busy, r))
                    if r.get("report"):
                        reports += [f"### {workers} decoders in {where}, warm-up {warm}, switch {switch:g} ms, "
                                    f"audio {audio}, {busy} busy", "", "```", r["report"], "```", ""]
    lines = ["# The decode pass alone: the end-to-end set's frame streams and audio", "",
             f"- command: `python bench/decode_phase.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
             f"- machine: {os.cpu_count()} CPUs, {cpu_model()}; load before {load_before}, after {load_text()}",
             f"- streams: {', '.join(next((r['specs'] for *_, r in rows if 'specs' in r), []))} and 16 kHz audio", "",
             "| decoders | segments in | busy processes beside | import warm-up | switch interval | audio pass | decode s | "
             "audio handed over at s | CPU s (this process) | CPU s (its children) | segments | frames | "
             "warm-up done at s | process s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for workers, warm, switch, audio, where, busy, r in rows:
        interval = f"{switch:g} ms" if switch > 0 else "5 ms (Python's)"
        head = f"| {workers} | {where} | {busy} | {warm} | {interval} | {audio} |"
        if "error" in r:
            lines.append(f"{head} failed: {r['error'][-300:]!r} | | | | | | | |")
            continue
        audio_at = '-' if r.get('audio_at_s') is None else format(r['audio_at_s'], '.2f')
        lines.append(f"{head} {r['decode_s']:.2f} | {audio_at} | {r['cpu_s']:.1f} | {r.get('children_cpu_s', 0):.1f} | "
                     f"{r['segments']} | {r['frames']} | "
                     f"{'-' if r['warm_done_at_s'] is None else format(r['warm_done_at_s'], '.2f')} | {r['process_s']:.1f} |")
    write_report(lines + [""] + reports, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
