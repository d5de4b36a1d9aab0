"""Pipeline benchmark: decode-once count, speed of the whole CPU analyzer set, and peak RSS vs length.

Two steps, so that generating the videos cannot colour the memory figures (on Linux a child
inherits its parent's peak RSS across fork and exec):

    .venv/bin/python bench/bench_pipeline.py make-media [--work /tmp/bench_media] [--long-minutes 60]
    .venv/bin/python bench/bench_pipeline.py run [--work /tmp/bench_media] [--skip-memory] [--out FILE]

``make-media`` generates (each in its own child process, once; kept in --work) a 60 s 1280x720
clip and a 10-minute and a 60-minute 320x180 one, all 30 fps H.264 (x264 ``ultrafast``) + AAC.
``run`` measures:

- decode once: ``framework.runner.analyze`` in a child process that counts ``media.decode`` calls
  and ``av.open`` of the file;
- memory: the whole command ``framework run VIDEO --no-resume --no-progress --json`` under
  ``/usr/bin/time -v`` (its maximum resident set size is the command's own: ``time``'s small
  process sits between this script and the command), while this script polls the command's
  VmRSS from /proc to show how RSS moves over the run.

Prints a markdown report on stdout (and writes it to --out when given); progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from machine import cpu_model, load_text  # bench/machine.py (scripts run from bench/)

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("bench_pipeline")

CPU_SET = ["cut_analysis", "scene_segmentation", "color_analysis", "camera_analysis", "audio_analysis", "fusion"]
HD_CLIP = "pipeline_60s_1280x720.mp4"
POLL_S = 0.1

CHILD = textwrap.dedent("""
    import json, sys, time
    import av
    from framework import media
    from framework.runner import analyze

    opens = {"n": 0}
    real_open = av.open
    def counting_open(file, *a, **k):
        if str(file) == sys.argv[1]:
            opens["n"] += 1
        return real_open(file, *a, **k)
    av.open = counting_open
    decodes = {"n": 0}
    real_decode = media.decode
    def counting_decode(*a, **k):
        decodes["n"] += 1
        return real_decode(*a, **k)
    media.decode = counting_decode

    t0 = time.perf_counter()
    res = analyze(sys.argv[1], registry_path=sys.argv[2], out_dir=sys.argv[3], progress=False, resume=False)
    wall = time.perf_counter() - t0
    stats = res.timeline.run.get("decode") or {}
    print(json.dumps({
        "wall_s": wall, "duration": res.timeline.video.duration,
        "frame_count": res.timeline.video.frame_count,
        "decode_calls": decodes["n"], "av_opens": opens["n"], "stats": stats,
        "statuses": {n: t.status for n, t in res.timeline.tracks.items()},
        "reasons": {n: t.reason for n, t in res.timeline.tracks.items() if t.reason},
        "track_s": {n: t.duration_s for n, t in res.timeline.tracks.items()},
    }))
""")


def long_name(minutes: float) -> str:
    return f"pipeline_{minutes:g}min_320x180.mp4"


def generate(path: Path, seconds: float, width: int, height: int) -> None:
    """Encode the bench video (runs in a child of ``make-media``)."""
    from framework.testing.synth import ShotSpec, make_video

    motions = ["static", "pan", "zoom", "static", "tilt", "shake"]
    trans = ["cut", "cut", "cut", "fade", "cut", "dissolve"]
    shots, t, i = [], 0.0, 0
    while t < seconds - 1e-6:
        d = min(4.0 + (i % 5), seconds - t)
        shots.append(ShotSpec(duration=d, motion=motions[i % 6], transition=trans[i % 6] if d > 2 else "cut",
                              look=i % 9))
        t += d
        i += 1
    make_video(path, shots, fps=30, width=width, height=height, text="BENCH")


def make_media(work: Path, long_minutes: float) -> None:
    """Generate every video ``run`` needs that is not in ``work`` yet, each in a child process."""
    work.mkdir(parents=True, exist_ok=True)
    wanted = [(HD_CLIP, 60.0, 1280, 720), (long_name(10), 600.0, 320, 180),
              (long_name(long_minutes), long_minutes * 60, 320, 180)]
    for name, seconds, width, height in wanted:
        path = work / name
        if path.exists():
            logger.info("%s exists; kept", path)
            continue
        tmp = path.with_suffix(".partial.mp4")
        started = time.perf_counter()
        logger.info("generating %s (%.0f s of %dx%d; the 60-minute one takes several minutes)",
                    name, seconds, width, height)
        subprocess.run([sys.executable, __file__, "--generate", str(tmp), "--seconds", str(seconds),
                        "--size", f"{width}x{height}"], check=True, cwd=ROOT)
        tmp.rename(path)
        logger.info("generated %s in %.0f s", name, time.perf_counter() - started)


def packet_count(video: Path) -> int:
    import av

    with av.open(str(video)) as container:
        return sum(1 for packet in container.demux() if packet.size)


def run_counting_child(video: Path, registry: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(video), str(registry), str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"run failed on {video}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child_pid(pid: int) -> int | None:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def whole_command(video: Path, registry: Path, out: Path) -> dict:
    """Run ``framework run`` as a whole process under ``/usr/bin/time -v``; poll its VmRSS meanwhile."""
    framework = Path(sys.executable).parent / "framework"
    shutil.rmtree(out, ignore_errors=True)
    timing = out.with_suffix(".time.txt")
    cmd = [str(framework), "run", str(video), "--registry", str(registry), "--out", str(out),
           "--no-resume", "--no-progress", "--json"]
    wrapped = ["/usr/bin/time", "-v", "-o", str(timing)] + cmd
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    proc = subprocess.Popen(wrapped, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)

    def poll() -> None:
        pid = None
        while proc.poll() is None:
            pid = pid or _child_pid(proc.pid)
            rss = _status_kb(pid, "VmRSS") if pid else None
            if rss:
                samples.append((time.perf_counter() - started, rss))
            time.sleep(POLL_S)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    poller.join()
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{stderr[-3000:]}")
    fields = {}
    for line in timing.read_text().splitlines():
        key, _, value = line.strip().rpartition(": ")
        fields[key] = value
    report = json.loads(stdout)
    return {"wall_s": wall, "max_rss_mb": int(fields["Maximum resident set size (kbytes)"]) / 1024,
            "user_s": float(fields["User time (seconds)"]), "sys_s": float(fields["System time (seconds)"]),
            "statuses": {n: t["status"] for n, t in report["tracks"].items()}, "samples": samples,
            "results_mb": Path(report["results"]).stat().st_size / 1e6}


def rss_profile(samples: list[tuple[float, int]], wall: float) -> str:
    """VmRSS (MB) at 10 %, 25 %, 50 %, 75 % and 90 % of the run, and the largest sample."""
    if not samples:
        return "-"
    marks = []
    for q in (0.10, 0.25, 0.50, 0.75, 0.90):
        t = q * wall
        rss = min(samples, key=lambda s: abs(s[0] - t))[1]
        marks.append(f"{rss / 1024:.0f}")
    return " / ".join(marks) + f" (max sample {max(r for _, r in samples) / 1024:.0f})"


def machine_line() -> str:
    return (f"machine: {platform.platform()}, {os.cpu_count()} cores ({cpu_model()}), "
            f"python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}")


def load_line() -> str:
    return "load average (1/5/15 min): " + load_text()


def run(args: argparse.Namespace) -> str:
    work = args.work
    missing = [n for n in (HD_CLIP, long_name(10), long_name(args.long_minutes)) if not (work / n).exists()]
    if args.skip_memory:
        missing = [n for n in missing if n == HD_CLIP]
    if missing:
        raise SystemExit(f"missing in {work}: {', '.join(missing)}; generate them first with "
                         f"`{sys.executable} {__file__} make-media --work {work} --long-minutes {args.long_minutes:g}`")
    registry = work / "registry_cpu.yaml"
    registry.write_text("analyzers:\n" + "".join(f"  {n}: {{enabled: true}}\n" for n in CPU_SET))
    lines = ["# Pipeline benchmark\n", f"Command: `{' '.join(['python', 'bench/bench_pipeline.py'] + sys.argv[1:])}`\n",
             machine_line() + "  ", load_line() + " at the start\n"]
    out = lines.append
    clip = work / HD_CLIP
    logger.info("decode-once and speed: %s (two runs)", clip.name)
    cold = run_counting_child(clip, registry, work / "run_cold")
    warm = run_counting_child(clip, registry, work / "run_warm")
    s = warm["stats"]
    out("## Decode once (60 s, 1280x720, 30 fps H.264 + AAC, all CPU analyzers)\n")
    out("| what | count |\n|---|---|")
    out(f"| analyzers run | {len(warm['statuses'])} ({', '.join(f'{k}: {v}' for k, v in warm['statuses'].items())}) |")
    out(f"| media.decode calls | {warm['decode_calls']} |")
    out(f"| demux passes (DecodeStats) | {s.get('demux_passes')} |")
    segments = s.get("segments") or 0
    out(f"| video decoded as keyframe-aligned segments in parallel | "
        f"{f'{segments} segments' if segments else 'no: one pass'} |")
    out(f"| packets read / packets in file | {s.get('packets')} / {packet_count(clip)} |")
    out(f"| av.open of the file (probe + decode{' + segment plan + one per segment' if segments else ''}) "
        f"| {warm['av_opens']} |")
    out(f"| video frames decoded / frames in file | {s.get('video_frames_decoded')} / {warm['frame_count']} |")
    out(f"| audio frames decoded | {s.get('audio_frames_decoded')} |\n")
    out("## Speed (same clip, two runs in fresh processes; wall time of `framework.runner.analyze`: plugin "
        "discovery, probe, decode, every analyzer and the reports, without interpreter start-up; target >= 8x)\n")
    out("| run | wall s | x real time | decode s |\n|---|---|---|---|")
    for label, r in (("first", cold), ("second", warm)):
        out(f"| {label} | {r['wall_s']:.2f} | {r['duration'] / r['wall_s']:.1f}x | {r['stats'].get('seconds', 0):.2f} |")
    out("\nper analyzer (second run, s): " + ", ".join(f"{k} {v:.2f}" for k, v in warm["track_s"].items() if v is not None))
    if warm["reasons"]:
        out("\nnotes: " + "; ".join(f"{k}: {v}" for k, v in warm["reasons"].items()))
    if not args.skip_memory:
        out("\n## Memory (whole `framework run` commands, all CPU analyzers; 320x180 30 fps generated videos with audio)\n")
        out("Peak RSS is `/usr/bin/time -v`'s maximum resident set size of the `framework run` process. "
            f"The RSS profile is its VmRSS polled every {POLL_S:g} s, at 10 / 25 / 50 / 75 / 90 % of the run.\n")
        out("| video | duration s | wall s | x real time | user+sys s | peak RSS MB | RSS profile MB | results.json MB |")
        out("|---|---|---|---|---|---|---|---|")
        rows = []
        for minutes in (10.0, args.long_minutes):
            video = work / long_name(minutes)
            logger.info("memory: %s", video.name)
            r = whole_command(video, registry, work / f"run_{minutes:g}min")
            bad = {k: v for k, v in r["statuses"].items() if v != "ok"}
            rows.append(r)
            out(f"| {video.name} | {minutes * 60:.0f} | {r['wall_s']:.1f} | {minutes * 60 / r['wall_s']:.1f}x "
                f"| {r['user_s'] + r['sys_s']:.1f} | {r['max_rss_mb']:.0f} | {rss_profile(r['samples'], r['wall_s'])} "
                f"| {r['results_mb']:.1f} |" + (f" not ok: {bad}" if bad else ""))
        a, b = rows[0]["max_rss_mb"], rows[1]["max_rss_mb"]
        out(f"\npeak RSS {args.long_minutes:g} min / 10 min = {b / a:.3f} "
            f"(difference {abs(b - a) / a * 100:.1f}%; target < 20%)")
    out("\n" + load_line() + " at the end")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", nargs="?", choices=["make-media", "run"], default="run")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_media"))
    ap.add_argument("--skip-memory", action="store_true", help="run: only the decode-once and speed sections")
    ap.add_argument("--long-minutes", type=float, default=60.0)
    ap.add_argument("--out", type=Path, help="run: also write the report to this file")
    ap.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        sys.path.insert(0, str(ROOT))
        width, height = (int(v) for v in args.size.split("x"))
        generate(args.generate, args.seconds, width, height)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.step == "make-media":
        make_media(args.work, args.long_minutes)
        return
    report = run(args)
    print(report, end="")
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
