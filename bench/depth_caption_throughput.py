"""Throughput of ``depth_estimation`` and the captioning analyzers (``streaming_dense_captioning``,
optionally ``blip2_video_analyzer``): frames/s, seconds of video per second, device busy share, peak VRAM.

Each analyzer runs its real code (``load`` from a model folder saved in the real Hugging Face layout,
then ``analyze`` through the device step) on frame streams written the way the decoder writes them,
from bench/vision_throughput.py's synthetic clip. Decoding is not timed.

The models have their real architectures and random weights (no hub is reachable): speed and
memory are real, outputs are meaningless. Depth Anything V2 Small (DINOv2 ViT-S/14 + DPT head,
its published config), BLIP base captioning (``BlipConfig()``'s defaults: ViT-B/16 at 384 px, BERT-base
decoder), and with ``--with-blip2`` BLIP-2 OPT-2.7b (its published sizes; ~7.7 GB written in fp16).
Random captioners would stop at once or run to the limit, so every caption is exactly
``--caption-tokens`` tokens (``min_new_tokens = max_new_tokens``), about a real BLIP caption.
``--tiny`` uses test-sized models (a CPU smoke run of this script).

    python bench/depth_caption_throughput.py --device cuda --minutes 10 --with-blip2 --out bench/results/depth_caption_h200.md
    .venv/bin/python bench/depth_caption_throughput.py --device cpu --tiny --minutes 0.5

Prints a markdown report (and writes it to ``--out``); progress goes to stderr.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import cli_device, host_lines, load_text, write_report  # noqa: E402  (bench/machine.py)
from vision_throughput import busy_peak, make_analyzer, measure, num, sampling, synthetic_streams  # noqa: E402

logger = logging.getLogger("depth_caption_throughput")


def _tokenizer(specials: list[str], eos: str, pad: str) -> Any:
    from framework.testing.llm import tiny_bpe_tokenizer

    corpus = ["a man walks a dog in a park. a woman reads a book on a bench. a car on a road at night."]
    return tiny_bpe_tokenizer(corpus, specials, eos=eos, pad=pad, vocab=300)


def build_depth(folder: Path, tiny: bool) -> Path:
    import transformers as tf

    if tiny:
        backbone = dict(model_type="dinov2", hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, image_size=56, patch_size=14,
                        out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False)
        cfg = tf.DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                     fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type="relative")
        size = 56
    else:  # depth-anything/Depth-Anything-V2-Small-hf's config.json
        backbone = dict(model_type="dinov2", hidden_size=384, num_attention_heads=6, num_hidden_layers=12, image_size=518,
                        patch_size=14, out_features=["stage3", "stage6", "stage9", "stage12"], reshape_hidden_states=False)
        cfg = tf.DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=384, neck_hidden_sizes=[48, 96, 192, 384],
                                     reassemble_factors=[4, 2, 1, 0.5], fusion_hidden_size=64, head_hidden_size=32,
                                     depth_estimation_type="relative")
        size = 518
    tf.DepthAnythingForDepthEstimation(cfg).save_pretrained(folder)
    tf.DPTImageProcessor(size={"height": size, "width": size}, keep_aspect_ratio=True, ensure_multiple_of=14, do_pad=False,
                         resample=3, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


def build_blip(folder: Path, tiny: bool) -> Path:
    import transformers as tf

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    tok = _tokenizer(specials, "[SEP]", "[PAD]")
    tok.bos_token, tok.sep_token = "[DEC]", "[SEP]"
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    image = 32 if tiny else 384
    tf.BlipProcessor(image_processor=tf.BlipImageProcessor(size={"height": image, "width": image}),
                     tokenizer=tok).save_pretrained(folder)
    special = dict(bos_token_id=ids["[DEC]"], pad_token_id=ids["[PAD]"], sep_token_id=ids["[SEP]"], eos_token_id=ids["[SEP]"])
    if tiny:
        cfg = tf.BlipConfig(text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=2, **special),
                            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                               num_attention_heads=2, image_size=32, patch_size=8), projection_dim=32)
    else:  # BLIP base: ViT-B/16 at 384 px and a BERT-base decoder (the defaults), real vocabulary size
        cfg = tf.BlipConfig(text_config=dict(vocab_size=30524, **special), vision_config=dict(image_size=384))
    tf.BlipForConditionalGeneration(cfg).save_pretrained(folder)
    return folder


def build_blip2(folder: Path, tiny: bool) -> Path:
    import torch
    import transformers as tf

    tok = _tokenizer(["<pad>", "</s>", "<unk>"], "</s>", "<pad>")
    tok.bos_token = "</s>"
    image = 32 if tiny else 224
    proc = tf.Blip2Processor(image_processor=tf.BlipImageProcessor(size={"height": image, "width": image}), tokenizer=tok,
                             num_query_tokens=4 if tiny else 32)
    proc.save_pretrained(folder)
    tok = proc.tokenizer
    special = dict(bos_token_id=tok.convert_tokens_to_ids("</s>"), eos_token_id=tok.convert_tokens_to_ids("</s>"),
                   pad_token_id=tok.convert_tokens_to_ids("<pad>"))
    if tiny:
        cfg = tf.Blip2Config(
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                               image_size=32, patch_size=8),
            qformer_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                encoder_hidden_size=32),
            text_config=dict(model_type="opt", vocab_size=len(tok), hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                             num_attention_heads=2, word_embed_proj_dim=32, **special),
            num_query_tokens=4, image_token_index=tok.convert_tokens_to_ids("<image>"))
    else:  # Salesforce/blip2-opt-2.7b: EVA ViT-g/14 (the Blip2VisionConfig defaults), Q-Former, OPT-2.7b
        cfg = tf.Blip2Config(
            text_config=dict(model_type="opt", vocab_size=50304, hidden_size=2560, ffn_dim=10240, num_hidden_layers=32,
                             num_attention_heads=32, word_embed_proj_dim=2560, max_position_embeddings=2048, **special),
            num_query_tokens=32, image_token_index=tok.convert_tokens_to_ids("<image>"))
    dtype = torch.float32 if tiny else torch.float16
    with torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu"):
        model = tf.Blip2ForConditionalGeneration(cfg).to(dtype)
    model.save_pretrained(folder)
    return folder


BUILDERS = {"depth_estimation": ("depth-anything-v2-small", build_depth),
            "streaming_dense_captioning": ("blip-image-captioning-base", build_blip),
            "blip2_video_analyzer": ("blip2-opt-2.7b", build_blip2)}
WHAT = {"depth_estimation": "Depth Anything V2 Small", "streaming_dense_captioning": "BLIP base captioning",
        "blip2_video_analyzer": "BLIP-2 OPT-2.7b"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N")
    ap.add_argument("--minutes", type=float, default=None, help="length of the synthetic clip (default: 10 on cuda, 1 on cpu)")
    ap.add_argument("--with-blip2", action="store_true", help="also blip2_video_analyzer (BLIP-2 OPT-2.7b, ~7.7 GB in fp16)")
    ap.add_argument("--tiny", action="store_true", help="test-sized models (a smoke run of this script)")
    ap.add_argument("--caption-tokens", type=int, default=20, help="tokens generated per caption")
    ap.add_argument("--batch-size", type=int, default=None, help="override every analyzer's batch size")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    device = cli_device(args.device)
    cuda = device.startswith("cuda")
    minutes = args.minutes if args.minutes is not None else (10.0 if cuda else 1.0)
    names = ["depth_estimation", "streaming_dense_captioning"] + (["blip2_video_analyzer"] if args.with_blip2 else [])
    load_before = load_text()
    work = Path(tempfile.mkdtemp(prefix="depth_caption_bench_"))
    models: dict[str, Path] = {}
    for name in names:
        mid, build = BUILDERS[name]
        t0 = time.perf_counter()
        folder = work / "models" / mid
        folder.mkdir(parents=True)
        models[mid] = build(folder, args.tiny)
        logger.info("%s built in %.1f s", mid, time.perf_counter() - t0)
    caption = {"max_new_tokens": args.caption_tokens, "min_new_tokens": args.caption_tokens}
    params = {"depth_estimation": {"size": 56} if args.tiny else {},
              "streaming_dense_captioning": dict(caption),
              "blip2_video_analyzer": dict(caption, chunking="fixed")}
    if args.batch_size:
        for p in params.values():
            p["batch_size"] = args.batch_size
    analyzers = {n: make_analyzer(n, device, params[n]) for n in names}
    from framework import VideoMeta

    seconds = minutes * 60
    t0 = time.perf_counter()
    streams = synthetic_streams([s for a in analyzers.values() for s in a.frame_specs()], seconds, work / "frames")
    meta = VideoMeta(path="synthetic.mp4", content_hash="synthetic", size_bytes=1, duration=seconds, has_video=True,
                     width=1280, height=720)
    logger.info("streams ready in %.1f s", time.perf_counter() - t0)
    rows = []
    for name, a in analyzers.items():
        logger.info("measuring %s", name)
        row = measure(a, models, streams, meta, device)
        track = row.pop("track")
        row.update(sampling=sampling(a), what=WHAT[name] + (" (tiny)" if args.tiny else ""),
                   precision=getattr(a, "run_precision", None) or track.data.get("model_info", {}).get("dtype"),
                   frames=track.data.get("frames", row["items"]))
        a.unload()
        rows.append(row)

    lines = [f"# Depth and captioning throughput ({'GPU' if cuda else 'CPU'})", "",
             f"- command: `python bench/depth_caption_throughput.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
             *host_lines(load_before, cuda)]
    import transformers

    lines += [f"- transformers {transformers.__version__}; input: synthetic 1280x720 clip, {minutes:g} min; streams written "
              "before timing (decoding is not timed)",
              "- weights: real architectures, random weights (speed and memory only; outputs meaningless); "
              f"captions forced to {args.caption_tokens} tokens", "",
              "| analyzer | model | sampling | precision | items | frames | wall s | frames/s | video s per s | busy share | "
              "peak VRAM MB | batch sizes |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        busy, peak = busy_peak(r)
        lines.append(f"| {r['analyzer']} | {r['what']} | {r['sampling']} | {r.get('precision') or '-'} | {r['items']} | "
                     f"{r['frames']} | {r['wall_s']:.2f} | {num(r['frames'] / r['wall_s'])} | {num(seconds / r['wall_s'])} | "
                     f"{busy} | {peak} | {r['batch_sizes'] or '-'} |")
    lines += ["", "items: what the device step batches (frames for depth and dense captioning, chunks for BLIP-2); "
              "busy share: time inside forward() over wall time; video s per s: clip seconds per wall second."]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
