"""The ``openai`` backend of ``qwen2_vl_temporal`` against a real server process serving a tiny model.

``tests/vlm_server.py`` runs in its own process (uvicorn + FastAPI, a tiny Qwen2-VL); it logs what
each request carried. The tests check that every chunk's frames arrived as images, each after a
``Frame at N s:`` line with the time of the frame it is (its colour matches the video's frame at
that time), and that context mode sends the earlier answers.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from vlm_fixtures import tiny_vlm  # noqa: F401  (a fixture)

from framework.runner import analyze
from framework.testing.synth import ShotSpec, make_video

TESTS = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_vlm, tmp_path_factory):
    """The server process on a free port; yields (base_url, log file)."""
    log = tmp_path_factory.mktemp("vlm_server") / "requests.jsonl"
    port = _free_port()
    env = {**os.environ, "VLM_SERVER_MODEL": str(tiny_vlm("qwen2-vl")), "VLM_SERVER_LOG": str(log),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "vlm_server:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], cwd=TESTS, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    import httpx

    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the VLM server exited: {proc.stdout.read().decode(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{base}/models", timeout=1.0).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the VLM server did not start within 180 s")
        time.sleep(0.3)
    try:
        yield base, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """9 s, three 3 s shots of different looks (so each frame's colour says which shot it is from)."""
    shots = [ShotSpec(3.0, look=0), ShotSpec(3.0, look=1), ShotSpec(3.0, look=2)]
    return make_video(tmp_path_factory.mktemp("vlm_ep") / "clip.mp4", shots, fps=10.0, width=160, height=90,
                      audio=False, text=None)


def _run(video, folder: Path, params: dict):
    registry = folder / "registry.yaml"
    registry.write_text(yaml.safe_dump({"analyzers": {"qwen2_vl_temporal": {"enabled": True, "params": params}}}))
    res = analyze(video, registry_path=registry, out_dir=folder / "run", progress=False, load_entrypoints=False)
    return res.timeline.tracks["qwen2_vl_temporal"]


def _requests(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _frame_at(video: Path, t: float, width: int, height: int) -> np.ndarray:
    """The video's frame shown at ``t`` seconds, scaled like the decode pass scales it."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        best = None
        for frame in container.decode(stream):
            if float(frame.time) <= t + 1e-6:
                best = frame
            else:
                break
        return best.reformat(width=width, height=height, format="rgb24").to_ndarray()


def test_frames_and_their_times_reach_the_server(server, clip, tmp_path):
    base, log = server
    before = len(_requests(log))
    track = _run(clip.path, tmp_path, {"backend": "openai", "base_url": base, "api_model": "tiny-qwen2-vl",
                                       "chunking": "fixed", "chunk_s": 3.0, "fps": 2.0, "frames_per_chunk": 4,
                                       "frame_width": 160, "max_new_tokens": 6, "batch_size": 3})
    assert track.status == "ok", track.reason
    received = _requests(log)[before:]
    assert len(received) == len(track.events) == 3
    assert track.models == [] and track.data["backend"] == "openai" and track.data["family"] == "openai"
    by_answer = {r["answer"].split(":")[0]: r for r in received}  # "answer N: ..." numbers each request
    for event in track.events:
        req = by_answer[event.data["text"].split(":")[0]]  # the request this event's answer came from
        times = event.data["frame_times"]
        frame_lines = [t for t in req["texts"] if t.startswith("Frame at ")]
        assert frame_lines == [f"Frame at {t:.1f} s:" for t in times]
        assert len(req["images"]) == len(times) == 4 and req["max_tokens"] == 6
        assert all(event.start <= t < event.end for t in times)
        assert f"runs from {event.start:.1f} s to {event.end:.1f} s" in req["texts"][0]
        for t, image in zip(times, req["images"]):
            assert image["size"] == [160, 90]
            expected = _frame_at(clip.path, t, 160, 90).reshape(-1, 3).mean(0)
            assert np.abs(np.array(image["mean"]) - expected).max() < 6.0, (t, image["mean"], expected)


def test_context_sends_the_earlier_answers(server, clip, tmp_path):
    base, log = server
    before = len(_requests(log))
    track = _run(clip.path, tmp_path, {"backend": "openai", "base_url": base, "api_model": "tiny-qwen2-vl",
                                       "chunking": "fixed", "chunk_s": 4.5, "fps": 1.0, "frame_width": 64,
                                       "max_new_tokens": 4, "context": True})
    assert track.status == "ok", track.reason
    first, second = _requests(log)[before:]
    assert "What happened before" not in first["texts"][-1]
    assert "What happened before" in second["texts"][-1]
    assert track.events[0].data["text"] in second["texts"][-1]  # the first description, as the analyzer kept it
    assert [e.data["context_items"] for e in track.events] == [0, 1]


def test_an_unreachable_server_is_a_skip(clip, tmp_path):
    track = _run(clip.path, tmp_path, {"backend": "openai", "base_url": f"http://127.0.0.1:{_free_port()}/v1"})
    assert track.status == "skipped" and "cannot reach the VLM server" in track.reason
