"""On a real GPU: the executor's work stream per analyzer (``framework.work_streams``)."""
from __future__ import annotations

import threading

import pytest

torch = pytest.importorskip("torch")

from framework import AnalyzerInputs, BatchedAnalyzer, VideoMeta  # noqa: E402
from framework.callinfo import AnalyzerCall  # noqa: E402
from framework.executor import Executor, Job, TorchMemory  # noqa: E402
from framework.scheduler import Demand, Variant, plan  # noqa: E402

VIDEO = VideoMeta(path="x.mp4", content_hash="x", size_bytes=1, duration=10.0, has_video=True)


def matmul_analyzer(name: str, seed: int) -> BatchedAnalyzer:
    """Twenty tanh layers over random matrices on the GPU (pinned copies in, results out); records each phase's stream."""

    class MatMul(BatchedAnalyzer):
        version, device, batch_size = "1.0.0", "gpu", 4

        def __init__(self):
            super().__init__(None)
            self.streams: list[tuple[str, int, int]] = []  # (phase, stream id, thread id)
            gen = torch.Generator().manual_seed(seed)
            self.inputs = [torch.randn(256, 256, generator=gen) for _ in range(12)]
            self.w = torch.randn(256, 256, generator=gen) / 16.0

        def _on(self, phase):
            self.streams.append((phase, torch.cuda.current_stream().cuda_stream, threading.get_ident()))

        def load(self, device, models):
            self._on("load")
            self.weight = self.w.to(device)

        def unload(self):
            self._on("unload")
            self.weight = None

        def items(self, inputs):
            return list(self.inputs)

        def preprocess(self, items):
            self._on("preprocess")
            return torch.stack(items).pin_memory().to(self.placement.device, non_blocking=True)

        def forward(self, batch):
            self._on("forward")
            out = batch
            for _ in range(20):
                out = torch.tanh(out @ self.weight)
            return out

        def postprocess(self, outputs, items):
            self._on("postprocess")
            return list(outputs.cpu())

        def finish(self, results, inputs):
            self.results = results
            return self.track(data={"n": len(results)})

    MatMul.name = name
    return MatMul()


@pytest.mark.gpu
def test_analyzers_sharing_a_gpu_each_work_on_their_own_stream_and_get_the_right_numbers():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    analyzers = [matmul_analyzer("mm_a", 1), matmul_analyzer("mm_b", 2)]
    demands = [Demand(a.name, "gpu", variants=(Variant("fp32", 100.0),), item_vram_mb=1.0, max_batch=4)
               for a in analyzers]
    p = plan(demands, 20_000.0, ["cuda:0"])
    tracks = {}

    def start(a):
        def begin(placement):
            a.placement = placement
            return AnalyzerCall(a, AnalyzerInputs(video=VIDEO), placement.device)
        return begin

    jobs = [Job(a.name, p.placements[a.name], (), start(a), d) for a, d in zip(analyzers, demands)]
    Executor(p, jobs, tracks.__setitem__, memory=TorchMemory(), cpu_workers=1).run()
    assert all(t.status == "ok" for t in tracks.values()), {n: t.reason for n, t in tracks.items()}

    default = torch.cuda.default_stream().cuda_stream
    used = []
    for a in analyzers:
        ids = {s for _phase, s, _thread in a.streams}
        assert len(ids) == 1 and default not in ids, a.streams
        assert {ph for ph, _s, _t in a.streams} == {"load", "preprocess", "forward", "postprocess", "unload"}
        assert len({t for _ph, _s, t in a.streams}) > 1  # the stream followed the work into other threads
        used += ids
        want = torch.stack(a.inputs)
        for _ in range(20):
            want = torch.tanh(want @ a.w)
        assert torch.allclose(torch.stack(a.results), want, rtol=1e-3, atol=1e-3)
    assert len(set(used)) == 2


@pytest.mark.gpu
def test_a_high_priority_work_stream_outranks_the_others():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from framework.work_streams import torch_stream, using

    with using(torch_stream(torch, "cuda:0", True)):
        high = torch.cuda.current_stream().priority
    with using(torch_stream(torch, "cuda:0", False)):
        normal = torch.cuda.current_stream().priority
    assert normal == torch.cuda.default_stream().priority == 0 and high < normal  # lower is higher
