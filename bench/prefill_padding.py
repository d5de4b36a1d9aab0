"""How much of a Qwen2-VL description batch's prefill is padding, by how its chunks are grouped (no model, no GPU).

The description analyzer prefills a batch of more chunks than ``prefill_rows`` (64 on CUDA) in groups, each chunk's
prompt left-padded to its group's longest (``framework.generation.joint_decode.groups``). This script takes a run's
``results.json`` with a ``cut_analysis`` track, makes the chunks as the analyzer does (``analyzers.vlm.chunks``:
its shots split at ``chunk_s``, short ones merged, frames at ``fps``), counts each chunk's prompt tokens as Qwen2-VL
does for frames of ``width`` x ``height`` (a token per 28x28 pixels of each pair of frames, plus ``text`` tokens),
and prints, for the fewest groups and for several costs of a group (``prefill_group_tokens``), the groups and their
padding. For example, on the end-to-end bench's clip (``bench/end_to_end_gpu.py``'s ``make_clip``; about 75 s on
2 CPUs) or any video::

    (cd bench && python -c "import end_to_end_gpu as e; from pathlib import Path; \
        e.make_clip(Path('/tmp/clip.mp4'), 10.0, 1280, 720, 30.0)")
    framework run /tmp/clip.mp4 --only cut_analysis --out /tmp/cuts --offline --no-library
    python bench/prefill_padding.py /tmp/cuts/results.json
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzers.vlm.chunks import pick_frames, plan_chunks  # noqa: E402
from framework.generation.joint_decode import groups  # noqa: E402


def chunk_tokens(shots: list[tuple[float, float]], duration: float, *, fps: float, width: int, height: int,
                 text: int, chunk_s: float, min_chunk_s: float, max_frames: int) -> list[int]:
    """Each chunk's prompt length in tokens (Qwen2-VL: frames in pairs, 2x2 merged 14-pixel patches)."""
    import numpy as np

    times = np.arange(0.0, duration, 1.0 / fps)
    per_pair = (width // 28) * (height // 28)
    out = []
    for chunk in plan_chunks(shots, duration, chunk_s=chunk_s, min_chunk_s=min_chunk_s):
        frames = len(pick_frames(times, chunk.start, chunk.end, max_frames))
        out.append((frames + frames % 2) // 2 * per_pair + text)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="a run's results.json with a cut_analysis track")
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--width", type=int, default=448)
    ap.add_argument("--height", type=int, default=252, help="448 wide at 16:9, rounded to 28 as Qwen2-VL's processor does")
    ap.add_argument("--text", type=int, default=148,
                    help="the prompt's text tokens a chunk: 148 as the H200 runs counted them on the e2e clip "
                         "(105,336 prompt tokens in 114 chunks; bench/results/end_to_end_h200_ab35.md)")
    ap.add_argument("--chunk-s", type=float, default=10.0)
    ap.add_argument("--min-chunk-s", type=float, default=2.0)
    ap.add_argument("--max-frames", type=int, default=768)
    ap.add_argument("--rows", type=int, default=64, help="prefill_rows: the most chunks in one group")
    ap.add_argument("--costs", default="500,1000,1500,3000,6000", help="prefill_group_tokens values to compare")
    args = ap.parse_args(argv)
    results = json.loads(args.results.read_text())
    track = results["tracks"]["cut_analysis"]
    shots = [(e["start"], e["end"]) for e in track["events"] if e.get("label") == "shot"]
    duration = float(results["video"]["duration"])
    lengths = chunk_tokens(shots, duration, fps=args.fps, width=args.width, height=args.height, text=args.text,
                           chunk_s=args.chunk_s, min_chunk_s=args.min_chunk_s, max_frames=args.max_frames)
    real = sum(lengths)
    print(f"- {args.results}: {duration:.0f} s, {len(shots)} shots, {len(lengths)} chunks of {min(lengths)}-"
          f"{max(lengths)} prompt tokens, {real} in all; frames {args.width}x{args.height} at {args.fps:g} fps")
    print(f"- chunks by length (tokens: how many): {sorted(Counter(lengths).items())}\n")
    print("| grouping | groups | rows per group | padded tokens | padding, share of the prompts' tokens |")
    print("|---|---|---|---|---|")
    for cost in [None] + [float(c) for c in args.costs.split(",") if c]:
        parts = groups(lengths, args.rows, cost)
        padded = sum(max(lengths[i] for i in p) * len(p) for p in parts) - real
        name = f"the fewest groups of at most {args.rows}" if cost is None else f"prefill_group_tokens {cost:g}"
        print(f"| {name} | {len(parts)} | {', '.join(str(len(p)) for p in parts)} | {padded} | {padded / real:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
