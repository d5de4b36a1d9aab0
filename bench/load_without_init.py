"""Models loaded as the analyzers load them, with and without their random initialisation before the
weights (``framework.random_init.skipped``), alternating: open_clip's ViT-B-32 (``ClipModel``, the CLIP
analyzers) and openai-whisper checkpoints (``OpenAIWhisper``, speech_transcription).

Each is built first at its real size with random weights (the end-to-end bench's builders). Prints a
markdown table: model, round, way, seconds.

example: python bench/load_without_init.py --models clip,whisper-base,whisper-small --rounds 3
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from machine import cpu_model, load_text, markdown_table  # noqa: E402  (bench/machine.py)

logger = logging.getLogger("load_without_init")


def loader(model: str, work: Path, device: str) -> Callable[[], Any]:
    """A function that loads ``model`` (built here first) as its analyzer does."""
    if model == "clip":
        from analyzers._vision.clip import ClipModel
        from vision_throughput import build_models

        folder = build_models(work / "clip", ["content_quality"], device)["open-clip-vit-b-32"]
        return lambda: ClipModel(folder, device, "fp32" if device == "cpu" else "fp16")
    if model.startswith("whisper-"):
        from analyzers._speech.random_models import openai_whisper_checkpoint
        from analyzers._speech.whisper_backends import OpenAIWhisper

        path = openai_whisper_checkpoint(work / f"{model}.pt", model.removeprefix("whisper-"))
        return lambda: OpenAIWhisper().load(path, device, None)
    raise SystemExit(f"unknown model {model!r}: clip, whisper-SIZE (base, small, ...)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/load_without_init.py --models clip,whisper-base "
                                        "--rounds 3")
    ap.add_argument("--models", default="clip,whisper-base", help="clip, whisper-SIZE (comma-separated)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from framework import random_init

    work = Path(tempfile.mkdtemp())
    load_before = load_text()
    rows = []
    real = random_init.skipped
    for model in args.models.split(","):
        load = loader(model, work, args.device)
        for r in range(1, args.rounds + 1):
            for way in ("without the random init", "with it (as before)"):
                random_init.skipped = real if way.startswith("without") else contextlib.nullcontext
                try:
                    t0 = time.perf_counter()
                    load()
                    rows.append((model, r, way, time.perf_counter() - t0))
                finally:
                    random_init.skipped = real
                logger.info("%s, round %d, %s: %.3f s", model, r, way, rows[-1][3])
    print(f"{cpu_model()}, load {load_before} -> {load_text()}; device {args.device}\n")
    print(markdown_table(["model", "round", "way", "load s"], [[m, r, way, f"{s:.3f}"] for m, r, way, s in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
