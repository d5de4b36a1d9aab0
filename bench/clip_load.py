"""open_clip's ViT-B-32 loaded from a model folder as the CLIP analyzers load it (``ClipModel``), with and
without its random initialisation before the weights (``framework.random_init.skipped``), alternating.

The folder is the end-to-end bench's (real-size architecture, random weights, built here first). Prints a
markdown table: round, way, seconds.

example: python bench/clip_load.py --rounds 3 --device cpu
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from machine import cpu_model, load_text  # noqa: E402  (bench/machine.py)

logger = logging.getLogger("clip_load")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/clip_load.py --rounds 3 --device cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from analyzers._vision.clip import ClipModel
    from framework import random_init
    from vision_throughput import build_models

    folder = build_models(Path(tempfile.mkdtemp()) / "clip", ["content_quality"], args.device)["open-clip-vit-b-32"]
    load_before = load_text()
    rows = []
    real = random_init.skipped
    for r in range(1, args.rounds + 1):
        for way in ("without the random init", "with it (as before)"):
            random_init.skipped = real if way.startswith("without") else contextlib.nullcontext
            try:
                t0 = time.perf_counter()
                ClipModel(folder, args.device, "fp32" if args.device == "cpu" else "fp16")
                rows.append((r, way, time.perf_counter() - t0))
            finally:
                random_init.skipped = real
            logger.info("round %d, %s: %.3f s", r, way, rows[-1][2])
    print(f"{cpu_model()}, load {load_before} -> {load_text()}; device {args.device}\n")
    print("| round | way | ClipModel load s |\n|---|---|---|")
    for r, way, s in rows:
        print(f"| {r} | {way} | {s:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
