"""Tiny random chat models in the real on-disk formats, for tests and benchmarks.

``make_tiny_chat_model(folder)`` writes a 2-layer Qwen2 causal LM with random weights, a
byte-level BPE tokenizer trained on a few sentences and a ChatML chat template, exactly as
``save_pretrained`` lays out a Hugging Face snapshot. ``install_in_hf_cache`` copies such a
folder into a Hugging Face hub cache (``models--org--name/snapshots/<commit>/`` + ``refs/main``)
so that the real cache lookup finds it. The text it generates is gibberish: it tests loading,
templating, token counting and how the caller copes with a useless answer, not quality.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = [
    "system user assistant You summarize videos from analyzer notes.",
    "Scene 1 [0.0-4.0 s] speech: hello and welcome. camera: static. objects: person, car.",
    '{"title": "A video", "paragraph": "text", "chapters": [{"start": 0.0, "end": 4.0, "title": "Intro"}], '
    '"key_moments": [{"time": 1.5, "text": "a cut"}]}',
    "0123456789 : . , ; - ( ) [ ] { } \" ' loud quiet pan tilt zoom shake fade dissolve",
]


def make_tiny_chat_model(folder: str | Path, *, hidden: int = 32, layers: int = 2, vocab: int = 400,
                         max_positions: int = 8192, seed: int = 0, chat_template: str | None = CHATML_TEMPLATE,
                         model_type: str = "qwen2") -> Path:
    """Write a tiny random chat model (config, safetensors, tokenizer, template) to ``folder``.

    :param chat_template: ``None`` writes a tokenizer without one (a "base model").
    :param model_type: ``qwen2`` (default) or ``gpt2`` (to test the base-model refusal).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 8, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    if chat_template:
        fast.chat_template = chat_template
    fast.save_pretrained(folder)
    eos, pad = fast.convert_tokens_to_ids("<|im_end|>"), fast.convert_tokens_to_ids("<|endoftext|>")
    torch.manual_seed(seed)
    if model_type == "qwen2":
        from transformers import Qwen2Config, Qwen2ForCausalLM

        cfg = Qwen2Config(vocab_size=len(fast), hidden_size=hidden, intermediate_size=hidden * 2,
                          num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=max_positions, eos_token_id=eos, pad_token_id=pad,
                          tie_word_embeddings=True)
        model = Qwen2ForCausalLM(cfg)
    elif model_type == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(vocab_size=len(fast), n_embd=hidden, n_layer=layers, n_head=4,
                         n_positions=max_positions, eos_token_id=eos, bos_token_id=eos, pad_token_id=pad)
        model = GPT2LMHeadModel(cfg)
    else:
        raise ValueError(f"model_type must be qwen2 or gpt2, not {model_type!r}")
    model.save_pretrained(folder)
    return folder


def install_in_hf_cache(folder: str | Path, repo_id: str, cache_dir: str | Path, commit: str | None = None) -> Path:
    """Copy a saved model into a Hugging Face hub cache as ``repo_id`` at ``commit`` (default: a
    made-up one).

    Lays out ``models--{org}--{name}/snapshots/<commit>/`` and ``refs/main`` the way
    ``huggingface_hub`` does, and returns the snapshot folder.
    """
    folder = Path(folder)
    commit = commit or hashlib.sha1(repo_id.encode()).hexdigest()
    repo_dir = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    snap = repo_dir / "snapshots" / commit
    if snap.exists():
        shutil.rmtree(snap)
    shutil.copytree(folder, snap)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return snap
