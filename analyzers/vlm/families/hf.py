"""What the local transformers families share: loading on a placement, generation, decoding.

Loading is ``from_pretrained`` on the folder the runner handed over (``local_files_only``), with
the dtype from the placement's precision and SDPA attention; an adapter folder with an
``adapter_config.json`` is applied with peft and merged (no per-token adapter cost).

Generation is batched with left padding (every prompt ends where generation starts), greedy by
default. On CUDA, over a static KV cache, greedy decoding runs in ``greedy_loop`` (each step one
CUDA graph, no Python between steps); other decoding keeps transformers' loop with each forward
replayed as a graph (``decode_graphs``). Elsewhere a static cache and a compiled forward are
options. When the model rejects the static cache, generation falls back to the dynamic cache once
and the note says so.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
from pathlib import Path
from typing import Any, Callable, ClassVar, ContextManager

from framework import AnalyzerUnavailable
from framework.device_step import is_out_of_memory
from framework.devices import attention_without_cudnn

from framework.generation import decode_attention, decode_graphs, greedy_loop, joint_decode
from framework.host_to_device import move_module
from framework.work_streams import asked_for
from .base import Answer, Family, torch_dtype

logger = logging.getLogger(__name__)


def import_transformers() -> Any:
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:
        raise AnalyzerUnavailable(f"scene descriptions with a local model need torch and transformers ({exc}): "
                                  "pip install 'video-framework[ml]'") from exc
    return transformers


def decode_attention_asked() -> bool:
    """``FRAMEWORK_VLM_DECODE_ATTENTION=1``: the description model's decoding steps attend as fusion's summary
    model's do (``framework.generation.decode_attention``: the Triton kernel on a GPU). Off by default: its two
    matrix products were slower here (Qwen2-VL-7B's 124 steps at a batch of 60 on an H200: 1.96 s against 1.46 s,
    ``bench/results/vlm_throughput_h200_7b.md`` run 7); the kernel is yet to be measured on the description model."""
    return asked_for("FRAMEWORK_VLM_DECODE_ATTENTION")


def apply_adapter(model: Any, adapter: Path) -> Any:
    """Apply a LoRA adapter folder (``adapter_config.json``) with peft, merged into the weights."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise AnalyzerUnavailable(f"the adapter {adapter} needs peft ({exc}): pip install peft") from exc
    logger.info("applying adapter %s", adapter)
    model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    return model.merge_and_unload()


class HFFamily(Family):
    """A transformers image/video-text-to-text model and its processor."""

    model_class: ClassVar[str] = ""
    attention: ClassVar[str] = "sdpa"  # attn_implementation (BLIP's text decoder has no SDPA: "eager")
    #: inputs ``generate`` hands every decoding step that the model reads only to compute positions
    #: when none are given; dropped from steps that carry ``position_ids`` (transformers 5.17 passes
    #: Qwen2-VL's ``mm_token_type_ids`` whole, one column longer at each step, so no graph would fit)
    decode_unused: ClassVar[tuple[str, ...]] = ()
    #: CUDA graphs when ``cuda_graphs`` is not set: on for the families whose graphed decoding was
    #: checked on a GPU against plain ``generate`` (the words must not change)
    graphs_by_default: ClassVar[bool] = False

    def __init__(self, options=None):
        super().__init__(options)
        self.model: Any = None
        self.tokenizer: Any = None
        self.dtype: Any = None
        self._static_ok = True
        self.graphs: decode_graphs.DecodeGraphs | None = None
        self._loop_ok = True  # greedy_loop does this model's decoding (until it says it cannot)
        self.fp8: dict[str, Any] | None = None  # what quantize_linears did (precision fp8)
        self.moved: dict[str, Any] = {}  # how the weights went onto the device (framework.host_to_device)
        self.joint_batches = 0  # batches prefilled in groups and decoded as one (``prefill_rows``)
        self.joint_groups: list[int] = []  # each such batch's number of groups (``group_rows`` may vary their size)
        self.joint_memory: list[dict[str, Any]] = []  # on CUDA: the device memory after each phase of the last one

    # --- loading --------------------------------------------------------------------------------
    def _model_cls(self) -> Any:
        return getattr(import_transformers(), self.model_class)

    def load_model(self, folder: Path, device: str, precision: str | None, adapter: Path | None) -> None:
        import torch

        transformers = import_transformers()
        self.device = "cuda" if device == "gpu" else device
        self.dtype = torch_dtype(precision, self.device)
        torch.manual_seed(self.options.seed)
        logger.info("loading %s from %s on %s (%s)", self.model_class, folder, self.device, self.dtype)
        try:
            model = self._model_cls().from_pretrained(folder, dtype=self.dtype, attn_implementation=self.attention,
                                                      local_files_only=True)
        except (OSError, ValueError) as exc:
            raise AnalyzerUnavailable(f"cannot load {self.model_class} from {folder}: {exc}; run "
                                      "`framework models verify` or pull the model again") from exc
        if adapter is not None:
            model = apply_adapter(model, adapter)
        if precision == "fp8":
            from ..._fp8 import quantize_linears

            self.fp8 = quantize_linears(model, self.device)  # layer by layer onto the device
            self.notes.append(f"fp8: {self.fp8['layers']} linear layers of the language model in FP8 "
                              f"({self.fp8['bytes_saved'] / 1e9:.1f} GB less), matrix products: {self.fp8['path']}")
        self.moved = move_module(model, self.device)  # onto a GPU through pinned buffers, several at once
        self.model = model.eval()
        if self.options.compile:
            if self.device.startswith("cuda"):
                self.model.forward = torch.compile(self.model.forward, mode="reduce-overhead", dynamic=True)
                self.notes.append("forward compiled with torch.compile")
            else:
                self.notes.append("compile is for CUDA only; not compiled on the CPU")
        elif self.wants_graphs() and self.device.startswith("cuda"):
            self.graphs = decode_graphs.install(self.model, self.notes, self._capture_gate, self.decode_unused)
        if self.device.startswith("cuda") and decode_attention_asked():
            note = decode_attention.install(self.model)  # (an experiment: fusion's decoding attention here too)
            self.notes.append(note or "decoding steps attend with framework.generation.decode_attention "
                                      "(FRAMEWORK_VLM_DECODE_ATTENTION=1)")
        if self.options.prefill_rows and self.graphs is None:
            self.notes.append("prefill_rows: only the graphed greedy loop on CUDA prefills in groups; here each batch "
                              "is prefilled whole")
        if self.device.startswith("cuda"):
            attention_without_cudnn(torch)  # a run's executor did already; `framework describe` has none
        logger.debug("transformers %s", transformers.__version__)
        if self.device.startswith("cuda") and repeats_kv_heads(self.model, transformers):
            self.notes.append(f"transformers {transformers.__version__} copies the key/value heads for every "
                              "query head at each decoding step of this model; 5.23 or later does not, and "
                              "decoded about 2x faster at a batch of 60 on an H200: pip install -U transformers")

    def merge_adapter(self, adapter: Path) -> None:
        """Merge a LoRA adapter into the loaded model in place (``framework finetune --eval`` describes
        with the base model first, then with this, without loading the model again)."""
        self.model = apply_adapter(self.model, adapter).eval()

    def wants_graphs(self) -> bool:
        """``cuda_graphs`` as set, else the family's default (``graphs_by_default``)."""
        return self.graphs_by_default if self.options.cuda_graphs is None else self.options.cuda_graphs

    def _capture_gate(self) -> ContextManager[bool]:
        """Whether a CUDA graph may be captured now (``decode_graphs.capture_gate``): once this
        family's preparation of the next batch is done, when no other analyzer is on the GPU."""
        return decode_graphs.capture_gate(self.prepare_lock, self.gpu_to_itself)

    def describe_model(self) -> dict[str, Any]:
        if self.model is None:
            return {}
        info = {"class": type(self.model).__name__, "dtype": str(self.dtype).replace("torch.", ""),
                "attention": getattr(self.model.config, "_attn_implementation", None),
                "parameters": int(sum(p.numel() for p in self.model.parameters())), "device": self.device}
        if self.graphs is not None:
            info["cuda_graphs"] = self.graphs.summary()
        if self.fp8 is not None:
            info["fp8"] = self.fp8
        if self.moved.get("way", "to") != "to":  # (moved through staging buffers)
            info["moved_to_device"] = self.moved
        if self.options.prefill_rows:
            info["prefill_rows"] = {"most": self.options.prefill_rows, "joint_batches": self.joint_batches,
                                    "groups_per_batch": self.joint_groups}
            if self.joint_memory:
                info["prefill_rows"]["memory_gb"] = self.joint_memory
        return info

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            return super().count_tokens(text)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # --- the device step ------------------------------------------------------------------------
    def video_kwargs(self) -> dict[str, Any]:
        """The processor's options for the frames: on CUDA, its video processor converts, normalizes
        and patches them on the model's GPU, so ``prepare`` hands ``generate`` tensors already there.

        On an H200 this took the preparation of a batch of 60 chunks for Qwen2-VL-7B (1,200 frames at
        448x252) from 2.26 s to 0.21 s (``bench/vlm_generate_probe.py``), and the analyzer on a
        10-minute clip from 47.2 to 54.6 s of video per second (``bench/vlm_throughput.py``): a batch
        is prepared while the previous one generates, but the first batch's preparation is
        waited for. On the CPU: none."""
        return {"videos_kwargs": {"device": self.device}} if self.device.startswith("cuda") else {}

    def pin(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Pinned host memory for the tensors still on the host (CUDA), so their copy to the device
        overlaps; on the CPU as is."""
        if not self.device.startswith("cuda"):
            return dict(inputs)
        return {k: (v.pin_memory() if getattr(getattr(v, "device", None), "type", None) == "cpu" else v)
                for k, v in inputs.items()}

    def gen_kwargs(self) -> dict[str, Any]:
        o = self.options
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        kw: dict[str, Any] = {"max_new_tokens": o.max_new_tokens, "do_sample": o.temperature > 0,
                              "pad_token_id": pad}
        if o.temperature > 0:
            kw["temperature"] = o.temperature
        else:  # greedy: silence the sampling settings a generation_config.json may carry
            kw.update(temperature=None, top_p=None, top_k=None)
        if o.min_new_tokens:
            kw["min_new_tokens"] = min(o.min_new_tokens, o.max_new_tokens)
        if (o.static_cache or self.graphs is not None) and self._static_ok:
            kw["cache_implementation"] = "static"
        if self.graphs is not None:
            kw["disable_compile"] = True  # the graphs replace transformers' compiled static-cache decoding
        return kw

    def _on_device(self, prepared: dict[str, Any]) -> dict[str, Any]:
        """A prepared batch's inputs on the model's device, its pixels in the model's dtype."""
        inputs = {k: (v.to(self.device, non_blocking=True) if hasattr(v, "to") else v)
                  for k, v in prepared["inputs"].items()}
        if self.dtype is not None:
            for key in ("pixel_values", "pixel_values_videos"):
                if key in inputs and inputs[key].is_floating_point():
                    inputs[key] = inputs[key].to(self.dtype)
        return inputs

    def prepare_in_groups(self, requests: list[Any], later: Callable[[list[Any]], Any]) -> dict[str, Any] | None:
        """A batch of more than ``prefill_rows`` requests prepared group by group (rows of similar frame
        counts, so similar prompt lengths): the first group now, each other through ``later(requests)`` (a
        future of ``prepare``, on another thread), so that the first group's prefill can start while the next
        group is prepared. None where the batch is prepared whole: no more rows than ``prefill_rows``, a family
        that does not prefill in groups, or no graphed greedy loop."""
        most = self.prefill_rows_for(len(requests))
        if not (self.prefills_in_groups and most and len(requests) > most and self._loop_ok
                and self.graphs is not None):
            return None
        rows = joint_decode.groups([len(r.frames) for r in requests], most)  # (frames, not tokens: the fewest groups)
        first = self.prepare([requests[i] for i in rows[0]])
        return {"groups": [(rows[0], first)] + [(g, later([requests[i] for i in g])) for g in rows[1:]]}

    def generate(self, prepared: dict[str, Any]) -> Any:
        import torch

        if "groups" in prepared:
            return self._generate_groups(prepared)
        inputs = self._on_device(prepared)
        kw = self.gen_kwargs()
        late_stop = decode_graphs.stop_check_one_step_late() if self.graphs is not None else contextlib.nullcontext()
        with torch.inference_mode():
            try:
                if self._loop_ok and self.graphs is not None and "cache_implementation" in kw:
                    out = self._generate_in_loop(inputs, kw, prepared)
                    if out is not None:
                        return out
                with late_stop:
                    return self.model.generate(**inputs, **kw)
            except Exception as exc:  # noqa: BLE001 - only a refused static cache is handled here
                if "cache_implementation" not in kw or is_out_of_memory(exc):
                    raise  # the device step splits the batch on out-of-memory
                self._static_ok = False  # this model/version has no static cache: use the dynamic one
                self.notes.append(f"static KV cache not supported here ({type(exc).__name__}: {str(exc)[:120]}); "
                                  "used the dynamic cache")
                logger.warning("%s: static cache not supported (%s); using the dynamic cache", self.name, exc)
                kw.pop("cache_implementation")
                return self.model.generate(**inputs, **kw)
            finally:
                if self.graphs is not None:
                    self.graphs.release()  # the next batch has a new cache

    def _generate_groups(self, prepared: dict[str, Any]) -> list[Any]:
        """A batch prepared in groups (``prepare_in_groups``): prefilled group by group, each group's inputs
        waited for only when its prefill comes, then decoded as one (``joint_decode``); each group's
        sequences, in its own layout. Where the graphed loop cannot do it, each group generates on its own."""
        import torch

        groups = prepared["groups"]
        unprepared: list[BaseException] = []  # a group whose preparation failed: the batch's failure, not the loop's

        def ready(i: int) -> dict[str, Any]:  # the group's prepared batch, once its preparation is done
            rows, part = groups[i]
            if not isinstance(part, dict):
                try:
                    part = part.result()
                except Exception as exc:
                    unprepared.append(exc)
                    raise
                groups[i] = (rows, part)
            return part

        kw = self.gen_kwargs()
        if self._loop_ok and self.graphs is not None and "cache_implementation" in kw:
            parts = [lambda i=i: self._on_device(ready(i)) for i in range(len(groups))]
            with torch.inference_mode():
                try:
                    results, note = self._joint(parts, kw)
                finally:
                    self.graphs.release()  # the next batch has a new cache
            if unprepared:
                raise unprepared[0]
            self._loop_note(results, note)
            if results is not None:
                return results
        return [self.generate(ready(i)) for i in range(len(groups))]

    def _joint(self, parts: list[Any], kw: dict[str, Any]) -> tuple[list[Any] | None, str | None]:
        """``parts`` (groups' inputs, or functions that give them) prefilled apart and decoded as one
        (``joint_decode``, the memory marked after each phase on CUDA), for a caller that falls back to
        transformers' loop (``greedy_loop.or_note``); a joint batch counted."""
        results, note = greedy_loop.or_note(
            lambda: joint_decode.generate(self.model, self.graphs, parts, kw, self._memory_marks()))
        if results is not None:
            self.joint_batches += 1
            self.joint_groups.append(len(parts))
        return results, note

    def _loop_note(self, out: Any, note: str | None) -> None:
        """After the graphed loop: no output means transformers' loop does this model's decoding from now
        on; a note is recorded once."""
        if out is None:
            self._loop_ok = False
        if note is not None and note not in self.notes:
            self.notes.append(note)
            logger.info("%s: %s", self.name, note)

    def _generate_in_loop(self, inputs: dict[str, Any], kw: dict[str, Any],
                          prepared: dict[str, Any] | None = None) -> Any:
        """Greedy decoding in ``greedy_loop`` (a batch of more than ``prefill_rows`` rows: prefilled in
        groups, decoded as one, ``joint_decode``; then ``prepared["prefill_padding"]`` gets each row's padding
        in its group's prefill). None when this model's decoding is not one the loop does (noted once;
        transformers' loop then does it, here and for every later batch)."""
        rows = self._prefill_groups(inputs)
        parts = [self.split_rows(inputs, r) for r in rows] if rows is not None else []
        if rows is not None and all(p is not None for p in parts):
            results, note = self._joint(parts, kw)
            out = None if results is None else self._as_one_batch(inputs, rows, parts, results, kw, prepared)
        else:
            out, note = greedy_loop.generate_or_note(self.model, self.graphs, inputs, kw)
        self._loop_note(out, note)
        return out

    def _memory_marks(self) -> Any:
        """On CUDA, a ``joint_decode`` checkpoint that records the memory allocated after each phase and the
        peak so far (since the last reset: the phase in which it rises is where the batch's peak is) into
        ``joint_memory``; None elsewhere."""
        if not self.device.startswith("cuda"):
            return None
        import torch

        marks = self.joint_memory = []

        def mark(phase: str) -> None:
            marks.append({"after": phase, "allocated": round(torch.cuda.memory_allocated(self.device) / 2**30, 2),
                          "peak": round(torch.cuda.max_memory_allocated(self.device) / 2**30, 2)})
        return mark

    def _prefill_groups(self, inputs: dict[str, Any]) -> list[list[int]] | None:
        """The batch's rows in prefill groups (``prefill_rows``), or None: one prefill."""
        mask = inputs.get("attention_mask")
        rows = 0 if mask is None else int(mask.shape[0])
        most = self.prefill_rows_for(rows) if rows else None
        if not most or rows <= most:
            return None
        return joint_decode.groups([int(n) for n in mask.sum(1).tolist()], most, self.options.prefill_group_tokens)

    def split_rows(self, inputs: dict[str, Any], rows: list[int]) -> dict[str, Any] | None:
        """The inputs of ``rows`` alone, left padding only to their longest prompt; None where this family
        cannot split its inputs (then the batch is prefilled whole). The families that can override this."""
        return None

    def _as_one_batch(self, inputs: dict[str, Any], rows: list[list[int]], parts: list[dict[str, Any]],
                      results: list[Any], kw: dict[str, Any], prepared: dict[str, Any] | None) -> Any:
        """The groups' sequences (``joint_decode.generate``) in the batch's own layout (its rows, its padded
        prompts, then each row's new tokens), as ``generate`` returns them; each row's prefill padding into
        ``prepared``."""
        import torch

        ids = inputs["input_ids"]
        widths = [int(p["input_ids"].shape[1]) for p in parts]
        news = [r[:, width:] for r, width in zip(results, widths)]
        out = ids.new_full((ids.shape[0], ids.shape[1] + max(n.shape[1] for n in news)), int(kw["pad_token_id"]))
        out[:, :ids.shape[1]] = ids
        for group, new in zip(rows, news):
            out[torch.tensor(group, device=ids.device), ids.shape[1]:ids.shape[1] + new.shape[1]] = new
        if prepared is not None:
            lengths = inputs["attention_mask"].sum(1).tolist()
            padding = {r: width - int(lengths[r]) for group, width in zip(rows, widths) for r in group}
            prepared["prefill_padding"] = [padding[r] for r in range(len(lengths))]
        return out

    def decode(self, outputs: Any, prepared: dict[str, Any]) -> list[Answer]:
        if "groups" in prepared:  # each group's sequences with its own prepared batch, back in the rows' order
            answers: list[Answer] = [None] * sum(len(rows) for rows, _ in prepared["groups"])  # type: ignore[list-item]
            for (rows, part), out in zip(prepared["groups"], outputs):
                for r, a in zip(rows, self.decode(out, part)):
                    answers[r] = a
            return answers
        n_prompt = int(prepared["inputs"]["input_ids"].shape[1])
        new = outputs[:, n_prompt:].cpu()
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        pad = self.tokenizer.pad_token_id
        mask = prepared["inputs"]["attention_mask"]
        padding = prepared.get("prefill_padding") or [n_prompt - int(m.sum()) for m in mask]  # (its prefill's)
        answers = []
        for row, text, m, padded in zip(new, texts, mask, padding):
            n_new = int((row != pad).sum()) if pad is not None else int(row.numel())
            answers.append(Answer(text=text.strip(), prompt_tokens=int(m.sum()), new_tokens=n_new,
                                  extra={"padding": padded}))
        return answers

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            try:
                import torch

                torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001
                pass


def repeats_kv_heads(model: Any, transformers: Any) -> bool:
    """Whether this transformers' SDPA path copies a grouped-query model's key/value heads at every
    decoding step (``repeat_kv`` under a padding mask). transformers 5.23 added ``pack_gqa``, which
    folds the query heads onto the key/value heads for one-token steps instead: on an H200,
    Qwen2-VL-7B's step at a batch of 60 padded chunks went from 77.8 ms to 37.0 ms
    (``bench/results/vlm_generate_probe_h200.md``)."""
    config = getattr(model, "config", None)
    text = getattr(config, "text_config", None) or config
    heads = getattr(text, "num_attention_heads", None)
    kv_heads = getattr(text, "num_key_value_heads", None)
    if not heads or not kv_heads or kv_heads >= heads:
        return False
    if getattr(config, "_attn_implementation", "sdpa") != "sdpa":
        return False
    try:
        sdpa = importlib.import_module("transformers.integrations.sdpa_attention")
    except ImportError:
        return False
    return not hasattr(sdpa, "pack_gqa")


def left_padded(tokenizer: Any) -> Any:
    """The tokenizer set to pad on the left (generation starts where every prompt ends), with a pad
    token (its end token when the snapshot names none)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def has_adapter_config(folder: Path) -> bool:
    return (Path(folder) / "adapter_config.json").is_file()


__all__ = ["HFFamily", "apply_adapter", "has_adapter_config", "import_transformers", "left_padded", "repeats_kv_heads"]
