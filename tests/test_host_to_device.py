"""framework.host_to_device: a model's weights moved as ``Module.to`` moves them, through staging buffers."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from framework.host_to_device import _batches, _Piece, move_module  # noqa: E402


class Tied(torch.nn.Module):
    """Tied weights, a buffer shared by two submodules, a non-contiguous parameter, several dtypes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(300, 48)
        self.head = torch.nn.Linear(48, 300, bias=False)
        self.head.weight = self.embed.weight  # tied
        self.inner = torch.nn.Linear(48, 48)
        self.inner.weight = torch.nn.Parameter(torch.randn(48, 48).t())  # not contiguous
        self.low = torch.nn.Parameter(torch.randn(7, 5).to(torch.bfloat16))
        table = torch.arange(10, dtype=torch.int64)
        self.register_buffer("table", table)
        self.sub = torch.nn.Module()
        self.sub.register_buffer("table", table)  # the same tensor in two modules
        self.register_buffer("flags", torch.tensor([True, False, True]))
        self.empty = torch.nn.Parameter(torch.zeros(0, 3))


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_staged_pieces_and_batches_cover_every_byte_once():
    src, dst = torch.arange(10, dtype=torch.uint8), torch.zeros(10, dtype=torch.uint8)
    pieces = [_Piece(src, dst, a, min(a + 4, 10)) for a in range(0, 10, 4)]  # 4 + 4 + 2 bytes
    batches = _batches(pieces, 6)
    assert [[(p.start, p.end) for p in b] for b in batches] == [[(0, 4)], [(4, 8), (8, 10)]]
    assert all(sum(p.end - p.start for p in b) <= 6 for b in batches)


@pytest.mark.parametrize("chunk_mb,workers", [(0.001, 3), (64, 4), (0.0005, 1)])
def test_a_staged_move_gives_what_module_to_gives(chunk_mb, workers):
    """Forced on the CPU (plain buffers, no streams), with chunks small enough that a tensor spans several
    buffers and several workers fill them: every value, dtype and shape as before; Parameters keep their
    objects (ties hold); each tensor has new storage (the host copy can be freed)."""
    model = Tied()
    before = _state(model)
    params = {n: p for n, p in model.named_parameters(remove_duplicate=False)}
    pointers = {n: p.data_ptr() for n, p in params.items() if p.numel()}
    unique = [*model.parameters(), *model.buffers()]  # (each tied tensor once)
    info = move_module(model, "cpu", chunk_mb=chunk_mb, workers=workers, force=True)
    assert info["way"] == "staged" and info["bytes"] == sum(t.numel() * t.element_size() for t in unique)
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        assert after[k].dtype == before[k].dtype and after[k].shape == before[k].shape
        assert torch.equal(after[k], before[k]), k
    assert all(p is params[n] for n, p in model.named_parameters(remove_duplicate=False))
    assert model.head.weight is model.embed.weight
    assert model.table is model.sub.table
    assert all(params[n].data_ptr() != ptr for n, ptr in pointers.items())
    assert model.inner.weight.is_contiguous()
    x = torch.randint(0, 300, (2, 3))
    assert torch.equal(model.head(model.embed(x)), torch.nn.functional.linear(model.embed(x), before["embed.weight"]))


def test_switched_off_or_off_cuda_it_is_module_to(monkeypatch):
    model = Tied()
    assert move_module(model, "cpu")["way"] == "to"  # no CUDA asked for
    monkeypatch.setenv("FRAMEWORK_PINNED_LOAD", "0")
    assert move_module(model, "cpu", force=True)["way"] == "to"


@pytest.mark.gpu
def test_on_cuda_a_pinned_move_gives_what_module_to_gives():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model, reference = Tied(), Tied()
    info = move_module(model, "cuda", chunk_mb=0.001, workers=3)
    reference.to("cuda")
    assert info["way"] == "pinned"
    assert all(t.device.type == "cuda" for t in model.state_dict().values())
    for k, v in reference.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert model.head.weight is model.embed.weight and model.table is model.sub.table


@pytest.mark.gpu
def test_on_cuda_the_staging_buffers_do_not_stay_pinned_after_the_move():
    """Four 64 MB staging buffers went back to torch's caching host allocator and stayed page-locked for the
    rest of the run (twenty-fourth session); the move now returns the blocks nobody holds."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model = torch.nn.Sequential(*(torch.nn.Linear(1024, 1024) for _ in range(24)))  # (~100 MB)
    info = move_module(model, "cuda", chunk_mb=8, workers=4)
    assert info["way"] == "pinned" and info["workers"] == 4
    stats = torch.cuda.host_memory_stats()
    held = stats.get("allocated_bytes.current")
    if held is None:
        pytest.skip(f"this torch's pinned allocator statistics have no allocated_bytes: {sorted(stats)[:8]}")
    assert held < 8 * 2**20, stats  # (none of the four 8 MB buffers is still cached)
