"""Tiny vision-language models for the tests, built once per session and saved in the real layout.

Each builder writes exactly what ``save_pretrained`` writes for the real model (config.json,
model.safetensors, tokenizer files, the processor's configs, a chat template), with a byte-level
BPE tokenizer trained on a few sentences and the family's special tokens, so the describer's real
loading code (``AutoProcessor`` / ``AutoImageProcessor`` + ``...ForConditionalGeneration.from_pretrained``
on the folder) runs unchanged. ``make_lora`` makes a LoRA adapter with peft (non-zero weights, so
applying it changes the model's output). Random weights: what they generate is gibberish; the
tests check loading, shapes, prompts, times and plumbing, never the words.

``install(folder, manifest_id)`` copies a folder into the test's Hugging Face cache as the repo
the manifest names, so the runner's real resolution finds it.
"""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

_BUILT: dict[str, Path] = {}
_LOCK = threading.RLock()
CORPUS = ["Describe what happens in this part of the video: the setting, the people and objects, their actions.",
          "This part runs from 12.0 s to 22.0 s of the video; its 4 frames are at 12.0, 14.5, 17.0, 19.5 s.",
          "What happened before, in earlier parts of the video: a man walks a dog in a park. Frame from 00:01:",
          "USER: ASSISTANT: User: Assistant: system user assistant 0123456789 : . , ; - [ ] ( )"]
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_tokenizer(specials: list[str], eos: str, pad: str, vocab: int = 360):
    """``framework.testing.llm``'s tiny BPE tokenizer, trained on the describer's words."""
    from framework.testing.llm import tiny_bpe_tokenizer

    return tiny_bpe_tokenizer(CORPUS, specials, eos=eos, pad=pad, vocab=vocab)


def make_qwen(folder: Path, version: str = "2") -> Path:
    """A 2-layer Qwen2-VL (``version="2"``) or Qwen2.5-VL (``"2.5"``) with its processor."""
    import torch
    import transformers as tf

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    fast = tiny_tokenizer(specials, "<|im_end|>", "<|endoftext|>")
    fast.chat_template = QWEN_TEMPLATE
    ids = {t: fast.convert_tokens_to_ids(t) for t in specials}
    pixels = dict(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    proc_cls = tf.Qwen2VLProcessor if version == "2" else tf.Qwen2_5_VLProcessor
    proc_cls(image_processor=tf.Qwen2VLImageProcessor(**pixels), tokenizer=fast,
             video_processor=tf.Qwen2VLVideoProcessor(**pixels), chat_template=QWEN_TEMPLATE).save_pretrained(folder)
    text = dict(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
                eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"])
    tokens = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"])
    torch.manual_seed(0)
    if version == "2":
        cfg = tf.Qwen2VLConfig(text_config=text, vision_config=dict(
            depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14, spatial_merge_size=2,
            temporal_patch_size=2, in_chans=3), **tokens)
        model = tf.Qwen2VLForConditionalGeneration(cfg)
    else:
        cfg = tf.Qwen2_5_VLConfig(text_config=text, vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1],
            tokens_per_second=2, in_chans=3), **tokens)
        model = tf.Qwen2_5_VLForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.save_pretrained(folder)
    return folder


def make_smolvlm(folder: Path) -> Path:
    """A 2-layer SmolVLM (Idefics3 layout): 32 px images of 4 tokens each."""
    import torch
    import transformers as tf

    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>",
                "<global-img>"]
    fast = tiny_tokenizer(specials, "<end_of_utterance>", "<|endoftext|>")
    fast.save_pretrained(folder)
    ids = {t: fast.convert_tokens_to_ids(t) for t in specials}
    tf.SmolVLMImageProcessor(do_image_splitting=False, size={"longest_edge": 32},
                             max_image_size={"longest_edge": 32}).save_pretrained(folder)
    (folder / "processor_config.json").write_text(json.dumps({"image_seq_len": 4, "processor_class": "SmolVLMProcessor"}))
    torch.manual_seed(0)
    cfg = tf.SmolVLMConfig(
        text_config=dict(model_type="llama", vocab_size=len(fast), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        scale_factor=2, image_token_id=ids["<image>"], pad_token_id=ids["<|endoftext|>"])
    model = tf.SmolVLMForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = ids["<end_of_utterance>"]
    model.save_pretrained(folder)
    return folder


def make_llava_next_video(folder: Path) -> Path:
    """A 2-layer LLaVA-NeXT-Video: 56 px frames, 4 tokens per frame after pooling."""
    import torch
    import transformers as tf

    specials = ["<unk>", "<s>", "</s>", "<image>", "<video>"]
    fast = tiny_tokenizer(specials, "</s>", "<unk>")
    ids = {t: fast.convert_tokens_to_ids(t) for t in specials}
    size = {"shortest_edge": 56}
    crop = {"height": 56, "width": 56}
    tf.LlavaNextVideoProcessor(
        video_processor=tf.LlavaNextVideoVideoProcessor(size=size, crop_size=crop),
        image_processor=tf.LlavaNextImageProcessor(size=size, crop_size=crop, image_grid_pinpoints=[[56, 56]]),
        tokenizer=fast, patch_size=14, vision_feature_select_strategy="default",
        num_additional_image_tokens=1).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = tf.LlavaNextVideoConfig(
        text_config=dict(model_type="llama", vocab_size=len(fast), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, pad_token_id=ids["<unk>"]),
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=56, patch_size=14, projection_dim=32),
        image_token_index=ids["<image>"], video_token_index=ids["<video>"], image_grid_pinpoints=[[56, 56]],
        vision_feature_select_strategy="default", vision_feature_layer=-1, spatial_pool_stride=2,
        pad_token_id=ids["<unk>"])
    model = tf.LlavaNextVideoForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = ids["</s>"]
    model.save_pretrained(folder)
    return folder


def make_lora(base: Path, folder: Path) -> Path:
    """A LoRA adapter for the language model's attention of ``base``, made with peft and saved
    (``adapter_config.json`` + ``adapter_model.safetensors``); non-zero, so it changes outputs."""
    import torch
    import transformers as tf
    from peft import LoraConfig, get_peft_model

    model = tf.LlavaNextVideoForConditionalGeneration.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.normal_(0.0, 0.5)
    peft_model.save_pretrained(folder)
    return folder


BUILDERS = {"qwen2-vl": lambda f: make_qwen(f, "2"), "qwen2.5-vl": lambda f: make_qwen(f, "2.5"),
            "smolvlm": make_smolvlm, "llava-next-video": make_llava_next_video}


def built(kind: str, root: Path) -> Path:
    """The tiny model ``kind`` (built once per session under ``root``)."""
    with _LOCK:
        if kind in _BUILT:
            return _BUILT[kind]
        folder = root / kind
        if kind == "llava-lora":
            make_lora(built("llava-next-video", root), folder)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            BUILDERS[kind](folder)
        _BUILT[kind] = folder
        return folder


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory):
    """``tiny_vlm("qwen2-vl" | "qwen2.5-vl" | "smolvlm" | "llava-next-video" | "llava-lora")`` -> folder."""
    root = tmp_path_factory.getbasetemp() / "tiny_vlms"
    return lambda kind: built(kind, root)


def install(folder: Path, manifest_id: str) -> Path:
    """Copy ``folder`` into the (test-isolated) Hugging Face cache as the repo of ``manifest_id``."""
    from framework.models import load_manifest
    from framework.models.roots import CacheRoots
    from framework.testing.llm import install_in_hf_cache

    spec = load_manifest()[manifest_id]
    return install_in_hf_cache(folder, spec.locator, CacheRoots.from_env().hf_hub, commit=spec.revision)


def remove_installed(manifest_id: str) -> None:
    from framework.models import load_manifest
    from framework.models.roots import CacheRoots

    spec = load_manifest()[manifest_id]
    shutil.rmtree(CacheRoots.from_env().hf_hub / f"models--{spec.locator.replace('/', '--')}", ignore_errors=True)
