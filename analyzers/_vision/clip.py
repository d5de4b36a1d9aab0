"""open_clip CLIP models, loaded once per (folder, device, precision) and shared.

``content_quality`` and ``composition_analysis`` both use CLIP ViT-B-32 (manifest id
``open-clip-vit-b-32``: the Hugging Face repo ``timm/vit_base_patch32_clip_224.openai``, which
holds open_clip's own files, ``open_clip_config.json`` and ``open_clip_model.safetensors``).
The runner hands each analyzer the snapshot folder; ``acquire`` loads it with
``open_clip.create_model_and_transforms("local-dir:<folder>")`` (config and weights from the
folder, nothing looked up online) the first time, and hands the same model to the second
analyzer while the first still holds it: a reference-counted cache keyed by
(folder, device, precision), guarded by a lock. ``release`` drops a reference; the last one
frees the model (and the GPU cache).

(The manifest's ``clip-vit-base-patch32`` is the transformers-format ``openai/clip-vit-base-patch32``
repo, whose weight names open_clip cannot read; open_clip's ``pretrained=<file>`` likewise
expects an open_clip state dict, as in ``open_clip_model.safetensors``.)
"""
from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from framework import AnalyzerUnavailable, random_init

from .common import dtype_of, pick_precision, torch_device

logger = logging.getLogger(__name__)

CLIP_MODEL_ID = "open-clip-vit-b-32"

_LOCK = threading.Lock()
_MODELS: dict[tuple[str, str, str], list[Any]] = {}  # key -> [ClipModel, references]
#: the weight files open_clip looks for in a local folder (``open_clip.factory._find_checkpoint_in_dir``)
CHECKPOINT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                    "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth")


class ClipModel:
    """A loaded open_clip model with its tokenizer and image normalisation."""

    def __init__(self, folder: Path, device: str, precision: str):
        import open_clip
        import torch

        self.folder, self.device, self.precision = Path(folder), device, precision
        if not (self.folder / "open_clip_config.json").is_file():
            raise AnalyzerUnavailable(
                f"{self.folder} is not an open_clip model folder (no open_clip_config.json); the CLIP analyzers "
                f"load open_clip's format: run `framework models pull {CLIP_MODEL_ID}`")
        name = f"local-dir:{self.folder}"
        # open_clip builds the model from its config, then loads the folder's weights into it strictly: the
        # random initialisation in between is wasted (0.73 of 0.92 s for ViT-B-32 on a CPU); without a
        # weights file it is kept (open_clip then warns that nothing was loaded)
        weights = any((self.folder / f).is_file() for f in CHECKPOINT_FILES)
        with random_init.skipped() if weights else contextlib.nullcontext():
            model, _, _ = open_clip.create_model_and_transforms(name, device=device, precision=precision)
        self.model = model.eval()
        self.tokenizer = open_clip.get_tokenizer(name)
        cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", getattr(model.visual, "image_size", 224))
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        mean = cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))
        std = cfg.get("std", (0.26862954, 0.26130258, 0.27577711))
        dtype = dtype_of(precision)
        self.mean = torch.tensor(mean, device=device, dtype=dtype).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, device=device, dtype=dtype).view(1, 3, 1, 1) * 255.0
        self.logit_scale = float(model.logit_scale.exp().item()) if hasattr(model, "logit_scale") else 100.0
        self.dim = int(getattr(model, "embed_dim", 0) or model.text_projection.shape[-1])

    def to_input(self, frames: Sequence[np.ndarray]) -> Any:
        """RGB frames -> a uint8 (B, 3, S, S) tensor: shortest side to ``image_size``, centre crop
        (open_clip's inference transform), on a CPU thread; pinned for a GPU."""
        import cv2
        import torch

        s = self.image_size
        out = np.empty((len(frames), s, s, 3), np.uint8)
        for i, f in enumerate(frames):
            h, w = f.shape[:2]
            if min(h, w) != s:
                scale = s / min(h, w)
                f = cv2.resize(f, (max(s, round(w * scale)), max(s, round(h * scale))), interpolation=cv2.INTER_CUBIC)
                h, w = f.shape[:2]
            y, x = (h - s) // 2, (w - s) // 2
            out[i] = f[y:y + s, x:x + s]
        t = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
        return t.pin_memory() if self.device.startswith("cuda") else t

    def encode_images(self, batch: Any) -> np.ndarray:
        """L2-normalised image embeddings (B, D), float32 on the CPU."""
        import torch

        with torch.inference_mode():
            x = batch.to(self.device, non_blocking=True).to(dtype_of(self.precision))
            x = (x - self.mean) / self.std
            emb = self.model.encode_image(x)
            emb = torch.nn.functional.normalize(emb.float(), dim=-1)
            return emb.cpu().numpy()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings (N, D), float32 on the CPU."""
        import torch

        with torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            emb = self.model.encode_text(tokens)
            return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy()

    def probs(self, images: np.ndarray, texts: np.ndarray) -> np.ndarray:
        """Softmax over ``texts`` (N, D) of each image's (B, D) scaled cosine: (B, N)."""
        logits = self.logit_scale * images @ texts.T
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)


def acquire(folder: Path, device: str, precision: str | None, who: str) -> ClipModel:
    """The shared model for ``folder`` on ``device`` (loaded now if nobody holds it)."""
    dev = torch_device(device)
    prec = pick_precision(precision, dev, "fp16", who=who)
    key = (str(Path(folder).resolve()), dev, prec)
    with _LOCK:
        entry = _MODELS.get(key)
        if entry is None:
            entry = _MODELS[key] = [ClipModel(Path(folder), dev, prec), 0]
        else:
            logger.info("%s: reusing the CLIP model already loaded from %s on %s", who, folder, dev)
        entry[1] += 1
        return entry[0]


def release(model: ClipModel | None) -> None:
    """Drop one reference to ``model``; the last one frees it."""
    if model is None:
        return
    with _LOCK:
        for key, entry in list(_MODELS.items()):
            if entry[0] is model:
                entry[1] -= 1
                if entry[1] <= 0:
                    del _MODELS[key]
                    if model.device.startswith("cuda"):
                        import torch

                        torch.cuda.empty_cache()
                return


def loaded_count() -> int:
    """How many distinct CLIP models are loaded now (for tests and logs)."""
    with _LOCK:
        return len(_MODELS)
