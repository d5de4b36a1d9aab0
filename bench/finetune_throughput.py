"""Fine-tuning throughput of ``framework finetune``'s trainer: steps/s, samples/s and peak VRAM by batch size.

For each model it writes a snapshot with the **real architecture** (the dimensions of the published
config.json; random weights) in the layout ``save_pretrained`` writes, generates 10 s clips (the
analyzer's chunk length) with a caption each, and trains through the code ``framework finetune``
runs: ``analyzers.vlm.finetune.data`` (the framework's decoder, frames sampled as the describer
samples them), ``model.trainer_class`` (the family's own processor and prompt, the caption as the
label, peft LoRA on the language model, gradient checkpointing, bf16 on CUDA) and the same
step as ``train.finetune`` (the next batch prepared on a CPU thread meanwhile, AdamW, gradient clipping). The model loads once per method;
each batch size then runs ``--warmup`` untimed steps and ``--steps`` timed ones (``--batch-steps 1:300``
for a long run at one batch size; the rate over its second half is reported beside the whole run's). A batch size that
runs out of memory is reported as OOM. "fits" says which of 24 GB and 80 GB cards the measured peak
(``torch.cuda.max_memory_allocated`` plus 1.5 GB of CUDA context and allocator slack) fits.

QLoRA (4-bit NF4 base) runs too when ``bitsandbytes`` imports; otherwise the report says so.
Random weights say nothing about quality; they give shapes, speed and memory.

    # on the GPU machine (both models, LoRA bf16 at batch 1, 4, 8; QLoRA at 1, 4 if bitsandbytes imports)
    python bench/finetune_throughput.py --device cuda --out bench/results/finetune_throughput_h200.md
    # here (CPU path, tiny configurations)
    python bench/finetune_throughput.py --device cpu --tiny --steps 2 --batches 1,2
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.machine import load_text, offline_work_dir, torch_machine  # noqa: E402
from bench.vlm_throughput import CONFIGS as VLM_CONFIGS  # noqa: E402  (the same Qwen2-VL-7B and its tokens)
from bench.vlm_throughput import QWEN_SPECIALS, QWEN_TEMPLATE, qwen2_vl_config  # noqa: E402

# The architectures, from the published config.json of each repository (dimensions only).
CONFIGS = {
    "llava-next-video-7b": dict(
        family="llava_next_video", repo="llava-hf/LLaVA-NeXT-Video-7B-hf", frame=336,
        text=dict(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5),
        vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=336, patch_size=14, projection_dim=768)),
    "qwen2-vl-7b-instruct": VLM_CONFIGS["qwen2-vl-7b-instruct"],
}
# --tiny: the same families at toy sizes (the CPU path of this script, tested in tests/test_finetune.py)
TINY = {
    "llava-next-video-7b": dict(
        family="llava_next_video", repo="tiny", frame=56,
        text=dict(vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-5),
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=56,
                    patch_size=14, projection_dim=32)),
    "qwen2-vl-7b-instruct": dict(
        family="qwen2_vl", repo="tiny",
        text=dict(vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  rope_theta=10000.0, mrope_section=[2, 3, 3]),
        vision=dict(depth=2, embed_dim=32, hidden_size=64, mlp_ratio=2, num_heads=2, in_chans=3, patch_size=14,
                    spatial_merge_size=2, temporal_patch_size=2)),
}
LLAVA_SPECIALS = ["<unk>", "<s>", "</s>", "<image>", "<video>"]
CORPUS = ["Describe what happens in this part of the video: the setting, the people and objects, their actions, "
          "any text on screen, and how the shot changes. Be factual and concise.",
          "This part runs from 12.0 s to 22.0 s of the video; its 20 frames are at 12.0, 12.5, 13.0 s.",
          "The video shows a man and a woman talking at a table in a bright studio while the camera pans slowly "
          "to the left; a laptop and a microphone stand between them. USER: ASSISTANT:"]
CAPTION = ("The video shows a man and a woman talking at a table in a bright studio. The camera pans slowly to the "
           "left while they talk; a laptop and a microphone stand between them, and the light is warm. ") * 2


def build_snapshot(c: dict, folder: Path, device: str, dtype: str) -> int:
    """The architecture ``c`` with random weights, saved as ``save_pretrained`` lays out a snapshot."""
    import torch
    import transformers as tf

    from framework.testing.llm import tiny_bpe_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if c["family"] == "qwen2_vl":
        fast = tiny_bpe_tokenizer(CORPUS, QWEN_SPECIALS, eos="<|im_end|>", pad="<|endoftext|>", vocab=500)
        fast.chat_template = QWEN_TEMPLATE
        ids = {t: fast.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
        pixels = {} if c["repo"] != "tiny" else dict(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
        tf.Qwen2VLProcessor(image_processor=tf.Qwen2VLImageProcessor(**pixels), tokenizer=fast,
                            video_processor=tf.Qwen2VLVideoProcessor(**pixels),
                            chat_template=QWEN_TEMPLATE).save_pretrained(folder)
        cfg = qwen2_vl_config(c, ids)
        cls, eos = tf.Qwen2VLForConditionalGeneration, ids["<|im_end|>"]
    else:
        fast = tiny_bpe_tokenizer(CORPUS, LLAVA_SPECIALS, eos="</s>", pad="<unk>", vocab=500)
        ids = {t: fast.convert_tokens_to_ids(t) for t in LLAVA_SPECIALS}
        size, crop = {"shortest_edge": c["frame"]}, {"height": c["frame"], "width": c["frame"]}
        grid = [[c["frame"], c["frame"]]]
        tf.LlavaNextVideoProcessor(
            video_processor=tf.LlavaNextVideoVideoProcessor(size=size, crop_size=crop),
            image_processor=tf.LlavaNextImageProcessor(size=size, crop_size=crop, image_grid_pinpoints=grid),
            tokenizer=fast, patch_size=c["vision"]["patch_size"], vision_feature_select_strategy="default",
            num_additional_image_tokens=1).save_pretrained(folder)
        cfg = tf.LlavaNextVideoConfig(
            text_config=dict(c["text"], model_type="llama", pad_token_id=ids["<unk>"]),
            vision_config=dict(c["vision"], model_type="clip_vision_model"),
            image_token_index=ids["<image>"], video_token_index=ids["<video>"], image_grid_pinpoints=grid,
            vision_feature_select_strategy="default", vision_feature_layer=-2, spatial_pool_stride=2,
            pad_token_id=ids["<unk>"])
        cls, eos = tf.LlavaNextVideoForConditionalGeneration, ids["</s>"]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))  # random init straight in the target dtype and device
    try:
        with torch.device(device):
            model = cls(cfg)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.eos_token_id = eos
    model.save_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return params


def make_data(work: Path, n: int, seconds: float) -> Path:
    """``n`` clips of ``seconds`` (640x360, 10 fps, two shots each) and a JSONL with a caption each."""
    from framework.testing.synth import ShotSpec, make_video

    data = work / "data.jsonl"
    if data.is_file():
        return data
    lines = []
    for i in range(n):
        path = work / f"clip{i}.mp4"
        half = seconds / 2
        make_video(path, [ShotSpec(half, "pan", look=i % 6), ShotSpec(seconds - half, "zoom", look=(i + 1) % 6)],
                   fps=10.0, width=640, height=360, audio=False, text=None)
        lines.append(json.dumps({"video": path.name, "caption": CAPTION}))
    data.write_text("\n".join(lines) + "\n")
    return data


def measure(trainer, items, batch: int, steps: int, warmup: int, device: str) -> dict:
    """``warmup`` + ``steps`` optimizer steps at ``batch`` with ``train.finetune``'s step; the timed numbers."""
    import torch

    from analyzers.vlm.finetune.train import FinetuneConfig, Prefetch, micro_batch

    cuda = device.startswith("cuda")
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    losses, tokens, t0, marks = [], 0, None, []
    full = (items * (batch // max(1, len(items)) + 2))[:max(batch, len(items) // batch * batch)]  # whole batches
    cfg = FinetuneConfig(model="", data=Path(), out=Path(), batch_size=batch)
    prefetch = Prefetch(lambda k: micro_batch(trainer, full, k, cfg), 0, warmup + steps)  # as train.finetune does
    try:
        for k in range(warmup + steps):
            if k == warmup:
                if cuda:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            inputs = prefetch.next()
            tokens += int(inputs["attention_mask"].sum()) if k >= warmup else 0
            loss = trainer.loss(inputs)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())  # a sync: the step is finished
            if k >= warmup:
                marks.append(time.perf_counter())
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - (t0 or time.perf_counter())
    finally:
        prefetch.close()
    out = {"batch": batch, "steps": steps, "wall_s": wall, "steps_per_s": steps / wall,
           "samples_per_s": steps * batch / wall, "tokens_per_step": tokens / max(1, steps),
           "loss_first": losses[0], "loss_last": losses[-1]}
    half = len(marks) // 2
    if half >= 2:  # the second half alone: a long run's rate, after any early drift
        out["steps_per_s_second_half"] = (len(marks) - 1 - half) / (marks[-1] - marks[half])
    if cuda:
        out["peak_vram_gb"] = torch.cuda.max_memory_allocated() / 2**30
    del opt
    return out


def fits(peak_gb: float | None) -> str:
    if peak_gb is None:
        return "-"
    need = peak_gb + 1.5
    return "24 GB, 80 GB" if need <= 24 else "80 GB" if need <= 80 else "neither"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (cuda:N) or cpu")
    ap.add_argument("--models", default="llava-next-video-7b,qwen2-vl-7b-instruct", help="comma list of: "
                    + ", ".join(CONFIGS))
    ap.add_argument("--batches", default="1,4,8", help="batch sizes (comma list)")
    ap.add_argument("--steps", type=int, default=20, help="timed optimizer steps per batch size")
    ap.add_argument("--batch-steps", default="", help="timed steps for some batch sizes, overriding --steps "
                    "(e.g. 1:300,4:100)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before (allocator, kernels)")
    ap.add_argument("--methods", default="lora,qlora", help="lora and/or qlora (qlora only if bitsandbytes imports)")
    ap.add_argument("--qlora-batches", default="1,4", help="batch sizes for qlora (comma list; it is slower)")
    ap.add_argument("--clips", type=int, default=8, help="generated clips (one sample each)")
    ap.add_argument("--clip-s", type=float, default=10.0, help="clip length (the analyzer's chunk_s)")
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank")
    ap.add_argument("--tiny", action="store_true", help="toy sizes of the same architectures (the CPU test path)")
    ap.add_argument("--work", type=Path, default=None, help="folder for snapshots and clips (default: /dev/shm or tmp)")
    ap.add_argument("--out", type=Path, help="also write the report (markdown) here")
    args = ap.parse_args()

    work = offline_work_dir(args.work, "finetune_bench_")
    import torch

    from analyzers.vlm.finetune import data as datamod
    from analyzers.vlm.finetune.model import LoraSetup, trainer_class
    from analyzers.vlm.families import GenerationOptions

    configs = TINY if args.tiny else CONFIGS
    cuda = args.device.startswith("cuda")
    dtype = "bfloat16" if cuda else "float32"
    try:
        import bitsandbytes  # noqa: F401
        bnb = None
    except Exception as exc:  # noqa: BLE001
        bnb = f"{type(exc).__name__}: {exc}"
    methods = [m for m in args.methods.split(",") if m]
    batch_steps = {int(b): int(n) for b, n in (x.split(":") for x in args.batch_steps.split(",") if x)}
    machine = torch_machine(cuda)
    lines = [f"# Fine-tuning throughput ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"command: `python {' '.join(sys.argv)}`",
             f"machine: {machine}; load before: {load_text()}", "",
             "| model | params | method | batch | timed steps | frames/sample | tokens/step | steps/s | "
             "steps/s (2nd half) | samples/s | peak VRAM GB | fits | loss first -> last |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    data = make_data(work, args.clips, args.clip_s)
    rows, notes = [], []
    for model_id in [m.strip() for m in args.models.split(",") if m.strip()]:
        c = configs[model_id]
        snap = work / "snapshots" / model_id
        t0 = time.perf_counter()
        n_params = build_snapshot(c, snap, args.device, dtype)
        print(f"<!-- {model_id}: snapshot written in {time.perf_counter() - t0:.0f} s -->", flush=True)
        sampling = datamod.sampling_for(c["family"], "cuda" if cuda else "cpu")
        if c["family"] == "llava_next_video":  # its processor crops to the model's size
            sampling = datamod.Sampling(sampling.family, sampling.fps, max(c["frame"], 28) if args.tiny else 336,
                                        sampling.max_frames)
        samples = datamod.load(data)
        items = datamod.extract_frames(samples, sampling, work / "frames" / model_id)
        for method in methods:
            if method == "qlora" and (bnb is not None or not cuda):
                notes.append(f"{model_id}: QLoRA not run: "
                             + (f"bitsandbytes does not import ({bnb})" if bnb else "it needs CUDA"))
                continue
            t0 = time.perf_counter()
            trainer = trainer_class(c["family"])(GenerationOptions())
            trainer.setup = LoraSetup(method=method, rank=args.rank, gradient_checkpointing=True)
            trainer.load(snap, args.device, None, None)
            load_s = time.perf_counter() - t0
            for b in [int(x) for x in (args.qlora_batches if method == "qlora" else args.batches).split(",") if x]:
                steps = batch_steps.get(b, args.steps)
                try:
                    r = measure(trainer, items, b, steps, args.warmup, args.device)
                except torch.OutOfMemoryError:
                    r = {"batch": b, "oom": True}
                    trainer.model.zero_grad(set_to_none=True)
                    torch.cuda.empty_cache()
                r.update(model=model_id, method=method, params=n_params, load_s=load_s,
                         frames=len(items[0].times))
                peak = r.get("peak_vram_gb")
                size = f"{n_params / 1e9:.2f} B" if n_params >= 1e8 else f"{n_params / 1e6:.2f} M"
                half = r.get("steps_per_s_second_half")
                row = (f"| {model_id} | {size} | {method} | {b} | {steps} | {r['frames']} | "
                       + ("OOM | - | - | - | - | neither | - |" if r.get("oom") else
                          f"{r['tokens_per_step']:.0f} | {r['steps_per_s']:.3f} | "
                          f"{f'{half:.3f}' if half else '-'} | {r['samples_per_s']:.2f} | "
                          f"{f'{peak:.1f}' if peak is not None else '-'} | {fits(peak)} | "
                          f"{r['loss_first']:.3f} -> {r['loss_last']:.3f} |"))
                rows.append((row, r))
                print(row, flush=True)
            del trainer
            if cuda:
                torch.cuda.empty_cache()
        shutil.rmtree(snap, ignore_errors=True)
    lines += [row for row, _ in rows]
    lines += ["", f"{args.clips} generated clips of {args.clip_s:g} s (640x360), one caption of "
              f"{len(CAPTION.split())} words each; frames sampled as the describer samples them on this device; "
              f"LoRA rank {args.rank} on the language model's projections, gradient checkpointing, AdamW; "
              f"{args.warmup} untimed steps, then the timed steps of each row; dtype {dtype}; random weights "
              "(architecture only). fits: the peak + 1.5 GB of CUDA context and slack.",
              *[f"- {n}" for n in notes], "", "```json", json.dumps([r for _, r in rows], indent=1, default=str), "```"]
    if notes:
        print("\n".join(f"- {n}" for n in notes), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
