"""The ``transformers`` backend: a local chat/instruct model, run in this process.

``model`` is a manifest id (``qwen2.5-1.5b-instruct``, the default), a Hugging Face repo id
(``org/name``) or a local folder holding ``config.json`` and tokenizer files. Repo models load
from the local Hugging Face cache; with ``HF_HUB_OFFLINE=1`` (or ``--offline``) nothing is ever
downloaded and a missing model raises ``LLMUnavailable`` naming the command that fetches it.

Prompts go through the tokenizer's chat template. Models that are not instruction-tuned
(DialoGPT, GPT-2 and friends) cannot follow a summarization instruction and are refused unless
``allow_base_model: true``.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from . import LLMBackend, LLMError, LLMUnavailable, Message

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "qwen2.5-1.5b-instruct"
# Model families known not to be instruction-tuned (seed 000 recommended them; they cannot summarize).
_BASE_MODEL_NAMES = re.compile(r"(dialogpt|(^|[/_-])gpt-?2|distilgpt2)", re.IGNORECASE)
_BASE_MODEL_TYPES = {"gpt2"}


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value now."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (not at import time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model named in the options lives."""

    requested: str
    repo_id: str | None          # None for a local folder
    revision: str | None
    manifest_id: str | None
    instruction_tuned: bool | None
    folder: Path | None = None   # set once found on disk

    @property
    def pull_command(self) -> str:
        if self.manifest_id:
            return f"framework models pull {self.manifest_id}"
        return f"huggingface-cli download {self.repo_id}"


def resolve_model(model: str, revision: str | None = None) -> ResolvedModel:
    """Turn a folder path, manifest id or repo id into a ``ResolvedModel`` (nothing is loaded).

    :raises LLMError: the name is none of the three; the message lists the manifest's LLM ids.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return ResolvedModel(model, None, None, None, None, folder=path.resolve())
    from ..manifest import load_manifest

    manifest = load_manifest()
    if model in manifest:
        spec = manifest[model]
        if spec.source != "huggingface":
            raise LLMError(f"model {model!r} in {manifest.path} has source {spec.source}, not huggingface: "
                           "the transformers backend loads Hugging Face chat models")
        return ResolvedModel(model, spec.locator, revision or spec.revision, model, spec.instruction_tuned)
    if re.match(r"^[\w.-]+/[\w.-]+$", model):
        mid = manifest.by_repo_id().get(model.lower())
        tuned = manifest[mid].instruction_tuned if mid else None
        return ResolvedModel(model, model, revision, mid, tuned)
    llms = [s.id for s in manifest if "summary-llm" in s.tags and s.instruction_tuned]
    raise LLMError(f"analyzers.fusion.params.model: {model!r} is not a folder, a manifest id or a "
                   f"Hugging Face repo id (org/name); instruction-tuned ids in {manifest.path}: "
                   f"{', '.join(llms)}")


def find_snapshot(resolved: ResolvedModel, offline: bool) -> Path:
    """The local snapshot folder of a repo model; download it only when online.

    :raises LLMUnavailable: offline and not in the cache (the message has the pull command).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    assert resolved.repo_id is not None
    cache = hub_cache_dir()
    try:
        return Path(snapshot_download(resolved.repo_id, revision=resolved.revision, cache_dir=str(cache),
                                      local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as exc:
        if offline:
            raise LLMUnavailable(
                f"summary model {resolved.requested} ({resolved.repo_id}) is not in the Hugging Face cache "
                f"{cache} and HF_HUB_OFFLINE is set, so it will not be downloaded; fetch it with "
                f"`{resolved.pull_command}` (or set analyzers.fusion.params.backend: extractive)") from exc
    logger.info("downloading %s to %s (first use; `framework models pull` does this ahead of time)",
                resolved.repo_id, cache)
    try:
        return Path(snapshot_download(resolved.repo_id, revision=resolved.revision, cache_dir=str(cache)))
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types
        raise LLMUnavailable(f"cannot download summary model {resolved.repo_id}: {type(exc).__name__}: {exc}; "
                             f"fetch it with `{resolved.pull_command}` when the hub is reachable") from exc


class TransformersBackend(LLMBackend):
    """A local chat model run with ``transformers`` (``AutoModelForCausalLM`` + chat template)."""

    name: ClassVar[str] = "transformers"

    class Options(LLMBackend.Options):
        model: str = DEFAULT_MODEL
        revision: str | None = None
        device: str = "auto"                  # auto | cpu | cuda | cuda:1 ...
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
        context_window: int | None = None     # default: the model config's max_position_embeddings
        allow_base_model: bool = False        # allow a model that is not instruction-tuned
        seed: int = 0

    def __init__(self, options: Any = None):
        super().__init__(options)
        self.model = None
        self.tokenizer = None
        self.device: str | None = None
        self.resolved: ResolvedModel | None = None
        self._window: int | None = None

    # --- availability and loading ---------------------------------------------------
    def check_available(self) -> str | None:
        if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None:
            return "the transformers backend needs torch and transformers: pip install 'video-framework[ml]'"
        try:
            resolved = resolve_model(self.options.model, self.options.revision)
            if resolved.folder is None and hub_offline():
                find_snapshot(resolved, offline=True)
            self._refuse_base_model(resolved, None)
        except (LLMError, LLMUnavailable) as exc:
            return str(exc)
        return None

    def _refuse_base_model(self, resolved: ResolvedModel, config: Any, has_template: bool | None = None) -> None:
        if self.options.allow_base_model:
            return
        why = None
        if resolved.instruction_tuned is False:
            why = "the models manifest marks it instruction_tuned: false"
        elif _BASE_MODEL_NAMES.search(resolved.requested) or (resolved.repo_id and _BASE_MODEL_NAMES.search(resolved.repo_id)):
            why = "DialoGPT/GPT-2 models are not instruction-tuned"
        elif config is not None and getattr(config, "model_type", None) in _BASE_MODEL_TYPES:
            why = f"its architecture ({config.model_type}) is a base language model"
        elif has_template is False:
            why = "its tokenizer has no chat template"
        if why:
            raise LLMError(
                f"model {resolved.requested} cannot follow a summarization instruction ({why}); use an "
                f"instruct model such as {DEFAULT_MODEL} (`framework models pull {DEFAULT_MODEL}`), or set "
                "analyzers.fusion.params.backend_options.allow_base_model: true to use it anyway")

    def load(self) -> None:
        if self.model is not None:
            return
        reason = None
        if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None:
            reason = "the transformers backend needs torch and transformers: pip install 'video-framework[ml]'"
        if reason:
            raise LLMUnavailable(reason)
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        resolved = resolve_model(self.options.model, self.options.revision)
        self._refuse_base_model(resolved, None)
        folder = resolved.folder or find_snapshot(resolved, offline=hub_offline())
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        self._refuse_base_model(resolved, config)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self._refuse_base_model(resolved, config, has_template=bool(getattr(tokenizer, "chat_template", None)))

        device = self.options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype: Any = self.options.dtype
        if dtype == "auto":
            dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
        else:
            dtype = getattr(torch, dtype)
        torch.manual_seed(self.options.seed)
        logger.info("loading summary model %s from %s on %s (%s)", resolved.requested, folder, device, dtype)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype)
        model.to(device).eval()
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.resolved = ResolvedModel(**{**resolved.__dict__, "folder": folder})
        self._window = self.options.context_window or int(getattr(config, "max_position_embeddings", 0) or 4096)

    def close(self) -> None:
        if self.model is None:
            return
        self.model = None
        self.tokenizer = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001
            pass

    # --- the interface ---------------------------------------------------------------
    @property
    def model_name(self) -> str | None:
        return self.options.model

    @property
    def context_window(self) -> int:
        if self._window is not None:
            return self._window
        return self.options.context_window or 4096

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            return super().count_tokens(text)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_messages(self, messages: list[Message]) -> int:
        if self.tokenizer is None:
            return super().count_messages(messages)
        return int(self._encode(messages)["input_ids"].shape[1])

    def render_prompt(self, messages: list[Message]) -> str:
        """The exact prompt text the model sees (the chat template applied)."""
        if self.tokenizer is None:
            raise LLMError("transformers backend: call load() first")
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # allow_base_model with no template: a plain transcript the model can continue
        return "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant:"

    def _encode(self, messages: list[Message]) -> Any:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                      return_tensors="pt", return_dict=True)
        return self.tokenizer(self.render_prompt(messages), return_tensors="pt")

    def generate(self, messages: list[Message], max_new_tokens: int, temperature: float = 0.0) -> str:
        if self.model is None:
            self.load()
        import torch

        inputs = self._encode(messages)
        n_prompt = int(inputs["input_ids"].shape[1])
        if n_prompt + max_new_tokens > self.context_window:
            raise LLMError(f"prompt of {n_prompt} tokens + {max_new_tokens} new tokens exceeds the context "
                           f"window of {self.options.model} ({self.context_window}); lower "
                           "analyzers.fusion.params.token_budget")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            kwargs["temperature"] = temperature
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        try:
            with torch.inference_mode():
                out = self.model.generate(**inputs, pad_token_id=pad, **kwargs)
        except Exception as exc:  # noqa: BLE001 - surface as an LLM error naming the model
            raise LLMError(f"generation with {self.options.model} failed: {type(exc).__name__}: {exc}") from exc
        return self.tokenizer.decode(out[0][n_prompt:], skip_special_tokens=True)
