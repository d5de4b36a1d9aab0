"""``framework.random_init.skipped``: a model built under it and then loaded strictly has the
checkpoint's weights, as one built with its random initialisation does (open_clip, tiny), and torch's
initialisers are back after it, also after an error."""
from __future__ import annotations

import pytest

from framework import random_init

torch = pytest.importorskip("torch")


def test_the_initialisers_leave_tensors_alone_inside_and_are_restored_after():
    import torch.nn.init as init

    before = {name: getattr(init, name) for name in random_init.INITIALISERS if hasattr(init, name)}
    t = torch.full((4, 4), 7.0)
    with random_init.skipped():
        assert torch.nn.init.normal_(t) is t and torch.all(t == 7.0)
        torch.nn.Linear(4, 4)  # (builds: its reset_parameters finds the initialisers as they are now)
    assert {name: getattr(init, name) for name in before} == before
    with pytest.raises(RuntimeError), random_init.skipped():
        raise RuntimeError("a failed load")
    assert {name: getattr(init, name) for name in before} == before
    torch.nn.init.normal_(t)
    assert not torch.all(t == 7.0)


def test_a_clip_model_loaded_without_its_random_init_has_the_checkpoints_weights(monkeypatch):
    pytest.importorskip("open_clip")
    from safetensors.torch import load_file

    from analyzers._vision.clip import ClipModel
    from vision_fixtures import tiny_open_clip

    folder = tiny_open_clip()
    calls = []
    real = random_init.skipped
    monkeypatch.setattr(random_init, "skipped", lambda: calls.append(1) or real())
    model = ClipModel(folder, "cpu", "fp32")
    assert calls == [1]  # (its weights file is there: built without the random init)
    saved = load_file(str(folder / "open_clip_model.safetensors"))
    state = model.model.state_dict()
    assert set(saved) <= set(state)
    for key, value in saved.items():
        assert torch.equal(state[key], value), key


def test_whisper_loaded_without_its_random_init_has_the_checkpoints_weights(tmp_path):
    pytest.importorskip("whisper")
    from analyzers._speech.random_models import openai_whisper_checkpoint
    from analyzers._speech.whisper_backends import OpenAIWhisper

    path = openai_whisper_checkpoint(tmp_path / "tiny.pt")
    backend = OpenAIWhisper()
    backend.load(path, "cpu", None)
    saved = torch.load(path, map_location="cpu")["model_state_dict"]
    state = backend.model.state_dict()
    assert set(saved) == set(state)
    for key, value in saved.items():
        assert torch.equal(state[key], value), key
