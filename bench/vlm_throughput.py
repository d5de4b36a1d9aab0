"""Throughput of scene descriptions through the ``qwen2_vl_temporal`` analyzer (not a bare generate loop).

For each model it writes a snapshot with the **real architecture** (the dimensions of the published
config.json) and random weights into a fake Hugging Face cache, generates a synthetic clip, and runs
``framework.runner.analyze`` with the analyzer (and ``cut_analysis`` for ``--chunking shots``), exactly as
``framework run`` would: one decode pass, chunks, the device step (CPU preprocessing overlapped with
``generate``), batching.
It reports seconds of video described per second of the analyzer's wall time, the device's busy
fraction (``Track.receipt["step"]["busy_s"]`` over the analyzer's wall time), peak VRAM (CUDA) or
peak RSS (CPU), batched and with context carried (one chunk at a time).

Random weights say nothing about quality, and they would stop at random: every chunk generates
exactly ``--new-tokens`` tokens (``min_new_tokens``), as the reference measurement in MEDIA.md did.

    # on the GPU machine (one command per model keeps each under 10 minutes)
    python bench/vlm_throughput.py --device cuda --minutes 10 --models qwen2-vl-7b-instruct --out bench/results/vlm_throughput_h200_7b.md
    # the VLM's batch of 128 prefilled in groups of 64 and decoded as one, beside batches of 64 and one of 128
    python bench/vlm_throughput.py --device cuda --minutes 10 --models qwen2-vl-7b-instruct --chunking shots --batches 64,128 --prefill-rows 64 --overlap-prepare --no-context
    # on this 2-core machine: SmolVLM2-256M at real size, a 60 s clip
    python bench/vlm_throughput.py --device cpu --minutes 1 --models smolvlm2-256m-video-instruct --batches 6 --no-context
"""
from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.machine import load_text, offline_work_dir, torch_machine  # noqa: E402

# The architectures, from the published config.json of each repository (dimensions only).
CONFIGS = {
    "qwen2-vl-7b-instruct": dict(
        family="qwen2_vl", repo="Qwen/Qwen2-VL-7B-Instruct",
        text=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                  num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768, rms_norm_eps=1e-6,
                  tie_word_embeddings=False, rope_theta=1_000_000.0, mrope_section=[16, 24, 24]),
        vision=dict(depth=32, embed_dim=1280, hidden_size=3584, mlp_ratio=4, num_heads=16, in_chans=3, patch_size=14,
                    spatial_merge_size=2, temporal_patch_size=2)),
    "qwen2-vl-2b-instruct": dict(
        family="qwen2_vl", repo="Qwen/Qwen2-VL-2B-Instruct",
        text=dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                  num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
                  tie_word_embeddings=True, rope_theta=1_000_000.0, mrope_section=[16, 24, 24]),
        vision=dict(depth=32, embed_dim=1280, hidden_size=1536, mlp_ratio=4, num_heads=16, in_chans=3, patch_size=14,
                    spatial_merge_size=2, temporal_patch_size=2)),
    "smolvlm2-2.2b-instruct": dict(
        family="smolvlm", repo="HuggingFaceTB/SmolVLM2-2.2B-Instruct", scale_factor=3, image_seq_len=81,
        text=dict(vocab_size=49280, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                  num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=8192, rms_norm_eps=1e-5,
                  rope_theta=130000.0, tie_word_embeddings=False),
        vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                    image_size=384, patch_size=14)),
    "smolvlm2-256m-video-instruct": dict(
        family="smolvlm", repo="HuggingFaceTB/SmolVLM2-256M-Video-Instruct", scale_factor=4, image_seq_len=64,
        text=dict(vocab_size=49280, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                  num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rms_norm_eps=1e-5,
                  rope_theta=100000.0, tie_word_embeddings=False),
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    image_size=512, patch_size=16)),
}
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
SMOL_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>",
                 "<global-img>"]
QWEN_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CORPUS = ["Describe what happens in this part of the video: the setting, the people and objects, their actions, "
          "any text on screen, and how the shot changes. Be factual and concise.",
          "This part runs from 12.0 s to 22.0 s of the video; its 20 frames are at 12.0, 12.5, 13.0 s.",
          "What happened before, in earlier parts of the video: a man walks a dog. Frame from 00:01: User: Assistant:"]


def tokenizer(specials: list[str], eos: str):
    """A byte-level BPE tokenizer (ids far below the model's vocabulary; out-of-range ids decode to nothing)."""
    from framework.testing.llm import tiny_bpe_tokenizer

    return tiny_bpe_tokenizer(CORPUS, specials, eos=eos, pad="<|endoftext|>", vocab=2000)


def qwen2_vl_config(c: dict, ids: dict[str, int]):
    """The ``Qwen2VLConfig`` of the architecture ``c`` with the special-token ids ``ids`` of its tokenizer."""
    import transformers as tf

    text = dict(c["text"])
    rope = {"rope_type": "default", "mrope_section": text.pop("mrope_section"), "rope_theta": text.pop("rope_theta")}
    return tf.Qwen2VLConfig(text_config=dict(text, rope_parameters=rope, eos_token_id=ids["<|im_end|>"],
                                             pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"]),
                            vision_config=c["vision"], image_token_id=ids["<|image_pad|>"],
                            video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                            tie_word_embeddings=text["tie_word_embeddings"])


def build_snapshot(model_id: str, folder: Path, device: str, dtype: str) -> int:
    """The real-size architecture with random weights, saved as ``save_pretrained`` lays out a snapshot."""
    import torch
    import transformers as tf

    from framework.testing.llm import words_only

    c = CONFIGS[model_id]
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch_dtype = getattr(torch, dtype)
    if c["family"] == "qwen2_vl":
        fast = tokenizer(QWEN_SPECIALS, "<|im_end|>")
        fast.chat_template = QWEN_TEMPLATE
        ids = {t: fast.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
        tf.Qwen2VLProcessor(image_processor=tf.Qwen2VLImageProcessor(), tokenizer=fast,
                            video_processor=tf.Qwen2VLVideoProcessor(), chat_template=QWEN_TEMPLATE).save_pretrained(folder)
        cfg = qwen2_vl_config(c, ids)
        cls = tf.Qwen2VLForConditionalGeneration
    else:
        fast = tokenizer(SMOL_SPECIALS, "<end_of_utterance>")
        fast.save_pretrained(folder)
        ids = {t: fast.convert_tokens_to_ids(t) for t in SMOL_SPECIALS}
        size = c["vision"]["image_size"]
        tf.SmolVLMImageProcessor(do_image_splitting=False, size={"longest_edge": size},
                                 max_image_size={"longest_edge": size}).save_pretrained(folder)
        (folder / "processor_config.json").write_text(json.dumps({"image_seq_len": c["image_seq_len"]}))
        text = dict(c["text"], model_type="llama", pad_token_id=ids["<|endoftext|>"])
        cfg = tf.SmolVLMConfig(text_config=text, vision_config=c["vision"], scale_factor=c["scale_factor"],
                               image_token_id=ids["<image>"], pad_token_id=ids["<|endoftext|>"],
                               tie_word_embeddings=text["tie_word_embeddings"])
        cls = tf.SmolVLMForConditionalGeneration
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)  # random init straight in the target dtype, on the target device
    try:
        with torch.device(device):
            model = cls(cfg)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.eos_token_id = ids.get("<|im_end|>", ids.get("<end_of_utterance>"))
    words_only(model, fast)  # (its descriptions are words, as many tokens as it generated)
    model.save_pretrained(folder, max_shard_size="4GB")  # in files of 4 GB, as the real repos are (the 7B: five)
    params = sum(p.numel() for p in model.parameters())
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return params


def install(model_id: str, work: Path, device: str, dtype: str) -> tuple[Path, int]:
    """Write the snapshot straight into the fake HF cache at the manifest's revision (no copy)."""
    from framework.models import load_manifest
    from framework.models.roots import CacheRoots

    spec = load_manifest()[model_id]
    commit = spec.revision or "0" * 40
    repo = CacheRoots.from_env().hf_hub / f"models--{spec.locator.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    marker = snap / ".bench_params"
    if marker.is_file() and marker.read_text().split()[1] == dtype:
        return snap, int(marker.read_text().split()[0])
    shutil.rmtree(repo, ignore_errors=True)
    params = build_snapshot(model_id, snap, device, dtype)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    marker.write_text(f"{params} {dtype}")
    return snap, params


def make_clip(work: Path, minutes: float) -> tuple[Path, float]:
    """A synthetic clip: 640x360 at 10 fps, shots of 4-16 s, no audio (cached in ``work``)."""
    from framework.testing.synth import ShotSpec, make_video

    path = work / f"clip_{minutes:g}min.mp4"
    total = minutes * 60.0
    if not path.is_file():
        shots, t, k = [], 0.0, 0
        lengths = [10.0, 16.0, 4.0, 12.0, 7.0, 13.0]
        while t < total - 1e-6:
            d = min(lengths[k % len(lengths)], total - t)
            shots.append(ShotSpec(d, ["static", "pan", "zoom"][k % 3], look=k % 6))
            t += d
            k += 1
        make_video(path, shots, fps=10.0, width=640, height=360, audio=False, text=None)
    return path, total


def same_descriptions(runs: list[dict], clip: Path) -> str:
    """How many chunks got the same description in every run of the clip at one batch size (greedy
    decoding: with and without CUDA graphs, or a static cache, the words should not change)."""
    digests = [r["text_digests"] for r in runs if r.get("text_digests") and r.get("clip") == str(clip)]
    if len(digests) < 2:
        return ""
    same = sum(len(set(col)) == 1 for col in zip(*digests))
    return (f"descriptions identical across its {len(digests)} runs of the clip at the largest batch: "
            f"{same} of {len(digests[0])} chunks")


def run_once(video: Path, work: Path, model_id: str, device: str, params: dict) -> dict:
    """One ``analyze`` run of cut_analysis + qwen2_vl_temporal; the numbers of its track."""
    import yaml

    from framework.runner import analyze

    registry = work / "registry.yaml"
    shots = params.get("chunking") == "shots"  # fixed windows need no cut detection
    registry.write_text(yaml.safe_dump({"analyzers": {
        **({"cut_analysis": {"enabled": True}} if shots else {}),
        "qwen2_vl_temporal": {"enabled": True, "device": "gpu" if device.startswith("cuda") else "cpu",
                              "params": {"model": model_id, **params}}}}))
    torch = None
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    res = analyze(video, registry_path=registry, out_dir=work / "run", resume=False, progress=False,
                  load_entrypoints=False, offline=True, skip=None if shots else ["cut_analysis"])
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    track = res.timeline.tracks["qwen2_vl_temporal"]
    if track.status != "ok":
        raise SystemExit(f"{model_id}: the analyzer did not run: {track.status}: {track.reason}")
    d, step = track.data, track.receipt.get("step", {})
    covered = sum(e.end - e.start for e in track.events)
    out = {"clip": str(video), "chunks": d["chunks"], "frames": d["frames"], "frame_size": "x".join(map(str, d["frame_size"])),
           "covered_s": covered, "load_s": d["load_s"], "describe_s": d["describe_s"], "wall_s": wall,
           # CPU time of the whole run (decode, load, describe), all threads: on a shared machine the
           # wall time says how busy the machine was; this says how much work the run itself was
           "cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
           "video_s_per_s": covered / d["describe_s"], "busy": step.get("busy_s", 0.0) / d["describe_s"],
           "batch_sizes": step.get("batch_sizes"), "wait_s": step.get("wait_s"),
           "preprocess_s": step.get("preprocess_s"), "prompt_tokens": d["prompt_tokens"],
           "new_tokens": d["new_tokens"], "padding_tokens": d.get("padding_tokens"), "dtype": d["model_info"].get("dtype"), "notes": d.get("notes", []),
           "cuda_graphs": d["model_info"].get("cuda_graphs"), "prefill_rows": d["model_info"].get("prefill_rows"),
           # a digest of each description: runs of one model on one clip must say the same (greedy)
           "text_digests": [hashlib.sha1(e.data["text"].encode()).hexdigest()[:10] for e in track.events]}
    if torch is not None:
        out["peak_vram_gb"] = torch.cuda.max_memory_allocated() / 2**30
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (cuda:N) or cpu")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the synthetic clip")
    ap.add_argument("--models", default="qwen2-vl-7b-instruct,qwen2-vl-2b-instruct,smolvlm2-2.2b-instruct",
                    help="comma list of: " + ", ".join(CONFIGS))
    ap.add_argument("--batches", default="8,32,64", help="batch sizes to measure (comma list)")
    ap.add_argument("--chunk-s", type=float, default=10.0, help="chunk length (fixed windows, as the reference)")
    ap.add_argument("--chunking", default="fixed", choices=["fixed", "shots"])
    ap.add_argument("--new-tokens", type=int, default=128, help="tokens generated per chunk (forced)")
    ap.add_argument("--context-minutes", type=float, default=2.0,
                    help="context run: this many minutes of the clip, one chunk at a time")
    ap.add_argument("--no-context", action="store_true", help="skip the context run")
    ap.add_argument("--static-cache", action="store_true", help="also measure the largest batch with a static KV cache")
    ap.add_argument("--compile", action="store_true", help="also measure the largest batch with torch.compile")
    ap.add_argument("--no-graphs", action="store_true", help="also measure the largest batch without CUDA graphs")
    ap.add_argument("--prefill-rows", type=int, default=None,
                    help="also measure the largest batch prefilled in groups of at most this many chunks and decoded "
                         "as one (the analyzer's prefill_rows; e.g. --batches 64,128 --prefill-rows 64)")
    ap.add_argument("--overlap-prepare", action="store_true",
                    help="with --prefill-rows: also that batch prepared group by group, the first group's prefill "
                         "starting while the next is prepared (the analyzer's overlap_prepare)")
    ap.add_argument("--dtype", default=None, help="bfloat16 (default on CUDA) or float32 (default on CPU)")
    ap.add_argument("--work", type=Path, default=None, help="folder for snapshots and clips (default: /dev/shm or tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (snapshots are reused)")
    ap.add_argument("--out", type=Path, help="also write the report (markdown) here")
    args = ap.parse_args()

    work = offline_work_dir(args.work, "vlm_bench_")

    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    precision = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}[dtype]
    started = time.strftime("%Y-%m-%d %H:%M")
    machine = torch_machine(args.device.startswith("cuda"))
    load = load_text()
    lines = [f"# VLM throughput through qwen2_vl_temporal ({started})", "",
             f"command: `python {' '.join(sys.argv)}`", f"machine: {machine}; load before: {load}", "",
             "| model | params | run | batch | chunks | frames/chunk | frame size | video s/s | busy | peak mem GB |"
             " load s | describe s | run wall s | run CPU s | prompt tok/chunk |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    clip, total = make_clip(work, args.minutes)
    ctx_clip = make_clip(work, min(args.minutes, args.context_minutes))[0]
    # (every batch prefilled whole, as before prefill_rows, whose default on CUDA would group a batch above 64;
    # the --prefill-rows runs set it)
    base = {"chunking": args.chunking, "chunk_s": args.chunk_s, "max_new_tokens": args.new_tokens,
            "min_new_tokens": args.new_tokens, "prefill_rows": 0}
    rows = []
    for model_id in [m.strip() for m in args.models.split(",") if m.strip()]:
        build0 = time.perf_counter()
        _snap, n_params = install(model_id, work, args.device, dtype)
        print(f"<!-- {model_id}: snapshot ready in {time.perf_counter() - build0:.0f} s -->", flush=True)
        runs = [(f"batched b{b}", clip, {"batch_size": int(b)}) for b in args.batches.split(",")]
        top = max(int(b) for b in args.batches.split(","))
        if args.static_cache:
            runs.append((f"static cache b{top}", clip, {"batch_size": top, "static_cache": True}))
        if args.compile:
            runs.append((f"compile+static b{top}", clip, {"batch_size": top, "static_cache": True, "compile": True}))
        if args.no_graphs:
            runs.append((f"no CUDA graphs b{top}", clip, {"batch_size": top, "cuda_graphs": False}))
        if args.prefill_rows:
            runs.append((f"prefill groups of {args.prefill_rows} b{top}", clip,
                         {"batch_size": top, "prefill_rows": args.prefill_rows}))
            if args.overlap_prepare:
                runs.append((f"prefill groups of {args.prefill_rows}, prepared apart b{top}", clip,
                             {"batch_size": top, "prefill_rows": args.prefill_rows, "overlap_prepare": True}))
        if not args.no_context:
            runs.append(("context (serial)", ctx_clip, {"context": True}))
        for name, video, extra in runs:
            r = run_once(video, work, model_id, args.device, {**base, **extra})
            mem = r.get("peak_vram_gb", r["peak_rss_gb"])
            row = (f"| {model_id} | {n_params / 1e9:.2f} B | {name} | {max(r['batch_sizes'] or [1])} | {r['chunks']} | "
                   f"{r['frames'] / r['chunks']:.1f} | {r['frame_size']} | {r['video_s_per_s']:.2f} | "
                   f"{100 * r['busy']:.0f}% | {mem:.1f} | {r['load_s']:.1f} | {r['describe_s']:.1f} | "
                   f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                   f"{r['prompt_tokens'] / r['chunks']:.0f} |")
            rows.append((row, r))
            print(row, flush=True)
            if r["notes"]:
                print(f"<!-- notes: {'; '.join(r['notes'])} -->", flush=True)
            if (r.get("prefill_rows") or {}).get("memory_gb"):  # GB allocated / peak so far after each phase
                phases = ", ".join(f"{m['after']} {m['allocated']}/{m['peak']}" for m in r["prefill_rows"]["memory_gb"])
                print(f"<!-- prefill groups, last batch, GB allocated/peak after: {phases} -->", flush=True)
        same = same_descriptions([r for row, r in rows if row.startswith(f"| {model_id} |")
                                  and row.split(" | ")[2].endswith(f" b{top}")], clip)
        if same:
            rows.append((f"<!-- {model_id}: {same} -->", {}))
            print(rows[-1][0], flush=True)
    lines += [row for row, _ in rows]
    lines += ["", f"clip: {total:.0f} s synthetic 640x360 (context run: {min(args.minutes, args.context_minutes):g} min); "
              f"chunking {args.chunking}, chunk_s {args.chunk_s:g}; {args.new_tokens} new tokens per chunk (forced); "
              f"dtype {dtype} ({precision}); random weights (architecture only).",
              "video s/s: seconds of video described per second of the analyzer's wall time (items to finish); "
              "busy: the device step's busy time (inside generate, synchronized) over that wall time; "
              "peak mem: torch.cuda.max_memory_allocated on CUDA, else the process's peak RSS; run wall / run CPU: "
              "the whole analyze() call (decode, load, describe) in wall time and in CPU time of all threads.", "",
              "```json", json.dumps([r for _, r in rows], indent=1, default=str), "```"]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
