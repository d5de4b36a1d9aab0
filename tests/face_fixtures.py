"""Test material for the face analyzers: a real face photo (zidane.jpg, shipped in the ultralytics
wheel), a generated clip showing it in two shots with a faceless shot between, and tiny ViT image
classifiers with the real models' label sets, saved as ``save_pretrained`` writes them (built once
per session) and placed in a Hugging Face cache where the runner's resolver looks.

The tiny classifiers have random weights: they prove loading, shapes and labels, never what an
expression or an age is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import vision_fixtures as vf

# the label sets of the real models (their config.json id2label, in order)
EXPRESSIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]  # trpakov/vit-face-expression
AGE_BANDS = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]  # nateraw/vit-age-classifier

_CACHE: dict[str, Any] = {}


def face_photo(width: int = 960, height: int = 540) -> np.ndarray:
    """zidane.jpg as RGB at ``width`` x ``height`` (Zidane's face is in the upper right)."""
    key = f"photo-{width}x{height}"
    if key not in _CACHE:
        import cv2

        img = cv2.imread(str(vf.face_image()))[:, :, ::-1]
        _CACHE[key] = np.ascontiguousarray(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA))
    return _CACHE[key]


def face_clip(path: Path, fps: float = 10.0, width: int = 640, height: int = 360) -> Path:
    """6 s: the photo from 0 to 2 s, a faceless textured background from 2 to 4 s, the photo again
    from 4 to 6 s (two hard cuts, at 2 and 4 s)."""
    photo = face_photo(width, height)
    bg = vf.background(width, height, seed=3, pan=False)
    n = int(round(6 * fps))
    return vf.encode(path, (photo if not (2 <= i / fps < 4) else bg(i) for i in range(n)), fps, width, height)


def tiny_classifier(kind: str) -> Path:
    """A tiny ``ViTForImageClassification`` with the label set of the real ``kind`` model
    (``expression`` or ``age``) and its ``ViTImageProcessor``, saved with ``save_pretrained``."""
    key = f"vit-{kind}"
    if key not in _CACHE:
        from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

        labels = EXPRESSIONS if kind == "expression" else AGE_BANDS
        cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=len(labels), id2label=dict(enumerate(labels)),
                        label2id={n: i for i, n in enumerate(labels)})
        folder = vf._root() / key
        ViTForImageClassification(cfg).save_pretrained(folder)
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
        _CACHE[key] = folder
    return _CACHE[key]


def seed_face_models(roots: Any) -> dict[str, Path]:
    """The tiny classifiers in the Hugging Face cache of ``roots`` as the manifest's repos (at the
    pinned commit, or ``main`` for an unpinned one). Returns manifest id -> snapshot folder."""
    from framework.models import load_manifest
    from framework.testing.llm import install_in_hf_cache

    manifest = load_manifest()
    placed = {}
    for mid, kind in (("vit-face-expression", "expression"), ("vit-age-classifier", "age")):
        spec = manifest[mid]
        placed[mid] = install_in_hf_cache(tiny_classifier(kind), spec.locator, roots.hf_hub, commit=spec.revision)
    return placed
