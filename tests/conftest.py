"""Shared fixtures: every test gets its own FRAMEWORK_HOME and model caches in tmp, no installed
plugin loads unless a test asks for it, and hubs are treated as offline."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

from framework.testing.synth import SynthTruth, default_shots, make_video


def isolate_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    """Point FRAMEWORK_HOME and every model cache at folders under ``home``; hubs offline; no
    installed plugin autoloads. Module- and session-scoped fixtures, which run before the per-test
    ``isolated_home``, call it with ``pytest.MonkeyPatch.context()``."""
    for var, sub in [("FRAMEWORK_HOME", "framework"), ("HF_HOME", "hf"), ("XDG_CACHE_HOME", "xdg"),
                     ("TORCH_HOME", "torch"), ("XDG_CONFIG_HOME", "config"), ("YOLO_CONFIG_DIR", "yolo")]:
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FRAMEWORK_LOAD_PLUGINS", "")  # no installed plugin autoloads under test
    monkeypatch.delenv("FRAMEWORK_TRACE_PLUGINS", raising=False)
    return home


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    yield isolate_home(monkeypatch, tmp_path_factory.mktemp("home"))


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_reaches_the_suite():
    """The suite tests what Ctrl-C does in a terminal. A shell without job control starts a
    background job (`.ci/run &`) with SIGINT ignored, which Python keeps, and which every process
    the suite starts inherits: the Ctrl-C tests would then fail for a reason that is not the code's.
    Handle SIGINT as Python does in the foreground for the session; a handled signal is reset to
    the default in the processes it starts, so they install their own handler too."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory) -> SynthTruth:
    """12 s, 320x180 @ 30 fps: hard cuts at frames 60, 120, 240; a fade at 6 s; a dissolve at 10 s;
    speech-like audio 0.2-5.4 s, silence, then a tone 7.2-11.8 s; a caption burned in."""
    path = tmp_path_factory.mktemp("media") / "sample.mp4"
    return make_video(path, default_shots(12.0))


@pytest.fixture
def video_factory(tmp_path):
    """Make a synthetic video in the test's tmp dir: ``video_factory("name.mp4", shots=..., ...)``."""

    def make(name: str = "clip.mp4", **kwargs) -> SynthTruth:
        return make_video(Path(tmp_path) / name, **kwargs)

    return make
