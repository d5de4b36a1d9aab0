"""The scheduler on a real GPU: real-size architectures with random weights under VRAM budgets.

Six model-backed analyzers, written to the device-step contract (``framework.BatchedAnalyzer``),
each with its real architecture built from its published config (random weights, no download):
Qwen2-VL-7B (bf16; where bf16 does not fit, fp8: its language model's linear layers in FP8, loaded as the
description analyzer loads them; Qwen2-VL-2B stands in when neither fits), YOLOv8x (ultralytics),
Whisper base, CLIP ViT-B/32, SegFormer-b0 and wav2vec2-large (transformers). They run real
forward passes over a 10-minute 720p clip's frames and audio, at each analyzer's sampling:

- VLM: 10 s chunks of 20 frames at 448x252 (Qwen2-VL's 2 fps), 128 new tokens each (greedy, fixed length);
- objects: 2 fps at 640x384; CLIP: 1 fps at 224x224; SegFormer: 1 fps at 512x512;
- Whisper: 30 s windows, 64 decoder steps each; wav2vec2: 5 s segments.

The frames are synthesized 720p images (moving gradients and noise, resized per analyzer) and
the audio a synthetic 16 kHz signal: this measures scheduling and the device, not decoding.

For each budget (12, 24, 48 GB, unbounded = free memory minus the reserve) the plan is made by
``framework.scheduler.plan`` from the manifest's estimates and run by ``framework.executor``
(allocator capped to the budget). Two baselines run in the same process: load-run-unload one
analyzer at a time (the plan with no budget: one model per wave), and everything loaded at
once, run one after another (no budget). Reported: wall time, peak reserved memory per GPU
(``torch.cuda.max_memory_reserved``), the GPU busy fraction (time inside ``forward`` with its
outputs ready, summed over analyzers, over the wall time), the variant and batch of the VLM,
and each analyzer's fallbacks.

    python bench/gpu_schedule.py --budgets 12,24,48,unbounded --baselines --out bench/results/gpu_schedule_h200.md
    python bench/gpu_schedule.py --devices cuda:0,cuda:1 --videos 2 --compare-one-gpu    # two GPUs
    python bench/gpu_schedule.py --tiny     # the code paths on a CPU, tiny configs, seconds
    python bench/gpu_schedule.py --budgets 24,unbounded --vlm-precision fp8 --vlm-batch 21   # the VLM in fp8
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import platform
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from framework import AnalyzerInputs, BatchedAnalyzer, VideoMeta  # noqa: E402
from framework.callinfo import AnalyzerCall  # noqa: E402
from framework.executor import Executor, Job, TorchMemory  # noqa: E402
from framework.models import load_manifest  # noqa: E402
from framework.models.variants import model_variants  # noqa: E402
from framework.scheduler import Demand, Placement, plan  # noqa: E402

log = logging.getLogger("gpu_schedule")
SR = 16_000
TINY = False
GRAPHS = True  # the VLM stand-in decodes with CUDA graphs when alone on its GPU, as the analyzer does (--no-graphs)
FAKE_GPU = False  # --tiny --fake-gpu: plan and execute as on cuda:0 (simulated memory), compute on the CPU
VLM_PRECISIONS: tuple[str, ...] | None = None  # --vlm-precision: the only precisions the plan may give the VLM
VLM_BATCH: int | None = None  # --vlm-batch: the batch the VLM asks for (default its class's batch_size)
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


# ----------------------------------------------------------------------------- the clip
class Clip:
    """A synthetic 720p video of ``seconds`` with audio: frames are made on demand at any size."""

    def __init__(self, seconds: float, seed: int = 0):
        self.seconds = seconds
        rng = np.random.default_rng(seed)
        h, w = (72, 128) if TINY else (720, 1280)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.pool = []
        for i in range(16):  # 16 distinct 720p frames, cycled with a shift so consecutive frames differ
            base = (np.sin(xx / (40 + 7 * i)) + np.cos(yy / (30 + 5 * i))) * 60 + 128
            frame = np.stack([base, np.roll(base, i * 9, axis=1), base[::-1]], -1)
            frame += rng.normal(0, 12, frame.shape)
            self.pool.append(np.clip(frame, 0, 255).astype(np.uint8))
        t = np.arange(int(seconds * SR), dtype=np.float32) / SR
        self.audio = (0.1 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
                      + 0.02 * rng.standard_normal(t.size).astype(np.float32)).astype(np.float32)

    def frame(self, t: float, width: int, height: int) -> np.ndarray:
        import cv2

        src = self.pool[int(t * 7) % len(self.pool)]
        return cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA)

    def times(self, fps: float) -> list[float]:
        return [i / fps for i in range(int(self.seconds * fps))]


def meta(clip: Clip) -> VideoMeta:
    return VideoMeta(path="synthetic-720p.mp4", content_hash="synthetic", size_bytes=1, duration=clip.seconds,
                     has_video=True, width=1280, height=720, fps=30.0)


# ----------------------------------------------------------------------------- analyzers
class GpuBench(BatchedAnalyzer):
    """Common load/unload: build ``self.model`` from a config on the placement's device and dtype."""

    version = "bench"
    device = "gpu"
    clip: Clip = None  # set per run

    @classmethod
    def supported_precisions(cls):
        return ("bf16", "fp16", "fp32")  # no quantization library on the GPU image

    def load(self, device, models):
        import torch

        self.torch = torch
        self.dev = torch.device("cpu" if FAKE_GPU else device)
        self.dtype = getattr(torch, DTYPES.get(self.precision or "fp32", "float32"))
        if self.dev.type == "cpu" and self.dtype != torch.float32:
            self.dtype = torch.float32
        with torch.device(self.dev):
            self.model = self.build().to(dtype=self.dtype).eval()

    def unload(self):
        self.model = None
        gc.collect()

    def count_items(self, inputs):
        return len(self.item_list())

    def items(self, inputs):
        return self.item_list()

    def finish(self, results, inputs):
        return self.track(data={"items": len(results)})


def _chw(a: GpuBench, times: list[float], size: int):
    """Square frames at ``times`` as a float N x C x H x W tensor in [0, 1]."""
    x = np.stack([a.clip.frame(t, size, size) for t in times]).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return a.torch.from_numpy(np.ascontiguousarray(x))


class VLM(GpuBench):
    name = "qwen2_vl_temporal"
    models = ("qwen2-vl-7b-instruct",)
    batch_size = 64
    item_vram_mb = 300.0  # measured: ~294 MB per 20-frame chunk (34.3 GB at batch 60, 16.6 GB weights)
    item_kv_mb = 150.0  # as the description analyzer counts a chunk that only keeps its KV (ITEM_KV_MB)
    chunk_s, frames, width, height, new_tokens = 10.0, 20, 448, 252, 128
    preprocess_threads = 4

    @classmethod
    def own_group(cls):
        """As the description analyzer on CUDA with graphs: a batch above 64 chunks (``GPU_BATCH``) is prefilled in
        groups and decoded as one batch (``joint_decode``); 0 without graphs or on the CPU."""
        return 64 if GRAPHS and not FAKE_GPU else 0

    def prefill_group(self):
        """``own_group()``, or the plan's smaller group (``placement.prefill_group``: the room fits it better)."""
        planned = self.placement.prefill_group if self.placement is not None else None
        return min(self.own_group(), planned) if planned and self.own_group() else self.own_group()

    def build(self):
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        small = any(s == "qwen2-vl-2b-instruct" for _o, s in (self.placement.substitutes if self.placement else ()))
        if TINY:
            cfg = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=152064, tie_word_embeddings=False,
                       vision_config=dict(depth=2, embed_dim=32, num_heads=2, hidden_size=64, mlp_ratio=2))
            rope = [2, 3, 3]
        elif small:  # Qwen/Qwen2-VL-2B-Instruct config.json
            cfg = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                       vision_config=dict(depth=32, embed_dim=1280, num_heads=16, hidden_size=1536, mlp_ratio=4))
            rope = [16, 24, 24]
        else:  # Qwen/Qwen2-VL-7B-Instruct config.json
            cfg = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False,
                       vision_config=dict(depth=32, embed_dim=1280, num_heads=16, hidden_size=3584, mlp_ratio=4))
            rope = [16, 24, 24]
        self.variant_name = "Qwen2-VL-2B" if small else "Qwen2-VL-7B"
        config = Qwen2VLConfig(**cfg, max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6,
                               rope_scaling={"type": "mrope", "mrope_section": rope},
                               image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
                               vision_end_token_id=151653, bos_token_id=151643, eos_token_id=151645,
                               pad_token_id=151643)
        config._attn_implementation = "sdpa"
        return Qwen2VLForConditionalGeneration._from_config(config, dtype=self.dtype)

    @classmethod
    def supported_precisions(cls):
        return VLM_PRECISIONS or ("bf16", "fp16", "fp32", "fp8")  # as the description analyzer offers them

    def load(self, device, models):
        if self.precision == "fp8" and not FAKE_GPU:
            self._load_fp8(device)
        else:
            super().load(device, models)
        self.graphs, self.notes, self.prepare_lock, self.joint_batches = None, [], threading.Lock(), 0
        self.groups_used = []  # each batch's prefill group (prefill_group_for)
        if self.dev.type == "cuda" and GRAPHS:  # as the description family decodes Qwen2-VL (graphs_by_default)
            from framework.generation import decode_graphs
            from analyzers.vlm.families.qwen import Qwen2VL

            gate = self.placement.gpu_to_itself if self.placement is not None else None
            self.graphs = decode_graphs.install(self.model, self.notes,
                                                lambda: decode_graphs.capture_gate(self.prepare_lock, gate),
                                                Qwen2VL.decode_unused)

    def _load_fp8(self, device):
        """The fp8 variant as the analyzer makes it (``quantize_linears``: one linear layer at a time onto the
        device, so the GPU never holds the bf16 weights whole), its random weights drawn on the GPU: the model
        is built on the CPU without initialising anything (no memory touched), each linear layer gets its
        weights on the GPU just before it is quantized, and the rest is moved and then drawn there."""
        import torch

        from analyzers._fp8 import quantize_linears

        try:
            from transformers.initialization import no_init_weights
        except ImportError:  # transformers 4.x
            from transformers.modeling_utils import no_init_weights
        self.torch, self.dev, self.dtype = torch, torch.device(device), torch.bfloat16

        def draw(linear, dev):
            linear.weight = torch.nn.Parameter(torch.empty(linear.weight.shape, device=dev, dtype=self.dtype)
                                               .normal_(0, 0.02), requires_grad=False)
            if linear.bias is not None:
                linear.bias = torch.nn.Parameter(torch.zeros(linear.bias.shape, device=dev, dtype=self.dtype),
                                                 requires_grad=False)

        with no_init_weights():
            model = self.build()
        self.fp8 = quantize_linears(model, self.dev, init=draw)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.dim() >= 2:
                    p.normal_(0, 0.02)
                elif name.endswith("weight"):
                    p.fill_(1.0)  # norms
                else:
                    p.zero_()  # biases
        self.model = model.eval()

    def unload(self):
        self.graphs = None  # its forward is the model's: holding it would keep the weights on the GPU
        super().unload()

    def item_list(self):
        n = int(self.clip.seconds // self.chunk_s)
        return [(i * self.chunk_s, (i + 1) * self.chunk_s) for i in range(n)]

    def preprocess(self, items):
        with self.prepare_lock:  # pinning host memory must not overlap a capture
            return self._preprocess(items)

    def _preprocess(self, items):
        torch = self.torch
        w, h, frames = (56, 56, 4) if TINY else (self.width, self.height, self.frames)
        patch, tp, merge = 14, 2, 2
        gt, gh, gw = frames // tp, h // patch, w // patch
        n_video = gt * gh * gw // (merge * merge)
        prompt = [151644, 8948, 198] + [100] * 20 + [151645, 198, 151644, 872, 198, 151652]
        tail = [151653] + [101] * 12 + [151645, 198, 151644, 77091, 198]

        def patches(span):  # the Qwen2-VL processor's patchify, per chunk
            start, end = span
            times = np.linspace(start, end, frames, endpoint=False)
            clip = np.stack([self.clip.frame(t, w, h) for t in times]).astype(np.float32) / 255.0
            clip = (clip - 0.5) / 0.27  # normalised as the processor does (values only matter for realism)
            x = clip.transpose(0, 3, 1, 2)  # T C H W
            x = x.reshape(gt, tp, 3, gh // merge, merge, patch, gw // merge, merge, patch)
            x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(gt * gh * gw, 3 * tp * patch * patch)
            return torch.from_numpy(np.ascontiguousarray(x))

        pixels = [patches(span) for span in items]
        ids = [prompt + [151656] * n_video + tail for _ in items]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.ones(len(ids), len(ids[0]), dtype=torch.long),
                "pixel_values_videos": torch.cat(pixels).pin_memory() if self.dev.type == "cuda" else torch.cat(pixels),
                "video_grid_thw": torch.tensor([[gt, gh, gw]] * len(items))}

    def forward(self, batch):
        torch = self.torch
        batch = {k: v.to(self.dev, non_blocking=True) for k, v in batch.items()}
        batch["pixel_values_videos"] = batch["pixel_values_videos"].to(self.dtype)
        n = 4 if TINY else self.new_tokens
        from framework.generation import greedy_loop, joint_decode

        # attention stays off cuDNN for the process (main(), as a run's executor does)
        kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=151643)
        loop_kw = {**kw, "cache_implementation": "static", "disable_compile": True}
        width = batch["input_ids"].shape[1]
        with torch.inference_mode():
            out = None
            if self.graphs is not None:
                try:
                    rows = batch["input_ids"].shape[0]  # (a batch below the plan's cap: larger groups, where they fit)
                    group = self.prefill_group_for(rows, self.own_group())
                    self.groups_used.append(group)
                    if group and rows > group:  # groups prefilled apart, decoded as one
                        parts, why = joint_decode.generate(self.model, self.graphs, self._groups(batch, group),
                                                           loop_kw)
                        out = None if parts is None else torch.cat(list(parts))  # (equal lengths: no end token)
                        self.joint_batches += parts is not None
                    else:
                        out, why = greedy_loop.generate(self.model, self.graphs, batch, loop_kw)
                    if why:
                        self.notes.append(why)
                finally:
                    self.graphs.release()
            if out is None:
                out = self.model.generate(**batch, **kw)
        return out[:, width:].cpu()

    @staticmethod
    def _groups(batch, group):
        """``batch``'s rows in groups of at most ``group`` (equal prompts here: consecutive rows), each with its
        chunks' patches (the same number per chunk)."""
        rows = batch["input_ids"].shape[0]
        per_chunk = batch["pixel_values_videos"].shape[0] // rows
        return [{"input_ids": batch["input_ids"][a:a + group], "attention_mask": batch["attention_mask"][a:a + group],
                 "pixel_values_videos": batch["pixel_values_videos"][a * per_chunk:(a + group) * per_chunk],
                 "video_grid_thw": batch["video_grid_thw"][a:a + group]} for a in range(0, rows, group)]

    def finish(self, results, inputs):
        graphs = None if self.graphs is None else self.graphs.summary()
        return self.track(data={"items": len(results), "cuda_graphs": graphs, "notes": self.notes,
                                "prefill_group": self.prefill_group(), "prefill_groups": self.groups_used,
                                "joint_batches": self.joint_batches})


class Objects(GpuBench):
    name = "object_detection"
    models = ("yolov8x",)
    batch_size = 32
    item_vram_mb = 40.0
    fps = 2.0

    def build(self):
        from ultralytics.nn.tasks import DetectionModel

        return DetectionModel("yolov8n.yaml" if TINY else "yolov8x.yaml", nc=80, verbose=False)

    def item_list(self):
        return self.clip.times(0.2 if TINY else self.fps)

    def preprocess(self, items):
        w, h = (64, 64) if TINY else (640, 384)  # 1280x720 letterboxed to a multiple of 32
        x = np.stack([self.clip.frame(t, w, h) for t in items]).transpose(0, 3, 1, 2)
        return self.torch.from_numpy(np.ascontiguousarray(x))

    def forward(self, batch):
        with self.torch.inference_mode():
            x = batch.to(self.dev, non_blocking=True).to(self.dtype) / 255.0
            out = self.model(x)
            out = out[0] if isinstance(out, (list, tuple)) else out
            return out.float().amax(dim=-1).cpu()  # best score per anchor row: a real read of the output


class Clipper(GpuBench):
    name = "content_quality"
    models = ("clip-vit-base-patch32",)
    batch_size = 128
    item_vram_mb = 8.0

    def build(self):
        from transformers import CLIPConfig, CLIPModel

        if TINY:
            cfg = CLIPConfig(vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                num_attention_heads=2, image_size=32, patch_size=16),
                             text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                              num_attention_heads=2), projection_dim=32)
        else:
            cfg = CLIPConfig()  # the defaults are ViT-B/32 (openai/clip-vit-base-patch32)
        cfg._attn_implementation = "sdpa"
        return CLIPModel._from_config(cfg, dtype=self.dtype)

    def item_list(self):
        return self.clip.times(0.2 if TINY else 1.0)

    def preprocess(self, items):
        return _chw(self, items, 32 if TINY else 224)

    def forward(self, batch):
        with self.torch.inference_mode():
            out = self.model.get_image_features(pixel_values=batch.to(self.dev, non_blocking=True).to(self.dtype))
            out = getattr(out, "pooler_output", out)
            return out.float().cpu()


class Segmenter(GpuBench):
    name = "background_segmentation"
    models = ("segformer-b0-ade-512",)
    batch_size = 32
    item_vram_mb = 60.0

    def build(self):
        from transformers import SegformerConfig, SegformerForSemanticSegmentation

        cfg = SegformerConfig(num_labels=150)  # the defaults are MiT-b0
        return SegformerForSemanticSegmentation._from_config(cfg, dtype=self.dtype)

    def item_list(self):
        return self.clip.times(0.2 if TINY else 1.0)

    def preprocess(self, items):
        return _chw(self, items, 64 if TINY else 512)

    def forward(self, batch):
        with self.torch.inference_mode():
            logits = self.model(pixel_values=batch.to(self.dev, non_blocking=True).to(self.dtype)).logits
            return logits.argmax(1).to(self.torch.uint8).cpu()


class Whisper(GpuBench):
    name = "speech_transcription"
    models = ("whisper-base-hf",)
    batch_size = 16
    item_vram_mb = 60.0
    steps = 64

    def build(self):
        from transformers import WhisperConfig, WhisperForConditionalGeneration

        if TINY:
            cfg = WhisperConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                                decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64)
        else:  # openai/whisper-base
            cfg = WhisperConfig(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                                decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048,
                                vocab_size=51865, num_mel_bins=80)
        cfg._attn_implementation = "sdpa"
        return WhisperForConditionalGeneration._from_config(cfg, dtype=self.dtype)

    def item_list(self):
        return [(s, min(s + 30.0, self.clip.seconds)) for s in np.arange(0, self.clip.seconds, 30.0)]

    def preprocess(self, items):
        from transformers import WhisperFeatureExtractor

        fe = WhisperFeatureExtractor(feature_size=80)
        audio = [self.clip.audio[int(s * SR):int(e * SR)] for s, e in items]
        feats = fe(audio, sampling_rate=SR, return_tensors="np").input_features
        return self.torch.from_numpy(feats)

    def forward(self, batch):
        torch = self.torch
        with torch.inference_mode():
            x = batch.to(self.dev, non_blocking=True).to(self.dtype)
            enc = self.model.model.encoder(x).last_hidden_state
            tokens = torch.full((x.shape[0], 1), 50258, device=self.dev)
            past = None
            out = []
            for _ in range(4 if TINY else self.steps):  # greedy, fixed length: random weights never stop
                dec = self.model(encoder_outputs=(enc,), decoder_input_ids=tokens[:, -1:], past_key_values=past,
                                 use_cache=True)
                past = dec.past_key_values
                nxt = dec.logits[:, -1].argmax(-1, keepdim=True)
                out.append(nxt)
                tokens = torch.cat([tokens, nxt], 1)
            return torch.cat(out, 1).cpu()


class Emotion(GpuBench):
    name = "speech_emotion"
    models = ("wav2vec2-xlsr-speech-emotion",)
    batch_size = 32
    item_vram_mb = 80.0

    def build(self):
        from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

        if TINY:
            cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 conv_dim=(32,) * 7, num_labels=8)
        else:  # wav2vec2-large (XLSR-53 layout)
            cfg = Wav2Vec2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                                 feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, num_labels=8)
        cfg._attn_implementation = "sdpa"
        return Wav2Vec2ForSequenceClassification._from_config(cfg, dtype=self.dtype)

    def item_list(self):
        return [(s, s + 5.0) for s in np.arange(0, self.clip.seconds - 5.0 + 1e-6, 5.0)]

    def preprocess(self, items):
        x = np.stack([self.clip.audio[int(s * SR):int(e * SR)] for s, e in items])
        x = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-7)
        return self.torch.from_numpy(x.astype(np.float32))

    def forward(self, batch):
        with self.torch.inference_mode():
            return self.model(batch.to(self.dev, non_blocking=True).to(self.dtype)).logits.float().cpu()


ANALYZERS = [VLM, Objects, Whisper, Clipper, Segmenter, Emotion]


# ----------------------------------------------------------------------------- runs
@dataclasses.dataclass
class Outcome:
    label: str
    wall_s: float
    peak_reserved_mb: dict
    busy: dict
    tracks: dict
    plan_waves: list
    unplanned: dict
    notes: dict


def demands(manifest) -> list[Demand]:  # noqa: D103
    out = []
    for cls in ANALYZERS:
        variants = model_variants(manifest, list(cls.models), cls.supported_precisions())
        batch = VLM_BATCH if cls is VLM and VLM_BATCH else cls.batch_size
        grouped = cls is VLM and VLM.own_group()  # (prefilled in groups, decoded as one: as the analyzer)
        out.append(Demand(cls.name, "gpu", variants=tuple(variants), item_vram_mb=cls.item_vram_mb,
                          max_batch=batch, cpu_fallback=TINY, forced=TINY,
                          group_items=VLM.own_group() if grouped else 0, item_kv_mb=VLM.item_kv_mb if grouped else 0.0))
    return out


def _cuda_reset(devices):
    import torch

    gc.collect()
    for d in devices:
        torch.cuda.set_per_process_memory_fraction(1.0, torch.device(d))
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(d)


def _peaks(devices):
    import torch

    return {d: round(torch.cuda.max_memory_reserved(d) / 2**20) for d in devices}


def run_scheduled(label, clip, manifest, budget, devices, cpu_workers=4) -> Outcome:
    """Plan and execute the six analyzers on ``clip`` under ``budget`` (MB per GPU, or None)."""
    ds = demands(manifest)
    p = plan(ds, budget, devices)
    if devices and not FAKE_GPU:
        _cuda_reset(devices)
    analyzers = {cls.name: cls() for cls in ANALYZERS}
    for a in analyzers.values():
        type(a).clip = clip
    tracks = {}
    inputs = AnalyzerInputs(video=meta(clip))

    def start(name, placement):
        a = analyzers[name]
        a.placement = placement
        return AnalyzerCall(a, inputs, placement.device, models={m: Path("(random weights)") for m in a.models})

    jobs = [Job(n, p.placements[n], (), (lambda n: lambda pl: start(n, pl))(n), next(d for d in ds if d.name == n))
            for n in p.order]
    if FAKE_GPU:
        from framework.testing.devices import SimulatedGPUs

        memory = SimulatedGPUs({d: 80_000 for d in devices})
    else:
        memory = TorchMemory() if devices else None
    ex = Executor(p, jobs, lambda n, t: tracks.__setitem__(n, t), memory=memory, cpu_workers=cpu_workers)
    t0 = time.perf_counter()
    ex.run()
    wall = time.perf_counter() - t0
    peaks = _peaks(devices) if devices and not FAKE_GPU else {}
    return Outcome(label, wall, peaks, {d: min(1.0, s / wall) for d, s in ex.busy_s.items()}, tracks,
                   [(w.device, w.index, list(w.gpu), round(w.vram_mb)) for w in p.waves], p.unplanned, p.notes)


def run_all_loaded(label, clip, device) -> Outcome:
    """Baseline: every model loaded at once (no budget), then each analyzer run in turn."""
    import torch

    _cuda_reset([device])
    analyzers = [cls() for cls in ANALYZERS]
    inputs = AnalyzerInputs(video=meta(clip))
    tracks = {}
    t0 = time.perf_counter()
    for a in analyzers:
        type(a).clip = clip
        a.placement = Placement(device, "bf16" if a.name == "qwen2_vl_temporal" else "fp16")
        a.load(device, {})
    busy = 0.0
    for a in analyzers:
        t = a.analyze(inputs)
        busy += t.receipt["step"]["busy_s"]
        tracks[a.name] = t.model_copy(update={"receipt": {**t.receipt, "device": device,
                                                          "variant": a.placement.variant}})
    for a in analyzers:
        a.unload()
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    return Outcome(label, wall, _peaks([device]), {device: min(1.0, busy / wall)}, tracks, [], {}, {})


def table(outcomes: list[Outcome], video_s: float) -> str:
    rows = ["| run | wall s | video s per s | peak reserved MB (per GPU) | GPU busy | VLM (variant, batch) | fallbacks |",
            "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        vlm = o.tracks.get("qwen2_vl_temporal")
        if vlm is not None and vlm.status == "ok":
            step = vlm.receipt.get("step", {})
            who = "2B" if vlm.receipt.get("substitutes") else "7B"
            v = f"{who} {vlm.receipt.get('variant')}, {'/'.join(map(str, step.get('batch_sizes', [])))}"
        elif "qwen2_vl_temporal" in o.unplanned:
            v = "unschedulable: " + o.unplanned["qwen2_vl_temporal"]
        else:
            v = f"{vlm.status}: {vlm.reason}" if vlm is not None else "-"
        falls = "; ".join(f"{n}: {f}" for n, t in o.tracks.items() for f in t.receipt.get("fallbacks", []))
        failed = [f"{n} {t.status}: {t.reason}" for n, t in o.tracks.items() if t.status != "ok"]
        rows.append(f"| {o.label} | {o.wall_s:.1f} | {video_s / o.wall_s:.1f} | "
                    f"{', '.join(f'{d}: {mb}' for d, mb in o.peak_reserved_mb.items())} | "
                    f"{', '.join(f'{d}: {b:.2f}' for d, b in o.busy.items())} | {v} | "
                    f"{falls or '-'}{' FAILED: ' + '; '.join(failed) if failed else ''} |")
    return "\n".join(rows)


def per_analyzer(o: Outcome, video_s: float) -> str:
    rows = [f"\n{o.label}: per analyzer", "",
            "| analyzer | device | variant | load s | analyze s | busy s | peak MB (alone?) | batches | items |",
            "|---|---|---|---|---|---|---|---|---|"]
    for n, t in o.tracks.items():
        r, step = t.receipt, t.receipt.get("step", {})
        rows.append(f"| {n} | {r.get('device')} | {r.get('variant')} | {r.get('load_s', '-')} | {r.get('analyze_s', '-')} | "
                    f"{step.get('busy_s', '-')} | {r.get('peak_vram_mb', '-')} ({r.get('measured_alone', '-')}) | "
                    f"{'/'.join(map(str, step.get('batch_sizes', [])))} | {step.get('items', '-')} |")
    rows.append("\nwaves: " + "; ".join(f"{d} wave {i}: {', '.join(g)} (~{mb} MB)" for d, i, g, mb in o.plan_waves))
    vlm = o.tracks.get("qwen2_vl_temporal")
    if vlm is not None and vlm.data:
        groups = "/".join(map(str, vlm.data.get("prefill_groups") or [])) or "-"
        rows.append(f"VLM decoding: CUDA graphs {vlm.data.get('cuda_graphs')}; prefill groups per batch {groups}; "
                    f"notes {vlm.data.get('notes') or '-'}")
    if o.notes:
        rows.append("notes: " + "; ".join(f"{k}: {v}" for k, v in o.notes.items()))
    return "\n".join(rows)


def main() -> None:
    global TINY, FAKE_GPU, GRAPHS, VLM_PRECISIONS, VLM_BATCH
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--budgets", default="12,24,48,unbounded", help="GB per GPU, comma list; 'unbounded' = auto")
    ap.add_argument("--devices", default="cuda:0")
    ap.add_argument("--baselines", action="store_true", help="also one-at-a-time and all-loaded-at-once")
    ap.add_argument("--videos", type=int, default=1, help="videos run one after another (each on all --devices)")
    ap.add_argument("--compare-one-gpu", action="store_true", help="also run the videos on cuda:0 alone")
    ap.add_argument("--tiny", action="store_true", help="tiny configs on the CPU: checks the code paths")
    ap.add_argument("--fake-gpu", action="store_true", help="with --tiny: the GPU code path, simulated")
    ap.add_argument("--no-graphs", action="store_true", help="the VLM stand-in decodes without CUDA graphs")
    ap.add_argument("--vlm-precision", default=None, help="only these precisions for the VLM (comma list, e.g. fp8)")
    ap.add_argument("--vlm-batch", type=int, default=None, help="the batch the VLM asks for (default 64)")
    ap.add_argument("--stacks-after", type=float, default=0, help="dump every thread's stack every N s (debugging)")
    ap.add_argument("--log-level", default="warning", help="warning (default), info, debug")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.stacks_after:
        import faulthandler

        faulthandler.dump_traceback_later(args.stacks_after, repeat=True)  # where a stuck run is stuck
    TINY, FAKE_GPU, GRAPHS = args.tiny, args.fake_gpu, not args.no_graphs
    VLM_PRECISIONS = tuple(p.strip() for p in args.vlm_precision.split(",")) if args.vlm_precision else None
    VLM_BATCH = args.vlm_batch
    manifest = load_manifest()
    clip = Clip(20.0 if TINY else args.minutes * 60)
    video_s = clip.seconds * args.videos
    outcomes: list[Outcome] = []
    devices = [] if TINY else [d.strip() for d in args.devices.split(",")]

    def several(label, budget, devs):
        t0 = time.perf_counter()
        last = None
        for _ in range(args.videos):
            last = run_scheduled(label, clip, manifest, budget, devs)
        last.wall_s = time.perf_counter() - t0
        return last

    if TINY:
        for budget in ((None, 12_000) if FAKE_GPU else (None,)):
            outcomes.append(run_scheduled(f"tiny, {'fake GPU' if FAKE_GPU else 'CPU'}, budget {budget}", clip,
                                          manifest, budget, ["cuda:0"] if FAKE_GPU else []))
    else:
        import torch

        from framework.devices import attention_without_cudnn

        # as a run's executor does; set here too so that the baselines (no executor) decode the same way
        attention_without_cudnn(torch)
        header = [f"GPU: {', '.join(torch.cuda.get_device_name(d) for d in devices)}; torch {torch.__version__}; "
                  f"transformers {__import__('transformers').__version__}; python {platform.python_version()}; "
                  f"{os.cpu_count()} CPUs; clip {clip.seconds / 60:.0f} min x {args.videos} video(s)"]
        print(header[0], flush=True)
        # warm-up: CUDA context, kernels, cuDNN autotune (not timed)
        run_scheduled("warm-up", Clip(20.0), manifest, None, devices[:1])
        for b in args.budgets.split(","):
            b = b.strip()
            if not b:
                continue
            if b == "unbounded":
                free = min(torch.cuda.mem_get_info(d)[0] / 2**20 for d in devices)
                budget = free - max(1024.0, 0.05 * torch.cuda.get_device_properties(devices[0]).total_memory / 2**20)
                label = f"unbounded (auto, {budget / 1024:.0f} GB)"
            else:
                budget, label = float(b) * 1024, f"{b} GB budget"
            o = several(f"{label} on {','.join(devices)}", budget, devices)
            outcomes.append(o)
            print(table([o], video_s), flush=True)
            if args.compare_one_gpu and len(devices) > 1:
                o1 = several(f"{label} on cuda:0 alone", budget, devices[:1])
                outcomes.append(o1)
                print(table([o1], video_s), flush=True)
        if args.baselines:
            o = several("baseline: one at a time (load, run, unload)", None, devices[:1])
            outcomes.append(o)
            print(table([o], video_s), flush=True)
            o = run_all_loaded("baseline: all loaded at once, run in turn", clip, devices[0])
            outcomes.append(o)
            print(table([o], video_s), flush=True)
        outcomes.insert(0, None)
        outcomes = outcomes[1:]
        print("\n".join(header))
    text = table(outcomes, video_s) + "\n" + "\n".join(per_analyzer(o, video_s) for o in outcomes)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"`{' '.join(sys.argv)}`\n\n{text}\n")


if __name__ == "__main__":
    main()
