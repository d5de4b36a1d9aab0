"""Ray on two GPUs: four videos, one task per GPU, against the same four videos on one GPU.

Runs the real command twice, as separate processes, on generated videos:

    CUDA_VISIBLE_DEVICES=0,1 framework run v0..v3 --executor ray --ray-cpus C --vram-budget B ...
    CUDA_VISIBLE_DEVICES=0   framework run v0..v3 --executor ray --ray-cpus C --vram-budget B ...

with a registry of two analyzers: ``cut_analysis`` (CPU) and ``gpu_frames``, a plugin written by
this script into its work folder: a torchvision ResNet-50 (random weights: speed and memory, not
quality) over every video's frames at ``--fps`` (224x224, fp16 batches of ``--batch``). It
declares no VRAM estimate, so the plan sizes each video's task at one whole GPU: Ray runs at most
one video per GPU at a time. Reported from each run's ``ray_receipt.json``: the command's wall
time, each task's GPU (Ray's id), node, wall time and peak VRAM per GPU (the most its run allocated
there at once, from the run's receipt), and whether every peak stayed within ``--vram-budget``.

On the GPU machine (needs the framework's dependencies and Ray, e.g. ``ray==2.60.0`` for the
machine's Python, plus torchvision):

    python bench/ray_two_gpus.py --device cuda --minutes 2 --out bench/results/ray_two_gpus_h200.md

Here (no GPU), the same code path on the CPU with tiny sizes (the plugin's device is the CPU):

    .venv/bin/python bench/ray_two_gpus.py --device cpu --minutes 0.05 --size 160x90 --videos 2 --ray-cpus 2 --no-save
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PLUGIN = '''
"""gpu_frames: a ResNet-50 (random weights) over the video's frames; written by bench/ray_two_gpus.py."""
import numpy as np

from framework import Analyzer, FrameSpec, hookimpl


class GpuFrames(Analyzer):
    """Runs a real ResNet-50 forward pass over every sampled frame (speed and memory, not quality)."""

    name = "gpu_frames"
    version = "1"
    device = "gpu"

    class Params(Analyzer.Params):
        fps: float = 4.0
        batch: int = 64

    def frame_specs(self):
        return [FrameSpec(fps=self.params.fps, width=224, height=224)]

    def load(self, device, models):
        import torch
        import torchvision

        self.torch, self.dev = torch, device
        self.dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
        self.net = torchvision.models.resnet50(weights=None).to(device=device, dtype=self.dtype).eval()

    def analyze(self, inputs):
        torch = self.torch
        stream = inputs.frames(self.frame_specs()[0])
        times, top = [], []
        with torch.inference_mode():
            for t, frames in stream.batches(self.params.batch):
                x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.dev).permute(0, 3, 1, 2)
                logits = self.net(x.to(self.dtype) / 255.0)
                top.extend(logits.float().softmax(-1).max(-1).values.cpu().tolist())
                times.extend(t.tolist())
                inputs.report(len(times) / max(1, len(stream)))
        return self.track(data={"frames": len(times), "mean_top_prob": float(np.mean(top)) if top else None})

    def unload(self):
        self.net = None
        if str(self.dev).startswith("cuda"):
            self.torch.cuda.empty_cache()


@hookimpl
def register_analyzers(register):
    register(GpuFrames)
'''


def make_videos(work: Path, n: int, minutes: float, size: tuple[int, int]) -> list[Path]:
    from framework.testing.synth import ShotSpec, make_video

    paths = []
    for i in range(n):
        path = work / f"video{i}_{minutes:g}min_{size[0]}x{size[1]}.mp4"
        if not path.exists():
            total, shots, k = minutes * 60, [], 0
            while sum(s.duration for s in shots) < total - 1e-6:
                shots.append(ShotSpec(min(4.0, total - sum(s.duration for s in shots)), ["pan", "zoom", "static"][k % 3],
                                      look=(i * 5 + k) % 11))
                k += 1
            tmp = path.with_suffix(".partial.mp4")
            make_video(tmp, shots, fps=30, width=size[0], height=size[1], text=f"VIDEO {i}")
            tmp.replace(path)
        paths.append(path)
    return paths


def write_registry(work: Path, device: str, fps: float, batch: int) -> Path:
    plugins = work / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "gpu_frames.py").write_text(PLUGIN)
    reg = work / "registry.yaml"
    dev = "gpu" if device == "cuda" else "cpu"
    reg.write_text("plugin_dirs: [plugins]\nanalyzers:\n  cut_analysis: {}\n"
                   f"  gpu_frames: {{device: {dev}, params: {{fps: {fps}, batch: {batch}}}}}\n")
    return reg


def run_once(label: str, videos: list[Path], reg: Path, out: Path, visible: str | None, args) -> dict:
    env = dict(os.environ)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    cmd = [sys.executable, "-m", "cli", "run", *map(str, videos), "--registry", str(reg), "--executor", "ray",
           "--ray-cpus", str(args.ray_cpus), "--out", str(out), "--no-resume", "--no-library",
           "--offline"]  # progress on (to captured stderr): the tasks' attempts are counted through it
    if args.device == "cuda":
        cmd += ["--vram-budget", f"{args.budget_gb}GB"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    wall = time.perf_counter() - t0
    receipt_file = out / "ray_receipt.json"
    receipt = json.loads(receipt_file.read_text()) if receipt_file.exists() else {}
    if proc.returncode != 0:
        print(f"{label}: exit code {proc.returncode}\n{proc.stderr[-3000:]}", file=sys.stderr)
    return {"label": label, "visible": visible, "exit_code": proc.returncode, "command_wall_s": round(wall, 2),
            "receipt": receipt, "stderr_tail": proc.stderr[-1500:] if proc.returncode else ""}


def report(runs: list[dict], args, videos: list[Path]) -> str:
    budget_mb = args.budget_gb * 1024
    lines = ["# Ray on two GPUs: four videos, one task per GPU, against one GPU", "",
             f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`", "",
             f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average at the end "
             f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}",
             f"- videos: {len(videos)} x {args.minutes:g} min at {args.size}; analyzers: cut_analysis (CPU), gpu_frames "
             f"(ResNet-50, random weights, {args.fps:g} fps at 224x224, batch {args.batch}, {args.device})",
             f"- per-GPU VRAM budget: {args.budget_gb} GB (`--vram-budget`)", "",
             "| run | GPUs visible | exit | command wall s | tasks' video s | video-min per GPU-min (held) |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        rc = r["receipt"]
        lines.append(f"| {r['label']} | {r['visible'] or 'all'} | {r['exit_code']} | {r['command_wall_s']} | "
                     f"{rc.get('video_s', '-')} | {rc.get('video_min_per_gpu_min', '-')} |")
    if args.device == "cuda" and len(runs) == 2 and runs[0]["command_wall_s"] and runs[1]["command_wall_s"]:
        lines += ["", f"One GPU / two GPUs wall time: **{runs[1]['command_wall_s'] / runs[0]['command_wall_s']:.2f}x**"]
    within = True
    for r in runs:
        lines += ["", f"### {r['label']}: tasks", "",
                  "| video | Ray GPU ids | num_gpus | node | wall s | attempts | peak allocated VRAM MB per GPU | within budget |",
                  "|---|---|---|---|---|---|---|---|"]
        for t in r["receipt"].get("tasks", []):
            peaks = t.get("peak_vram_mb") or {}
            ok = all(v <= budget_mb for v in peaks.values()) if peaks else None
            within = within and ok is not False
            lines.append(f"| {Path(t['video']).name} | {','.join(t.get('gpu_ids') or []) or '-'} | {t['num_gpus']} | "
                         f"{t.get('node')} | {t.get('wall_s')} | {t.get('attempts')} | "
                         f"{', '.join(f'{k}: {v:.0f}' for k, v in peaks.items()) or '-'} | "
                         f"{'-' if ok is None else ('yes' if ok else '**no**')} |")
    lines += ["", f"Every measured peak within the {args.budget_gb} GB budget: **{'yes' if within else 'no'}**"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/ray_two_gpus.py --device cuda --minutes 2")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=2.0, help="length of each generated video")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--fps", type=float, default=4.0, help="frames per second gpu_frames samples")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--budget-gb", type=float, default=24.0, help="--vram-budget per GPU")
    ap.add_argument("--ray-cpus", type=int, default=min(16, os.cpu_count() or 2))
    ap.add_argument("--gpus", default="0,1", help="the two GPUs (CUDA_VISIBLE_DEVICES); the one-GPU run uses the first")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ray_two_gpus"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ray_two_gpus.md")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"generating {args.videos} videos in {args.work}", file=sys.stderr)
    videos = make_videos(args.work, args.videos, args.minutes, size)
    reg = write_registry(args.work, args.device, args.fps, args.batch)
    if args.device == "cuda":
        both, first = args.gpus, args.gpus.split(",")[0]
        plan = [("two GPUs", both), ("one GPU", first)]
    else:
        plan = [("all CPUs", None), ("again (CPU path check)", None)]
    runs = []
    for label, visible in plan:
        print(f"run: {label}", file=sys.stderr)
        runs.append(run_once(label, videos, reg, args.work / f"runs_{label.split()[0]}", visible, args))
    text = report(runs, args, videos)
    print(text)
    if not args.no_save:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        (args.out.with_suffix(".json")).write_text(json.dumps(runs, indent=1))
        print(f"saved {args.out}", file=sys.stderr)
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
