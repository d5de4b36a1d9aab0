"""What a user feels: `framework run FILE --only cut_analysis` against `scenedetect -i FILE detect-content
list-scenes`, each timed as a whole process (interpreter start-up, imports, decode, detection, output).

Usage:
    .venv/bin/python bench/bench_whole_command.py --media ../shared/media [--repeat 7] [--min-seconds 20]
                                                  [--out bench/results/bench_whole_command.md]

Every video of at least --min-seconds (default 10) found under --media is used; the >= 1.5x target
applies to those of --target-seconds (default 20) or more. After one untimed warm-up of
each command per file, the two commands run alternately (which one goes first alternates too),
--repeat times per file. Reported: median wall seconds with the fastest and slowest run, the
ratio of the medians (PySceneDetect's seconds / ours; the target is >= 1.5x on every real clip of
20 s or more) and each process's peak RSS, taken from `/usr/bin/time -v` (the kernel's figure for
that process alone; `time`'s small process sits between this script and the command, so this
script's own memory cannot leak into it). A start-up table times `framework --version`,
`python -c "import cli"` and `scenedetect version` the same way.

Python bytecode: a user's `pip install` compiles every module to .pyc once. By default this script
runs both tools with a private bytecode cache (PYTHONPYCACHEPREFIX under --work, warmed by the
warm-up runs) and PYTHONDONTWRITEBYTECODE unset, so neither pays for compiling its sources on every
start. `--no-bytecode-cache` runs them with PYTHONDONTWRITEBYTECODE=1 and no cache instead (what an
install without .pyc files and that variable set gives: every import compiles from source).

The machine's cores and its load average before and after are printed: the tools share the
machine with whatever else runs, so read the ratios, measured interleaved in one run.
"""
from __future__ import annotations

import argparse
import csv
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model, load_text  # bench/machine.py (scripts run from bench/)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v"}
TARGET = 1.5
logger = logging.getLogger("bench_whole_command")


def find_clips(media: Path, min_seconds: float) -> list[tuple[Path, float, int, str]]:
    """Videos under ``media`` at least ``min_seconds`` long: (path, seconds, frames, 'WxH codec')."""
    import av

    found = []
    for path in sorted(p for p in media.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES):
        try:
            with av.open(str(path)) as c:
                if not c.streams.video:
                    continue
                vs = c.streams.video[0]
                seconds = (c.duration or 0) / 1e6
                frames = vs.frames or int(round(seconds * float(vs.average_rate or 0)))
                desc = f"{vs.codec_context.width}x{vs.codec_context.height} {vs.codec_context.name}"
        except Exception as exc:  # noqa: BLE001 - a file that cannot be opened is reported, not fatal
            logger.warning("skipping %s: %s", path, exc)
            continue
        if seconds >= min_seconds:
            found.append((path, seconds, frames, desc))
    return found


def timed(cmd: list[str], env: dict[str, str], work: Path) -> tuple[float, float, str, float]:
    """Run ``cmd`` under ``/usr/bin/time -v``: (wall s, peak RSS MB, stdout, CPU s: user + system of
    every thread). Fails loudly on a non-zero exit."""
    timing = work / "time.txt"
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", "-o", str(timing)] + cmd, env=env, cwd=work,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    report = dict(line.strip().rsplit(": ", 1) for line in timing.read_text().splitlines() if ": " in line)
    rss_kb = int(report["Maximum resident set size (kbytes)"])
    cpu = float(report["User time (seconds)"]) + float(report["System time (seconds)"])
    return wall, rss_kb / 1024, proc.stdout, cpu


def ours_cmd(video: Path, out: Path) -> list[str]:
    return [str(BIN / "framework"), "run", str(video), "--only", "cut_analysis", "--no-progress",
            "--no-resume", "--out", str(out)]


def theirs_cmd(video: Path, out: Path) -> list[str]:
    return [str(BIN / "scenedetect"), "-i", str(video), "-o", str(out), "detect-content", "list-scenes"]


def count_ours(out: Path) -> int:
    """Shots in our cuts.csv (one row per shot)."""
    with (out / "cuts.csv").open() as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


def count_theirs(out: Path) -> int:
    """Scenes in PySceneDetect's list-scenes CSV (a timecode row, a header, then one row per scene)."""
    csvs = list(out.glob("*-Scenes.csv"))
    if not csvs:
        return -1
    with csvs[0].open() as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 2)


def environment(work: Path, bytecode_cache: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def machine_lines(load_before: tuple[float, ...], load_after: tuple[float, ...], args: argparse.Namespace) -> list[str]:
    return [
        f"- machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable by this process), {cpu_model()}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}",
        f"- load average (1/5/15 min) before: {load_text(load_before)}; after: {load_text(load_after)}",
        f"- Python bytecode: {'cached (private PYTHONPYCACHEPREFIX, warmed up)' if args.bytecode_cache else 'not cached: PYTHONDONTWRITEBYTECODE=1, every import compiles from source'}",
        f"- versions: {versions()}",
    ]


def versions() -> str:
    """Installed versions of the tools compared and the libraries they decode with."""
    import importlib.metadata as md

    names = []
    for dist in ("video-framework", "scenedetect", "av", "numpy", "opencv-python", "opencv-python-headless",
                 "opencv-contrib-python"):
        try:
            names.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            continue
    return ", ".join(names)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media",
                    help="folder searched (recursively) for videos")
    ap.add_argument("--min-seconds", type=float, default=10.0,
                    help="use videos at least this long (the target applies from --target-seconds)")
    ap.add_argument("--target-seconds", type=float, default=20.0, help="the >= 1.5x target applies from this length")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs of each command per file")
    ap.add_argument("--startup-repeat", type=int, default=7, help="timed runs of each start-up command")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_whole_command")
    ap.add_argument("--no-bytecode-cache", dest="bytecode_cache", action="store_false",
                    help="run both tools with PYTHONDONTWRITEBYTECODE=1 and no .pyc cache")
    ap.add_argument("--out", type=Path, help="also write the report to this file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    clips = find_clips(args.media.resolve(), args.min_seconds)
    if not clips:
        raise SystemExit(f"no video of {args.min_seconds:g} s or more under {args.media}")
    args.work.mkdir(parents=True, exist_ok=True)
    env = environment(args.work, args.bytecode_cache)
    load_before = os.getloadavg()

    startup_cmds = {
        "`framework --version`": [str(BIN / "framework"), "--version"],
        '`python -c "import cli"`': [str(BIN / "python"), "-c", "import cli"],
        "`scenedetect version`": [str(BIN / "scenedetect"), "version"],
    }
    startup: dict[str, list[tuple[float, float]]] = {k: [] for k in startup_cmds}
    for k, cmd in startup_cmds.items():  # warm-up (and, with the cache, compile once)
        timed(cmd, env, args.work)
    for i in range(args.startup_repeat):
        for k, cmd in startup_cmds.items():
            startup[k].append(timed(cmd, env, args.work)[:2])

    rows = []
    for video, seconds, frames, desc in clips:
        ours_out, theirs_out = args.work / "ours", args.work / "theirs"
        results: dict[str, list[tuple[float, float, float]]] = {"ours": [], "theirs": []}
        counts = {}

        def once(who: str, keep: bool) -> None:
            out = ours_out if who == "ours" else theirs_out
            shutil.rmtree(out, ignore_errors=True)
            cmd = ours_cmd(video, out) if who == "ours" else theirs_cmd(video, out)
            wall, rss, _, cpu = timed(cmd, env, args.work)
            counts[who] = count_ours(out) if who == "ours" else count_theirs(out)
            if keep:
                results[who].append((wall, rss, cpu))

        logger.info("%s: warm-up, then %d interleaved runs of each", video.name, args.repeat)
        load_at = os.getloadavg()[0]
        once("ours", False)
        once("theirs", False)
        for i in range(args.repeat):
            order = ("ours", "theirs") if i % 2 == 0 else ("theirs", "ours")
            for who in order:
                once(who, True)
        rows.append((video, seconds, frames, desc, results, counts, (load_at, os.getloadavg()[0])))
    load_after = os.getloadavg()

    lines = ["# Whole command: `framework run --only cut_analysis` vs `scenedetect detect-content list-scenes`\n",
             f"Command: `python bench/bench_whole_command.py {' '.join(sys.argv[1:])}`\n"]
    lines += machine_lines(load_before, load_after, args) + [""]
    lines.append(f"`ours` = `framework run FILE --only cut_analysis --no-progress --no-resume --out DIR` "
                 "(writes results.json, summary.md, cuts.csv, cuts.edl, thumbnails and report.html); "
                 "`PySceneDetect` = `scenedetect -i FILE -o DIR detect-content list-scenes` (writes the scene "
                 f"list CSV). Seconds are wall time of the whole process: median (fastest-slowest) of "
                 f"{args.repeat} interleaved runs after one warm-up. CPU s: median user + system seconds of "
                 "the process (all its threads). Peak RSS: median of the runs' `/usr/bin/time -v` maximum "
                 "resident set size. Load: the 1-minute load average before and after the file's runs.\n")
    lines.append("| file | length s | frames | video | ours s | PySceneDetect s | ratio of medians | ratio of fastest "
                 "| ours CPU s | PySceneDetect CPU s | ours peak RSS MB | PySceneDetect peak RSS MB "
                 "| shots ours / scenes theirs | load | >= 1.5x? |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for video, seconds, frames, desc, results, counts, load in rows:
        ours_s = [w for w, _, _ in results["ours"]]
        theirs_s = [w for w, _, _ in results["theirs"]]
        ratio = statistics.median(theirs_s) / statistics.median(ours_s)
        fastest = min(theirs_s) / min(ours_s)
        lines.append(
            f"| {video.name} | {seconds:.1f} | {frames} | {desc} | {spread(ours_s)} | {spread(theirs_s)} "
            f"| **{ratio:.2f}x** | {fastest:.2f}x | {statistics.median(c for _, _, c in results['ours']):.2f} "
            f"| {statistics.median(c for _, _, c in results['theirs']):.2f} "
            f"| {statistics.median(r for _, r, _ in results['ours']):.0f} "
            f"| {statistics.median(r for _, r, _ in results['theirs']):.0f} | {counts.get('ours')} / {counts.get('theirs')} "
            f"| {load[0]:.2f} / {load[1]:.2f} "
            f"| {('yes' if ratio >= TARGET else 'no') if seconds >= args.target_seconds else 'n/a (shorter)'} |")
    lines.append("\n### Start-up alone (same environment; median (fastest-slowest) of "
                 f"{args.startup_repeat} runs, peak RSS MB)\n")
    lines.append("| command | wall s | peak RSS MB |\n|---|---|---|")
    for k, runs in startup.items():
        lines.append(f"| {k} | {spread([w for w, _ in runs])} | {statistics.median(r for _, r in runs):.0f} |")
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
