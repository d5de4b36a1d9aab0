"""A model's weights from the host onto a CUDA device through pinned staging buffers, several copies at once.

``Module.to("cuda")`` copies each parameter on its own from pageable host memory: the driver stages every
copy through a pinned buffer of its own and the copies run one after another on one thread. A loader
that builds the model on the host (``from_pretrained`` reading safetensors files, memory-mapped) then
moves 16.6 GB for Qwen2-VL-7B that way. ``move_module`` does the same move with ``workers`` threads, each
filling its own pinned buffer of ``chunk_mb`` from the host tensors (torch's copies release the
interpreter's lock) and copying it to the device on a CUDA stream of its own while it fills the next: the
host copies run side by side and overlap the transfers.

The result is what ``module.to(device)`` gives: every parameter and buffer on ``device``, with the same
values, dtypes and shapes; a parameter keeps its ``Parameter`` object (its ``.data`` is swapped, as
``Module.to`` does), so tied weights stay tied; tensors already on the device stay where they are.
On another device than CUDA, or with ``FRAMEWORK_PINNED_LOAD=0``, it is ``module.to(device)``.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from .work_streams import switched_on

logger = logging.getLogger(__name__)

CHUNK_MB = 64  # each worker's pinned buffer
WORKERS = 4


@dataclass
class _Piece:
    """Bytes ``[start, end)`` of one host tensor's byte view, bound for the same bytes of its target."""
    source: Any
    target: Any
    start: int
    end: int


def _slots_of(module: Any) -> list[tuple[Any, str, str, Any]]:
    """Every (submodule, "_parameters" or "_buffers", name, tensor) of ``module``."""
    slots = []
    for sub in module.modules():
        for kind in ("_parameters", "_buffers"):
            for name, tensor in getattr(sub, kind).items():
                if tensor is not None:
                    slots.append((sub, kind, name, tensor))
    return slots


def _batches(pieces: list[_Piece], chunk: int) -> list[list[_Piece]]:
    """``pieces`` in order, packed into batches of at most ``chunk`` bytes (a piece is never larger)."""
    batches: list[list[_Piece]] = []
    size = chunk
    for piece in pieces:
        n = piece.end - piece.start
        if size + n > chunk:
            batches.append([])
            size = 0
        batches[-1].append(piece)
        size += n
    return batches


def _bytes_of(tensor: Any) -> Any:
    import torch

    return tensor.reshape(-1).view(torch.uint8)


def move_module(module: Any, device: str, *, chunk_mb: float = CHUNK_MB, workers: int = WORKERS,
                force: bool = False, env: Any = None) -> dict[str, Any]:
    """Move ``module``'s parameters and buffers to ``device`` (see the module's docstring); returns how:
    ``{"way": "pinned" | "to", "bytes", "seconds", "workers", "chunk_mb"}``. ``force``: take the staged way
    on any device, host tensors too when ``device`` is the host (plain buffers and no streams off CUDA; for
    tests)."""
    import torch

    t0 = time.perf_counter()
    cuda = str(device).startswith("cuda") and torch.cuda.is_available()
    if not (cuda or force) or not switched_on("FRAMEWORK_PINNED_LOAD", env):
        module.to(device)
        return {"way": "to", "seconds": round(time.perf_counter() - t0, 3)}
    target_device = torch.device(device)
    if target_device.type == "cuda" and target_device.index is None:
        target_device = torch.device("cuda", torch.cuda.current_device())
    chunk = max(1, int(chunk_mb * 2**20))
    pieces = _targets_in_place(module, target_device, chunk, force)
    moved = sum(p.end - p.start for p in pieces)
    todo = _queued(_batches(pieces, chunk))
    n_workers = max(1, min(workers, todo.qsize()))
    del pieces  # (the host tensors now live only in the queue's batches)
    errors: list[BaseException] = []

    def worker() -> None:
        staging = torch.empty(chunk, dtype=torch.uint8, pin_memory=cuda)
        stream = torch.cuda.Stream(device=target_device) if cuda else None
        done = torch.cuda.Event() if cuda else None
        try:
            while not errors:
                try:
                    batch = todo.get_nowait()
                except queue.Empty:
                    break
                if done is not None:
                    done.synchronize()  # the staging buffer's last transfer has left it
                targets = _fill(staging, batch)
                del batch  # (its host tensors: freed once no batch holds them)
                if stream is None:
                    _transfer(targets, staging)
                else:
                    with torch.cuda.stream(stream):
                        _transfer(targets, staging, non_blocking=True)
                        done.record(stream)
            if done is not None:
                done.synchronize()
        except BaseException as exc:  # (re-raised on the caller's thread)
            errors.append(exc)

    threads = [threading.Thread(target=worker, name=f"host-to-device-{i}", daemon=True) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if cuda:
        release_pinned(torch)
    if errors:
        raise errors[0]
    seconds = time.perf_counter() - t0
    logger.debug("moved %.2f GB to %s in %.2f s through %d pinned buffers of %g MB", moved / 1e9, device,
                 seconds, n_workers, chunk_mb)
    return {"way": "pinned" if cuda else "staged", "bytes": moved, "seconds": round(seconds, 3),
            "workers": n_workers, "chunk_mb": chunk_mb}


def release_pinned(torch: Any) -> None:
    """Return the pinned host blocks nobody holds to the system: the staging buffers (``WORKERS`` x
    ``CHUNK_MB``) went back to torch's caching host allocator when their threads ended, and would stay
    page-locked for the rest of the process (``torch._C._host_emptyCache``; where a torch lacks it, kept)."""
    empty = getattr(torch._C, "_host_emptyCache", None)
    if empty is not None:
        try:
            empty()
        except RuntimeError as exc:  # (a torch without it for this device: the blocks stay cached)
            logger.debug("pinned host blocks kept: %s", exc)


def _targets_in_place(module: Any, device: Any, chunk: int, force: bool) -> list[_Piece]:
    """Give each of ``module``'s host tensors an empty one on ``device``, in its place (a Parameter keeps its
    object: its ``.data`` is swapped, as ``Module.to`` does, so ties hold); the pieces of at most ``chunk``
    bytes to copy into them. In place before the copy: a host tensor then lives only in its pieces, freed
    as they are copied (the host's peak memory as with ``Module.to``, which frees as it goes); a failure
    later leaves the module on the device with its values unset (a failed load)."""
    import torch

    targets: dict[int, Any] = {}  # id of a host tensor (or Parameter) -> its tensor on the device
    pieces: list[_Piece] = []
    for sub, kind, name, tensor in _slots_of(module):
        target = targets.get(id(tensor))  # (tied, or a buffer two modules share: one copy)
        if target is None:
            if tensor.device.type != "cpu" or (tensor.device == device and not force):
                target = tensor.data.to(device)  # (already there: itself; another device: .to)
            else:
                source = tensor.data if tensor.data.is_contiguous() else tensor.data.contiguous()
                target = torch.empty(source.shape, dtype=source.dtype, device=device)
                src, dst = _bytes_of(source), _bytes_of(target)
                pieces += [_Piece(src, dst, a, min(a + chunk, src.numel())) for a in range(0, src.numel(), chunk)]
            targets[id(tensor)] = target
        if kind == "_parameters":
            tensor.data = target
        else:
            sub._buffers[name] = target
    return pieces


def _queued(batches: list[list[_Piece]]) -> queue.Queue[list[_Piece]]:
    todo: queue.Queue[list[_Piece]] = queue.Queue()
    for batch in batches:
        todo.put(batch)
    return todo


def _fill(staging: Any, batch: list[_Piece]) -> list[tuple[Any, int, int]]:
    """Copy ``batch``'s host bytes into ``staging``, in order; where each goes (target bytes, start, end)."""
    at = 0
    for p in batch:
        n = p.end - p.start
        staging[at:at + n].copy_(p.source[p.start:p.end])
        at += n
    return [(p.target, p.start, p.end) for p in batch]


def _transfer(targets: list[tuple[Any, int, int]], staging: Any, non_blocking: bool = False) -> None:
    """``staging``'s bytes, filled in order, into each (target bytes, start, end)."""
    at = 0
    for target, start, end in targets:
        n = end - start
        target[start:end].copy_(staging[at:at + n], non_blocking=non_blocking)
        at += n
