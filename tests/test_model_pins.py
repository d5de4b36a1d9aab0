"""`framework models check-pins` against a minimal hub on 127.0.0.1, and the manifest's pins themselves."""
from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler

import pytest
from click.testing import CliRunner

from cli import main
from framework.errors import EXIT_MODEL
from framework.models import load_manifest
from local_http import local_server


class _ApiHandler(BaseHTTPRequestHandler):
    """``/api/models/<repo>`` and ``/api/models/<repo>/revision/<rev>``, with the hub's error headers."""

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        hub, path = self.server, self.path.split("?")[0]
        hub.requests.append(path)
        m = re.fullmatch(r"/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?", path)
        repo = hub.repos.get(m["repo"]) if m else None
        if repo is None:
            return self._send(404, {"error": "Repository not found"}, "RepoNotFound")
        rev = m["rev"] or "main"
        sha = repo["main"] if rev == "main" else (rev if rev in repo["commits"] else None)
        if sha is None:
            return self._send(404, {"error": f"Invalid rev id: {rev}"}, "RevisionNotFound")
        self._send(200, {"id": m["repo"], "sha": sha, "siblings": []})

    def _send(self, status: int, body: dict, error_code: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        if error_code:
            self.send_header("X-Error-Code", error_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def api(monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # it was read at import, under conftest's =1
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with local_server(_ApiHandler, repos={}, requests=[]) as srv:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{srv.server_port}")
        yield srv


def _manifest(tmp_path, entries: dict[str, tuple[str, str | None]]):
    text = "version: 1\nmodels:\n"
    for mid, (repo, rev) in entries.items():
        text += (f"  {mid}:\n    source: huggingface\n    locator: {repo}\n    revision: {rev or 'null'}\n"
                 "    license: mit\n    task: test\n")
    text += "  a-whisper:\n    source: whisper\n    locator: tiny\n    license: mit\n    task: test\n"
    path = tmp_path / "models_manifest.yaml"
    path.write_text(text)
    return path


def _run(*args):
    return CliRunner().invoke(main, ["models", "check-pins", *args])


A, B, C = "a" * 40, "b" * 40, "c" * 40


def test_each_pin_is_checked_and_main_is_reported(tmp_path, api):
    api.repos = {"org/kept": {"main": A, "commits": {A}}, "org/moved": {"main": C, "commits": {B, C}},
                 "org/rewritten": {"main": C, "commits": {C}}, "org/open": {"main": B, "commits": {B}}}
    path = _manifest(tmp_path, {"kept": ("org/kept", A), "moved": ("org/moved", B),
                                "rewritten": ("org/rewritten", A), "open": ("org/open", None),
                                "gone": ("org/gone", A)})
    result = _run("--manifest", str(path), "--json")
    assert result.exit_code == EXIT_MODEL, result.output
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"kept", "moved", "rewritten", "open", "gone"}  # the whisper entry has no commit
    assert (rows["kept"]["status"], rows["kept"]["main_moved"]) == ("ok", False)
    assert (rows["moved"]["status"], rows["moved"]["main"], rows["moved"]["main_moved"]) == ("ok", C, True)
    assert rows["rewritten"]["status"] == "missing"
    assert (rows["open"]["status"], rows["open"]["main"]) == ("unpinned", B)
    assert rows["gone"]["status"] == "repo-missing"
    assert f"/api/models/org/moved/revision/{B}" in api.requests
    assert "rewritten, gone" in " ".join(result.stderr.split())


def test_all_pins_present_exits_zero_with_a_table(tmp_path, api):
    api.repos = {"org/kept": {"main": A, "commits": {A}}}
    result = _run("kept", "--manifest", str(_manifest(tmp_path, {"kept": ("org/kept", A)})))
    assert result.exit_code == 0, result.output
    assert "kept" in result.stdout and "ok" in result.stdout and "aaaaaaaaaaaa" in result.stdout


def test_offline_and_bad_ids_are_one_clear_line(tmp_path, api, monkeypatch):
    path = str(_manifest(tmp_path, {"kept": ("org/kept", A)}))
    for args, expected in ((["nope"], "unknown model id(s) nope"),
                           (["a-whisper"], "a-whisper: not Hugging Face models")):
        result = _run(*args, "--manifest", path)
        assert result.exit_code == EXIT_MODEL and "Traceback" not in result.output
        assert expected in " ".join(result.stderr.split())
    assert api.requests == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = _run("--manifest", path)
    assert result.exit_code == EXIT_MODEL
    assert "HF_HUB_OFFLINE=1 switches the network off" in " ".join(result.stderr.split())


def test_unreachable_hub_is_one_clear_line(tmp_path, monkeypatch):
    import socket

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    result = _run("--manifest", str(_manifest(tmp_path, {"kept": ("org/kept", A)})))
    assert result.exit_code == EXIT_MODEL, result.output
    assert f"cannot reach 127.0.0.1:{port} to check kept" in " ".join(result.stderr.split())


def test_shipped_pins_are_full_commits_and_distinct_per_repo():
    manifest = load_manifest()
    hf = [s for s in manifest.models.values() if s.source == "huggingface"]
    pinned = [s for s in hf if s.revision]
    assert len(pinned) >= 19
    assert all(re.fullmatch(r"[0-9a-f]{40}", s.revision) for s in pinned)
    by_commit: dict[str, set[str]] = {}
    for s in pinned:
        by_commit.setdefault(s.revision, set()).add(s.locator)
    assert all(len(repos) == 1 for repos in by_commit.values()), by_commit  # no pin copied across repos
