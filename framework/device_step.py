"""The device step: a model-backed analyzer's work in batches, with the CPU work overlapped.

DESIGN.md's contract, as transformers pipelines split it: an analyzer written as a
``BatchedAnalyzer`` says what its work items are (frames, chunks, audio windows) and how to
``preprocess`` a batch of them on the CPU (decode-cache reads, resizing, tokenising),
``forward`` it on the device, and ``postprocess`` the outputs on the CPU (decoding tokens,
mapping back to times). The framework drives the loop (``run_batches``):

- the next batches are preprocessed on CPU threads while the device runs the current one
  (``prefetch`` batches ahead, never more, so memory stays bounded);
- outputs are postprocessed on another thread, in order, while the device moves on;
- the batch size is the analyzer's ``Params.batch_size`` (or ``batch_size``), capped by what the
  scheduler says fits in the VRAM budget (``Placement.max_batch``);
- a batch that runs out of device memory is split in two and retried (each step is recorded);
  a single item that does not fit raises ``DeviceOutOfMemory`` to the executor, which unloads
  other models, retries alone, then tries a smaller variant or the CPU;
- the device's busy time (time inside ``forward`` up to its outputs being ready) is measured,
  so the receipt can say how much of the wall time the GPU worked.

Minimal example::

    class Embedder(BatchedAnalyzer):
        name, version, device = "embedder", "1.0.0", "gpu"
        models = ("clip-vit-b-32",)
        item_vram_mb = 40.0  # working memory per image in a batch

        def frame_specs(self):
            return [FrameSpec(fps=1.0, width=224, height=224)]

        def items(self, inputs):
            return inputs.frames(self.frame_specs()[0])   # (time, frame) pairs, read lazily

        def preprocess(self, items):
            return torch.from_numpy(np.stack([f for _, f in items])).permute(0, 3, 1, 2)

        def forward(self, batch):
            with torch.no_grad():
                return self.model(batch.to(self.torch_device)).cpu()

        def postprocess(self, outputs, items):
            return [(t, row.numpy()) for (t, _), row in zip(items, outputs)]

        def finish(self, results, inputs):
            return self.track(data={"n": len(results)})
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import gc
import itertools
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

from .analyzer import Analyzer, AnalyzerInputs
from .timeline import Track
from .work_streams import carry

logger = logging.getLogger(__name__)


class DeviceOutOfMemory(RuntimeError):
    """The device ran out of memory for one item; the executor's fallback chain takes over."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a device out-of-memory error (torch's CUDA OOM, or ours), also one raised in
    an analyzer's own process (``framework.own_process.ChildFailure`` keeps its type's name)."""
    if isinstance(exc, (DeviceOutOfMemory, MemoryError)):
        return True
    names = {type(exc).__name__, getattr(exc, "type_name", None)}
    if names & {"OutOfMemoryError", "OutOfMemoryException", "DeviceOutOfMemory", "MemoryError"}:
        return True  # torch.cuda.OutOfMemoryError / torch.OutOfMemoryError, without importing torch
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("CUDA out of memory" in text or "CUBLAS_STATUS_ALLOC_FAILED" in text)


def _cuda(device: str) -> Any:
    """torch, when ``device`` is a CUDA device torch has already set up (else None: nothing to do)."""
    torch = sys.modules.get("torch")
    if not device.startswith("cuda") or torch is None or not torch.cuda.is_initialized():
        return None
    return torch


def free_device_memory(device: str) -> None:
    """Give cached blocks back to the device, after an OOM or an unload (a no-op on the CPU or without torch)."""
    gc.collect()
    torch = _cuda(device)
    if torch is not None:
        torch.cuda.empty_cache()


def synchronize(device: str) -> None:
    """Wait for the work this thread queued on ``device`` (its current stream: the analyzer's own,
    ``framework.work_streams``), so a timer around ``forward`` measures the device's time for it
    without waiting for what other analyzers queued."""
    torch = _cuda(device)
    if torch is not None:
        torch.cuda.current_stream(torch.device(device)).synchronize()


@dataclass
class StepReceipt:
    """What the device step did for one analyzer: recorded in ``Track.receipt``."""

    items: int = 0
    batches: int = 0
    batch_sizes: list[int] = field(default_factory=list)  # the distinct sizes used, in order of first use
    busy_s: float = 0.0  # inside forward(), outputs ready
    preprocess_s: float = 0.0  # CPU threads, overlapped with the device
    postprocess_s: float = 0.0
    wait_s: float = 0.0  # the device waiting for a preprocessed batch
    fallbacks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "batches": self.batches, "batch_sizes": self.batch_sizes,
                "busy_s": round(self.busy_s, 4), "preprocess_s": round(self.preprocess_s, 4),
                "postprocess_s": round(self.postprocess_s, 4), "wait_s": round(self.wait_s, 4),
                "fallbacks": list(self.fallbacks)}


class BatchedAnalyzer(Analyzer):
    """Base class of analyzers written to the device-step contract (see the module docstring).

    Class attributes beyond ``Analyzer``'s:

    - ``batch_size``: the most items per batch (a ``batch_size`` parameter in ``Params`` wins);
    - ``item_vram_mb``: device working memory per item in a batch, beyond the loaded weights;
      the scheduler caps the batch so weights plus batches fit the budget;
    - ``prefetch``: batches preprocessed ahead of the device (each is held in memory);
    - ``preprocess_threads``: CPU threads preprocessing.

    Override ``items``, ``preprocess``, ``forward``, ``postprocess`` and ``finish``. ``analyze``
    runs them through ``run_batches``; do not override it.
    """

    batch_size: ClassVar[int] = 8
    item_vram_mb: ClassVar[float] = 0.0
    prefetch: ClassVar[int] = 2
    preprocess_threads: ClassVar[int] = 2

    def items(self, inputs: AnalyzerInputs) -> Iterable[Any]:
        """The work items in order (frames, chunks, windows); iterated lazily, once."""
        raise NotImplementedError(f"analyzer {self.name!r} does not implement items()")

    def count_items(self, inputs: AnalyzerInputs) -> int | None:
        """How many items ``items`` will yield, for progress (None: unknown)."""
        return None

    def preprocess(self, items: list[Any]) -> Any:
        """CPU work for one batch (runs on a worker thread); returns what ``forward`` takes."""
        return items

    def forward(self, batch: Any) -> Any:
        """The device work for one batch; return outputs that ``postprocess`` can read."""
        raise NotImplementedError(f"analyzer {self.name!r} does not implement forward()")

    def postprocess(self, outputs: Any, items: list[Any]) -> list[Any]:
        """CPU work after the device: one result per item, in the items' order."""
        return list(outputs)

    def finish(self, results: list[Any], inputs: AnalyzerInputs) -> Track:
        """Build the track from every item's result (in item order)."""
        raise NotImplementedError(f"analyzer {self.name!r} does not implement finish()")

    def max_batch_size(self) -> int:
        """The configured batch size: ``Params.batch_size`` when the analyzer has one. The plan reserves
        device memory for a batch of this many items."""
        return max(1, int(getattr(self.params, "batch_size", None) or self.batch_size))

    def stretch_batch_size(self) -> int:
        """A larger batch this analyzer can use where its wave leaves device memory nobody reserved: the
        plan raises ``placement.max_batch`` toward it from that spare memory only (never taking room
        another analyzer reserved). By default ``max_batch_size()``: no larger."""
        return self.max_batch_size()

    def planned_batch_size(self) -> int:
        """The batch this run uses: ``stretch_batch_size()`` capped by the plan's ``placement.max_batch``."""
        size = self.stretch_batch_size()
        if self.placement is not None and self.placement.max_batch:
            size = max(1, min(size, self.placement.max_batch))
        return size

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        receipt = StepReceipt()
        results = run_batches(self, inputs, receipt)
        track = self.finish(results, inputs)
        return track.model_copy(update={"receipt": {**track.receipt, "step": receipt.as_dict()}})


def run_batches(analyzer: BatchedAnalyzer, inputs: AnalyzerInputs, receipt: StepReceipt | None = None) -> list[Any]:
    """Drive ``analyzer``'s device step over all its items; the results in item order.

    Preprocessing runs ``prefetch`` batches ahead on ``preprocess_threads`` threads; outputs are
    postprocessed on one thread in order. The batch size is ``analyzer.planned_batch_size()``: its
    ``stretch_batch_size()`` (by default ``max_batch_size()``) capped by ``analyzer.placement.max_batch``.
    Out of memory while other models share the device raises
    ``DeviceOutOfMemory`` at once (the executor retries alone first); alone, the batch is halved
    and retried (recorded in ``receipt.fallbacks``) down to one item, which raises it too.
    """
    receipt = receipt if receipt is not None else StepReceipt()
    placement = analyzer.placement
    device = placement.device if placement is not None else "cpu"
    size = analyzer.planned_batch_size()
    total = analyzer.count_items(inputs)
    results: list[Any] = []
    done_items = 0

    def pre(items: list[Any]) -> tuple[list[Any], Any, float]:
        t0 = time.perf_counter()
        batch = analyzer.preprocess(items)
        return items, batch, time.perf_counter() - t0

    def post(outputs: Any, items: list[Any]) -> tuple[list[Any], float]:
        t0 = time.perf_counter()
        out = analyzer.postprocess(outputs, items)
        if len(out) != len(items):
            raise ValueError(f"{analyzer.name}.postprocess returned {len(out)} results for {len(items)} items")
        return out, time.perf_counter() - t0

    pre, post = carry(pre), carry(post)  # the worker threads queue CUDA work on the analyzer's stream too
    pre_pool = cf.ThreadPoolExecutor(max(1, analyzer.preprocess_threads), thread_name_prefix=f"{analyzer.name}-pre")
    post_pool = cf.ThreadPoolExecutor(1, thread_name_prefix=f"{analyzer.name}-post")
    queued: collections.deque[cf.Future] = collections.deque()
    posted: collections.deque[cf.Future] = collections.deque()

    def collect(block_until: int) -> None:
        nonlocal done_items
        while len(posted) > block_until:
            out, spent = posted.popleft().result()
            receipt.postprocess_s += spent
            results.extend(out)
            done_items += len(out)
            if total:
                inputs.report(done_items / total)

    def run_one(items: list[Any], batch: Any) -> None:
        """Forward one preprocessed batch; on OOM split it and retry the halves."""
        nonlocal size
        t0 = time.perf_counter()
        try:
            outputs = analyzer.forward(batch)
            synchronize(device)
        except BaseException as exc:  # noqa: BLE001 - only OOM is handled here
            if not is_out_of_memory(exc):
                raise
            del batch
            if placement is not None and not placement.exclusive and placement.shared and placement.shared():
                # other models share the device: the executor unloads, frees the cache (not here: another
                # analyzer may be capturing a CUDA graph) and retries alone first
                receipt.fallbacks.append(f"out of memory at batch {len(items)} on {device} beside other models")
                raise DeviceOutOfMemory(f"{analyzer.name}: out of memory on {device} beside other models: {exc}") from exc
            free_device_memory(device)
            if len(items) == 1:
                receipt.fallbacks.append(f"out of memory with one item on {device}")
                raise DeviceOutOfMemory(f"{analyzer.name}: one item does not fit on {device}: {exc}") from exc
            half = (len(items) + 1) // 2
            receipt.fallbacks.append(f"out of memory at batch {len(items)} on {device}: retried at batch {half}")
            logger.warning("%s: out of memory at batch %d on %s; retrying at batch %d",
                           analyzer.name, len(items), device, half)
            size = min(size, half)  # later batches are formed at the smaller size too
            for part in (items[:half], items[half:]):
                _items, part_batch, spent = pre(part)
                receipt.preprocess_s += spent
                run_one(part, part_batch)
            return
        t1 = time.perf_counter()
        receipt.busy_s += t1 - t0
        if placement is not None and placement.on_busy is not None:
            placement.on_busy(t0, t1)
        receipt.batches += 1
        if len(items) not in receipt.batch_sizes:
            receipt.batch_sizes.append(len(items))
        posted.append(post_pool.submit(post, outputs, items))
        collect(block_until=2)  # at most two batches of outputs waiting on the CPU

    try:
        source = iter(analyzer.items(inputs))
        exhausted = False

        def refill() -> None:
            nonlocal exhausted
            while not exhausted and len(queued) < max(1, analyzer.prefetch):
                chunk = list(itertools.islice(source, size))
                if not chunk:
                    exhausted = True
                    return
                queued.append(pre_pool.submit(pre, chunk))

        refill()
        while queued:
            t0 = time.perf_counter()
            items, batch, spent = queued.popleft().result()
            receipt.wait_s += time.perf_counter() - t0
            receipt.preprocess_s += spent
            receipt.items += len(items)
            refill()  # the next batches are prepared while this one runs
            inputs.report(done_items / total if total else 0.0)  # Ctrl-C is honoured here
            run_one(items, batch)
            del batch
        collect(block_until=0)
    finally:
        for fut in queued:
            fut.cancel()
        pre_pool.shutdown(wait=True, cancel_futures=True)
        post_pool.shutdown(wait=True)
    return results
