"""Test helpers for LLM backends: a scripted backend, and tiny random chat models on disk.

``ScriptedLLM.scripted(answer)`` makes a backend class that answers each call from a script
(a list of replies, or a function of the call) and records every call: its messages, its prompt
size in the backend's token count and its reply. Register it with
``build_plugin_manager(extra_plugins=[backend_plugin(cls)])`` and name it in the fusion params.

``make_tiny_chat_model(folder)`` writes a 2-layer Qwen2 causal LM with random weights, a
byte-level BPE tokenizer trained on a few sentences and a ChatML chat template, exactly as
``save_pretrained`` lays out a Hugging Face snapshot. ``install_in_hf_cache`` copies such a
folder into a Hugging Face hub cache (``models--org--name/snapshots/<commit>/`` + ``refs/main``)
so that the real cache lookup finds it. ``words_only`` makes a real-size random model's greedy words its
(small) tokenizer's word pieces. The text it generates is gibberish: it tests loading,
templating, token counting and how the caller copes with a useless answer, not quality.
"""
from __future__ import annotations

import hashlib
import itertools
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..hookspecs import hookimpl
from ..llm.backend import LLMBackend, LLMError, Message


@dataclass
class ScriptedCall:
    """One ``generate`` call a ``ScriptedLLM`` answered."""

    index: int
    messages: list[Message]
    prompt_tokens: int
    max_new_tokens: int
    reply: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> str:
        """The last user message (where the fusion step puts its notes)."""
        return next((m["content"] for m in reversed(self.messages) if m.get("role") == "user"), "")


def _unscripted(call: ScriptedCall) -> str:
    raise LLMError("ScriptedLLM has no script: make a backend class with ScriptedLLM.scripted(answer)")


class ScriptedLLM(LLMBackend):
    """An LLM backend for tests: answers from a script and records every call in ``calls``.

    Build a class per test with ``ScriptedLLM.scripted(...)``; the class attributes ``calls``
    and the script belong to that class alone, so tests do not share state.
    """

    name: ClassVar[str] = "scripted"
    script: ClassVar[Callable[[ScriptedCall], str]] = staticmethod(_unscripted)
    calls: ClassVar[list[ScriptedCall]] = []
    fail_at: ClassVar[int | None] = None
    load_error: ClassVar[BaseException | None] = None

    class Options(LLMBackend.Options):
        context_window: int = 8192
        model: str | None = None

    @classmethod
    def scripted(cls, answer: "Callable[[ScriptedCall], str] | list[str] | str", *, name: str = "scripted",
                 fail_at: int | None = None, load_error: BaseException | None = None) -> "type[ScriptedLLM]":
        """A ``ScriptedLLM`` subclass named ``name``.

        :param answer: a function of the ``ScriptedCall`` returning the reply, a list of replies
            used in turn (the last one repeats), or one reply for every call.
        :param fail_at: the 0-based call that raises ``LLMError`` instead of answering (an LLM
            that breaks mid-way).
        :param load_error: raised by ``load()`` (a backend that cannot start).
        """
        if callable(answer):
            script = answer
        else:
            replies = [answer] if isinstance(answer, str) else list(answer)
            if not replies:
                raise ValueError("ScriptedLLM.scripted needs at least one reply")
            feed = itertools.chain(replies, itertools.repeat(replies[-1]))
            script = lambda call: next(feed)  # noqa: E731 - one reply per call, in turn
        return type(f"ScriptedLLM_{name}", (cls,), {"name": name, "script": staticmethod(script), "calls": [],
                                                      "fail_at": fail_at, "load_error": load_error})

    def load(self) -> None:
        if self.load_error is not None:
            raise self.load_error

    def generate(self, messages: list[Message], max_new_tokens: int, temperature: float = 0.0) -> str:
        cls = type(self)
        call = ScriptedCall(len(cls.calls), [dict(m) for m in messages], self.count_messages(messages),
                            max_new_tokens)
        cls.calls.append(call)
        if cls.fail_at is not None and call.index >= cls.fail_at:
            raise LLMError(f"scripted LLM {self.name}: call {call.index} fails as scripted")
        call.reply = cls.script(call)
        return call.reply


def backend_plugin(*backends: type[LLMBackend]) -> Any:
    """A plugin object registering ``backends`` through ``register_llm_backends`` (for
    ``build_plugin_manager(extra_plugins=[...])``)."""

    class _BackendsPlugin:
        @hookimpl
        def register_llm_backends(self, register: Callable[[type], None]) -> None:
            for cls in backends:
                register(cls)

    return _BackendsPlugin()

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


def tiny_bpe_tokenizer(corpus: list[str], specials: list[str], *, eos: str, pad: str, vocab: int = 400) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``corpus`` (repeated 8 times), with
    ``specials`` as special tokens and ``eos``/``pad`` among them: the tokenizer of the tiny test models."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(corpus) * 8, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad)


def make_tiny_chat_model(folder: str | Path, *, hidden: int = 32, layers: int = 2, vocab: int = 400,
                         max_positions: int = 8192, seed: int = 0, chat_template: str | None = CHATML_TEMPLATE,
                         model_type: str = "qwen2") -> Path:
    """Write a tiny random chat model (config, safetensors, tokenizer, template) to ``folder``.

    :param chat_template: ``None`` writes a tokenizer without one (a "base model").
    :param model_type: ``qwen2`` (default) or ``gpt2`` (to test the base-model refusal).
    """
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fast = tiny_bpe_tokenizer(_CORPUS, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], eos="<|im_end|>",
                              pad="<|endoftext|>", vocab=vocab)
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


#: a word piece of a small test tokenizer: letters, after a space or not, maybe ending a phrase
_WORD_PIECE = re.compile(r" ?[A-Za-z][a-z]*[.,]?")


def words_only(model: Any, tokenizer: Any) -> int:
    """Zero every output row of a random-weight language model but those of ``tokenizer``'s word pieces
    (letters, maybe after a space, maybe ending in ``.`` or ``,``), so that its greedy words are words: text
    of about as many tokens, in that tokenizer, as it generated. The benchmarks' real-size architectures
    have vocabularies of some 150,000 ids and small test tokenizers: without this nearly every word is an
    id the tokenizer does not have, which decodes to nothing (the end-to-end bench's 114 scene descriptions
    were empty text, and fusion digested 21 tokens where real descriptions fill its token budget), and the
    rest are bytes that re-encode into more tokens than they were. With tied embeddings the input rows of the
    other ids are zeroed too (its answers are noise either way). Returns how many ids it may still say."""
    import torch

    specials = set(tokenizer.all_special_ids)
    head = model.get_output_embeddings()
    keep = [i for i in range(min(len(tokenizer), head.weight.shape[0]))
            if i not in specials and _WORD_PIECE.fullmatch(tokenizer.decode([i]) or "")]
    kept = head.weight[keep].clone()
    with torch.no_grad():
        head.weight.zero_()
        head.weight[keep] = kept
    return len(keep)


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
