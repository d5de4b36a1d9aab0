"""Simulated GPUs for testing schedules on a machine without one.

``SimulatedGPUs`` is a ``framework.executor.DeviceMemory``: stand-in analyzers ``allocate`` and
``free`` megabytes on it, an allocation beyond a device's capacity (or the cap the executor set
from the budget) raises ``DeviceOutOfMemory`` exactly as torch raises its CUDA OOM, and it keeps
the peaks the executor measures. ``StandIn`` is an analyzer that loads a model of a given size
(per precision), allocates working memory per batch item through the real device step, and
records what happened when, so tests can assert just-in-time loading, overlap and fallbacks::

    gpus = SimulatedGPUs({"cuda:0": 12_000})
    vlm = StandIn.make("vlm", gpus, weights={"bf16": 9000, "int8": 5000}, item_mb=500)
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, ClassVar, ContextManager, Iterator

from ..analyzer import AnalyzerInputs
from ..device_step import BatchedAnalyzer, DeviceOutOfMemory
from ..timeline import Track


class SimulatedGPUs:
    """Device memory bookkeeping for tests: capacity, caps, allocations, peaks, and a log."""

    def __init__(self, capacity_mb: dict[str, float]):
        self.capacity = dict(capacity_mb)
        self.caps: dict[str, float] = {}
        self.used = {d: 0.0 for d in capacity_mb}
        self.peak = {d: 0.0 for d in capacity_mb}
        self.log: list[tuple[float, str, str, str]] = []  # (time, device, event, who)
        self.lock = threading.Lock()
        self.streams_made = 0
        self._stream = threading.local()  # the calling thread's current simulated stream

    # DeviceMemory
    def cap(self, device: str, budget_mb: float) -> None:
        self.caps[device] = budget_mb

    def reset_peak(self, device: str) -> None:
        with self.lock:
            self.peak[device] = self.used[device]

    def allocated_mb(self, device: str) -> float:
        return self.used.get(device, 0.0)

    def peak_mb(self, device: str) -> float:
        return self.peak.get(device, 0.0)

    def new_stream(self, device: str, high_priority: bool = False) -> Callable[[], ContextManager[None]]:
        """A simulated stream: making it current sets what ``current_stream`` says in that thread
        (``cuda:0/stream1``, with ``!`` at the end for one of high priority)."""
        with self.lock:
            self.streams_made += 1
            name = f"{device}/stream{self.streams_made}" + ("!" if high_priority else "")

        @contextlib.contextmanager
        def make_current() -> Iterator[None]:
            previous = self.current_stream()
            self._stream.name = name
            try:
                yield
            finally:
                self._stream.name = previous

        return make_current

    # what stand-ins call
    def current_stream(self) -> str | None:
        """The simulated stream current in the calling thread (None: the default stream)."""
        return getattr(self._stream, "name", None)

    def allocate(self, device: str, mb: float, who: str) -> None:
        with self.lock:
            limit = min(self.capacity[device], self.caps.get(device, float("inf")))
            if self.used[device] + mb > limit:
                self.log.append((time.perf_counter(), device, "oom", who))
                raise DeviceOutOfMemory(f"simulated CUDA out of memory on {device}: {who} asked for {mb:.0f} MB, "
                                        f"{self.used[device]:.0f} of {limit:.0f} MB in use")
            self.used[device] += mb
            self.peak[device] = max(self.peak[device], self.used[device])
            self.log.append((time.perf_counter(), device, f"+{mb:.0f}", who))

    def free(self, device: str, mb: float, who: str) -> None:
        with self.lock:
            self.used[device] -= mb
            self.log.append((time.perf_counter(), device, f"-{mb:.0f}", who))

    def events(self, kind: str) -> list[tuple[str, str]]:
        """(device, who) of every logged event whose text starts with ``kind`` ('+', '-', 'oom')."""
        return [(d, w) for _t, d, e, w in self.log if e.startswith(kind)]


class StandIn(BatchedAnalyzer):
    """An analyzer that allocates like a model-backed one, for schedule tests (``StandIn.make``)."""

    version = "1.0.0"
    device = "gpu"
    gpus: ClassVar[SimulatedGPUs | None] = None
    weights: ClassVar[dict[str, float]] = {}
    item_mb: ClassVar[float] = 0.0
    n_items: ClassVar[int] = 8
    load_s: ClassVar[float] = 0.0
    step_s: ClassVar[float] = 0.0

    @classmethod
    def make(cls, name: str, gpus: SimulatedGPUs, weights: dict[str, float], *, item_mb: float = 0.0,
             n_items: int = 8, batch_size: int = 4, load_s: float = 0.0, step_s: float = 0.0,
             depends_on: tuple[str, ...] = ()) -> type["StandIn"]:
        return type(f"StandIn_{name}", (cls,), dict(
            name=name, gpus=gpus, weights=weights, item_mb=item_mb, item_vram_mb=item_mb, n_items=n_items,
            batch_size=batch_size, load_s=load_s, step_s=step_s, depends_on=depends_on))

    def __init__(self, params: Any = None):
        super().__init__(params)
        self.loaded_on: str | None = None
        self.loaded_mb = 0.0
        self.history: list[tuple[str, str, float]] = []  # (event, device, time)
        self.streams: list[tuple[str, str | None]] = []  # (phase, the simulated stream it ran on)

    def _on(self, phase: str) -> None:
        self.streams.append((phase, self.gpus.current_stream() if self.gpus is not None else None))

    def load(self, device: str, models: dict) -> None:
        self._on("load")
        self.history.append(("load", device, time.perf_counter()))
        if self.load_s:
            time.sleep(self.load_s)
        if device.startswith("cuda"):
            mb = self.weights.get(self.precision or "", next(iter(self.weights.values()), 0.0))
            self.gpus.allocate(device, mb, self.name)
            self.loaded_on, self.loaded_mb = device, mb

    def unload(self) -> None:
        self._on("unload")
        if self.loaded_on:
            self.gpus.free(self.loaded_on, self.loaded_mb, self.name)
        self.history.append(("unload", self.loaded_on or "cpu", time.perf_counter()))
        self.loaded_on, self.loaded_mb = None, 0.0

    def items(self, inputs: AnalyzerInputs) -> range:
        return range(self.n_items)

    def count_items(self, inputs: AnalyzerInputs) -> int:
        return self.n_items

    def preprocess(self, items: list[int]) -> list[int]:
        self._on("preprocess")
        return list(items)

    def postprocess(self, outputs: list[int], items: list[int]) -> list[int]:
        self._on("postprocess")
        return list(outputs)

    def forward(self, batch: list[int]) -> list[int]:
        self._on("forward")
        device = self.loaded_on
        if device:
            self.gpus.allocate(device, self.item_mb * len(batch), self.name)
        try:
            if self.step_s:
                time.sleep(self.step_s)
            return [x * 2 for x in batch]
        finally:
            if device:
                self.gpus.free(device, self.item_mb * len(batch), self.name)

    def finish(self, results: list[int], inputs: AnalyzerInputs) -> Track:
        self.history.append(("done", self.loaded_on or "cpu", time.perf_counter()))
        return self.track(data={"results": results})
