"""Test material for the vision analyzers: tiny models saved in their real on-disk formats (built
once per session), generated videos with known truth, frame streams written like the decoder does.

Every builder caches its result for the session (module globals keyed by what was built), so the
test modules that use them share one copy however many of them import this module.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from framework import FrameSpec, VideoMeta
from framework.streams import FrameStream, FrameStreamWriter

_CACHE: dict[str, Path] = {}


def _root() -> Path:
    import tempfile

    if "root" not in _CACHE:
        _CACHE["root"] = Path(tempfile.mkdtemp(prefix="vision-models-"))
    return _CACHE["root"]


def coco_names() -> dict[int, str]:
    import ultralytics
    from ultralytics.utils import YAML

    return YAML.load(Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco.yaml")["names"]


def tiny_yolo(kind: str = "detect") -> Path:
    """A YOLOv8n (or YOLOv8n-pose) with random weights, built from ultralytics' yaml and saved as a
    ``.pt`` checkpoint exactly as ``YOLO.save`` writes it (the COCO class names set, as in the real
    weights). Named like the real asset, so it can also be dropped into a weights folder."""
    key = f"yolo-{kind}"
    if key not in _CACHE:
        from ultralytics import YOLO

        model = YOLO("yolov8n.yaml" if kind == "detect" else "yolov8n-pose.yaml")
        if kind == "detect":
            model.model.names = coco_names()
        else:
            model.model.names = {0: "person"}
        path = _root() / key / ("yolov8n.pt" if kind == "detect" else "yolov8n-pose.pt")
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(str(path))
        _CACHE[key] = path
    return _CACHE[key]


ADE_SUBSET = {0: "wall", 1: "building", 2: "sky", 3: "floor", 4: "tree", 5: "person", 6: "car", 7: "grass"}


def tiny_segformer() -> Path:
    """A Hugging Face snapshot folder of a tiny SegFormer (config.json, model.safetensors,
    preprocessor_config.json), as ``save_pretrained`` writes it, with ADE20K-style label names."""
    if "segformer" not in _CACHE:
        from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

        cfg = SegformerConfig(num_encoder_blocks=4, depths=[1, 1, 1, 1], sr_ratios=[8, 4, 2, 1],
                              hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1],
                              decoder_hidden_size=32, num_labels=len(ADE_SUBSET),
                              id2label={i: n for i, n in ADE_SUBSET.items()},
                              label2id={n: i for i, n in ADE_SUBSET.items()})
        folder = _root() / "segformer"
        SegformerForSemanticSegmentation(cfg).save_pretrained(folder)
        SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
        _CACHE["segformer"] = folder
    return _CACHE["segformer"]


def tiny_open_clip() -> Path:
    """An open_clip model folder as on the hub (``open_clip_config.json`` with model_cfg and
    preprocess_cfg, ``open_clip_model.safetensors``), tiny and random; loaded with ``local-dir:``."""
    if "open_clip" not in _CACHE:
        import open_clip
        from safetensors.torch import save_file

        model_cfg = {"embed_dim": 32, "quick_gelu": True,
                     "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
                     "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
        model = open_clip.CLIP(**{k: v for k, v in model_cfg.items() if k != "quick_gelu"}, quick_gelu=True)
        folder = _root() / "open_clip"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "open_clip_config.json").write_text(json.dumps({
            "model_cfg": model_cfg,
            "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                               "interpolation": "bicubic", "resize_mode": "shortest"}}))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
        _CACHE["open_clip"] = folder
    return _CACHE["open_clip"]


# --- media ---------------------------------------------------------------------------------------
def encode(path: Path, frames: Iterable[np.ndarray], fps: float, width: int, height: int) -> Path:
    """H.264 from RGB frames (PyAV), no audio: the synthetic videos' own encoder."""
    from framework.testing.synth import _encode_rgb_frames

    _encode_rgb_frames(path, frames, fps, width, height, crf=18)
    return path


def background(width: int, height: int, seed: int = 0, pan: bool = True) -> Callable[[int], np.ndarray]:
    """Frame i of a textured colour background, slowly panning unless ``pan`` is False."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, size=(height // 16 + 2, width // 16 + 8, 3), dtype=np.uint8)
    big = cv2.resize(small, (width + 128, height + 32), interpolation=cv2.INTER_CUBIC)

    def frame(i: int) -> np.ndarray:
        x = (2 * i) % 128 if pan else 0
        return big[16:16 + height, x:x + width].copy()

    return frame


def dejavu_sans() -> Path:
    """DejaVu Sans (matplotlib ships it), a font with accented letters, which PIL's bundled one lacks."""
    import matplotlib

    return Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"


def draw_caption(img: np.ndarray, text: str, size: int = 36, y: float = 0.78, font: Path | None = None) -> np.ndarray:
    """``text`` in white on a dark band (a typical lower third), drawn with PIL's bundled font or ``font``."""
    from PIL import Image, ImageDraw, ImageFont

    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.truetype(str(font), size) if font is not None else ImageFont.load_default(size=size)
    x0, y0 = int(img.shape[1] * 0.08), int(img.shape[0] * y)
    left, top, right, bottom = draw.textbbox((x0, y0), text, font=font)
    draw.rectangle((left - 12, top - 10, right + 12, bottom + 10), fill=(20, 20, 30))
    draw.text((x0, y0), text, font=font, fill=(250, 250, 250))
    return np.asarray(pil)


def caption_video(path: Path, text: str, start: float, end: float, duration: float, fps: float = 25.0,
                  width: int = 640, height: int = 360, pan: bool = True, font: Path | None = None) -> Path:
    """A video whose caption ``text`` is on screen from ``start`` to ``end`` seconds (frame-exact:
    frame i shows it when start <= i / fps < end), over a textured background."""
    bg = background(width, height, pan=pan)
    n = int(round(duration * fps))

    def frames():
        for i in range(n):
            img = bg(i)
            yield draw_caption(img, text, font=font) if start <= i / fps < end else img

    return encode(path, frames(), fps, width, height)


def stream_of(folder: Path, spec: FrameSpec, frames: list[np.ndarray], times: list[float] | None = None) -> FrameStream:
    """A frame stream written through the decoder's writer (times default to i / spec.fps)."""
    h, w = frames[0].shape[:2]
    writer = FrameStreamWriter(folder / spec.key, spec, w, h)
    for i, f in enumerate(frames):
        writer.write(times[i] if times is not None else i / (spec.fps or 1.0), f)
    return writer.close()


def meta(duration: float, width: int = 640, height: int = 360) -> VideoMeta:
    return VideoMeta(path="generated.mp4", content_hash="x", size_bytes=1, duration=duration, has_video=True,
                     width=width, height=height)


def face_image() -> Path:
    """zidane.jpg from the ultralytics package (a real photo with a face; ships in the wheel)."""
    import importlib.util

    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "assets" / "zidane.jpg"


def registry(folder: Path, analyzers: dict[str, dict]) -> Path:
    import yaml

    path = folder / "registry.yaml"
    path.write_text(yaml.safe_dump({"analyzers": {n: {"enabled": True, "params": p} for n, p in analyzers.items()}}))
    return path


def offline_env(monkeypatch, home: Path) -> None:
    """Point every model cache at empty folders under ``home`` (conftest already isolates most)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("EASYOCR_MODULE_PATH", str(home / "easyocr"))
    os.makedirs(home / "hub", exist_ok=True)


def seed_vision_models(roots: Any = None) -> dict[str, Path]:
    """Put a tiny model, in its real format, wherever the runner's resolver looks for each vision
    model (torch hub checkpoints for the YOLO assets, Hugging Face snapshots at the manifest's pinned
    commits), so every vision analyzer can run offline in a test of the whole set. Returns id -> path."""
    import shutil

    from framework.models import load_manifest
    from framework.models.roots import CacheRoots
    from framework.testing.llm import install_in_hf_cache

    roots = roots or CacheRoots.from_env()
    manifest = load_manifest()
    placed: dict[str, Path] = {}
    roots.torch_checkpoints.mkdir(parents=True, exist_ok=True)
    for mid, kind in (("yolov8x", "detect"), ("yolov8s", "detect"), ("yolov8x-pose", "pose")):
        target = roots.torch_checkpoints / manifest[mid].locator
        shutil.copy(tiny_yolo(kind), target)
        placed[mid] = target
    for mid, folder in (("segformer-b0-ade-512", tiny_segformer()), ("open-clip-vit-b-32", tiny_open_clip())):
        spec = manifest[mid]
        placed[mid] = install_in_hf_cache(folder, spec.locator, roots.hf_hub, commit=spec.revision)
    return placed
