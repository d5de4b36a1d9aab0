"""cut_analysis's per-frame signals made by the decode (``stream_features``) or by the analyzer, as a user
runs it: the whole ``framework run`` with cut_analysis alone, timed from outside (``/usr/bin/time``), on a
generated 1280x720 clip that decodes in segments.

    .venv/bin/python bench/stream_features.py [--seconds 90] [--rounds 2] [--work /tmp/stream_features]

Each round runs both ways, alternating which goes first: ``FRAMEWORK_STREAM_FEATURES=1`` (the default) and
``=0``. The table gives, per run, the whole command's wall time and peak RSS, and from results.json the decode's
seconds, its segments, cut_analysis's own analyze seconds, where its signals came from and the cuts found.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from machine import cpu_model, load_text, markdown_table  # bench/machine.py (scripts run from bench/)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def clip(work: Path, seconds: float) -> Path:
    from framework.testing.synth import default_shots, make_video

    path = work / f"clip_{seconds:g}s_720p.mp4"
    if not path.exists():
        make_video(path, default_shots(seconds), width=1280, height=720, audio=False)
    return path


def run(video: Path, work: Path, features: str) -> list[object]:
    out = work / f"run_{features}"
    shutil.rmtree(out, ignore_errors=True)
    registry = work / "registry.yaml"
    registry.write_text("analyzers:\n  cut_analysis:\n    enabled: true\n")
    timing = work / "time.txt"
    env = {**os.environ, "FRAMEWORK_STREAM_FEATURES": features, "FRAMEWORK_HOME": str(work / "home")}
    done = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(timing), sys.executable, "-m", "cli", "run",
                           str(video), "--registry", str(registry), "--out", str(out), "--no-progress", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"framework run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    wall, rss_kb = timing.read_text().split()[-2:]
    results = json.loads((out / "results.json").read_text())
    track, decode = results["tracks"]["cut_analysis"], results["run"]["decode"]
    return [features, f"{float(wall):.2f}", f"{int(rss_kb) / 1024:.0f}",
            f"{results['run']['receipt']['phases_s'].get('decode', 0.0):.2f}", decode.get("segments"),
            f"{track['receipt'].get('analyze_s', 0.0):.3f}", track["data"]["signals_from"], track["data"]["cut_count"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=90.0, help="length of the generated clip")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/stream_features"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    video = clip(args.work, args.seconds)
    rows = []
    for r in range(args.rounds):
        for features in (("1", "0") if r % 2 == 0 else ("0", "1")):
            rows.append(run(video, args.work, features))
    print(f"`python {' '.join(sys.argv)}`; {cpu_model()}, {os.cpu_count()} CPUs, load {load_text()}; "
          f"a {args.seconds:g} s 1280x720 clip\n")
    print(markdown_table(["FRAMEWORK_STREAM_FEATURES", "whole command s", "peak RSS MiB", "decode s", "segments",
                          "cut_analysis analyze s", "signals from", "cuts"], rows))


if __name__ == "__main__":
    main()
