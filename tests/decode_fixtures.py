"""A tiny Qwen2 for decoding tests: random weights spread wide enough that greedy choices are no near ties,
and a batch of two prompts, the second left-padded."""
from __future__ import annotations

from pathlib import Path


def tiny_decoder(folder: Path, dtype, hidden: int = 32):
    """(model, input ids, attention mask): ``framework.testing.llm.make_tiny_chat_model``'s Qwen2 (4 query heads
    on 2 key/value heads; ``hidden=64`` gives a head dimension of 16, the least Triton's products take)."""
    import torch
    from transformers import AutoModelForCausalLM

    from framework.testing.llm import make_tiny_chat_model

    folder = make_tiny_chat_model(folder, hidden=hidden)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype).eval()
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5) if p.dim() > 1 else None
    ids = torch.tensor([[5, 9, 14, 3, 7, 22, 8], [0, 0, 11, 4, 6, 19, 2]])
    mask = torch.tensor([[1] * 7, [0, 0] + [1] * 5])
    return model, ids, mask
