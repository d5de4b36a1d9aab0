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
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Iterable

from .analyzer import Analyzer, AnalyzerInputs
from .scheduler import Demand, even_batch, group_for_batch
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
    prepared_ahead: int = 0  # batches whose preprocessing began while the model loaded (``prepare_ahead``)

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "batches": self.batches, "batch_sizes": self.batch_sizes,
                "busy_s": round(self.busy_s, 4), "preprocess_s": round(self.preprocess_s, 4),
                "postprocess_s": round(self.postprocess_s, 4), "wait_s": round(self.wait_s, 4),
                "fallbacks": list(self.fallbacks), "prepared_ahead": self.prepared_ahead}


class BatchedAnalyzer(Analyzer):
    """Base class of analyzers written to the device-step contract (see the module docstring).

    Class attributes beyond ``Analyzer``'s:

    - ``batch_size``: the most items per batch (a ``batch_size`` parameter in ``Params`` wins);
    - ``item_vram_mb``: device working memory per item in a batch, beyond the loaded weights;
      the scheduler caps the batch so weights plus batches fit the budget;
    - ``item_kv_mb``: with ``prefill_group()``, what an item keeps while the other groups of its batch
      are processed (a decoder's KV cache);
    - ``prefetch``: batches preprocessed ahead of the device (each is held in memory);
    - ``preprocess_threads``: CPU threads preprocessing.

    Override ``items``, ``preprocess``, ``forward``, ``postprocess`` and ``finish``. ``analyze``
    runs them through ``run_batches``; do not override it.
    """

    batch_size: ClassVar[int] = 8
    item_vram_mb: ClassVar[float] = 0.0
    item_kv_mb: ClassVar[float] = 0.0
    prefetch: ClassVar[int] = 2
    preprocess_threads: ClassVar[int] = 2
    _prepared: "Batches | None" = None  # what ``prepare_ahead`` started, until ``analyze`` takes it
    _groups_by_rows: "dict[int, int] | None" = None  # ``prefill_group_for``'s answers by batch size (this instance's)

    def items(self, inputs: AnalyzerInputs) -> Iterable[Any]:
        """The work items in order (frames, chunks, windows); iterated lazily, once."""
        raise NotImplementedError(f"analyzer {self.name!r} does not implement items()")

    def count_items(self, inputs: AnalyzerInputs) -> int | None:
        """How many items ``items`` will yield (None: unknown): for progress, and the device step takes the
        smallest batch that needs no more batches than the cap for that many (``scheduler.even_batch``); a count
        below the real one would make batches smaller than they need to be."""
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

    def prefill_group(self) -> int:
        """Items of a batch whose working memory (``item_vram_mb`` each) is in use at once, where the batch is
        worked through in groups that then keep only ``item_kv_mb`` an item (a decoder prefilling groups and
        decoding them as one batch); the plan sizes batches so (``scheduler.batch_extra_mb``). 0 (the
        default): the whole batch at once."""
        return 0

    def prefill_group_for(self, rows: int, most: int) -> int:
        """The prefill group for one batch of ``rows`` items, at most ``most`` (the analyzer's own group): the
        largest whose working memory fits the room the plan gave its batches (``placement.batch_room_mb``,
        ``scheduler.group_for_batch``). The plan fits its group to the largest batch; a smaller one (batches
        evened out, ``scheduler.even_batch``; a run's last) has room for larger groups, which prefill sooner.
        ``prefill_group()`` where the plan gave no room."""
        room = self.placement.batch_room_mb if self.placement is not None else None
        if room is None or not self.prefill_group():
            group = self.prefill_group()
        else:
            group = group_for_batch(Demand(self.name, item_vram_mb=self.item_vram_mb, item_kv_mb=self.item_kv_mb,
                                           group_items=most, max_batch=rows), room, rows)
        if self._groups_by_rows is None:
            self._groups_by_rows = {}
        self._groups_by_rows[rows] = group
        return group

    def prefill_group_used(self, rows: int) -> int:
        """The prefill group a batch of ``rows`` items ran in (``prefill_group_for``'s last answer for it), else
        ``prefill_group()``: what a measured peak at that batch is read with (``runner.measured_one_item_mb``)."""
        return (self._groups_by_rows or {}).get(rows) or self.prefill_group()

    def planned_batch_size(self) -> int:
        """The batch this run uses: ``stretch_batch_size()`` capped by the plan's ``placement.max_batch``."""
        size = self.stretch_batch_size()
        if self.placement is not None and self.placement.max_batch:
            size = max(1, min(size, self.placement.max_batch))
        return size

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        batches = self._take_prepared(inputs) or Batches(self, inputs)
        results = batches.run()
        track = self.finish(results, inputs)
        return track.model_copy(update={"receipt": {**track.receipt, "step": batches.receipt.as_dict()}})

    # --- preparing while the model loads ------------------------------------------------
    def preprocess_ready(self) -> bool:
        """Whether ``preprocess`` may run now, before ``load`` has returned: what it needs (a tokenizer, a
        processor) is loaded, the model itself not yet. The executor then prepares the first batches
        (``prepare_ahead``) while the model loads, once the inputs exist: the VLM's 114 chunks took
        2.2-3.1 s to prepare after its 16 GB model had loaded on an H200. By default False: an analyzer
        whose ``load`` makes nothing ready early says nothing (thread safety: set it from ``load``'s
        thread once the parts ``preprocess`` reads are in place, e.g. through a ``threading.Event``)."""
        return False

    def prepare_ahead(self, inputs: AnalyzerInputs) -> None:
        """Start preprocessing the first ``prefetch`` batches of ``inputs`` on this analyzer's threads
        (called by the executor when ``preprocess_ready()``); ``analyze(inputs)`` then starts with them.
        A second call, or one for other inputs, replaces what was prepared."""
        self.drop_prepared()
        batches = Batches(self, inputs)
        batches.refill()
        self._prepared = batches

    def drop_prepared(self) -> None:
        """Forget what ``prepare_ahead`` started (the load failed, the analyzer is unloaded)."""
        batches, self._prepared = self._prepared, None
        if batches is not None:
            batches.close()

    def _take_prepared(self, inputs: AnalyzerInputs) -> "Batches | None":
        batches, self._prepared = self._prepared, None
        if batches is not None and batches.inputs is not inputs:
            batches.close()  # prepared for other inputs (an earlier attempt's)
            return None
        return batches


def run_batches(analyzer: BatchedAnalyzer, inputs: AnalyzerInputs, receipt: StepReceipt | None = None) -> list[Any]:
    """Drive ``analyzer``'s device step over all its items; the results in item order (``Batches``)."""
    return Batches(analyzer, inputs, receipt).run()


class Batches:
    """One pass of an analyzer's device step over its items.

    Preprocessing runs ``prefetch`` batches ahead on ``preprocess_threads`` threads; outputs are
    postprocessed on one thread in order. The batch size is ``analyzer.planned_batch_size()``: its
    ``stretch_batch_size()`` (by default ``max_batch_size()``) capped by ``analyzer.placement.max_batch``,
    then the smallest that needs no more batches, where ``count_items`` knows the items (60 at most 38: 30 and 30).
    Out of memory while other models share the device raises
    ``DeviceOutOfMemory`` at once (the executor retries alone first); alone, the batch is halved
    and retried (recorded in ``receipt.fallbacks``) down to one item, which raises it too.

    ``refill`` starts the first batches' preprocessing; ``run`` does it if nothing did, then drives the
    device. A pass whose first batches were prepared before ``run`` (``BatchedAnalyzer.prepare_ahead``,
    while the model loaded) records how many in ``receipt.prepared_ahead``.
    """

    def __init__(self, analyzer: BatchedAnalyzer, inputs: AnalyzerInputs, receipt: StepReceipt | None = None):
        self.analyzer, self.inputs = analyzer, inputs
        self.receipt = receipt if receipt is not None else StepReceipt()
        placement = analyzer.placement
        self.device = placement.device if placement is not None else "cpu"
        self.size = analyzer.planned_batch_size()
        # the worker threads queue CUDA work on the analyzer's stream too
        self.pre, self.post = carry(self._pre), carry(self._post)
        self.pre_pool = cf.ThreadPoolExecutor(max(1, analyzer.preprocess_threads),
                                              thread_name_prefix=f"{analyzer.name}-pre")
        self.post_pool = cf.ThreadPoolExecutor(1, thread_name_prefix=f"{analyzer.name}-post")
        self.queued: collections.deque[cf.Future] = collections.deque()
        self.posted: collections.deque[cf.Future] = collections.deque()
        self.results: list[Any] = []
        self.total: int | None = None
        self.done_items = 0
        self.source: Any = None
        self.exhausted = False

    def _pre(self, items: list[Any]) -> tuple[list[Any], Any, float]:
        t0 = time.perf_counter()
        batch = self.analyzer.preprocess(items)
        return items, batch, time.perf_counter() - t0

    def _post(self, outputs: Any, items: list[Any]) -> tuple[list[Any], float]:
        t0 = time.perf_counter()
        out = self.analyzer.postprocess(outputs, items)
        if len(out) != len(items):
            raise ValueError(f"{self.analyzer.name}.postprocess returned {len(out)} results for {len(items)} items")
        return out, time.perf_counter() - t0

    def refill(self) -> None:
        """Queue batches for preprocessing until ``prefetch`` are queued or the items run out."""
        if self.source is None:
            self.total = self.analyzer.count_items(self.inputs)
            if self.total:  # no more batches than the cap needs, each as small as that allows (``even_batch``)
                self.size = even_batch(self.size, self.total)
            self.source = iter(self.analyzer.items(self.inputs))
        while not self.exhausted and len(self.queued) < max(1, self.analyzer.prefetch):
            chunk = list(itertools.islice(self.source, self.size))
            if not chunk:
                self.exhausted = True
                return
            self.queued.append(self.pre_pool.submit(self.pre, chunk))

    def close(self) -> None:
        """Drop the batches queued and stop the threads (waiting for a preprocess under way)."""
        for fut in self.queued:
            fut.cancel()
        self.queued.clear()
        self.pre_pool.shutdown(wait=True, cancel_futures=True)
        self.post_pool.shutdown(wait=True)

    def _collect(self, block_until: int) -> None:
        while len(self.posted) > block_until:
            out, spent = self.posted.popleft().result()
            self.receipt.postprocess_s += spent
            self.results.extend(out)
            self.done_items += len(out)
            if self.total:
                self.inputs.report(self.done_items / self.total)

    def _run_one(self, items: list[Any], batch: Any) -> None:
        """Forward one preprocessed batch; on OOM split it and retry the halves."""
        analyzer, receipt, device, placement = self.analyzer, self.receipt, self.device, self.analyzer.placement
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
            self.size = min(self.size, half)  # later batches are formed at the smaller size too
            if placement is not None and placement.batch_room_mb is not None:
                # the room the plan counted proved too small: prefill groups no longer grow into it
                # (``prefill_group_for``), so that a smaller batch takes less memory, not as much in larger groups
                analyzer.placement = placement = replace(placement, batch_room_mb=None)
            for part in (items[:half], items[half:]):
                _items, part_batch, spent = self.pre(part)
                receipt.preprocess_s += spent
                self._run_one(part, part_batch)
            return
        t1 = time.perf_counter()
        receipt.busy_s += t1 - t0
        if placement is not None and placement.on_busy is not None:
            placement.on_busy(t0, t1)
        receipt.batches += 1
        if len(items) not in receipt.batch_sizes:
            receipt.batch_sizes.append(len(items))
        self.posted.append(self.post_pool.submit(self.post, outputs, items))
        self._collect(block_until=2)  # at most two batches of outputs waiting on the CPU

    def run(self) -> list[Any]:
        """Every item through the device step; the results in item order."""
        receipt = self.receipt
        try:
            if self.source is not None:  # batches were prepared before (while the model loaded)
                receipt.prepared_ahead = len(self.queued)
            self.refill()
            while self.queued:
                t0 = time.perf_counter()
                items, batch, spent = self.queued.popleft().result()
                receipt.wait_s += time.perf_counter() - t0
                receipt.preprocess_s += spent
                receipt.items += len(items)
                self.refill()  # the next batches are prepared while this one runs
                self.inputs.report(self.done_items / self.total if self.total else 0.0)  # Ctrl-C is honoured here
                self._run_one(items, batch)
                del batch
            self._collect(block_until=0)
        finally:
            self.close()
        return self.results
