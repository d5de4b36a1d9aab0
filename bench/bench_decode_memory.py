"""Peak memory and speed of framework.media.decode: RAM must not grow with the length of the film.

Generates (once, cached in --work) a 10-minute and a 60-minute 320x180 synthetic video with audio,
then for each runs ``probe`` + ``decode`` in a separate child process with the frame streams a
typical CPU analyzer set asks for, plus audio, and reports the child's peak RSS and decode speed.
It also measures decode speed on a 60 s 1280x720 30 fps clip against a bare PyAV decode loop.

Example::

    python bench/bench_decode_memory.py --work /tmp/bench_media > bench/results/bench_decode_memory.md

Prints a markdown report on stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model  # bench/machine.py (scripts run from bench/)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

logger = logging.getLogger("bench_decode_memory")

SPECS = [(None, 64, None, "rgb24"), (2, 96, None, "rgb24"), (8, 160, None, "gray")]
LONG = {"10min": 600.0, "60min": 3600.0}


def synth_long(path: Path, seconds: float) -> None:
    """A long 320x180 programme: 10 s shots cycling through camera moves, speech/tone/silence audio."""
    from framework.testing.synth import AudioSegment, ShotSpec, make_video

    motions = ["static", "pan", "zoom", "tilt", "shake"]
    n = int(seconds // 10)
    shots = [ShotSpec(10.0, motions[i % 5], "fade" if i % 7 == 3 else "cut", 1.0, look=i % 8) for i in range(n)]
    audio = []
    for k in range(0, int(seconds), 30):  # 20 s of speech or tone, then 10 s of silence
        kind = "speech" if (k // 30) % 2 == 0 else "tone"
        audio.append(AudioSegment(k + 0.2, k + 20.0, kind, 140.0 if kind == "speech" else 440.0, 0.3))
    make_video(path, shots, fps=30.0, width=320, height=180, audio=audio)


def synth_hd(path: Path) -> None:
    """60 s of 1280x720 30 fps, x264 ultrafast, with audio: the decode-speed clip."""
    from framework.testing.synth import default_shots, make_video

    make_video(path, default_shots(60.0), fps=30.0, width=1280, height=720, preset="ultrafast")


def generate(path: Path, kind: str) -> Path:
    """Generate a bench video once, in a child process so this process stays small (its RSS at
    fork time would otherwise show up in the children's ``ru_maxrss``)."""
    if path.exists():
        return path
    tmp = path.with_suffix(".partial.mp4")
    started = time.perf_counter()
    logger.info("generating %s (the 60-minute one takes a few minutes)", path.name)
    subprocess.run([sys.executable, __file__, "--generate", str(tmp), "--kind", kind], check=True)
    tmp.rename(path)
    logger.info("generated %s in %.0f s", path.name, time.perf_counter() - started)
    return path


def child(path: Path, cache: Path, mode: str) -> None:
    """Runs in the child process: probe + decode, then print stats as JSON."""
    import av

    from framework.media import decode, probe
    from framework.streams import FrameSpec

    rss_imports_kb = _vm_hwm_kb()
    started = time.perf_counter()
    if mode == "pyav-decode-only":  # the floor: demux + decode every frame, nothing else
        with av.open(str(path)) as c:
            vs = c.streams.video[0]
            vs.thread_type = "AUTO"
            duration = c.duration / 1e6 if c.duration else 0.0
            frames = sum(1 for p in c.demux(vs) for _ in p.decode())
        out = {"frames": frames, "audio_s": 0.0}
    else:
        meta = probe(path)
        hashed = time.perf_counter()
        specs = [FrameSpec(*s) for s in SPECS]
        decoded = decode(path, meta, specs, mode == "specs+audio", cache, progress=None)
        duration = meta.duration
        out = {"frames": decoded.stats.video_frames_decoded,
               "audio_s": decoded.audio.duration if decoded.audio else 0.0,
               "demux_passes": decoded.stats.demux_passes, "probe_s": hashed - started,
               "decode_s": decoded.stats.seconds,
               "stream_frames": {s.key: len(fs) for s, fs in decoded.streams.items()}}
        started = hashed
    out.update(seconds=time.perf_counter() - started, duration=duration, rss_imports_kb=rss_imports_kb,
               vm_hwm_kb=_vm_hwm_kb(), rss_self_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print(json.dumps(out))


def _vm_hwm_kb() -> int:
    """This process's peak RSS from /proc (VmHWM), a cross-check of ``ru_maxrss``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_child(path: Path, cache: Path, mode: str) -> dict:
    """Run ``child`` in a fresh interpreter; peak RSS comes from the kernel's rusage of that child."""
    shutil.rmtree(cache, ignore_errors=True)
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(path), "--cache", str(cache),
                             "--mode", mode], stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    shutil.rmtree(cache, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"child failed on {path} ({mode}), exit code {proc.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def machine_line() -> str:
    return (f"nproc: {os.cpu_count()}; CPU: {cpu_model()}; Python {platform.python_version()}; "
            f"load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_media"),
                    help="folder for the generated videos (kept and reused) and decode caches")
    ap.add_argument("--skip-long", action="store_true", help="only the 720p speed test")
    ap.add_argument("--repeat", type=int, default=3, help="speed runs per method; the fastest is reported")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="specs+audio", help=argparse.SUPPRESS)
    ap.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        synth_hd(args.generate) if args.kind == "hd" else synth_long(args.generate, float(args.kind))
        return
    if args.child:
        child(args.child, args.cache, args.mode)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args.work.mkdir(parents=True, exist_ok=True)
    spec_text = ", ".join(f"FrameSpec({s[0]}, {s[1]}, {s[2]}, {s[3]!r})" for s in SPECS)
    print("# bench_decode_memory\n")
    print(f"Command: `python bench/bench_decode_memory.py --work {args.work}`  ")
    print(machine_line() + "\n")
    print(f"Frame streams: {spec_text}; audio resampled to 16 kHz mono. Each run is a fresh child process; "
          "peak RSS is the child's `ru_maxrss` (from `wait4`).\n")

    if not args.skip_long:
        rows = {}
        for name, seconds in LONG.items():
            path = generate(args.work / f"synth_{name}_320x180.mp4", str(seconds))
            logger.info("decoding %s", path.name)
            rows[name] = run_child(path, args.work / f"cache_{name}", "specs+audio")
        print("## Peak memory, 320x180 30 fps with audio\n")
        print("| video | duration s | frames decoded | audio s | demux passes | probe s (incl. hash) | decode s "
              "| decode fps | x real time | RSS after imports MB | peak RSS MB (ru_maxrss) | VmHWM MB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, r in rows.items():
            print(f"| {name} | {r['duration']:.0f} | {r['frames']} | {r['audio_s']:.1f} | {r['demux_passes']} "
                  f"| {r['probe_s']:.1f} | {r['decode_s']:.1f} | {r['frames'] / r['decode_s']:.0f} "
                  f"| {r['duration'] / r['decode_s']:.0f} | {r['rss_imports_kb'] / 1024:.0f} "
                  f"| {r['peak_rss_mb']:.0f} | {r['vm_hwm_kb'] / 1024:.0f} |")
        ratio = rows["60min"]["peak_rss_mb"] / rows["10min"]["peak_rss_mb"]
        verdict = "PASS" if abs(ratio - 1) < 0.20 else "FAIL"
        print(f"\nPeak RSS ratio 60 min / 10 min: **{ratio:.3f}** (target: within 20%: {verdict})\n")

    hd = generate(args.work / "synth_60s_1280x720.mp4", "hd")
    print(f"## Speed, 60 s of 1280x720 30 fps H.264 (ultrafast) with AAC audio (best of {args.repeat})\n")
    print("| what | wall s | CPU s | frames | frames/s | x real time |")
    print("|---|---|---|---|---|---|")
    for mode, label in [("pyav-decode-only", "PyAV decode only (floor, no conversion)"),
                        ("specs", "media.decode, 3 frame streams"),
                        ("specs+audio", "media.decode, 3 frame streams + audio")]:
        logger.info("speed: %s", label)
        runs = [run_child(hd, args.work / "cache_hd", mode) for _ in range(max(1, args.repeat))]
        r = min(runs, key=lambda x: x.get("decode_s", x["seconds"]))
        wall = r.get("decode_s", r["seconds"])
        print(f"| {label} | {wall:.2f} | {r['cpu_s']:.2f} | {r['frames']} | {r['frames'] / wall:.0f} "
              f"| {r['duration'] / wall:.1f} |")
    print("\n(CPU s is the whole child process, including imports and for media.decode the probe and its hash.)")


if __name__ == "__main__":
    main()
