"""Qwen-VL's chunks handed to the processor as torch tensors (on CUDA: already on the GPU, so its
channels-first copy runs there): the processor reads them as it reads numpy frames (tiny Qwen2-VL, CPU),
and on CUDA the prepared batch equals the one prepared from host frames."""
from __future__ import annotations

import numpy as np
import pytest

from analyzers.vlm.families import family_class
from analyzers.vlm.families.base import GenerationOptions, Request, pad_frames
from vlm_fixtures import tiny_vlm  # noqa: F401  (a fixture)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def _requests():
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 255, (8, 56, 100, 3), dtype=np.uint8)
    return [Request(i, float(i), i + 1.0, [i + 0.25 * k for k in range(c)], frames[:c], "Describe.")
            for i, c in enumerate([3, 8, 2, 5])]  # odd counts: padded to the temporal patch


def test_a_tensor_is_padded_as_the_numpy_frames_are():
    frames = np.arange(5 * 2 * 3 * 3, dtype=np.uint8).reshape(5, 2, 3, 3)
    for multiple in (1, 2, 4):
        assert np.array_equal(pad_frames(torch.from_numpy(frames), multiple).numpy(), pad_frames(frames, multiple))
    assert pad_frames(frames, 5) is frames


def test_the_processor_reads_frame_tensors_as_it_reads_numpy_frames(tiny_vlm):  # noqa: F811
    fam = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=4))
    fam.load_processor(tiny_vlm("qwen2-vl"), "cpu")
    requests = _requests()
    assert all(isinstance(fam.video_input(r.frames), np.ndarray) for r in requests)  # on the CPU: as they are
    texts = [fam.chat(r) for r in requests]
    host = fam.processor(text=texts, videos=[fam.video_input(r.frames) for r in requests], padding=True,
                         return_tensors="pt")
    tensors = fam.processor(text=texts, videos=[pad_frames(torch.from_numpy(r.frames), fam.temporal_patch)
                                                for r in requests], padding=True, return_tensors="pt")
    assert set(host) == set(tensors)
    for key in host:
        assert torch.equal(host[key], tensors[key]), key
    assert host["video_grid_thw"][:, 0].tolist() == [2, 4, 1, 3]  # (frames padded to pairs)


@pytest.mark.gpu
def test_on_cuda_frames_sent_first_give_the_batch_of_frames_copied_on_the_host(tiny_vlm, monkeypatch):  # noqa: F811
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    fam = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=4))
    fam.load_processor(tiny_vlm("qwen2-vl"), "cuda")
    requests = _requests()
    assert all(fam.video_input(r.frames).is_cuda for r in requests)
    sent = fam.prepare(requests)["inputs"]
    monkeypatch.setenv("FRAMEWORK_VLM_FRAMES_TO_GPU", "0")
    assert all(isinstance(fam.video_input(r.frames), np.ndarray) for r in requests)
    copied = fam.prepare(requests)["inputs"]
    assert set(sent) == set(copied)
    for key in sent:
        assert torch.equal(sent[key].cpu(), copied[key].cpu()), key


def test_a_batchs_frames_read_on_threads_come_in_its_chunks_order():
    from types import SimpleNamespace

    from analyzers.vlm import SceneDescription
    from analyzers.vlm.analyzer import READ_THREADS, ChunkItem
    from analyzers.vlm.chunks import Chunk

    frames = np.arange(40 * 2 * 2 * 3, dtype=np.uint8).reshape(40, 2, 2, 3)
    stream = SimpleNamespace(frames=frames)
    vlm = SceneDescription()
    vlm._inputs = SimpleNamespace(frames=lambda spec: stream)
    items = [ChunkItem(Chunk(i, 2.0 * i, 2.0 * i + 2), [2 * i, 2 * i + 1], [2.0 * i, 2.0 * i + 1]) for i in range(12)]
    assert len(items) > READ_THREADS  # (read on threads)
    requests = vlm._requests(items)
    assert [r.index for r in requests] == list(range(12))
    for i, r in enumerate(requests):
        assert np.array_equal(r.frames, frames[[2 * i, 2 * i + 1]]) and r.times == [2.0 * i, 2.0 * i + 1]
