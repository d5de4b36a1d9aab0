"""``qwen2_vl_temporal``: what happens in the video, in words, one description per chunk.

The name is the original system's (seed 004 ran Qwen2-VL-7B under it); the model is a parameter,
a models-manifest id: Qwen2-VL and Qwen2.5-VL (2B/3B, 7B), SmolVLM2 (256M, 500M, 2.2B),
LLaVA-NeXT-Video-7B with or without seed 002's LoRA adapter, or (``backend: openai``) any
OpenAI-compatible server.

How it works (a ``BatchedAnalyzer``, DESIGN.md's device step):

1. **Chunks follow the video** (``chunks.plan_chunks``): the shots of the cut detector, long
   ones split into windows of at most ``chunk_s``, very short ones merged; or fixed windows.
2. **Frames** come from the single decode pass, at the model's own rate and size (Qwen2-VL:
   2 fps, 448 px wide); each chunk takes the frames inside it (``chunks.pick_frames``), thinned
   to the model's cap (a lower cap on a CPU), and the model is told their real times.
3. **Batches**: chunks of similar length are batched together (less padding); the processor
   runs on CPU threads while the device generates the previous batch; the batch size is
   ``batch_size`` capped by the VRAM plan (``Placement.max_batch``): by default as many chunks as
   the plan allows on a GPU, up to ``GPU_BATCH`` (decoding costs nearly the same per step at 8
   chunks as at 60, so fewer, larger batches finish sooner), and ``CPU_BATCH`` on a CPU or a
   server. Qwen2-VL and Qwen2.5-VL on a GPU stretch to ``GPU_BATCH_WITH_ROOM`` where the plan finds
   memory no other analyzer reserved: a batch above ``prefill_rows`` (default ``GPU_BATCH``) is
   prefilled in groups of similar prompt length and decoded as one
   (``framework.generation.joint_decode``). Only a batch of frames is ever in memory. Qwen2-VL's
   vision tower attends over all frame groups of a batch in one call per layer
   (``families/vision_attention.py``), not one call per group.
4. **Context** (off by default): each chunk's prompt carries the descriptions before it, up to
   ``context_tokens``; chunks then run one at a time.

Each chunk is one ``description`` event whose ``data["text"]`` is the description, with the
frame times it saw, the model and the prompt. The track provides ``descriptions``.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Literal

from pydantic import Field, model_validator

from framework import AnalyzerInputs, AnalyzerUnavailable, BatchedAnalyzer, Event, FrameSpec, Track

from .._shots import upstream_shots

from .catalog import DEFAULT_MODEL, FAMILY_DEFAULTS, KNOWN_MODELS, VideoDefaults, family_of
from .chunks import Chunk, bucketed, pick_frames, pick_spread, plan_chunks
from .families import Answer, Family, GenerationOptions, Request, family_class, family_from_config
from .prompts import DEFAULT_PROMPT, Context, context_block, times_mentioned

logger = logging.getLogger(__name__)
#: a batch's frames are read from the decode cache on this many threads: beside the default set on an H200
#: machine, one thread took 0.5 s to read the 114 chunks of a 10-minute clip (772 MB), before the first prefill
READ_THREADS = 4

LABEL = "description"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
# device working memory per chunk in a batch, by family (KV cache and activations of ~1,500
# prompt tokens + 128 new ones for a 7B model; measured peak at batch 64 was ~54 GB with 17 GB of weights)
# (BLIP: one 384 px image and a short caption per item; BLIP-2: a few 224 px images and short captions per chunk)
ITEM_VRAM_MB = {"qwen2_vl": 600.0, "qwen2_5_vl": 600.0, "llava_next_video": 700.0, "smolvlm": 250.0, "openai": 0.0,
                "blip": 60.0, "blip2": 150.0}
#: what a chunk keeps while the other groups of its batch are prefilled and through the decoding (its KV cache),
#: for the families that prefill in groups (``prefill_group``): on an H200 Qwen2-VL-7B's 114 chunks of the
#: end-to-end clip kept 92-135 MB a chunk after their group's prefill (``model_info.prefill_rows.memory_gb``,
#: ``bench/results/end_to_end_h200_ab23.md``); the 2B's KV is half the 7B's
ITEM_KV_MB = {"qwen2_vl": 150.0, "qwen2_5_vl": 150.0}
#: default batch on a GPU, before the plan caps it to the budget (Qwen2-VL-7B on an H200: 75 s of video
#: per second at 60 chunks a batch; a decoding step cost 31.9 ms at 8 chunks and 37.0 ms at 60)
GPU_BATCH = 64
#: the batch a family that prefills in groups (Qwen2-VL, Qwen2.5-VL) grows to on a GPU where its wave leaves
#: memory nobody reserved (``stretch_batch_size``): prefilled in groups of GPU_BATCH, decoded as one. On an H200
#: the 7B described a 10-minute clip's 87 chunks at 82 video s/s in one such batch, 72 in one plain batch and 66
#: in batches of 64 (bench/results/vlm_throughput_h200_7b.md, run 8)
GPU_BATCH_WITH_ROOM = 128
#: default batch on a CPU, or for a server (backend openai)
CPU_BATCH = 8


def adapter_folder(value: str | None) -> Path | None:
    """The folder an ``adapter`` value names, or None when it is a models-manifest id (ids hold no
    path separator; a value with one, starting with ``.`` or ``~``, or naming a folder is a folder)."""
    if not value:
        return None
    path = Path(value).expanduser()
    if "/" in value or "\\" in value or value.startswith((".", "~")) or path.is_dir():
        return path
    return None


def adapter_card(value: str | None) -> dict[str, Any] | None:
    """What the track records of a ``framework finetune`` adapter: its folder and card's essentials."""
    folder = adapter_folder(value)
    if folder is None:
        return None
    from .finetune.card import read_card

    out: dict[str, Any] = {"path": str(folder.resolve())}
    try:
        card = read_card(folder)
    except OSError:
        card = None
    if card is None:
        return out
    out.update(base_model=card.get("base_model", {}).get("id"), method=card.get("method"),
               val_loss=card.get("results", {}).get("val_loss"), data=card.get("data", {}).get("path"))
    return out


@dataclass
class ChunkItem:
    """A chunk and the frames it will show (indices into the stream, their times)."""

    chunk: Chunk
    frame_index: list[int]
    times: list[float]


@dataclass
class Described:
    item: ChunkItem
    answer: Answer
    context_items: int = 0


class SceneDescription(BatchedAnalyzer):
    """Descriptions of what happens, chunk by chunk, by a vision-language model (see the module docstring)."""

    name: ClassVar[str] = "qwen2_vl_temporal"
    original_status = "active"
    version: ClassVar[str] = "2.0.0"
    description: ClassVar[str] = ("what happens, in words: one description per chunk of the video (shot-aware) by a "
                                  "vision-language model (Qwen2-VL, Qwen2.5-VL, SmolVLM2, LLaVA-NeXT-Video or a server)")
    device: ClassVar[str] = "auto"
    cuda_stream_local = True  # no device-wide CUDA calls while analyzing: graphs may be captured beside it
    frames_first = True  # the run's longest GPU analysis: with FRAMEWORK_FRAMES_FIRST=1 its streams are decoded first
    warm_imports = ("transformers.modeling_utils", "transformers.generation.utils", "transformers.processing_utils")
    depends_on: ClassVar[tuple[str, ...]] = ("cut_analysis",)
    provides: ClassVar[tuple[str, ...]] = ("descriptions",)
    # on, as in the original: the plan runs it where a GPU holds a variant, and skips it with the reason where
    # none does and its CPU path is not practical (a laptop is never sent the 16 GB model)
    enabled_by_default: ClassVar[bool] = True
    batch_size: ClassVar[int] = CPU_BATCH
    prefetch: ClassVar[int] = 2
    # one CPU thread prepares the batches ahead (the processor's own torch ops use the cores): a
    # fast tokenizer shared by two threads can fail with "Already borrowed" when both pad at once
    preprocess_threads: ClassVar[int] = 1

    class Params(BatchedAnalyzer.Params):
        model: str = Field(DEFAULT_MODEL, description="models-manifest id of the VLM (e.g. qwen2-vl-2b-instruct, "
                           "smolvlm2-256m-video-instruct, llava-next-video-genai-ft); ignored by backend openai")
        adapter: str | None = Field(None, description="LoRA adapter applied with peft: a folder made by `framework "
                                    "finetune` (or any peft adapter folder), or a models-manifest id")
        precision: Literal["fp8"] | None = Field(None, description="fp8: always load the language model's linear "
                                                 "layers in FP8 (Qwen2-VL-7B in ~11.5 GB instead of ~18; on a GPU; on an "
                                                 "H200 no faster than bf16, see docs/benchmarks.md); default: the plan "
                                                 "picks bf16, fp16 or fp32, then fp8 where none fits (on Hopper or "
                                                 "newer GPUs), then a smaller model")
        backend: Literal["transformers", "openai"] = Field("transformers", description="transformers (a local "
                                                           "model) | openai (an OpenAI-compatible server)")
        base_url: str | None = Field(None, description="openai: the server, e.g. http://127.0.0.1:8000/v1")
        api_model: str | None = Field(None, description="openai: the model name the server knows (default: model)")
        api_key_env: str | None = Field(None, description="openai: environment variable holding the API key")
        chunking: Literal["shots", "fixed", "whole"] = Field("shots", description="shots (follow the cut "
                                                              "detector) | fixed windows | whole (one chunk)")
        chunk_s: float = Field(10.0, gt=0, description="longest chunk, in seconds")
        min_chunk_s: float = Field(2.0, ge=0, description="shorter stretches are merged with a neighbour")
        fps: float | None = Field(None, gt=0, le=30, description="frames per second to decode (default: the model's)")
        frames_per_chunk: int | None = Field(None, ge=1, le=768, description="most frames per chunk (default: the "
                                             "model's; a lower cap on a CPU)")
        frame_width: int | None = Field(None, ge=28, le=3840, description="frame width in pixels (default: the model's)")
        frame_height: int | None = Field(None, ge=28, le=3840, description="frame height (default: keep the "
                                         "aspect ratio)")
        prompt: str = Field(DEFAULT_PROMPT, min_length=1, description="the instruction to the model")
        max_new_tokens: int = Field(128, ge=1, le=4096, description="longest description, in tokens")
        min_new_tokens: int = Field(0, ge=0, description="benchmarks only: generate at least this many tokens")
        temperature: float = Field(0.0, ge=0.0, le=2.0, description="0: greedy")
        batch_size: int | None = Field(None, ge=1, le=256, description="chunks per batch, capped by the VRAM "
                                       "plan (default: as many as the plan allows on a GPU, up to 64; 8 on a "
                                       "CPU or with backend openai)")
        context: bool = Field(False, description="carry the previous descriptions into each prompt "
                              "(one chunk at a time)")
        context_tokens: int = Field(256, ge=0, description="context: most tokens of earlier descriptions")
        static_cache: bool = Field(False, description="static KV cache in generate (where the model supports it)")
        compile: bool = Field(False, description="torch.compile the model's forward (CUDA)")
        cuda_graphs: bool | None = Field(None, description="replay each decoding step as a CUDA graph over a "
                                         "static KV cache (CUDA; off with compile); default: on for Qwen2-VL "
                                         "(checked on a GPU) and Qwen2.5-VL (its decoder; checked on the CPU)")
        patch_embed_product: bool = Field(True, description="Qwen2-VL / Qwen2.5-VL: compute the vision tower's "
                                          "patch embedding as one matrix product instead of a 3-D convolution "
                                          "(the same weights; cuDNN reportedly has no fast kernel for that "
                                          "convolution on several GPUs)")
        prefill_rows: int | None = Field(None, ge=0, le=256, description="a batch of more chunks than this is "
                                         "prefilled in groups of at most this many, sorted by prompt length, and "
                                         "then decoded as one batch (Qwen2-VL / Qwen2.5-VL in the graphed greedy "
                                         "loop on CUDA); default on CUDA: GPU_BATCH (64), so it applies to a "
                                         "batch_size above 64 (e.g. 128 on a GPU of 80 GB or more); 0: each "
                                         "batch prefilled whole")
        prefill_group_tokens: float | None = Field(3000.0, ge=0, description="with prefill_rows: the batch is "
                                                   "cut into the groups whose prefilled tokens (each chunk padded "
                                                   "to its group's longest prompt) plus this many a group are "
                                                   "fewest, so into more groups than the fewest where one more "
                                                   "saves more padding than it costs (one more prefill and two "
                                                   "decoding steps, counted in prompt tokens): the end-to-end "
                                                   "clip's 114 chunks padded 32 % in the fewest groups (two), 6.9 % "
                                                   "in five, and on one H200 the five prefilled in 2.2 s less and "
                                                   "a peak 13 GB lower; not with overlap_prepare, which groups by frame "
                                                   "counts. Empty (null): as few groups as fit")
        overlap_prepare: bool = Field(False, description="an experiment (off): a batch prefilled in groups "
                                      "(prefill_rows) is prepared group by group, the first group's prefill "
                                      "starting while the next group is prepared (one batch of all chunks waited "
                                      "2.3-2.8 s for its whole preparation on an H200)")
        timeout_s: float = Field(120.0, gt=0, description="openai: seconds to wait for one answer")

        @model_validator(mode="after")
        def _check(self) -> "SceneDescription.Params":
            if self.backend == "openai" and not self.base_url:
                raise ValueError("backend openai needs base_url (e.g. http://127.0.0.1:8000/v1)")
            return self

    def __init__(self, params: Any = None):
        super().__init__(params)
        if self.params.chunking != "shots":
            self.depends_on = ()  # fixed windows or the whole video: no shots needed (the runner reads this)
        self.family: Family | None = None
        self.item_vram_mb = ITEM_VRAM_MB.get(self.family_name, 600.0)  # read by the scheduler
        self.item_kv_mb = ITEM_KV_MB.get(self.family_name, 0.0)  # (with prefill_group: what a chunk keeps)
        self._context: Context | None = None
        self._load_s = 0.0
        self._started: float | None = None
        self._cache: tuple[int, list[ChunkItem]] | None = None
        self._lock = threading.Lock()
        self._preparer: ThreadPoolExecutor | None = None  # prepares a batch's later groups (overlap_prepare)
        self._later_groups: list[Any] = []  # their futures, until the next batch's preparation
        self._shots_used = False
        self._inputs: AnalyzerInputs | None = None
        self._device = "cpu"
        self._processor_loaded = threading.Event()  # preprocess may run while the model loads (preprocess_ready)

    # --- declarations ------------------------------------------------------------------------
    def supported_precisions(self) -> tuple[str, ...]:  # type: ignore[override]  # the params decide
        """bf16/fp16/fp32, then fp8 where none of those fits (the language model's linear layers in FP8,
        ``analyzers._fp8``; the runner drops fp8 on GPUs without FP8 units, ``GPUs.fp8_matmul``); only
        fp8 with ``precision: fp8``. int8 and int4 would need bitsandbytes, which the framework does
        not ship."""
        return ("fp8",) if self.params.precision == "fp8" else ("bf16", "fp16", "fp32", "fp8")

    @property
    def family_name(self) -> str:
        return "openai" if self.params.backend == "openai" else family_of(self.params.model)

    @property
    def defaults(self) -> VideoDefaults:
        return FAMILY_DEFAULTS[self.family_name]

    def model_ids(self) -> list[str]:
        p = self.params
        if p.backend == "openai":
            return []
        ids = [p.model]
        if p.adapter and adapter_folder(p.adapter) is None:
            ids.append(p.adapter)
        return ids

    def local_files(self) -> list[Path]:
        """A local adapter's weights and config (``adapter_*``): a retrained adapter in the same folder
        is not the old one; ``eval.md`` or a card written there later changes nothing."""
        folder = adapter_folder(self.params.adapter) if self.params.adapter else None
        if folder is None:
            return []
        return sorted(folder.glob("adapter_*")) or [folder]

    def frame_specs(self) -> list[FrameSpec]:
        p, d = self.params, self.defaults
        width = p.frame_width if p.frame_width or p.frame_height else d.frame_width
        return [FrameSpec(fps=p.fps or d.fps, width=width, height=p.frame_height)]

    def max_batch_size(self) -> int:
        """1 with context; else ``batch_size``, or by default ``GPU_BATCH`` on a GPU (the plan caps it to
        what fits; before the plan, the demand it is planned with) and ``CPU_BATCH`` elsewhere."""
        if self.params.context:
            return 1
        if self.params.batch_size:
            return self.params.batch_size
        on_gpu = self.placement is None or self.placement.is_gpu
        return GPU_BATCH if on_gpu and self.params.backend == "transformers" else CPU_BATCH

    def _prefills_in_groups(self) -> bool:
        """Whether a batch above ``prefill_rows`` is prefilled in groups here: a family that does so, in the
        graphed loop on a GPU, without ``context``."""
        p = self.params
        off = p.context or p.prefill_rows == 0 or p.compile or p.cuda_graphs is False
        on_gpu = self.placement is None or self.placement.is_gpu
        return (not off and on_gpu and p.backend == "transformers"
                and family_class(self.family_name).prefills_in_groups)

    def stretch_batch_size(self) -> int:
        """By default on a GPU, for a family that prefills in groups in the graphed loop: ``GPU_BATCH_WITH_ROOM``
        (the plan grows the batch toward it only from memory no analyzer reserved); else ``max_batch_size``."""
        if self.params.batch_size or not self._prefills_in_groups():
            return self.max_batch_size()
        return max(GPU_BATCH_WITH_ROOM, self.max_batch_size())

    def prefill_group(self) -> int:
        """Where batches are prefilled in groups: ``prefill_rows`` (by default ``GPU_BATCH``), or the plan's smaller
        group (``placement.prefill_group``: the room beside the weights holds no whole group), and the plan counts
        a chunk beyond the first group at ``item_kv_mb``; 0 elsewhere."""
        if not self._prefills_in_groups():
            return 0
        return self._planned_group(self.params.prefill_rows or GPU_BATCH)

    def group_for_rows(self, rows: int) -> int:
        """The prefill group for a batch of ``rows`` chunks (``Family.group_rows``): the largest, up to
        ``prefill_rows`` (by default ``GPU_BATCH``), that fits the room the plan gave the batches
        (``prefill_group_for``): a batch smaller than the plan's largest has room for larger groups."""
        return self.prefill_group_for(rows, self.params.prefill_rows or GPU_BATCH)

    def _planned_group(self, rows: int) -> int:
        """``rows``, or the plan's prefill group where smaller."""
        planned = self.placement.prefill_group if self.placement is not None else None
        return min(rows, planned) if planned else rows

    @property
    def run_device(self) -> str:
        """Where the model runs: the plan's placement, else the device ``load`` was given."""
        if self.placement is not None:
            return self.placement.device
        return self._device

    def max_frames(self) -> int:
        p, d = self.params, self.defaults
        if p.frames_per_chunk:
            return p.frames_per_chunk
        return d.cpu_max_frames if self.run_device == "cpu" else d.max_frames

    # --- lifecycle ---------------------------------------------------------------------------
    def load(self, device: str, models: dict[str, Path]) -> None:
        t0 = time.perf_counter()
        p = self.params
        self._device = "cuda" if device == "gpu" else device
        options = GenerationOptions(max_new_tokens=p.max_new_tokens, min_new_tokens=p.min_new_tokens,
                                    temperature=p.temperature, static_cache=p.static_cache, compile=p.compile,
                                    cuda_graphs=p.cuda_graphs, patch_embed_product=p.patch_embed_product,
                                    prefill_rows=self._prefill_rows(), prefill_group_tokens=p.prefill_group_tokens)
        if p.backend == "openai":
            family = family_class("openai")(options, base_url=p.base_url, model=p.api_model or p.model,
                                            api_key_env=p.api_key_env, timeout_s=p.timeout_s)
            family.load(None, self.run_device, None)
        else:
            folder, adapter = self._folders(models)
            name = family_from_config(folder) or self.family_name
            family = family_class(name)(options)
            if family.load_processor(folder, self.run_device):  # batches may be prepared while the model loads
                self.family = family
                self._processor_loaded.set()
            family.load(folder, self.run_device, self.precision, adapter)
        family.gpu_to_itself = self.placement.gpu_to_itself if self.placement is not None else None
        family.group_rows = self.group_for_rows if self._prefills_in_groups() else None
        self.family = family
        self._load_s = time.perf_counter() - t0

    def _prefill_rows(self) -> int | None:
        """``prefill_rows``, or by default ``GPU_BATCH`` on CUDA (a batch above it: prefilled in groups,
        decoded as one; on an H200 a batch of 87 chunks of the 7B, 82 video s/s against 72 for one prefill
        and 66 for batches of 64), the plan's smaller group where it gave one (``placement.prefill_group``);
        None: each batch prefilled whole."""
        p = self.params
        if p.prefill_rows is not None:
            rows = p.prefill_rows
        else:
            rows = GPU_BATCH if self.run_device.startswith("cuda") and p.backend == "transformers" else 0
        return self._planned_group(rows) if rows else None

    def _folders(self, models: dict[str, Path]) -> tuple[Path, Path | None]:
        """The model folder and the adapter folder (if any) among those the runner resolved."""
        p = self.params

        def folder(mid: str) -> Path:
            path = models.get(mid)
            if path is None:
                raise AnalyzerUnavailable(f"model {mid} was not handed to {self.name} (not cached?): run "
                                          f"`framework models pull {mid}`")
            return Path(path)

        known = KNOWN_MODELS.get(p.model)
        if known is not None and known.base:  # the model id is an adapter: load its base, apply it
            return folder(known.base), folder(p.model)
        local = adapter_folder(p.adapter) if p.adapter else None
        if local is not None and not any((local / f).is_file() for f in ("adapter_config.json", "config.json")):
            raise AnalyzerUnavailable(f"adapter {p.adapter}: no adapter_config.json in {local} (make one with "
                                      "`framework finetune`)")
        return folder(p.model), (local if local is not None else folder(p.adapter) if p.adapter else None)

    def preprocess_ready(self) -> bool:
        """The family's processor is loaded (its model may still be loading): the executor prepares the
        first batch meanwhile. Not with ``context``, whose prompts are written in ``forward``."""
        return self._processor_loaded.is_set() and not self.params.context

    def unload(self) -> None:
        self._processor_loaded.clear()
        if self._preparer is not None:
            self._preparer.shutdown(wait=True, cancel_futures=True)
            self._preparer = None
        self._later_groups = []
        if self.family is not None:
            self.family.close()
            self.family = None
        self._cache = None
        self._context = None

    # --- items: chunks and their frames ------------------------------------------------------
    def _chunk_items(self, inputs: AnalyzerInputs) -> list[ChunkItem]:
        with self._lock:
            if self._cache is not None and self._cache[0] == id(inputs):
                return self._cache[1]
            p = self.params
            stream = inputs.frames(self.frame_specs()[0])
            duration = float(inputs.video.duration or 0.0) or (float(stream.times[-1]) if len(stream) else 0.0)
            shots = [(e.start, e.end) for e in upstream_shots(inputs)] if p.chunking == "shots" else []
            chunks = plan_chunks(shots, duration, chunk_s=p.chunk_s, min_chunk_s=p.min_chunk_s, mode=p.chunking)
            most = self.max_frames()
            items = []
            for c in chunks:
                if p.chunking == "whole":
                    idx = pick_spread(stream.times, c.start, c.end, most)
                else:
                    idx = pick_frames(stream.times, c.start, c.end, most)  # families pad to their frame multiple
                if idx:
                    items.append(ChunkItem(c, idx, [round(float(stream.times[i]), 3) for i in idx]))
            self._cache = (id(inputs), items)
            self._shots_used = bool(shots)
            return items

    def count_items(self, inputs: AnalyzerInputs) -> int:
        return len(self._chunk_items(inputs))

    def items(self, inputs: AnalyzerInputs) -> Iterator[ChunkItem]:
        self._started = time.perf_counter()
        self._inputs = inputs
        items = self._chunk_items(inputs)
        if self.family is not None:
            self._context = Context(self.params.context_tokens, self.family.count_tokens) if self.params.context else None
        if self.params.context:
            return iter(items)  # in time order: each prompt needs the description before it
        size = self.planned_batch_size()
        return bucketed(items, window=max(size * 4, 1), key=lambda it: len(it.frame_index))

    # --- the device step ---------------------------------------------------------------------
    def _requests(self, items: list[ChunkItem]) -> list[Request]:
        stream = self._inputs.frames(self.frame_specs()[0])

        def read(it: ChunkItem) -> Any:
            return stream.frames[it.frame_index]  # positional reads from the decode cache

        if len(items) > READ_THREADS:  # (the reads release the interpreter's lock)
            with ThreadPoolExecutor(READ_THREADS, thread_name_prefix=f"{self.name}-read") as pool:
                frames = list(pool.map(read, items))
        else:
            frames = [read(it) for it in items]
        return [Request(index=it.chunk.index, start=it.chunk.start, end=it.chunk.end, times=list(it.times),
                        frames=f, instruction=self.params.prompt) for it, f in zip(items, frames)]

    def preprocess(self, items: list[ChunkItem]) -> Any:
        requests = self._requests(items)
        if self.params.context:
            return requests  # the prompt needs the previous description: prepared in forward
        self._wait_for_later_groups()
        with self.family.prepare_lock:  # a CUDA graph is not captured meanwhile (decode_graphs)
            grouped = None
            if self.params.overlap_prepare and hasattr(self.family, "prepare_in_groups"):
                grouped = self.family.prepare_in_groups(requests, self._prepare_later)
            return requests, grouped or self.family.prepare(requests)

    def _prepare_later(self, requests: list[Request]) -> Any:
        """``family.prepare(requests)`` on this analyzer's own preparing thread (``overlap_prepare``): a future."""
        family = self.family

        def prepare() -> Any:
            with family.prepare_lock:
                return family.prepare(requests)

        with self._lock:
            if self._preparer is None:
                self._preparer = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-prepare")
            later = self._preparer.submit(prepare)
            self._later_groups.append(later)
        return later

    def _wait_for_later_groups(self) -> None:
        """The batch before's later groups (``overlap_prepare``) are prepared before the next batch is: its
        forward waits for them, and the family's prepare lock does not say who goes first."""
        with self._lock:
            pending, self._later_groups = self._later_groups, []
        for later in pending:
            try:
                later.result()
            except Exception:  # noqa: BLE001 - its batch's forward reports the failure
                pass

    def forward(self, batch: Any) -> Any:
        if not self.params.context:
            requests, prepared = batch
            return requests, prepared, self.family.generate(prepared)
        requests = batch
        ctx = self._context
        lines = ctx.lines() if ctx is not None else []
        for r in requests:
            r.context = context_block(lines)
        prepared = self.family.prepare(requests)
        outputs = self.family.generate(prepared)
        answers = self.family.decode(outputs, prepared)
        if ctx is not None:
            for r, a in zip(requests, answers):
                ctx.add(r.start, r.end, a.text)
        return requests, prepared, answers, len(lines)

    def postprocess(self, outputs: Any, items: list[ChunkItem]) -> list[Described]:
        if self.params.context:
            requests, prepared, answers, n_ctx = outputs
        else:
            requests, prepared, raw = outputs
            answers, n_ctx = self.family.decode(raw, prepared), 0
        return [Described(it, a, n_ctx) for it, a in zip(items, answers)]

    def finish(self, results: list[Described], inputs: AnalyzerInputs) -> Track:
        p = self.params
        results = sorted(results, key=lambda d: d.item.chunk.start)
        wall = time.perf_counter() - (self._started or time.perf_counter())
        model_name = (p.api_model or p.model) if p.backend == "openai" else p.model
        known = KNOWN_MODELS.get(p.model)
        events = []
        outside_total = 0
        for d in results:
            c, a = d.item.chunk, d.answer
            text = _CONTROL.sub("", a.text).strip()  # text for people (and for XML exports)
            data: dict[str, Any] = {"text": text, "frame_times": d.item.times, "model": model_name,
                                    "prompt": p.prompt, "shots": list(c.shots),
                                    "prompt_tokens": a.prompt_tokens, "new_tokens": a.new_tokens}
            if p.context:
                data["context_items"] = d.context_items
            mentioned = times_mentioned(text)
            if mentioned:  # a time the model writes is checked against its chunk (DESIGN.md)
                outside = [t for t in mentioned if not (c.start - 1.0 <= t <= c.end + 1.0)]
                data["times_mentioned"] = mentioned
                data["times_outside_chunk"] = outside
                outside_total += len(outside)
            events.append(Event(start=c.start, end=c.end, label=LABEL, data=data))
        duration = float(inputs.video.duration or 0.0)
        covered = sum(d.item.chunk.duration for d in results)
        fam = self.family
        info = fam.describe_model() if fam is not None else {}
        spec = self.frame_specs()[0]
        stream = inputs.frames(spec)
        data = {
            "model": model_name, "family": fam.name if fam is not None else self.family_name,
            "backend": p.backend, "adapter": p.adapter or (p.model if known is not None and known.base else None),
            "adapter_card": adapter_card(p.adapter),
            "model_info": info, "times_given_as": type(fam).accepts_times if fam is not None else None,
            "chunking": p.chunking if (p.chunking != "shots" or self._shots_used) else "fixed (no shots upstream)",
            "chunks": len(events), "frames": sum(len(d.item.times) for d in results),
            "fps": spec.fps, "frame_size": [stream.width, stream.height], "max_frames_per_chunk": self.max_frames(),
            "context": p.context, "load_s": round(self._load_s, 3), "describe_s": round(wall, 3),
            "video_s_per_s": round(covered / wall, 3) if wall > 0 else None,
            "prompt_tokens": sum(d.answer.prompt_tokens for d in results),
            "new_tokens": sum(d.answer.new_tokens for d in results),
            "padding_tokens": sum(int(d.answer.extra.get("padding", 0)) for d in results),
            "times_outside_chunk": outside_total, "notes": list(fam.notes) if fam is not None else [],
        }
        if self.placement is not None and self.placement.substitutes:
            data["substitutes"] = dict(self.placement.substitutes)  # a smaller model stood in (the plan)
        if duration and covered < duration - 0.5:
            data["notes"].append(f"chunks cover {covered:.1f} s of {duration:.1f} s")
        return self.track(events=events, data=data)


__all__ = ["LABEL", "SceneDescription"]
