"""``finetune(config)``: train a LoRA adapter for the description model, with checkpoints and resume.

Steps: read and check the data (nothing loads before the data is right), split it by video,
decode each video once and keep each sample's frames (``data.extract_frames``), load the model
for training (``model.trainer_class``), then the loop (each micro-batch prepared on a CPU thread
while the device runs the previous one, ``Prefetch``): AdamW on the LoRA weights, linear warm-up
and cosine decay, gradient clipping at 1.0, optional gradient accumulation; the validation loss
before training, every ``eval_every`` steps and at the end; a checkpoint every ``save_every``
steps and on Ctrl-C (``checkpoints/step-N/``: the adapter, the optimizer and scheduler states, the
random generators, the loss history). ``resume=True`` continues from the newest checkpoint with
the same data order, so a resumed run takes the steps an uninterrupted one would.

The output folder is a peft adapter (``adapter_config.json``, ``adapter_model.safetensors``) with
its card (``card.write_card``); the checkpoints and the frame cache are removed when training
finishes (``keep_checkpoints`` keeps them).
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from framework.errors import ConfigError, ModelError

from ..catalog import family_of
from ..families import GenerationOptions, family_from_config
from ..prompts import DEFAULT_PROMPT
from . import data as datamod
from .card import CARD, read_card, write_card
from .model import LoraSetup, TrainRequest, trainer_class

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE = "trainer_state.json"
# what must not change between an interrupted run and its resume
RESUME_KEYS = ("model", "method", "rank", "alpha", "lr", "batch_size", "accumulate", "val_split", "seed", "prompt",
               "frames", "fps", "frame_width")


@dataclass
class FinetuneConfig:
    """Everything ``framework finetune`` takes (see ``cli/finetune.py`` for the options)."""

    model: str
    data: Path
    out: Path
    method: Literal["lora", "qlora"] = "lora"
    epochs: float = 1.0
    steps: int | None = None          # overrides epochs
    lr: float = 2e-4
    rank: int = 16
    alpha: int | None = None          # default 2 * rank
    dropout: float = 0.05
    batch_size: int = 1
    accumulate: int = 1               # gradient accumulation steps per optimizer step
    val_split: float = 0.1
    frames: int | None = None         # frames per sample (default: the analyzer's cap on this device)
    fps: float | None = None
    frame_width: int | None = None
    prompt: str = DEFAULT_PROMPT      # the instruction of samples that give none (the analyzer's default)
    device: str = "auto"
    gradient_checkpointing: bool = True
    warmup: float = 0.03              # fraction of the steps
    save_every: int = 50
    eval_every: int | None = None     # default: save_every
    seed: int = 0
    resume: bool = False
    offline: bool = False
    keep_checkpoints: bool = False

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["data"], d["out"] = str(self.data), str(self.out)
        return d


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the checkpoint it saved and the command that resumes."""

    def __init__(self, checkpoint: Path | None, step: int):
        super().__init__(f"interrupted at step {step}")
        self.checkpoint = checkpoint
        self.step = step


@dataclass
class FinetuneResult:
    out: Path
    card: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int | None = None  # the step of the checkpoint it continued from


@dataclass
class Hooks:
    """Callbacks (the CLI's progress display; tests stop a run with ``after_step``)."""

    stage: Callable[[str], None] = lambda text: None
    start: Callable[[int, int], None] = lambda first, total: None
    step: Callable[[int, dict[str, Any]], None] = lambda step, record: None
    after_step: Callable[[int], None] = lambda step: None


# --- the base model -----------------------------------------------------------------------------
def resolve_base(model: str, offline: bool = False) -> tuple[Path, str, str | None]:
    """(local folder, manifest id or folder, revision) of ``--model``: a models-manifest id (or the
    Hugging Face repo it names), fetched on first use unless offline, or a local model folder."""
    folder = Path(model).expanduser()
    if (folder / "config.json").is_file():
        return folder.resolve(), str(folder.resolve()), None
    from framework.models import ModelResolver, load_manifest

    manifest = load_manifest()
    mid = model if model in manifest else {k.lower(): v for k, v in manifest.by_repo_id().items()}.get(model.lower())
    if mid is None:
        raise ConfigError(f"--model: {model!r} is neither a models-manifest id, a repo the manifest lists, nor a "
                          "folder with a config.json (see `framework describe --list-models`)")
    found, missing = ModelResolver(manifest, offline=offline, progress=True).resolve([mid])
    if mid not in found:
        raise ModelError(f"{mid}: {missing.get(mid) or 'not cached'}")
    return Path(found[mid].path), mid, found[mid].revision


def pick_device(device: str) -> str:
    import torch

    if device in ("auto", "gpu", "cuda"):
        if torch.cuda.is_available():
            return "cuda"
        if device != "auto":
            raise ConfigError("--device gpu: no CUDA GPU is visible here; use --device cpu")
        return "cpu"
    return device


# --- checkpoints --------------------------------------------------------------------------------
def latest_checkpoint(out: Path) -> Path | None:
    folder = out / CHECKPOINTS
    found = sorted((p for p in folder.glob("step-*") if (p / STATE).is_file()),
                   key=lambda p: int(p.name.split("-")[1])) if folder.is_dir() else []
    return found[-1] if found else None


def _rng_state() -> dict[str, Any]:
    import torch

    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out: Path, step: int, trainer: Any, optimizer: Any, scheduler: Any,
                    state: dict[str, Any]) -> Path:
    """``checkpoints/step-N`` written to a temporary folder and renamed (a crash leaves no half checkpoint);
    only the newest two are kept."""
    import torch

    root = out / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(str(tmp))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": _rng_state()},
               tmp / "training.pt")
    (tmp / STATE).write_text(json.dumps({**state, "step": step}, indent=1), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted((p for p in root.glob("step-*") if p != final), key=lambda p: int(p.name.split("-")[1]))[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    return final


# --- the loop -----------------------------------------------------------------------------------
def _order(n: int, epoch: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def _batch_at(k: int, n: int, size: int, seed: int) -> list[int]:
    """The sample indices of the ``k``-th micro-batch (epochs reshuffle; a batch never spans two)."""
    per_epoch = max(1, math.ceil(n / size))
    epoch, pos = divmod(k, per_epoch)
    return _order(n, epoch, seed)[pos * size:(pos + 1) * size]


def _requests(items: list[datamod.Framed], default_prompt: str, with_answer: bool = True) -> list[TrainRequest]:
    out = []
    for i, f in enumerate(items):
        s = f.sample
        start, end = s.span()
        out.append(TrainRequest(index=i, start=start, end=end, times=list(f.times), frames=f.frames(),
                                instruction=s.prompt or default_prompt, answer=s.caption if with_answer else ""))
    return out


class Prefetch:
    """Micro-batches ``first..end-1`` made by ``make(k)`` on one CPU thread, one ahead of the device
    (the processor's work overlaps the previous forward and backward pass, as the describer's device
    step does)."""

    def __init__(self, make: Callable[[int], Any], first: int, end: int):
        self.make, self.end, self.k = make, end, first
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finetune-batch")
        self.future = self.pool.submit(make, first) if first < end else None

    def next(self) -> Any:
        assert self.future is not None, "no micro-batch left"
        batch = self.future.result()
        self.k += 1
        self.future = self.pool.submit(self.make, self.k) if self.k < self.end else None
        return batch

    def close(self) -> None:
        if self.future is not None:
            self.future.cancel()
        self.pool.shutdown(wait=True)


def micro_batch(trainer: Any, items: list[datamod.Framed], k: int, cfg: FinetuneConfig) -> dict[str, Any]:
    """The inputs of the ``k``-th micro-batch (see ``_batch_at``)."""
    idx = _batch_at(k, len(items), cfg.batch_size, cfg.seed)
    return trainer.training_batch(_requests([items[i] for i in idx], cfg.prompt))


def validation_loss(trainer: Any, items: list[datamod.Framed], cfg: FinetuneConfig) -> float | None:
    """The mean caption loss over the validation samples (no dropout, no gradients)."""
    import torch

    if not items:
        return None
    trainer.model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for a in range(0, len(items), cfg.batch_size):
            chunk = items[a:a + cfg.batch_size]
            loss = trainer.loss(trainer.training_batch(_requests(chunk, cfg.prompt)))
            total += loss.item() * len(chunk)
            count += len(chunk)
    trainer.model.train()
    return total / count


def _schedule(total: int, warmup: float) -> Callable[[int], float]:
    warm = max(0, int(round(total * warmup)))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        progress = (step - warm) / max(1, total - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))  # cosine to 10%

    return factor


def _check_out(cfg: FinetuneConfig) -> Path | None:
    """The checkpoint to resume from (None: a fresh run); refuses to overwrite a finished adapter or
    to start over an interrupted run without ``--resume``."""
    out = cfg.out
    ckpt = latest_checkpoint(out)
    if cfg.resume:
        if ckpt is None and read_card(out) is None:
            raise ConfigError(f"--resume: {out} holds no checkpoint to resume (start without --resume)")
        return ckpt
    if read_card(out) is not None:
        raise ConfigError(f"{out} already holds a fine-tuned adapter ({CARD}); choose another --out, or add --resume "
                          "(with --eval to evaluate it)")
    if ckpt is not None:
        raise ConfigError(f"{out} holds an interrupted run (checkpoint {ckpt.name}); add --resume to continue it, "
                          "or choose another --out")
    return None


def finetune(cfg: FinetuneConfig, hooks: Hooks | None = None) -> FinetuneResult:
    """Train (or resume) the adapter described by ``cfg``; see the module docstring."""
    import torch

    hooks = hooks or Hooks()
    cfg.out = Path(cfg.out)
    if cfg.method not in ("lora", "qlora"):
        raise ConfigError(f"--method must be lora or qlora, got {cfg.method!r}")
    if cfg.method == "qlora":
        from .model import require_bitsandbytes

        require_bitsandbytes()  # before the data is decoded: say it now
    ckpt = _check_out(cfg)
    finished = read_card(cfg.out)
    if cfg.resume and ckpt is None and finished is not None:
        return FinetuneResult(cfg.out, finished, finished.get("history", []), finished["results"]["steps"])

    hooks.stage("checking the data")
    samples = datamod.load(cfg.data)
    train_s, val_s = datamod.split(samples, cfg.val_split, cfg.seed)
    if not val_s:
        hooks.stage("no validation split (--val-split 0, or a single video): no validation loss, nothing for --eval")
    folder, model_id, revision = resolve_base(cfg.model, cfg.offline)
    family = family_from_config(folder) or family_of(model_id)
    device = pick_device(cfg.device)
    sampling = datamod.sampling_for(family, device, cfg.frames, cfg.fps, cfg.frame_width)
    digest = datamod.data_digest(samples, sampling)
    saved_state: dict[str, Any] | None = None
    if ckpt is not None:
        saved_state = json.loads((ckpt / STATE).read_text(encoding="utf-8"))
        before = saved_state["config"]
        changed = [k for k in RESUME_KEYS if before.get(k) != cfg.as_json().get(k)]
        if changed or saved_state.get("data_digest") != digest:
            what = ", ".join(f"{k} ({before.get(k)!r} -> {cfg.as_json().get(k)!r})" for k in changed) or "the data"
            raise ConfigError(f"--resume: {what} changed since {ckpt}; resume with the same settings and data, or "
                              "start a new run in another --out")

    cfg.out.mkdir(parents=True, exist_ok=True)
    hooks.stage(f"decoding {len({s.video for s in samples})} videos ({sampling.max_frames} frames a sample at "
                f"{sampling.fps:g} fps, {sampling.frame_width} px)")
    frames_dir = cfg.out / ".frames"
    train_f = datamod.extract_frames(train_s, sampling, frames_dir)
    val_f = datamod.extract_frames(val_s, sampling, frames_dir)

    hooks.stage(f"loading {model_id} for {cfg.method} on {device}")
    torch.manual_seed(cfg.seed)
    trainer = trainer_class(family)(GenerationOptions())
    trainer.setup = LoraSetup(method=cfg.method, rank=cfg.rank, alpha=cfg.alpha, dropout=cfg.dropout,
                              gradient_checkpointing=cfg.gradient_checkpointing, resume_from=ckpt)
    trainer.load(folder, device, None, None)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    per_epoch = max(1, math.ceil(len(train_f) / cfg.batch_size / cfg.accumulate))
    total = cfg.steps or max(1, math.ceil(per_epoch * cfg.epochs))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total, cfg.warmup))
    history: list[dict[str, Any]] = []
    first = 0
    val_before = None
    if ckpt is not None and saved_state is not None:
        blob = torch.load(ckpt / "training.pt", weights_only=False)
        optimizer.load_state_dict(blob["optimizer"])
        scheduler.load_state_dict(blob["scheduler"])
        _set_rng_state(blob["rng"])
        first, history, val_before = saved_state["step"], saved_state["history"], saved_state.get("val_loss_before")
        logger.info("resuming from %s (step %d of %d)", ckpt, first, total)
    else:
        hooks.stage("validation loss before training")
        val_before = validation_loss(trainer, val_f, cfg)
    state = {"config": cfg.as_json(), "data_digest": digest, "total_steps": total, "val_loss_before": val_before}
    eval_every = cfg.eval_every or cfg.save_every
    started = time.perf_counter()
    hooks.start(first, total)
    step = first
    last_ckpt = ckpt
    prefetch = Prefetch(lambda k: micro_batch(trainer, train_f, k, cfg), first * cfg.accumulate,
                        total * cfg.accumulate)
    try:
        for step in range(first, total):
            losses = []
            for _ in range(cfg.accumulate):
                loss = trainer.loss(prefetch.next())
                (loss / cfg.accumulate).backward()
                losses.append(loss.item())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            record: dict[str, Any] = {"step": step + 1, "loss": sum(losses) / len(losses),
                                      "lr": scheduler.get_last_lr()[0]}
            if val_f and ((step + 1) % eval_every == 0 or step + 1 == total):
                record["val_loss"] = validation_loss(trainer, val_f, cfg)
            history.append(record)
            hooks.step(step + 1, record)
            if (step + 1) % cfg.save_every == 0 and step + 1 < total:
                last_ckpt = save_checkpoint(cfg.out, step + 1, trainer, optimizer, scheduler,
                                            {**state, "history": history})
            hooks.after_step(step + 1)
    except KeyboardInterrupt as exc:
        done = len(history) and history[-1]["step"] or first
        if done > (int(last_ckpt.name.split("-")[1]) if last_ckpt is not None else 0):
            last_ckpt = save_checkpoint(cfg.out, done, trainer, optimizer, scheduler, {**state, "history": history})
        raise TrainingInterrupted(last_ckpt, done) from exc
    finally:
        prefetch.close()

    train_s_elapsed = time.perf_counter() - started
    trainer.model.save_pretrained(str(cfg.out))
    val_after = next((r["val_loss"] for r in reversed(history) if "val_loss" in r), None)
    tail = history[-max(1, min(10, len(history))):]
    import peft
    import transformers

    card = {
        "format": 1, "kind": "lora-adapter", "method": cfg.method,
        "base_model": {"id": model_id, "revision": revision, "family": family, "path": str(folder)},
        "data": {"path": str(Path(cfg.data).resolve()), "digest": digest, "train_samples": len(train_f),
                 "val_samples": len(val_f), "train_videos": len({f.sample.video for f in train_f}),
                 "val_videos": len({f.sample.video for f in val_f})},
        "hyperparameters": {"rank": cfg.rank, "alpha": cfg.alpha or 2 * cfg.rank, "dropout": cfg.dropout,
                            "lr": cfg.lr, "batch_size": cfg.batch_size, "accumulate": cfg.accumulate,
                            "epochs": cfg.epochs if not cfg.steps else round(total / per_epoch, 3),
                            "warmup": cfg.warmup, "gradient_checkpointing": cfg.gradient_checkpointing,
                            "seed": cfg.seed, "dtype": str(trainer.dtype).replace("torch.", ""), "device": device},
        "prompt": cfg.prompt, "sampling": sampling.as_params(),
        "results": {"steps": total, "train_loss": sum(r["loss"] for r in tail) / len(tail),
                    "first_loss": history[0]["loss"] if history else None,
                    "val_loss_before": val_before, "val_loss": val_after,
                    "train_seconds": round(train_s_elapsed, 1)},
        "validation": [f.sample.to_json() for f in val_f],
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "history": history,
    }
    write_card(cfg.out, card)
    if not cfg.keep_checkpoints:
        shutil.rmtree(cfg.out / CHECKPOINTS, ignore_errors=True)
        shutil.rmtree(frames_dir, ignore_errors=True)
    return FinetuneResult(cfg.out, card, history, first if ckpt is not None else None)


__all__ = ["FinetuneConfig", "FinetuneResult", "Hooks", "TrainingInterrupted", "finetune", "latest_checkpoint",
           "pick_device", "resolve_base"]
