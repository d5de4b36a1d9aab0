"""A model's one-token decoding steps replayed as CUDA graphs, inside transformers' own ``generate``.

Why: on an H200, Qwen2-VL-7B's decoding step at a batch of 60 chunks took 28.9-37.0 ms, almost all
of it Python launching about 30 kernels per layer; the GPU's own work for such a step is a few
milliseconds (``bench/results/vlm_generate_probe_h200.md``). A CUDA graph launches a whole step at
once.

How: ``generate`` runs with a static KV cache (``cache_implementation="static"``), so every decoding
step of a batch has the same input shapes (one token per row, a 4-D mask of the cache's full length,
the cache's write position kept on the GPU). :class:`DecodeGraphs` stands in for the model's
``forward``:

- the prefill (more than one token, or any ``pixel_values``) runs as is;
- the first decoding step of a new shape runs as is too (it warms the kernels up);
- the second one is captured into a graph; it and every later step copy their inputs into the
  graph's buffers and replay it. transformers' own Python around the forward (inputs, the mask,
  the logits processors, the stopping check) still runs at every step.

Each ``generate`` call gets a new cache, so :meth:`DecodeGraphs.release` drops the graph (and its
hold on the cache) when the call ends. Capturing must not overlap any other CUDA work of the
process: another thread's ``synchronize`` (ultralytics calls it at every batch) or ``empty_cache``
breaks the capture and fails that thread's work. So the capture goes through a ``gate`` (the
family's): it waits for the family's own preparation of the next batch on the GPU and asks the
executor whether the analyzer has the GPU to itself (``Placement.gpu_to_itself``). While other
analyzers share the GPU, the steps run as is and the next step asks again. If capturing fails (a model whose step reads a value back to
the host, say), the note says so and every later step runs as is. transformers' automatic
``torch.compile`` of static-cache decoding is switched off (``disable_compile``): it recompiles for
every batch shape and was measured slower than the plain forward (``docs/benchmarks.md``).

This is the general path. For greedy search ``HFFamily`` goes further with ``greedy_loop`` (the
whole step one graph, no Python between steps), which records its first steps through
:meth:`DecodeGraphs.recording` and captures through :meth:`DecodeGraphs.capture_step`.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import threading
from typing import Any, Callable, ContextManager, Iterator

from ..device_step import is_out_of_memory

logger = logging.getLogger(__name__)

#: Steps of changing input shapes seen in a row before replaying is given up for this model.
MAX_SHAPE_CHANGES = 3


def is_tensor(value: Any) -> bool:
    return hasattr(value, "data_ptr") and hasattr(value, "copy_") and hasattr(value, "shape")


def _signature(value: Any) -> Any:
    """What must stay the same between two steps for one graph to serve both: tensors by shape,
    dtype and device; dicts and lists by their items; anything else (the cache) by identity."""
    if is_tensor(value):
        return ("tensor", tuple(value.shape), str(value.dtype), str(value.device))
    if isinstance(value, dict):
        return ("dict", tuple((k, _signature(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_signature(v) for v in value))
    if value is None or isinstance(value, (bool, int, float, str)):
        return ("value", value)
    return ("object", id(value))


def static_copy(value: Any) -> Any:
    """The graph's own input buffers: a clone of every tensor, the rest as is."""
    if is_tensor(value):
        return value.clone()
    if isinstance(value, dict):
        return {k: static_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(static_copy(v) for v in value)
    return value


def _fill(static: Any, value: Any) -> None:
    """Copy this step's inputs into the graph's buffers (same structure, checked by the signature)."""
    if is_tensor(static):
        if static.data_ptr() != value.data_ptr():
            static.copy_(value)
    elif isinstance(static, dict):
        for k, v in static.items():
            _fill(v, value[k])
    elif isinstance(static, (list, tuple)):
        for s, v in zip(static, value):
            _fill(s, v)


def is_decoding_step(kwargs: dict[str, Any]) -> bool:
    """One new token per row, on a static (compileable) cache, with no image or video inputs."""
    ids = kwargs.get("input_ids")
    cache = kwargs.get("past_key_values")
    if ids is None or not is_tensor(ids) or ids.ndim != 2 or ids.shape[1] != 1:
        return False
    if kwargs.get("inputs_embeds") is not None or not getattr(cache, "is_compileable", False):
        return False
    return not any(k.startswith("pixel_values") and v is not None for k, v in kwargs.items())


class DecodeGraphs:
    """Stands in for ``model.forward``: decoding steps of one shape replay one CUDA graph.

    ``notes`` is the family's list of notes (recorded in the track); a failed capture is named
    there once. ``captures`` and ``replays`` count what happened (the benchmark reports them).
    """

    def __init__(self, forward: Callable[..., Any], notes: list[str],
                 gate: Callable[[], ContextManager[bool]] | None = None, unused: tuple[str, ...] = ()):
        self.forward = forward
        self.unused = unused  # inputs the model reads only to compute positions (see HFFamily.decode_unused)
        self.gate = gate or (lambda: contextlib.nullcontext(True))
        # generate checks its keyword arguments against the forward's parameters: keep them visible
        self.__signature__ = inspect.signature(forward)
        self.notes = notes
        self.enabled = True
        self.captures = 0
        self.replays = 0
        self.shared_steps = 0  # steps run as is because other analyzers were using the GPU
        # greedy_loop's wall time: up to its first own step (the vision tower, the prefill and
        # transformers' first steps) and its own steps (seconds, summed over batches)
        self.prefill_s = 0.0
        self.loop_s = 0.0
        self._graph: tuple[Any, Any, dict[str, Any], Any] | None = None  # (signature, graph, buffers, output)
        self._seen: Any = None  # the signature of the last step run as is
        self._changes = 0
        self._recorded: list[dict[str, Any]] | None = None

    def summary(self) -> dict[str, Any]:
        """What the track's ``model_info`` (and the benchmarks) report of the graphs."""
        out = {"used": self.enabled, "captures": self.captures, "replayed_steps": self.replays,
               "steps_while_gpu_shared": self.shared_steps}
        if self.prefill_s or self.loop_s:
            out.update(prefill_s=round(self.prefill_s, 3), loop_s=round(self.loop_s, 3))
        return out

    # --- the seam a CPU test replaces ----------------------------------------------------------
    def capture(self, run: Callable[[], Any]) -> tuple[Callable[[], None], Any]:
        """Record ``run`` into a CUDA graph: returns (replay, the output tensors it writes)."""
        import torch

        graph = torch.cuda.CUDAGraph()
        # thread_local: other threads' CUDA calls that cannot break the capture stay allowed (the
        # gate keeps out the ones that could: other analyzers, the next batch's preparation)
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            output = run()
        return graph.replay, output

    # --- recording (for greedy_loop) ------------------------------------------------------------
    @contextlib.contextmanager
    def recording(self) -> Iterator[list[dict[str, Any]]]:
        """Inside the block, decoding steps run as is and their inputs are kept, in order."""
        self._recorded = []
        try:
            yield self._recorded
        finally:
            self._recorded = None

    def capture_step(self, step: Callable[[], None]) -> Callable[[], None] | None:
        """``step`` captured as a graph (its replay), through the gate; None while other analyzers
        share the GPU, or after a failed capture (noted once; later calls return None at once)."""
        if not self.enabled:
            return None
        captured = self._gated_capture(step)
        if captured is None:
            return None
        self.captures += 1
        return captured[0]

    def _gated_capture(self, run: Callable[[], Any]) -> tuple[Callable[[], None], Any] | None:
        """``capture(run)`` through the gate: (replay, output), or None. None while other analyzers
        share the GPU (``enabled`` stays True), or when capturing failed (graphs are given up, with
        a note). Out of memory is raised: the device step splits the batch, and a later one
        captures again."""
        with self.gate() as alone:
            if not alone:
                return None
            try:
                return self.capture(run)
            except Exception as exc:  # noqa: BLE001 - any other failure: this model's steps run as is
                if is_out_of_memory(exc):
                    self._drop()
                    raise
                failure = exc
        self._give_up(f"capturing failed ({type(failure).__name__}: {str(failure)[:160]})")
        return None

    # --- the forward ---------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.unused and not args and kwargs.get("position_ids") is not None and is_decoding_step(kwargs):
            kwargs = {k: v for k, v in kwargs.items() if k not in self.unused}
        if self._recorded is not None and not args and is_decoding_step(kwargs):
            self._recorded.append(static_copy(kwargs))
            return self.forward(**kwargs)
        if args or not self.enabled or not is_decoding_step(kwargs):
            return self.forward(*args, **kwargs)
        signature = _signature(kwargs)
        if self._graph is not None and self._graph[0] == signature:
            return self._replay(kwargs)
        if self._seen != signature:  # a new shape: run it as is once (warms the kernels up)
            self._drop()
            self._changes += 1
            if self._changes > MAX_SHAPE_CHANGES:
                self._give_up("the inputs change shape at every step")
            self._seen = signature
            return self.forward(**kwargs)
        return self._capture(signature, kwargs)

    def _capture(self, signature: Any, kwargs: dict[str, Any]) -> Any:
        buffers = static_copy(kwargs)
        captured = self._gated_capture(lambda: self.forward(**buffers))
        if captured is None:  # shared GPU (the next step asks again) or a failed capture (given up)
            self.shared_steps += int(self.enabled)
            return self.forward(**kwargs)
        replay, output = captured
        self.captures += 1
        self._changes = 0
        self._graph = (signature, replay, buffers, output)
        return self._replay(kwargs)

    def _replay(self, kwargs: dict[str, Any]) -> Any:
        _, replay, buffers, output = self._graph  # type: ignore[misc]
        _fill(buffers, kwargs)
        replay()
        self.replays += 1
        return output

    def _give_up(self, why: str) -> None:
        self.enabled = False
        self._drop()
        self.notes.append(f"decoding steps run without CUDA graphs: {why}")
        logger.warning("decoding steps run without CUDA graphs: %s", why)

    def _drop(self) -> None:
        self._graph = None
        self._seen = None

    def release(self) -> None:
        """Drop the graph, its buffers and its hold on the cache (at the end of each ``generate``)."""
        self._drop()
        self._changes = 0


_DEFER = threading.local()


def _defer_on_cuda(original: Callable[..., bool]) -> Callable[..., bool]:
    def is_supported(device: Any, cache: Any, cache_is_returned: bool, is_assistant: bool) -> bool:
        if (getattr(_DEFER, "on", False) and getattr(device, "type", None) == "cuda" and not is_assistant
                and not cache_is_returned):
            return True
        return original(device, cache, cache_is_returned, is_assistant)

    is_supported.deferred_on_cuda = True  # type: ignore[attr-defined]
    return is_supported


@contextlib.contextmanager
def stop_check_one_step_late() -> Iterator[bool]:
    """In this thread's ``generate`` calls on CUDA, the stop decision one step late, so the host
    prepares the next step while the GPU computes this one (yields whether that is available).

    transformers reads "has every row finished?" back from the GPU after every step, which makes
    the host wait for the step to finish before preparing the next one. Its ``DeferredStopCheck``
    reads the flag one step late instead (one extra step when every row ends early, undone before
    ``generate`` returns); transformers enables it on Apple GPUs only. This turns it on for the
    calls made inside this block, from this thread, when the cache is not handed back (as in
    ``HFFamily.generate``). Where a transformers version lacks it, nothing changes."""
    try:
        from transformers.generation import utils as generation_utils

        check = generation_utils.DeferredStopCheck
        original = check.__dict__["is_supported"].__func__
    except (ImportError, AttributeError, KeyError):
        yield False
        return
    if not getattr(original, "deferred_on_cuda", False):
        check.is_supported = staticmethod(_defer_on_cuda(original))
    before = getattr(_DEFER, "on", False)
    _DEFER.on = True
    try:
        yield True
    finally:
        _DEFER.on = before


@contextlib.contextmanager
def capture_gate(prepare_lock: Any, gpu_to_itself: Callable[[], ContextManager[bool]] | None) -> Iterator[bool]:
    """Whether a graph may be captured now: once the caller's own preparation of the next batch
    (``prepare_lock``) is done, and when the executor says the GPU is its own (``gpu_to_itself``,
    ``Placement.gpu_to_itself``; None outside a run: nothing else uses the GPU)."""
    with prepare_lock:
        if gpu_to_itself is None:
            yield True
        else:
            with gpu_to_itself() as alone:
                yield alone


def install(model: Any, notes: list[str], gate: Callable[[], ContextManager[bool]] | None = None,
            unused: tuple[str, ...] = ()) -> DecodeGraphs:
    """Put a :class:`DecodeGraphs` in front of ``model.forward`` (on this instance only)."""
    graphs = DecodeGraphs(model.forward, notes, gate, unused)
    model.forward = graphs
    return graphs


__all__ = ["DecodeGraphs", "MAX_SHAPE_CHANGES", "capture_gate", "install", "is_decoding_step", "is_tensor", "static_copy",
           "stop_check_one_step_late"]
