"""Analyzers for tests/test_own_process.py, in a module a fresh interpreter can import by name."""
from __future__ import annotations

import logging
import os
import sys
import time

from framework import Analyzer, AnalyzerUnavailable, FrameSpec

SPEC = FrameSpec(fps=2.0, width=64, height=36)


class PidReporter(Analyzer):
    """Says which process it ran in, what it read, and reports progress as it goes."""

    name = "t_own_pid"
    version = "1.0"
    own_process = True
    needs_audio = True

    def frame_specs(self):
        return [SPEC]

    def load(self, device, models):
        self.loaded_in = os.getpid()

    def analyze(self, inputs):
        logging.getLogger("own_process_fixtures").warning("%s: read %d frames", self.name, len(inputs.frames(SPEC)))
        logging.getLogger("own_process_fixtures").debug("not at the run's level")
        frames = inputs.frames(SPEC)
        total = 0
        for i, (_t, frame) in enumerate(frames):
            total += int(frame.shape[0] == SPEC.height)
            inputs.report((i + 1) / len(frames))
        audio_s = inputs.audio.duration if inputs.audio is not None else None
        return self.track(data={"pid": os.getpid(), "loaded_in": self.loaded_in, "frames": total,
                                "frames_declared": len(frames), "audio_s": audio_s,
                                "upstream": sorted(inputs.upstream), "precision": self.precision,
                                "nice": os.nice(0) if hasattr(os, "nice") else None,
                                "mps_client_priority": os.environ.get("CUDA_MPS_CLIENT_PRIORITY"),
                                "mps_pipe": os.environ.get("CUDA_MPS_PIPE_DIRECTORY")})


class Failing(PidReporter):
    name = "t_own_failing"

    def analyze(self, inputs):
        return self.read_frame(1.5)

    def read_frame(self, t):
        raise ValueError(f"no frame at {t} s")


class Unavailable(PidReporter):
    name = "t_own_unavailable"

    def load(self, device, models):
        raise AnalyzerUnavailable("needs the thing: pip install thing")


class Dies(PidReporter):
    name = "t_own_dies"

    def analyze(self, inputs):
        os._exit(3)


class Exits(PidReporter):
    name = "t_own_exits"

    def analyze(self, inputs):
        raise SystemExit(3)


class Sleeper(PidReporter):
    name = "t_own_sleeper"

    def analyze(self, inputs):
        for i in range(600):
            inputs.report(i / 600)
            time.sleep(0.05)
        return self.track()


class SlowToExit(PidReporter):
    """Its process takes 30 s to end once asked to (an exit handler that sleeps), as a process that
    tears down torch and a CUDA context takes a second or more."""

    name = "t_own_slow_to_exit"

    def load(self, device, models):
        import atexit

        atexit.register(time.sleep, 30.0)

    def analyze(self, inputs):
        return self.track(data={"pid": os.getpid()})


class OnGpu(PidReporter):
    """A GPU analyzer in a process of its own: says where it ran and what its placement held, and
    reports one span inside ``forward`` through the placement, as the device step does."""

    name = "t_own_on_gpu"
    device = "gpu"
    needs_audio = False

    def analyze(self, inputs):
        t0 = time.perf_counter()
        time.sleep(0.2)
        self.placement.on_busy(t0, time.perf_counter())
        return self.track(data={"pid": os.getpid(), "loaded_in": self.loaded_in, "device": self.placement.device,
                                "memory_cap_mb": self.placement.memory_cap_mb,
                                "shared_set": self.placement.shared is not None, "exclusive": self.placement.exclusive})


class OutOfMemoryUnlessAlone(OnGpu):
    """Runs out of device memory beside other models, as torch says it (the type's name is what crosses)."""

    name = "t_own_oom"

    def analyze(self, inputs):
        if not self.placement.exclusive:
            raise type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().analyze(inputs)


class CudaAllocator(OnGpu):
    """On a real GPU: allocates ``mb`` MB on its device and says what its allocator's peak was."""

    name = "t_own_cuda"

    class Params(OnGpu.Params):
        mb: int = 256

    def load(self, device, models):
        import torch

        super().load(device, models)
        self.weights = torch.zeros(64 * 2**20 // 4, device=device)  # 64 MB of "weights"

    def analyze(self, inputs):
        import torch

        work = torch.ones(self.params.mb * 2**20 // 4, device=self.placement.device)
        t0 = time.perf_counter()
        total = float(work.sum())
        if self.placement.on_busy is not None:  # (none on the CPU, where the fallbacks may end)
            self.placement.on_busy(t0, time.perf_counter())
        on_gpu = self.placement.is_gpu
        return self.track(data={"pid": os.getpid(), "sum": total, "device": self.placement.device,
                                "peak_mb": torch.cuda.max_memory_allocated(self.placement.device) / 2**20 if on_gpu else None})

    def unload(self):
        self.weights = None


class ThreadsSetByItsLibrary(Analyzer):
    """Its load sets the process's threads as ultralytics and silero-vad do; it says what it analyzed with."""

    name = "t_own_threads"
    version = "1.0"
    own_process = True

    def load(self, device, models):
        import cv2
        import torch

        cv2.setNumThreads(0)
        torch.set_num_threads(1)

    def analyze(self, inputs):
        import cv2
        import torch

        return self.track(data={"pid": os.getpid(), "torch": torch.get_num_threads(), "cv2": cv2.getNumThreads()})


class ScipyBeforeLoad(Analyzer):
    """Says whether scipy was imported in its process before its load (``import_before_threads``)."""

    name = "t_own_scipy"
    version = "1.0"
    own_process = True

    def load(self, device, models):
        self.scipy_before_load = "scipy" in sys.modules

    def analyze(self, inputs):
        return self.track(data={"pid": os.getpid(), "scipy_before_load": self.scipy_before_load})
