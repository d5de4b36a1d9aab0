"""`framework finetune`: a LoRA / QLoRA adapter for the description model, trained on your own videos.

Thin: the options become an ``analyzers.vlm.finetune.train.FinetuneConfig``; the work is in
``analyzers/vlm/finetune/`` (data checks, frames sampled as the describer samples them, the loop,
checkpoints, the card) and ``--eval`` in ``analyzers/vlm/finetune/evaluate.py``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from . import console, main, user_errors


class _Display:
    """A rich progress bar with the loss, the validation loss and the ETA (on the shared console)."""

    def __init__(self) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.progress = Progress(TextColumn("[bold]training[/]"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), console=console, transient=False)
        self.task: Any = None
        self.val = ""

    def stage(self, text: str) -> None:
        console.print(f"[dim]{text}...[/]", highlight=False)

    def start(self, first: int, total: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("train", total=total, completed=first, loss="")

    def step(self, step: int, record: dict[str, Any]) -> None:
        if "val_loss" in record:
            self.val = f"  val {record['val_loss']:.4f}"
        self.progress.update(self.task, completed=step, loss=f"loss {record['loss']:.4f}{self.val}")

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()
            self.task = None


@main.command("finetune")
@click.option("-m", "--model", default=None, help="Base model: a models-manifest id (e.g. qwen2-vl-2b-instruct, "
              "llava-next-video-7b, smolvlm2-500m-video-instruct), its Hugging Face repo id, or a local model folder.")
@click.option("-d", "--data", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Training data: JSONL of {video, start?, end?, prompt?, caption} (paths relative to the file) "
              "or a ShareGPT4Video .json/.jsonl.")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the adapter, its card (finetune.json, README.md) and the checkpoints.")
@click.option("--method", type=click.Choice(["lora", "qlora"]), default="lora", show_default=True,
              help="lora (bf16 on a GPU, fp32 on a CPU) or qlora (4-bit base; needs bitsandbytes and CUDA).")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Passes over the training samples.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Optimizer steps (overrides --epochs).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-4, show_default=True,
              help="Peak learning rate (linear warm-up, cosine decay to 10%).")
@click.option("--rank", type=click.IntRange(1, 512), default=16, show_default=True, help="LoRA rank (alpha = 2 x rank).")
@click.option("--batch-size", "batch_size", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Samples per forward pass.")
@click.option("--accumulate", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Forward passes per optimizer step (gradient accumulation).")
@click.option("--val-split", "val_split", type=click.FloatRange(0, 0.9), default=0.1, show_default=True,
              help="Fraction of the videos held out for the validation loss (and --eval).")
@click.option("--frames", type=click.IntRange(1, 768), default=None,
              help="Most frames per sample (default: the describer's cap for the model on this device).")
@click.option("--prompt", default=None, help="Instruction for samples that give none (default: the describer's).")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True,
              help="Where to train (auto: the GPU when there is one).")
@click.option("--save-every", "save_every", type=click.IntRange(min=1), default=50, show_default=True,
              help="Steps between checkpoints (and validation losses).")
@click.option("--no-gradient-checkpointing", "no_gc", is_flag=True,
              help="Keep activations (faster, more memory).")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out from its newest checkpoint.")
@click.option("--eval", "do_eval", is_flag=True,
              help="Then describe the validation videos with and without the adapter, side by side (eval.md).")
@click.option("--eval-tokens", "eval_tokens", type=click.IntRange(1, 4096), default=128, show_default=True,
              help="--eval: longest description, in tokens.")
@click.option("--seed", type=int, default=0, show_default=True, help="Data order, split and LoRA initialisation.")
@click.option("--offline", is_flag=True, help="Never download the base model.")
@click.option("--keep-checkpoints", "keep_checkpoints", is_flag=True,
              help="Keep the checkpoints and the frame cache after training finishes.")
@user_errors
def finetune_cmd(model: str | None, data: Path | None, out: Path, method: str, epochs: float, steps: int | None,
                 lr: float, rank: int, batch_size: int, accumulate: int, val_split: float, frames: int | None,
                 prompt: str | None, device: str, save_every: int, no_gc: bool, resume: bool, do_eval: bool,
                 eval_tokens: int, seed: int, offline: bool, keep_checkpoints: bool) -> None:
    """Fine-tune the description model on your own videos and captions (a LoRA or QLoRA adapter).

    The frames of each sample are decoded and sampled exactly as the qwen2_vl_temporal analyzer
    samples them. Bad data (a missing video, an empty caption, a time range outside the video) is
    reported as FILE:LINE before anything trains. Ctrl-C saves a checkpoint; --resume continues.
    Use the adapter with `framework describe --adapter OUT` or `adapter: OUT` in registry.yaml.

    \b
    Examples:
      framework finetune --model qwen2-vl-2b-instruct --data captions.jsonl --out adapters/my-style
      framework finetune --model llava-next-video-7b --data sharegpt4video.jsonl --method qlora \\
          --out adapters/detailed --steps 500 --batch-size 2 --accumulate 4 --eval
      framework finetune --model qwen2-vl-2b-instruct --data captions.jsonl --out adapters/my-style --resume
      framework finetune --out adapters/my-style --eval
    """
    from analyzers.vlm.finetune.card import read_card
    from analyzers.vlm.finetune.evaluate import evaluate
    from analyzers.vlm.prompts import DEFAULT_PROMPT
    from analyzers.vlm.finetune.train import FinetuneConfig, Hooks, TrainingInterrupted, finetune

    if model is None or data is None:
        if not (do_eval and read_card(out) is not None):
            raise click.UsageError("give --model and --data (only --out and --eval evaluate an adapter already made)")
    else:
        cfg = FinetuneConfig(model=model, data=data, out=out, method=method, epochs=epochs, steps=steps, lr=lr,
                             rank=rank, batch_size=batch_size, accumulate=accumulate, val_split=val_split,
                             frames=frames, prompt=prompt or DEFAULT_PROMPT,
                             device=device, gradient_checkpointing=not no_gc,
                             save_every=save_every, seed=seed, resume=resume, offline=offline,
                             keep_checkpoints=keep_checkpoints)
        display = _Display()
        try:
            result = finetune(cfg, Hooks(stage=display.stage, start=display.start, step=display.step))
        except TrainingInterrupted as exc:
            display.stop()
            saved = f"checkpoint {exc.checkpoint}" if exc.checkpoint else "no checkpoint (no step finished)"
            console.print(f"[bold yellow]interrupted[/] after step {exc.step}: {saved}.", highlight=False,
                          soft_wrap=True)
            console.print(f"resume with: framework finetune --model {model} --data {data} --out {out} --resume "
                          "(and the same options)", highlight=False, markup=False, soft_wrap=True)
            raise SystemExit(130) from None
        finally:
            display.stop()
        r = result.card["results"]
        val = (f"; validation loss {r['val_loss_before']:.4f} -> {r['val_loss']:.4f}"
               if r.get("val_loss") is not None and r.get("val_loss_before") is not None else "")
        console.print(f"[green]adapter saved[/] in {out}: {r['steps']} steps, training loss "
                      f"{r['first_loss'] or 0:.4f} -> {r['train_loss']:.4f}{val}", highlight=False)
        console.print(f"use it: framework describe VIDEO --model {result.card['base_model']['id']} --adapter {out}",
                      highlight=False, markup=False, soft_wrap=True)
    if do_eval:
        ev = evaluate(out, device=device, max_new_tokens=eval_tokens,
                      stage=lambda text: console.print(f"[dim]{text}...[/]", highlight=False))
        console.print(f"[green]side by side[/]: {out / 'eval.md'} ({len(ev['samples'])} validation samples)",
                      highlight=False)
