"""The GPUs a run may use and the VRAM budget on each: ``--devices`` and ``--vram-budget``.

``auto`` (the default) gives each GPU its free memory minus a reserve (``RESERVE_FRACTION`` of
the card, at least ``RESERVE_MIN_MB``) for the CUDA context and other processes. A number is
used as given, per GPU, but never more than the card has; the executor caps the allocator to it.
torch is imported only when some analyzer can use a GPU, and not at all on a machine without a
GPU driver (``gpu_driver_present``).
"""
from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError

logger = logging.getLogger(__name__)

RESERVE_FRACTION = 0.05
RESERVE_MIN_MB = 1024.0


#: the compute capability from which the plan offers fp8 variants on its own: NVIDIA Hopper and
#: newer, where ``torch._scaled_mm`` with a scale per row was checked (an H200); elsewhere fp8 weights
#: are widened for every product (``analyzers._fp8``), slower than the bf16 of a smaller model
FP8_CAPABILITY = (9, 0)


@dataclass
class GPUs:
    """The usable GPUs, their budgets (MB), sizes and compute capabilities."""

    devices: list[str] = field(default_factory=list)
    budgets: dict[str, float] = field(default_factory=dict)
    total_mb: dict[str, float] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    capability: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def fp8_matmul(self) -> bool:
        """Whether every GPU has FP8 matrix units the fp8 variants use (``FP8_CAPABILITY``)."""
        return bool(self.devices) and all(self.capability.get(d, (0, 0)) >= FP8_CAPABILITY for d in self.devices)


def discover(requested: list[str] | None, budget: float | str | None, *, wanted: bool = True) -> GPUs:
    """The GPUs to plan on.

    :param requested: ``--devices`` (``["cuda:0", "cuda:1"]``, or ``["cpu"]`` for none); None: all.
    :param budget: MB per GPU, ``"auto"`` or None (auto).
    :param wanted: False when no analyzer can use a GPU: nothing is probed (no torch import).
    :raises ConfigError: a requested GPU does not exist.
    """
    if not wanted or requested == ["cpu"]:
        return GPUs()
    if not requested and not gpu_driver_present():
        logger.debug("no GPU driver on this machine: torch not imported to look for GPUs")
        return GPUs()
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception as exc:  # noqa: BLE001 - torch missing or broken: no GPU
        logger.debug("no GPU: %s", exc)
        count = 0
    if requested:
        bad = [d for d in requested if not _valid(d, count)]
        if bad:
            seen = ", ".join(f"cuda:{i}" for i in range(count)) or "none"
            raise ConfigError(f"--devices {','.join(bad)}: no such GPU (visible GPUs: {seen}); "
                              "use cuda:N as torch numbers them, or cpu")
        devices = [d if ":" in d else "cuda:0" for d in requested]
    else:
        devices = [f"cuda:{i}" for i in range(count)]
    gpus = GPUs(devices=devices)
    for dev in devices:
        free, total = (x / 2**20 for x in torch.cuda.mem_get_info(dev))
        gpus.total_mb[dev] = total
        gpus.names[dev] = torch.cuda.get_device_name(dev)
        gpus.capability[dev] = tuple(torch.cuda.get_device_capability(dev))
        reserve = max(RESERVE_MIN_MB, RESERVE_FRACTION * total)
        if budget in (None, "auto"):
            gpus.budgets[dev] = max(0.0, free - reserve)
        else:
            gpus.budgets[dev] = min(float(budget), total)
            if float(budget) > free:
                logger.warning("%s: the %.0f MB VRAM budget is more than the %.0f MB free now; "
                               "models may run out of memory", dev, float(budget), free)
    return gpus


#: what a machine has when torch could see a GPU on it: NVIDIA's driver (its proc entry or device
#: nodes), Jetson's (nvhost, nvmap), WSL's GPU bridge, or AMD's ROCm (torch's ROCm builds answer
#: through torch.cuda)
GPU_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/nvhost-ctrl", "/dev/nvmap",
                    "/dev/dxg", "/dev/kfd")


def cpus_available() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one: a container's
    or ``taskset``'s limit, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def gpu_driver_present(system: str | None = None, exists: Callable[[str], bool] = os.path.exists) -> bool:
    """False only where torch certainly sees no GPU: macOS (no CUDA), and Linux without any of
    ``GPU_DRIVER_PATHS``. Importing torch just to learn that takes seconds (``framework plan`` on
    a laptop). Elsewhere (Windows, other systems) True: torch is asked."""
    system = system or platform.system()
    if system == "Darwin":
        return False
    if system == "Linux":
        return any(exists(p) for p in GPU_DRIVER_PATHS)
    return True


def attention_without_cudnn(torch: Any, env: Any = None) -> bool:
    """Keep ``scaled_dot_product_attention`` off cuDNN's kernel in this process, unless
    ``FRAMEWORK_CUDNN_ATTENTION=1``. Returns whether it was turned off here.

    PyTorch (2.5 and later) prefers cuDNN's fused attention on Hopper GPUs, and cuDNN builds an
    execution plan for every new shape. Every token a model generates (the VLM, Whisper, the
    summary's LLM) has a new key length, so the plans are rebuilt at every step: on an H200 a batch
    of Qwen2-VL-7B took 17.5 s instead of 4.7 s (``bench/results/vlm_generate_probe_h200.md``).
    Flash and memory-efficient attention have no such cost. The setting is process-wide, set when
    the executor first uses a GPU (and by a description model loaded on CUDA outside a run), so
    analyzers on other threads never change it mid-call.
    """
    if (env if env is not None else os.environ).get("FRAMEWORK_CUDNN_ATTENTION", "") == "1":
        return False
    switch = getattr(getattr(torch.backends, "cuda", None), "enable_cudnn_sdp", None)
    if switch is None:  # a torch without cuDNN attention
        return False
    switch(False)
    return True


def _valid(device: str, count: int) -> bool:
    if device == "cuda":
        return count > 0
    if not device.startswith("cuda:"):
        return False
    index = device.split(":", 1)[1]
    return index.isdigit() and int(index) < count
