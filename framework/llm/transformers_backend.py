"""The ``transformers`` backend: a local chat/instruct model, run in this process.

It loads one folder (``config.json``, weights, tokenizer files) and never looks anything up:

- ``model_path``: the folder the runner resolved for ``model`` (a models-manifest id such as
  ``qwen2.5-1.5b-instruct``, the default). The fusion step fills it from what
  ``Analyzer.load(device, models)`` hands over; the runner found it through
  ``framework``'s model code, which is also what ``framework models pull`` fetches into.
- ``model`` set to a local folder loads that folder directly.

A manifest id with no folder (not cached) or a Hugging Face repo id that is not in the manifest
raises ``LLMUnavailable`` with what to do, and the fusion step writes an extractive summary.

Prompts go through the tokenizer's chat template. Models that are not instruction-tuned
(DialoGPT, GPT-2 and friends) cannot follow a summarization instruction and are refused unless
``allow_base_model: true``.

On a GPU, decoding runs over a static KV cache with each step replayed as a CUDA graph
(``framework.generation``; ``cuda_graphs: false`` turns it off), greedy search with the whole step
one graph (a 1.5B model's step is otherwise mostly Python launching kernels: end to end on an H200
one 768-token answer took 33 s), and a step's attention is two matrix products per key/value head
(``generation.decode_attention``) instead of SDPA's kernel. Graphs are captured only while nothing else uses the GPU
(``gpu_to_itself``, which fusion sets from its placement); meanwhile the steps run as is.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import re
from pathlib import Path
from typing import Any, Callable, ClassVar, ContextManager, Literal

from pydantic import Field

from ..host_to_device import move_module
from .backend import LLMBackend, LLMError, LLMUnavailable, Message

logger = logging.getLogger(__name__)

#: independent chats ``generate_many`` generates together by default (the ``max_batch`` option)
DEFAULT_MAX_BATCH = 8

DEFAULT_MODEL = "qwen2.5-1.5b-instruct"
# Model families known not to be instruction-tuned (seed 000 recommended them; they cannot summarize).
_BASE_MODEL_NAMES = re.compile(r"(dialogpt|(^|[/_-])gpt-?2|distilgpt2)", re.IGNORECASE)
_BASE_MODEL_TYPES = {"gpt2"}
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_NEEDS_ML = "the transformers backend needs torch and transformers: pip install 'video-framework[ml]'"


def model_folder(model: str, model_path: str | None) -> Path:
    """The folder to load: ``model_path`` (resolved by the runner), else ``model`` if it is a folder.

    :raises LLMUnavailable: neither is a folder; the message says what to do for a manifest id
        that is not cached and for a repo id that the manifest does not list.
    """
    if model_path:
        folder = Path(model_path).expanduser()
        if not folder.is_dir():
            raise LLMUnavailable(f"summary model {model}: the folder {folder} handed to the transformers backend "
                                 "does not exist; run `framework models verify` or pull the model again")
        return folder
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder
    if _REPO_ID.match(model) and not model.startswith((".", "~")):
        raise LLMUnavailable(
            f"analyzers.fusion.params.model: {model!r} is a Hugging Face repo id, not a models-manifest id; "
            "models load only through the manifest, which pins their revision: use the manifest id of this "
            "repo if it has one (`framework models list`), add it to the manifest with a plugin's "
            "register_models hook, or download it and set model to its local folder")
    if "/" in model or model.startswith((".", "~")):
        raise LLMUnavailable(f"analyzers.fusion.params.model: the folder {folder} does not exist")
    raise LLMUnavailable(
        f"summary model {model} is not in the local model cache, so the runner handed the fusion step no "
        f"folder for it; fetch it with `framework models pull {model}` (or set model to a local folder, "
        "or analyzers.fusion.params.backend: extractive)")


class TransformersBackend(LLMBackend):
    """A local chat model run with ``transformers`` (``AutoModelForCausalLM`` + chat template)."""

    name: ClassVar[str] = "transformers"

    class Options(LLMBackend.Options):
        model: str = DEFAULT_MODEL            # a manifest id (its folder comes in model_path) or a folder
        model_path: str | None = None         # the local folder the runner resolved for model
        device: str = "auto"                  # auto | cpu | cuda | cuda:1 ...
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
        context_window: int | None = None     # default: the model config's max_position_embeddings
        allow_base_model: bool = False        # allow a model that is not instruction-tuned
        seed: int = 0
        max_batch: int = Field(DEFAULT_MAX_BATCH, ge=1, description="independent chats generated together in "
                               "one batch")
        cuda_graphs: bool = Field(True, description="on a GPU, replay decoding steps as CUDA graphs")

    def __init__(self, options: Any = None):
        super().__init__(options)
        self.model = None
        self.tokenizer = None
        self.oom_splits = 0  # batches of generate_many halved after running out of device memory
        self.device: str | None = None
        self.folder: Path | None = None
        self._window: int | None = None
        self.graphs: Any = None  # framework.generation.decode_graphs.DecodeGraphs, on a GPU
        self.notes: list[str] = []  # what decoding fell back from (a refused static cache, a failed capture)
        #: whether nothing else uses the GPU now (``Placement.gpu_to_itself``); None: nothing else does
        self.gpu_to_itself: Callable[[], ContextManager[bool]] | None = None
        self._static_ok = True
        self._loop_ok = True
        self.loop_calls = 0  # generations done in the graphed greedy loop
        self.decode_attention = False  # decoding steps attend with framework.generation.decode_attention
        self.fused_norms = 0  # RMSNorm layers computed by one fused kernel (framework.generation.fused_norm)
        self.moved: dict[str, Any] = {}  # how the weights went onto the device (framework.host_to_device)
        self.fused_projections: dict[str, int] = {}  # layers whose projections share one product (fused_projections)

    # --- availability and loading ---------------------------------------------------
    def check_available(self) -> str | None:
        if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None:
            return _NEEDS_ML
        try:
            self._refuse_base_model(None)
            model_folder(self.options.model, self.options.model_path)
        except (LLMError, LLMUnavailable) as exc:
            return str(exc)
        return None

    def _refuse_base_model(self, config: Any, has_template: bool | None = None) -> None:
        if self.options.allow_base_model:
            return
        why = None
        if _BASE_MODEL_NAMES.search(self.options.model):
            why = "DialoGPT/GPT-2 models are not instruction-tuned"
        elif config is not None and getattr(config, "model_type", None) in _BASE_MODEL_TYPES:
            why = f"its architecture ({config.model_type}) is a base language model"
        elif has_template is False:
            why = "its tokenizer has no chat template"
        if why:
            raise LLMError(
                f"model {self.options.model} cannot follow a summarization instruction ({why}); use an "
                f"instruct model such as {DEFAULT_MODEL} (`framework models pull {DEFAULT_MODEL}`), or set "
                "analyzers.fusion.params.backend_options.allow_base_model: true to use it anyway")

    def load(self) -> None:
        if self.model is not None:
            return
        if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None:
            raise LLMUnavailable(_NEEDS_ML)
        self._refuse_base_model(None)
        folder = model_folder(self.options.model, self.options.model_path)
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        self._refuse_base_model(config)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self._refuse_base_model(config, has_template=bool(getattr(tokenizer, "chat_template", None)))

        device = self.options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype: Any = self.options.dtype
        if dtype == "auto":
            dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
        else:
            dtype = getattr(torch, dtype)
        torch.manual_seed(self.options.seed)
        logger.info("loading summary model %s from %s on %s (%s)", self.options.model, folder, device, dtype)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype)
        self.moved = move_module(model, device)  # onto a GPU through pinned buffers, several at once
        model.eval()
        self.model, self.tokenizer, self.device, self.folder = model, tokenizer, device, folder
        if device.startswith("cuda"):
            from ..generation import decode_attention, decode_graphs, fused_norm, fused_projections

            self.fused_norms = fused_norm.install(model)  # each RMSNorm one kernel, not six to eight
            self.fused_projections = fused_projections.install(model)  # q/k/v one product, gate/up one
            note = decode_attention.install(model)  # a decoding step's attention: two products per key head
            self.decode_attention = note is None and model.config._attn_implementation == decode_attention.NAME
            if note:
                self.notes.append(note)
            if self.options.cuda_graphs:
                self.graphs = decode_graphs.install(model, self.notes, self._capture_gate)
        self._window = self.options.context_window or int(getattr(config, "max_position_embeddings", 0) or 4096)

    def _capture_gate(self) -> ContextManager[bool]:
        from ..generation.decode_graphs import capture_gate

        return capture_gate(contextlib.nullcontext(), self.gpu_to_itself)

    @property
    def cuda_graphs(self) -> dict[str, Any] | None:
        """What the graphs did (captures, replayed steps, steps while the GPU was shared, generations in
        the greedy loop); None off a GPU."""
        if self.graphs is None:
            return None
        extra = {"decode_attention": True} if self.decode_attention else {}
        if self.decode_attention:
            from ..generation import decode_kernel

            extra["decode_kernel"] = decode_kernel.in_use()  # (else two matrix products per key/value head)
        if self.fused_norms:
            extra["fused_rms_norms"] = self.fused_norms
        if self.moved.get("way", "to") != "to":  # (moved through staging buffers)
            extra["moved_to_device"] = self.moved
        if any(self.fused_projections.values()):
            extra["fused_projections"] = dict(self.fused_projections)
        return {**self.graphs.summary(), "greedy_loop_calls": self.loop_calls, **extra}

    def close(self) -> None:
        if self.model is None:
            return
        self.model = None
        self.tokenizer = None
        self.graphs = None
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

    def _check_window(self, n_prompt: int, max_new_tokens: int) -> None:
        if n_prompt + max_new_tokens > self.context_window:
            raise LLMError(f"prompt of {n_prompt} tokens + {max_new_tokens} new tokens exceeds the context "
                           f"window of {self.options.model} ({self.context_window}); lower "
                           "analyzers.fusion.params.token_budget")

    def _generate(self, inputs: dict[str, Any], max_new_tokens: int, temperature: float) -> Any:
        import torch

        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": temperature > 0,
                                  "pad_token_id": self._pad_id()}
        if temperature > 0:
            kwargs["temperature"] = temperature
        if self.graphs is not None and self._static_ok:
            kwargs.update(cache_implementation="static", disable_compile=True)  # the graphs replace the compile
        try:
            with torch.inference_mode():
                return self._decode(inputs, kwargs)
        except Exception as exc:  # noqa: BLE001 - surface as an LLM error naming the model
            from ..device_step import is_out_of_memory

            if is_out_of_memory(exc) and inputs["input_ids"].shape[0] > 1:
                raise  # generate_many splits the batch
            if "cache_implementation" in kwargs and not is_out_of_memory(exc):
                self._static_ok = False  # this model/version refuses a static cache: the dynamic one from now on
                self.notes.append(f"static KV cache not supported ({type(exc).__name__}: {str(exc)[:120]}); "
                                  "decoding without CUDA graphs")
                logger.warning("summary model %s: static cache not supported (%s)", self.options.model, exc)
                return self._generate(inputs, max_new_tokens, temperature)
            raise LLMError(f"generation with {self.options.model} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if self.graphs is not None:
                self.graphs.release()  # each generate has a new cache

    def _decode(self, inputs: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        """``generate``: over the graphs, greedy search in ``greedy_loop`` where it can (else transformers'
        loop, each forward a graph, the stop check read one step late); without graphs as is."""
        if self.graphs is None or "cache_implementation" not in kwargs:
            return self.model.generate(**inputs, **kwargs)
        from ..generation import decode_graphs, greedy_loop

        if self._loop_ok and not kwargs["do_sample"]:
            out, note = greedy_loop.generate_or_note(self.model, self.graphs, inputs, kwargs)
            if note is None:
                self.loop_calls += 1
                return out
            self._loop_ok = False
            self.notes.append(note)
            logger.info("summary model %s: %s", self.options.model, note)
        with decode_graphs.stop_check_one_step_late():
            return self.model.generate(**inputs, **kwargs)

    def _pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id

    def generate(self, messages: list[Message], max_new_tokens: int, temperature: float = 0.0) -> str:
        if self.model is None:
            self.load()
        inputs = self._encode(messages)
        n_prompt = int(inputs["input_ids"].shape[1])
        self._check_window(n_prompt, max_new_tokens)
        out = self._generate(inputs, max_new_tokens, temperature)
        return self.tokenizer.decode(out[0][n_prompt:], skip_special_tokens=True)

    def generate_many(self, chats: list[list[Message]], max_new_tokens: int,
                      temperature: float = 0.0) -> list[str]:
        """The chats in batches of ``max_batch``, each one ``generate`` call over prompts padded on the
        left (a decoding step costs about the same for a few rows as for one, so a batch of n takes
        about the time of one chat, not n). Greedy answers can differ from one-at-a-time answers in
        the last bits of the arithmetic, as batched generation does in transformers. A batch that runs out
        of device memory is halved (``oom_splits`` counts it), down to single prompts."""
        if self.model is None:
            self.load()
        if len(chats) <= 1:
            return [self.generate(m, max_new_tokens, temperature) for m in chats]
        encoded = [self._encode(m) for m in chats]
        for e in encoded:
            self._check_window(int(e["input_ids"].shape[1]), max_new_tokens)
        answers: list[str] = []
        for start in range(0, len(encoded), self.options.max_batch):
            answers += self._answer_batch(encoded[start:start + self.options.max_batch], max_new_tokens, temperature)
        return answers

    def _answer_batch(self, group: list[Any], max_new_tokens: int, temperature: float) -> list[str]:
        """One padded batch; out of device memory, each half in turn (down to single prompts)."""
        import torch

        from ..device_step import free_device_memory

        width = max(int(e["input_ids"].shape[1]) for e in group)
        ids = torch.full((len(group), width), self._pad_id(), dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for row, e in enumerate(group):
            n = int(e["input_ids"].shape[1])
            ids[row, width - n:] = e["input_ids"][0]
            mask[row, width - n:] = 1
        try:
            out = self._generate({"input_ids": ids, "attention_mask": mask}, max_new_tokens, temperature)
        except LLMError:
            raise
        except Exception:  # out of memory at this batch (``_generate`` wraps everything else)
            free_device_memory(str(self.device))
            half = len(group) // 2
            logger.info("summary model out of memory at a batch of %d prompts: %d, then %d", len(group), half,
                        len(group) - half)
            self.oom_splits += 1
            return (self._answer_batch(group[:half], max_new_tokens, temperature)
                    + self._answer_batch(group[half:], max_new_tokens, temperature))
        return [self.tokenizer.decode(row[width:], skip_special_tokens=True) for row in out]
