"""The description model as a trainer: the family's own inputs, the caption as the target, a LoRA on top.

``trainer_class(family)`` returns the inference family class of ``analyzers.vlm.families``
(Qwen2-VL, Qwen2.5-VL, SmolVLM2, LLaVA-NeXT-Video) with ``Trainable`` mixed in front, so a
training example goes through exactly the code a description goes through: the same processor,
the same prompt (with the frames' real times), the same frame padding. ``Trainable`` only

- appends the caption and the model's end token after the prompt (``prompt``/``chat``), and
  labels those tokens alone (the tokenizer pads on the left, so they are each row's last ones);
- loads the model for training (``load_model``): bf16 on a GPU that has it, fp32 on a CPU;
  with ``method="qlora"`` the base in 4-bit NF4 through bitsandbytes (a clear error when it
  does not import, or without CUDA); gradient checkpointing; a peft LoRA on the language
  model's projections (the vision tower stays frozen), or the adapter of a checkpoint when
  resuming.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framework.errors import ConfigError

from ..families import Request, family_class
from ..families.hf import import_transformers

logger = logging.getLogger(__name__)

# the language model's linear layers in every supported family (transformers 5.x names them
# model.language_model.* or model.text_model.*); the vision towers' q/k/v are not matched
TRAINABLE = ("qwen2_vl", "qwen2_5_vl", "smolvlm", "llava_next_video")  # the families whose prompt a Trainable extends
TARGET_MODULES = r".*(language_model|text_model)\..*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


@dataclass
class TrainRequest(Request):
    """A ``Request`` with the caption the model should answer."""

    answer: str = ""


@dataclass
class LoraSetup:
    """How the model is adapted: the method, the LoRA's size, gradient checkpointing, a checkpoint to resume."""

    method: str = "lora"  # lora | qlora
    rank: int = 16
    alpha: int | None = None  # default 2 * rank
    dropout: float = 0.05
    gradient_checkpointing: bool = True
    resume_from: Path | None = None  # an adapter folder to continue training


def require_bitsandbytes() -> Any:
    """bitsandbytes, or a ``ConfigError`` saying how to get QLoRA (or to use LoRA)."""
    try:
        import bitsandbytes
    except Exception as exc:  # noqa: BLE001 - ImportError, or its CUDA setup failing at import
        raise ConfigError(f"--method qlora needs bitsandbytes, which does not import here ({type(exc).__name__}: "
                          f"{exc}); install it on a CUDA machine (pip install bitsandbytes) or use --method lora"
                          ) from exc
    return bitsandbytes


class Trainable:
    """Mixed in front of a family class (see the module docstring)."""

    setup: LoraSetup

    # --- the target text --------------------------------------------------------------------
    def end_token(self) -> str:
        """The token generation stops at (the model's ``generation_config.eos_token_id``)."""
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if isinstance(eos, (list, tuple)):
            eos = eos[0] if eos else None
        if eos is not None:
            return self.tokenizer.convert_ids_to_tokens(int(eos))
        return self.tokenizer.eos_token or ""

    def answer_text(self, req: Request) -> str:
        answer = getattr(req, "answer", "")
        if not answer:
            return ""
        sep = "" if self.name in ("qwen2_vl", "qwen2_5_vl") else " "  # after "assistant\n" / after "ASSISTANT:"
        return f"{sep}{answer}{self.end_token()}"

    def prompt(self, req: Request) -> str:  # LLaVA-NeXT-Video, SmolVLM2
        return super().prompt(req) + self.answer_text(req)  # type: ignore[misc]

    def chat(self, req: Request) -> str:  # Qwen2-VL, Qwen2.5-VL
        return super().chat(req) + self.answer_text(req)  # type: ignore[misc]

    # --- loading ----------------------------------------------------------------------------
    def load_model(self, folder: Path, device: str, precision: str | None, adapter: Path | None) -> None:
        import torch
        from peft import LoraConfig, PeftModel, get_peft_model

        s = self.setup
        transformers = import_transformers()
        self.device = "cuda" if device == "gpu" else device
        cuda = self.device.startswith("cuda")
        self.dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
        kw: dict[str, Any] = {"dtype": self.dtype, "attn_implementation": "sdpa", "local_files_only": True}
        if s.method == "qlora":
            require_bitsandbytes()
            if not cuda:
                raise ConfigError("--method qlora needs a CUDA GPU (bitsandbytes' 4-bit layers); use --method lora "
                                  "on a CPU")
            kw["quantization_config"] = transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=self.dtype)
            kw["device_map"] = {"": torch.device(self.device).index or 0}
        logger.info("loading %s from %s on %s (%s, %s)", self.model_class, folder, self.device, self.dtype, s.method)
        model = self._model_cls().from_pretrained(folder, **kw)
        if s.method == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=s.gradient_checkpointing,
                                                    gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            model = model.to(self.device)
            if s.gradient_checkpointing:
                if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.23
                    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
                else:
                    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        if s.resume_from is not None:
            model = PeftModel.from_pretrained(model, str(s.resume_from), is_trainable=True)
        else:
            config = LoraConfig(r=s.rank, lora_alpha=s.alpha or 2 * s.rank, lora_dropout=s.dropout,
                                target_modules=TARGET_MODULES, bias="none")
            model = get_peft_model(model, config)
        if not any(p.requires_grad for p in model.parameters()):
            raise ConfigError(f"no LoRA layer matched the language model of {folder} ({TARGET_MODULES})")
        self.model = model
        self.model.train()

    def trainable_parameters(self) -> tuple[int, int]:
        """(trainable, all) parameter counts."""
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return trainable, sum(p.numel() for p in self.model.parameters())

    # --- batches ----------------------------------------------------------------------------
    def training_batch(self, requests: list[TrainRequest]) -> dict[str, Any]:
        """The family's inputs for ``requests`` with ``labels``: -100 except each row's caption tokens.
        One batch at a time (a fast tokenizer shared by two threads can fail with "Already borrowed")."""
        with self.__dict__.setdefault("_batch_lock", threading.Lock()):
            prepared = self.prepare(requests)  # type: ignore[attr-defined]
            inputs = dict(prepared["inputs"])
            ids = inputs["input_ids"]
            labels = ids.new_full(ids.shape, -100)
            mask = inputs["attention_mask"]
            for row, req in enumerate(requests):
                n = len(self.tokenizer(self.answer_text(req), add_special_tokens=False)["input_ids"])
                n = max(1, min(n, int(mask[row].sum()) - 1))
                labels[row, -n:] = ids[row, -n:]
        inputs["labels"] = labels
        if self.name in ("llava_next_video", "smolvlm"):
            # positions counted from each row's first real token, as generate() counts them under left
            # padding (Qwen2-VL derives its 3D positions from the attention mask itself)
            inputs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return inputs

    def loss(self, inputs: dict[str, Any]) -> Any:
        """The mean cross-entropy of the caption tokens (a tensor with a graph when training)."""
        inputs = {k: (v.to(self.device, non_blocking=True) if hasattr(v, "to") else v) for k, v in inputs.items()}
        for key in ("pixel_values", "pixel_values_videos"):
            if key in inputs and inputs[key].is_floating_point():
                inputs[key] = inputs[key].to(self.dtype)
        return self.model(**inputs).loss


def trainer_class(family: str) -> type:
    """The family class of ``family`` with ``Trainable`` in front."""
    if family not in TRAINABLE:
        raise ConfigError(f"fine-tuning supports the {', '.join(sorted(TRAINABLE))} families, not {family}; give one "
                          "of their models (--model qwen2-vl-2b-instruct, smolvlm2-500m-video-instruct, "
                          "llava-next-video-7b, ...)")
    base = family_class(family)
    return type(f"Trainable{base.__name__}", (Trainable, base), {})


__all__ = ["LoraSetup", "TARGET_MODULES", "TRAINABLE", "TrainRequest", "Trainable", "require_bitsandbytes",
           "trainer_class"]
