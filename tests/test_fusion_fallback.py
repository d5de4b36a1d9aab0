"""Every way an LLM backend can fail to start or stop mid-way gives an ``ok`` fusion track with
an extractive summary, the reason in ``data["llm_fallback_reason"]`` and a note in the summary;
never a failed fusion track (unless ``fallback_to_extractive: false`` asks for it)."""
from __future__ import annotations

import json
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from analyzers.fusion import Fusion
from analyzers.fusion.synthetic import synthetic_timeline
from framework import AnalyzerInputs
from framework.llm import LLMError, LLMUnavailable
from framework.testing.llm import ScriptedLLM, backend_plugin
from framework.plugins import build_plugin_manager
from framework.runner import call_analyzer
from framework.summary import Summary
from local_http import local_server

CHUNK_ANSWER = json.dumps({"summary": "people talk by a river", "chapters": [], "key_moments": []})


def _fuse(params: dict, *backends: type[ScriptedLLM], duration: float = 60.0):
    """Run fusion through the runner's call wrapper (load, analyze, unload), as a run does."""
    tl = synthetic_timeline(duration, seed=1)
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[backend_plugin(*backends)] if backends else [])
    inputs = AnalyzerInputs(video=tl.video, upstream=dict(tl.tracks), host=host)
    return call_analyzer(Fusion(params), inputs, "cpu", host)


def _assert_fell_back(track, *fragments: str) -> str:
    assert track.status == "ok", track.reason
    summary = Summary.from_track(track)
    assert summary.extractive and summary.backend == "extractive"
    reason = track.data["llm_fallback_reason"]
    assert reason, "no fallback reason recorded"
    for fragment in fragments:
        assert fragment in reason, (fragment, reason)
    assert any(fragments[0] in note and "this summary is extractive" in note for note in summary.notes)
    assert summary.chapters and summary.title
    return reason


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the socket is: connections are refused


# --- the backend cannot start ------------------------------------------------------------------
def test_a_backend_whose_package_is_missing_falls_back():
    missing = ModuleNotFoundError("No module named 'llama_cpp'", name="llama_cpp")
    llm = ScriptedLLM.scripted("{}", name="llamacpp", load_error=missing)
    reason = _assert_fell_back(_fuse({"backend": "llamacpp"}, llm), "llama_cpp", "install")
    assert reason.startswith("the llamacpp backend could not start")
    assert llm.calls == []


def test_the_openai_backend_without_httpx_falls_back(monkeypatch):
    monkeypatch.setitem(sys.modules, "httpx", None)  # `import httpx` raises ImportError
    with pytest.raises(ImportError):
        import httpx  # noqa: F401
    track = _fuse({"backend": "openai", "base_url": f"http://127.0.0.1:{_closed_port()}/v1"})
    _assert_fell_back(track, "httpx", "pip install")


def test_a_server_that_refuses_connections_falls_back():
    port = _closed_port()
    track = _fuse({"backend": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
                   "backend_options": {"connect_timeout_s": 2}})
    _assert_fell_back(track, f"cannot reach the OpenAI-compatible server at http://127.0.0.1:{port}/v1")


def test_an_unknown_backend_falls_back_naming_the_registered_ones():
    reason = _assert_fell_back(_fuse({"backend": "nope"}), "unknown LLM backend 'nope'")
    assert "extractive, openai, transformers" in reason


def test_a_repo_id_that_the_manifest_does_not_list_falls_back_with_what_to_do():
    fusion = Fusion({"backend": "transformers", "model": "someone/their-chat-model"})
    assert fusion.model_ids() == []  # nothing for the runner to resolve
    reason = _assert_fell_back(_fuse({"backend": "transformers", "model": "someone/their-chat-model"}),
                               "'someone/their-chat-model' is a Hugging Face repo id")
    assert "register_models" in reason and "local folder" in reason


def test_a_model_folder_that_fails_to_load_falls_back(tmp_path):
    folder = tmp_path / "broken-chat-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen2", "hidden_size": ')  # cut off mid-write
    reason = _assert_fell_back(_fuse({"backend": "transformers", "model": str(folder),
                                      "backend_options": {"device": "cpu"}}), "config.json")
    assert reason.startswith("the transformers backend could not start")


def test_fallback_off_skips_an_unavailable_backend_and_fails_a_broken_one():
    track = _fuse({"backend": "openai", "base_url": f"http://127.0.0.1:{_closed_port()}/v1",
                   "fallback_to_extractive": False})
    assert track.status == "skipped" and "cannot reach" in track.reason and "llm_fallback_reason" not in track.data
    unavailable = ScriptedLLM.scripted("{}", name="away", load_error=LLMUnavailable("server is down; start it"))
    track = _fuse({"backend": "away", "fallback_to_extractive": False}, unavailable)
    assert track.status != "ok" and "server is down" in track.reason  # a plugin's backend opens in analyze()
    broken = ScriptedLLM.scripted("{}", name="broken", load_error=ModuleNotFoundError("No module named 'x'", name="x"))
    track = _fuse({"backend": "broken", "fallback_to_extractive": False}, broken)
    assert track.status == "failed" and "ModuleNotFoundError" in track.reason


# --- the backend stops answering mid-way -------------------------------------------------------
MAP_REDUCE = {"token_budget": 700, "chunk_new_tokens": 64, "max_new_tokens": 64}


def test_an_llm_that_errors_mid_way_falls_back_and_says_after_how_many_calls():
    llm = ScriptedLLM.scripted(CHUNK_ANSWER, name="flaky", fail_at=2)
    track = _fuse({"backend": "flaky", **MAP_REDUCE}, llm, duration=600.0)
    reason = _assert_fell_back(track, "call 2 fails as scripted")
    assert reason.startswith("the flaky backend failed after 2 of ~")
    assert track.data["fusion"]["mode"] == "extractive-fallback" and track.data["fusion"]["calls"] == 2
    assert len(llm.calls) == 3  # two answered, the third raised


def test_any_exception_from_generate_falls_back():
    def out_of_memory(call):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    llm = ScriptedLLM.scripted(out_of_memory, name="oom")
    reason = _assert_fell_back(_fuse({"backend": "oom"}, llm), "RuntimeError: CUDA out of memory")
    assert "failed after 0 of" in reason


def test_a_bug_in_fusions_own_code_fails_the_track_instead_of_falling_back(monkeypatch):
    """Only the backend's failures fall back: an error in fusion's own reading of the answers is a
    failed track with its traceback, not an extractive summary that hides it."""
    import analyzers.fusion.summarize as summarize

    def broken(text):
        raise TypeError("read_answer() broke")

    monkeypatch.setattr(summarize, "read_answer", broken)
    llm = ScriptedLLM.scripted(CHUNK_ANSWER, name="fine")
    track = _fuse({"backend": "fine"}, llm)
    assert track.status == "failed" and track.failed_phase == "analyze"
    assert "TypeError: read_answer() broke" in track.reason
    assert len(llm.calls) >= 1  # the backend answered; fusion's own code failed


class _FlakyServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible server whose ``answers`` run out: then it answers ``fail_status``."""

    def log_message(self, *args):  # keep the test output clean
        pass

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send(200, {"data": [{"id": "tiny"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posts += 1
        if self.server.posts <= self.server.answers:
            self._send(200, {"choices": [{"message": {"role": "assistant", "content": CHUNK_ANSWER}}]})
        else:
            self._send(self.server.fail_status, {"error": {"message": "the model crashed"}})


@pytest.mark.parametrize("status, fragment", [(500, "answered HTTP 500"), (401, "refused the request (HTTP 401)")])
def test_a_server_that_breaks_mid_run_falls_back(status, fragment):
    with local_server(_FlakyServer, posts=0, answers=2, fail_status=status) as srv:
        url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
        # one request at a time, so that "the third request fails" is the third prompt
        track = _fuse({"backend": "openai", "base_url": url, "model": "tiny", **MAP_REDUCE,
                       "backend_options": {"concurrency": 1}}, duration=600.0)
        assert srv.posts == 3
    reason = _assert_fell_back(track, fragment)
    assert "failed after 2 of ~" in reason


def test_a_run_records_the_reason_in_results_and_the_summary_page(tmp_path):
    from framework.runner import analyze
    from framework.testing.synth import make_audio_only

    audio = make_audio_only(tmp_path / "talk.m4a", duration=3.0)
    reg = tmp_path / "registry.yaml"
    reg.write_text("analyzers:\n  audio_analysis: {enabled: true}\n  fusion:\n    enabled: true\n"
                   f"    params: {{backend: openai, base_url: 'http://127.0.0.1:{_closed_port()}/v1'}}\n")
    res = analyze(audio, registry_path=reg, out_dir=tmp_path / "run", progress=False, load_entrypoints=False)
    track = res.timeline.tracks["fusion"]
    _assert_fell_back(track, "cannot reach")
    saved = json.loads(Path(tmp_path / "run" / "results.json").read_text())
    assert "cannot reach" in saved["tracks"]["fusion"]["data"]["llm_fallback_reason"]
    assert "could not run (cannot reach" in (tmp_path / "run" / "summary.md").read_text()


class _EchoServer(_FlakyServer):
    """Answers each chat with its last message upper-cased after ``delay`` s (HTTP 500 for "fail"),
    counting the requests it holds at once."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        text = body["messages"][-1]["content"]
        with self.server.lock:
            self.server.active += 1
            self.server.most = max(self.server.most, self.server.active)
        time.sleep(self.server.delay)
        with self.server.lock:
            self.server.active -= 1
        if text == "fail":
            self._send(500, {"error": {"message": "no"}})
        else:
            self._send(200, {"choices": [{"message": {"role": "assistant", "content": text.upper()}}]})


def test_the_openai_backend_sends_independent_prompts_side_by_side():
    import threading

    from framework.llm.openai_backend import OpenAIBackend

    with local_server(_EchoServer, lock=threading.Lock(), active=0, most=0, delay=0.3) as srv:
        url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
        backend = OpenAIBackend({"base_url": url, "concurrency": 3})
        chats = [[{"role": "user", "content": c}] for c in "abcdef"]
        assert backend.generate_many(chats, max_new_tokens=8) == list("ABCDEF")  # in order
        assert srv.most == 3  # never more than `concurrency` at once, and that many
        with pytest.raises(LLMError, match="HTTP 500") as err:
            backend.generate_many([[{"role": "user", "content": c}] for c in ("a", "b", "fail", "d")], 8)
        assert err.value.partial_answers == ["A", "B"]  # answered in order before the failure
        srv.most = 0
        one = OpenAIBackend({"base_url": url, "concurrency": 1})
        assert one.generate_many(chats[:3], max_new_tokens=8) == ["A", "B", "C"] and srv.most == 1
        backend.close()
        one.close()
