"""Fine-tuning the description model on your own videos: ``framework finetune`` (LoRA and QLoRA).

Modules:

- ``data``: the training data (a JSONL of ``{video, start?, end?, prompt?, caption}`` or the
  ShareGPT4Video layout seed 002 used), checked before training (missing video, empty caption,
  time range outside the video: ``file:line``), and the frames of each sample, decoded once
  by the framework's decoder and sampled as the ``qwen2_vl_temporal`` analyzer samples them.
- ``model``: the family classes of ``analyzers.vlm.families`` turned into trainers: the same
  processor and prompt as inference, the caption appended, the loss on the caption's tokens
  only; a peft LoRA on the language model (bf16 on a GPU, fp32 on a CPU), or QLoRA (4-bit base
  through bitsandbytes); gradient checkpointing.
- ``train``: the loop: validation loss, checkpoints, resume after an interruption, progress
  with loss and ETA; the adapter folder and its card (``card``).
- ``evaluate``: the validation videos described with and without the adapter, side by side.

Importing this package imports neither torch nor transformers.
"""
from __future__ import annotations

__all__ = ["card", "data", "evaluate", "model", "train"]
