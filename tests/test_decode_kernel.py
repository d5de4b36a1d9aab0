"""``framework.generation.decode_kernel``: a decoding step's attention as Triton kernels over stretches of the
cache (flash-decoding). On the CPU through Triton's interpreter, in a fresh process (``TRITON_INTERPRET=1`` is
read when the kernels are built; half precision, as on a GPU: the interpreter has no bfloat16): SDPA's output
for grouped heads, batches, boolean and additive masks and many stretches; zeros for a row that attends to
nothing; a tiny Qwen2 decoding through it gives SDPA's tokens. On a GPU: bfloat16 at the summary model's and
the VLM's real shapes, and inside a CUDA graph."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
pytest.importorskip("transformers")

from framework.generation import decode_kernel  # noqa: E402
from vlm_fixtures import tiny_vlm  # noqa: E402,F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]

CHECKS = r'''
import json, torch
from framework.generation import decode_attention, decode_kernel
from transformers.integrations.sdpa_attention import sdpa_attention_forward

class Module(torch.nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.num_key_value_groups, self.is_causal = groups, True

def masked(batch, keys, kind):
    filled = torch.arange(keys)[None, :] < torch.tensor([keys - 5 * i - 3 for i in range(batch)])[:, None]
    m = filled[:, None, None, :]
    return m if kind == "bool" else torch.zeros(m.shape).masked_fill(~m, torch.finfo(torch.float16).min).half()

torch.manual_seed(0)
report = {"errors": [], "splits": []}
for batch, heads, kv_heads, keys, dim, kind in [(1, 12, 2, 300, 64, "bool"), (3, 4, 2, 130, 32, "bool"),
                                                (2, 8, 8, 70, 16, "float"), (2, 6, 3, 200, 32, None),
                                                (2, 28, 4, 150, 128, "bool")]:
    q = torch.randn(batch, heads, 1, dim).half()
    k, v = torch.randn(batch, kv_heads, keys, dim).half(), torch.randn(batch, kv_heads, keys, dim).half()
    m = masked(batch, keys, kind) if kind else None
    module = Module(heads // kv_heads)
    out, _ = decode_attention.attention(module, q, k, v, m, scaling=0.3)   # (the kernel: half precision here)
    ref = sdpa_attention_forward(module, q.float(), k.float(), v.float(),
                                 None if m is None else (m if m.dtype == torch.bool else m.float()), scaling=0.3)[0]
    report["errors"].append(float((out.float() - ref).abs().max()))
    report["splits"].append(decode_kernel.splits_for(batch * kv_heads, keys, 8)[0])
# many stretches (as on a GPU of 132 multiprocessors): the join reads them JOIN_BLOCK at a time
real_mp = decode_kernel._multiprocessors
decode_kernel._multiprocessors = lambda device: 132
q = torch.randn(1, 12, 1, 64).half()
k, v = torch.randn(1, 2, 3000, 64).half(), torch.randn(1, 2, 3000, 64).half()
m = masked(1, 3000, "bool")
report["many_error"] = float((decode_kernel.attend(q, k, v, m, 0.125).float()
                              - decode_kernel.reference(q, k, v, m, 0.125)).abs().max())
report["many_splits"] = decode_kernel.splits_for(2, 3000, 132)[0]
decode_kernel._multiprocessors = real_mp
# a row that attends to nothing (all masked) gets zeros; the other row is unchanged
q, k, v = torch.randn(2, 4, 1, 16).half(), torch.randn(2, 2, 90, 16).half(), torch.randn(2, 2, 90, 16).half()
m = torch.ones(2, 1, 1, 90, dtype=torch.bool)
m[1] = False
out = decode_kernel.attend(q, k, v, m, 0.25)
alone = decode_kernel.attend(q[:1], k[:1], v[:1], m[:1], 0.25)
report["empty_row_zero"] = bool(torch.all(out[1] == 0))
report["other_row_same"] = bool(torch.equal(out[:1], alone))

# a tiny Qwen2 in half precision over a static cache, greedy: SDPA's tokens, its steps through the kernel
import pathlib, tempfile
from decode_fixtures import tiny_decoder
model, ids, mask = tiny_decoder(pathlib.Path(tempfile.mkdtemp()) / "tiny", torch.float16, hidden=64)  # (head dim 16)
kw = dict(max_new_tokens=8, do_sample=False, cache_implementation="static", pad_token_id=0)
calls = []
real = decode_kernel.attend
decode_kernel.attend = lambda *a, **k: calls.append(1) or real(*a, **k)
with torch.inference_mode():
    before = model.generate(input_ids=ids, attention_mask=mask, **kw)
    assert decode_attention.install(model) is None
    after = model.generate(input_ids=ids, attention_mask=mask, **kw)
report["same_tokens"] = bool(torch.equal(after, before))
report["kernel_steps"] = len(calls)
report["in_use"] = decode_kernel.in_use()
# a kernel that gives other numbers here is set aside when the model is switched to it
real_attend = decode_kernel.attend
decode_kernel.attend = lambda q, k, v, m, s: real_attend(q, k, v, m, s) * 1.5
report["bad_check"] = decode_kernel.check(model)
report["in_use_after_bad_check"] = decode_kernel.in_use()
print("REPORT " + json.dumps(report))
'''


def test_through_tritons_interpreter_it_attends_as_sdpa_does():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
           "FRAMEWORK_DECODE_KERNEL": "1"}
    done = subprocess.run([sys.executable, "-c", CHECKS], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    report = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("REPORT "))[7:])
    assert max(report["errors"]) < 3e-3, report  # (half precision)
    assert max(report["splits"]) >= 3  # (several stretches joined)
    assert report["many_splits"] > 32 and report["many_error"] < 3e-3, report  # (more than one JOIN_BLOCK)
    assert report["empty_row_zero"] and report["other_row_same"], report
    # (2 layers x 7 one-token steps, and the check when the model was switched to it)
    assert report["same_tokens"] and report["kernel_steps"] == 2 * 7 + 1 and report["in_use"], report
    assert "differed from the plain computation" in report["bad_check"] and not report["in_use_after_bad_check"]


def test_the_cache_is_split_to_fill_the_gpu_and_never_into_an_empty_stretch():
    assert decode_kernel.splits_for(2, 3256, 132) == (51, 64)  # the summary model, one row: 2 heads x 51 programs
    assert decode_kernel.splits_for(240, 1700, 132) == (2, 896)  # the VLM's 60 rows x 4 heads: already many
    assert decode_kernel.splits_for(1, 10, 132) == (1, 64)
    for programs in (1, 3, 16, 300):
        for keys in (1, 63, 64, 65, 1000, 5555):
            splits, length = decode_kernel.splits_for(programs, keys, 132)
            assert length % decode_kernel.BLOCK_N == 0 and (splits - 1) * length < keys <= splits * length


def test_off_or_on_the_cpu_without_the_interpreter_the_two_products_remain(monkeypatch):
    q = torch.randn(1, 4, 1, 16).half()
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not decode_kernel.available(q)  # (a CPU tensor)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("FRAMEWORK_DECODE_KERNEL", "0")
    assert not decode_kernel.available(q)
    assert not decode_kernel.fits(torch.randn(1, 4, 1, 16), torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16))
    assert not decode_kernel.fits(q, torch.randn(1, 2, 8, 16).half()[..., :12], torch.randn(1, 2, 8, 12).half())


def _cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    return torch.device("cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("batch,heads,kv_heads,keys", [(1, 12, 2, 3256), (60, 28, 4, 1700), (3, 12, 2, 77)])
def test_on_a_gpu_it_attends_as_sdpa_does_at_real_shapes(dtype, batch, heads, kv_heads, keys):
    """The summary model's step (Qwen2.5-1.5B after ~3000 tokens) and the VLM's (Qwen2-VL-7B, 60 chunks)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    dev, dt = _cuda(), getattr(torch, dtype)
    torch.manual_seed(0)
    q = torch.randn(batch, heads, 1, 128, device=dev, dtype=dt)
    k, v = (torch.randn(batch, kv_heads, keys, 128, device=dev, dtype=dt) for _ in range(2))
    lengths = torch.tensor([keys - 7 * i for i in range(batch)], device=dev)
    filled = torch.arange(keys, device=dev)[None, :] < lengths[:, None]
    m = filled[:, None, None, :]
    assert decode_kernel.available(q) and decode_kernel.fits(q, k, v)
    out = decode_kernel.attend(q, k, v, m, 128 ** -0.5)
    module = type("M", (torch.nn.Module,), {})()
    module.num_key_value_groups, module.is_causal = heads // kv_heads, True
    ref = sdpa_attention_forward(module, q.float(), k.float(), v.float(), m, scaling=128 ** -0.5)[0]
    assert (out.float() - ref).abs().max().item() < (2e-2 if dt == torch.bfloat16 else 3e-3)


@pytest.mark.gpu
def test_on_a_gpu_it_is_captured_and_replayed_in_a_cuda_graph():
    dev = _cuda()
    torch.manual_seed(1)
    q = torch.randn(1, 12, 1, 128, device=dev, dtype=torch.bfloat16)
    k, v = (torch.randn(1, 2, 3256, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
    m = torch.ones(1, 1, 1, 3256, device=dev, dtype=torch.bool)
    m[..., 3000:] = False
    eager = decode_kernel.attend(q, k, v, m, 0.088)  # (compiled here, before the capture, as the graphed loop's
    graph = torch.cuda.CUDAGraph()                   # first steps are eager)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        with torch.cuda.graph(graph):
            captured = decode_kernel.attend(q, k, v, m, 0.088)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, eager)
    q.copy_(torch.randn_like(q))
    m[..., 3000] = True
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, decode_kernel.attend(q, k, v, m, 0.088))


def test_a_kernel_that_fails_is_set_aside_and_the_step_still_attends(monkeypatch, caplog):
    """A Triton that cannot build or launch the kernel (here: it raises) costs one warning, not the run."""
    from framework.generation import decode_attention

    monkeypatch.setattr(decode_kernel, "available", lambda q: not decode_kernel._broken)
    monkeypatch.setattr(decode_kernel, "_broken", [])
    monkeypatch.setattr(decode_kernel, "attend", lambda *a: (_ for _ in ()).throw(RuntimeError("no sm_90 here")))
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 4, 1, 16).half(), torch.randn(1, 2, 9, 16).half(), torch.randn(1, 2, 9, 16).half()
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 2, True
    with caplog.at_level("WARNING", logger="framework.generation.decode_kernel"):
        out, _ = decode_attention.attention(module, q.float(), k.float(), v.float(), None)  # (float: never the kernel)
        assert not decode_kernel._broken
        first, _ = decode_attention.attention(module, q, k, v, None)
        second, _ = decode_attention.attention(module, q, k, v, None)
    assert decode_kernel._broken == ["RuntimeError: no sm_90 here"]
    assert torch.allclose(first.float(), out, atol=2e-3) and torch.equal(first, second)
    assert sum("no sm_90 here" in r.message for r in caplog.records) == 1


@pytest.mark.gpu
def test_on_a_gpu_the_description_model_decodes_through_it_when_asked(tiny_vlm, monkeypatch):  # noqa: F811
    """``FRAMEWORK_VLM_DECODE_ATTENTION=1`` (an experiment to measure): the tiny Qwen2-VL (head dimension 16) in
    half precision on CUDA decodes its steps through the kernel, with and without graphs, and says so."""
    import numpy as np

    from analyzers.vlm.families import GenerationOptions, Request, family_class

    _cuda()
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 255, (4, 56, 100, 3), dtype=np.uint8)
    asked = [Request(0, 0.0, 2.0, [0.0, 0.5, 1.0, 1.5], frames, "Describe."),
             Request(1, 2.0, 3.0, [2.0, 2.5], frames[:2], "Describe the scene in detail.")]
    monkeypatch.setenv("FRAMEWORK_VLM_DECODE_ATTENTION", "1")
    calls = []
    real = decode_kernel.attend
    monkeypatch.setattr(decode_kernel, "attend", lambda *a: calls.append(1) or real(*a))
    for graphs in (False, True):
        fam = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=8, min_new_tokens=8, cuda_graphs=graphs))
        fam.load(tiny_vlm("qwen2-vl"), "cuda", "fp16")
        assert any("FRAMEWORK_VLM_DECODE_ATTENTION" in n for n in fam.notes), fam.notes
        before = len(calls)
        out = fam.generate(fam.prepare(asked))
        assert out.shape[0] == 2 and len(calls) > before, graphs  # (captured steps call it once, at capture)
        fam.close()


@pytest.mark.gpu
def test_on_a_gpu_the_summary_backend_checks_the_kernel_as_it_loads_and_decodes_through_it(tmp_path, monkeypatch):
    """Fusion's transformers backend in bfloat16: the kernel built and checked at load, then its graphed steps."""
    from framework.llm.transformers_backend import TransformersBackend
    from framework.testing.llm import make_tiny_chat_model

    _cuda()
    folder = make_tiny_chat_model(tmp_path / "tiny", hidden=64)  # (head dimension 16)
    calls = []
    real = decode_kernel.attend
    monkeypatch.setattr(decode_kernel, "attend", lambda *a: calls.append(1) or real(*a))
    backend = TransformersBackend({"model": str(folder), "device": "cuda", "dtype": "bfloat16"})
    backend.load()
    assert len(calls) == 1 and not decode_kernel._broken  # (the check)
    answer = backend.generate([{"role": "user", "content": "Scene one. Summarize."}], max_new_tokens=12)
    assert isinstance(answer, str) and len(calls) > 1
    assert backend.cuda_graphs["decode_kernel"] is True, backend.cuda_graphs


def test_the_kernels_bench_runs_its_code_on_the_cpu():
    """``bench/decode_kernel_step.py --cpu-check``: the three ways called once on tiny shapes (Triton's interpreter);
    the timing itself is for a GPU."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "decode_kernel_step.py"), "--cpu-check"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("| tiny |"))
    assert float(row.rstrip(" |").rsplit("|", 1)[-1]) < 3e-3, row  # (the kernel against the plain computation)
