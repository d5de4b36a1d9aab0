"""The text encoders semantic search uses, loaded from the local folders the models code resolves.

- ``SentenceEncoder``: a sentence-embedding model (default the manifest's ``all-minilm-l6-v2``,
  sentence-transformers/all-MiniLM-L6-v2) loaded with ``transformers.AutoModel`` and
  ``AutoTokenizer``; a text's vector is the attention-masked mean of the last hidden states,
  L2-normalised, which is what sentence-transformers computes for that model.
- ``ClipTextEncoder``: the text tower of the CLIP model whose image tower made a library's shot
  embeddings. An open_clip folder (``open_clip_config.json`` and its weights, the Hugging Face layout
  of open_clip models) loads with ``open_clip.create_model("local-dir:...")``; a transformers folder
  (``config.json`` of a CLIP model, e.g. openai/clip-vit-base-patch32) with ``CLIPModel``.

``Encoders`` resolves manifest ids through ``framework.models`` (never downloading: search is
offline) and keeps each loaded encoder for the life of the process (the web app, the MCP server).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "all-minilm-l6-v2"


class SentenceEncoder:
    """Sentence embeddings: transformers AutoModel + mean pooling + L2 normalisation."""

    def __init__(self, model_id: str, path: Path, device: str = "cpu", max_length: int = 256,
                 batch_size: int = 64):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.id, self.path, self.device = model_id, Path(path), device
        self.max_length, self.batch_size = max_length, batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).to(device).eval()
        self._torch = torch

    def encode(self, texts: list[str]) -> Any:
        """``len(texts) x dim`` float32 numpy array of unit vectors."""
        import numpy as np

        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(texts[i:i + self.batch_size], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(mean.float(), dim=-1).cpu().numpy())
        dim = self.model.config.hidden_size
        return np.concatenate(out) if out else np.zeros((0, dim), dtype=np.float32)


class ClipTextEncoder:
    """The text tower of a CLIP model (open_clip or transformers layout), for text-to-image search."""

    def __init__(self, model_id: str, path: Path, device: str = "cpu"):
        import torch

        self.id, self.path, self.device = model_id, Path(path), device
        self._torch = torch
        folder = self.path if self.path.is_dir() else self.path.parent
        if (folder / "open_clip_config.json").is_file():
            import open_clip

            self.kind = "open_clip"
            self.model = open_clip.create_model(f"local-dir:{folder}", device=device).eval()
            self.tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
        elif (folder / "config.json").is_file():
            from transformers import AutoTokenizer, CLIPModel

            self.kind = "transformers"
            self.model = CLIPModel.from_pretrained(folder).to(device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        else:
            raise ValueError(f"{self.path}: neither an open_clip folder (open_clip_config.json) nor a "
                             "transformers CLIP folder (config.json)")

    def encode(self, texts: list[str]) -> Any:
        """``len(texts) x dim`` float32 numpy array of unit vectors."""
        torch = self._torch
        with torch.inference_mode():
            if self.kind == "open_clip":
                feats = self.model.encode_text(self.tokenizer(texts).to(self.device))
            else:
                batch = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
                out = self.model.get_text_features(**batch)
                feats = out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 5.17 / 5.23
            return torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy()


class Encoders:
    """Loads each encoder once; says why one cannot be had (a missing model names its pull command).

    :param manifest: a ``framework.models.Manifest`` (default: ``load_manifest()``, which reads
        ``$FRAMEWORK_MANIFEST``, ./models_manifest.yaml or the framework's own).
    """

    def __init__(self, manifest: Any = None, device: str = "cpu"):
        self._manifest = manifest
        self.device = device
        self._loaded: dict[tuple[str, str], Any] = {}
        self._why: dict[tuple[str, str], str] = {}
        self._queries: dict[tuple[int, str], Any] = {}
        self._lock = threading.Lock()

    @property
    def manifest(self) -> Any:
        if self._manifest is None:
            from ..models import load_manifest

            self._manifest = load_manifest()
        return self._manifest

    def _get(self, kind: str, model_id: str) -> tuple[Any | None, str | None]:
        key = (kind, model_id)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key], None
            if key in self._why:
                return None, self._why[key]
            try:
                path, why = self._resolve(model_id)
                encoder = None
                if path is not None:
                    cls = SentenceEncoder if kind == "sentence" else ClipTextEncoder
                    encoder = cls(model_id, path, device=self.device)
            except Exception as exc:  # noqa: BLE001 - a model that fails to load turns semantic search off, not search
                logger.warning("cannot load %s model %s: %s", kind, model_id, exc)
                encoder, why = None, f"model {model_id} failed to load ({type(exc).__name__}: {exc})"
            if encoder is None:
                self._why[key] = why or f"model {model_id} is not available"
                return None, self._why[key]
            self._loaded[key] = encoder
            return encoder, None

    def _resolve(self, model_id: str) -> tuple[Path | None, str | None]:
        from ..models import find_model, pull_command

        if model_id not in self.manifest:
            return None, (f"model {model_id!r} is not in the models manifest {self.manifest.path}; add it there "
                          "(docs/models.md)")
        found = find_model(self.manifest[model_id])  # search never downloads
        if found is None:
            return None, f"model {model_id} is not in the local cache; run `{pull_command(model_id)}`"
        return found.path, None

    def add(self, kind: str, model_id: str, encoder: Any) -> None:
        """Use an encoder already in memory for ``model_id`` (``kind``: ``"sentence"`` or ``"clip"``);
        it needs ``encode(texts) -> unit vectors``."""
        with self._lock:
            self._loaded[(kind, model_id)] = encoder
            self._why.pop((kind, model_id), None)

    def query_vector(self, encoder: Any, text: str) -> Any:
        """``encoder``'s vector of a query, remembered for the last 256 queries (a search page asks
        again for the same words when a filter changes)."""
        key = (id(encoder), text)
        with self._lock:
            if key in self._queries:
                self._queries[key] = self._queries.pop(key)  # most recent last
                return self._queries[key]
        vector = encoder.encode([text])[0]
        with self._lock:
            self._queries[key] = vector
            while len(self._queries) > 256:
                self._queries.pop(next(iter(self._queries)))
        return vector

    def forget_queries(self) -> None:
        """Drop the remembered query vectors (benchmarks time each query from scratch)."""
        with self._lock:
            self._queries.clear()

    def sentence(self, model_id: str = DEFAULT_TEXT_MODEL) -> tuple[SentenceEncoder | None, str | None]:
        """The sentence encoder, or None and why not."""
        return self._get("sentence", model_id)

    def clip(self, model_id: str) -> tuple[ClipTextEncoder | None, str | None]:
        """The CLIP text encoder for shot embeddings made by ``model_id``, or None and why not."""
        return self._get("clip", model_id)
