"""`framework models pull`: resumable downloads from a local HTTP server (127.0.0.1 only), the
offline and unreachable-host errors, and what the lock records."""
from __future__ import annotations

import hashlib
import json
import os
import socket
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from framework.errors import EXIT_MODEL, ModelError
from framework.models.manifest import load_manifest
from framework.models.lockfile import ModelLock
from framework.models.roots import CacheRoots
from framework.models.download import download_url
from framework.models.pull import pull_models
from local_http import local_server

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves PAYLOAD at /weights.bin, honouring ``Range: bytes=N-`` unless the server says not to."""

    def do_GET(self):  # noqa: N802
        srv = self.server
        srv.requests.append({"path": self.path, "range": self.headers.get("Range")})
        if self.path != "/weights.bin":
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        if rng and srv.honour_range:
            start = int(rng.split("=")[1].rstrip("-"))
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.end_headers()
                return
            body = PAYLOAD[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            body = PAYLOAD
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server():
    with local_server(_Handler, requests=[], honour_range=True) as srv:
        yield srv


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


def _manifest(tmp_path, url: str, sha: str | None = SHA) -> Path:
    p = tmp_path / "models_manifest.yaml"
    checks = f'\n    checksums: {{weights.bin: "sha256:{sha}"}}' if sha else ""
    p.write_text(f"version: 1\nmodels:\n  test-weights:\n    source: url\n    locator: {url}\n"
                 f"    license: mit\n    task: test{checks}\n")
    return p


def _pull(*args, code=0):
    result = CliRunner().invoke(main, ["models", "pull", "--no-progress", *args])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


def test_url_pull_resumes_a_partial_download(tmp_path, server, online):
    url = f"http://127.0.0.1:{server.server_port}/weights.bin"
    target = CacheRoots.from_env().torch_checkpoints / "weights.bin"
    target.parent.mkdir(parents=True)
    part = target.with_name("weights.bin.part")
    part.write_bytes(PAYLOAD[:120_000])  # what an interrupted pull leaves
    out = _pull("test-weights", "--manifest", str(_manifest(tmp_path, url)), "--json")
    assert json.loads(out.stdout)[0]["status"] == "downloaded"
    assert server.requests == [{"path": "/weights.bin", "range": "bytes=120000-"}]
    assert target.read_bytes() == PAYLOAD and not part.exists()
    entry = ModelLock.load(CacheRoots.from_env()).get("test-weights")
    assert entry["files"]["weights.bin"] == {"size": len(PAYLOAD), "sha256": SHA,
                                             "mtime_ns": target.stat().st_mtime_ns}
    # pulled again: already cached, no request
    _pull("test-weights", "--manifest", str(_manifest(tmp_path, url)))
    assert len(server.requests) == 1


def test_server_ignoring_range_restarts_cleanly(tmp_path, server):
    server.honour_range = False
    dest = tmp_path / "cache" / "weights.bin"
    dest.parent.mkdir()
    (tmp_path / "cache" / "weights.bin.part").write_bytes(b"garbage that is not the start of the file")
    download_url(f"http://127.0.0.1:{server.server_port}/weights.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_is_finished_without_refetching(tmp_path, server):
    dest = tmp_path / "weights.bin"
    dest.with_name("weights.bin.part").write_bytes(PAYLOAD)
    download_url(f"http://127.0.0.1:{server.server_port}/weights.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD and server.requests[0]["range"] == f"bytes={len(PAYLOAD)}-"


def test_wrong_hash_fails_and_discards_the_part(tmp_path, server, online):
    url = f"http://127.0.0.1:{server.server_port}/weights.bin"
    result = _pull("test-weights", "--manifest", str(_manifest(tmp_path, url, sha="0" * 64)), code=EXIT_MODEL)
    assert "differs from the expected" in " ".join(result.output.split())
    ckpt = CacheRoots.from_env().torch_checkpoints
    assert not (ckpt / "weights.bin").exists() and not (ckpt / "weights.bin.part").exists()


def test_unreachable_host_is_one_clear_line(tmp_path, online):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _pull("test-weights", "--manifest", str(_manifest(tmp_path, f"http://127.0.0.1:{port}/weights.bin")),
                   code=EXIT_MODEL)
    text = " ".join(result.output.split())
    assert f"cannot reach 127.0.0.1:{port}" in text and "Traceback" not in text


def test_offline_fails_clearly_and_downloads_nothing(tmp_path, server, monkeypatch):
    url = f"http://127.0.0.1:{server.server_port}/weights.bin"
    # conftest sets HF_HUB_OFFLINE=1
    result = _pull("test-weights", "--manifest", str(_manifest(tmp_path, url)), code=EXIT_MODEL)
    assert "offline (HF_HUB_OFFLINE=1)" in " ".join(result.output.split())
    monkeypatch.delenv("HF_HUB_OFFLINE")
    result = _pull("test-weights", "--offline", "--manifest", str(_manifest(tmp_path, url)), code=EXIT_MODEL)
    assert "offline (--offline)" in " ".join(result.output.split())
    result = _pull("qwen2.5-0.5b-instruct", "--offline", code=EXIT_MODEL)
    assert "Qwen/Qwen2.5-0.5B-Instruct" in " ".join(result.output.split())
    assert server.requests == []


def test_a_held_download_lock_is_respected(tmp_path, server):
    from filelock import FileLock

    dest = tmp_path / "weights.bin"
    with FileLock(str(tmp_path / "weights.bin.lock")):
        with pytest.raises(ModelError, match="another process is downloading"):
            download_url(f"http://127.0.0.1:{server.server_port}/weights.bin", dest, progress=False)
    assert server.requests == []


def test_unknown_ids_and_usage_errors():
    _pull("no-such-model", code=EXIT_MODEL)
    assert "name model ids, or pass --enabled" in _pull(code=2).output


def test_pull_enabled_offline_reports_cached_and_missing(tmp_path):
    """--enabled asks the registry; a cached HF model passes offline, the missing one fails."""
    from test_models_cli import make_hf_repo

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "p.py").write_text(
        "from framework import Analyzer, hookimpl\n"
        "class A(Analyzer):\n    name = 'pull_fake_a'\n    models = ('smollm2-360m-instruct',)\n"
        "class B(Analyzer):\n    name = 'pull_fake_b'\n    models = ('qwen2.5-0.5b-instruct',)\n"
        "@hookimpl\ndef register_analyzers(register):\n    register(A)\n    register(B)\n")
    registry = tmp_path / "registry.yaml"
    registry.write_text("plugin_dirs: [plugins]\nanalyzers:\n  pull_fake_a: {}\n  pull_fake_b: {enabled: false}\n")
    make_hf_repo(CacheRoots.from_env().hf_hub, "HuggingFaceTB/SmolLM2-360M-Instruct", {"config.json": b"{}"},
                 commit=load_manifest()["smollm2-360m-instruct"].revision)  # the pinned commit is cached
    out = _pull("--enabled", "--registry", str(registry), "--json")
    assert [(r["id"], r["status"]) for r in json.loads(out.stdout)] == [("smollm2-360m-instruct", "cached")]
    registry.write_text("plugin_dirs: [plugins]\nanalyzers:\n  pull_fake_a: {}\n  pull_fake_b: {}\n")
    result = _pull("--enabled", "--registry", str(registry), code=EXIT_MODEL)
    assert "qwen2.5-0.5b-instruct" in result.output


def test_bundled_models_report_their_package(tmp_path, monkeypatch):
    # a package named as no installed one is: the real silero-vad is installed in this environment
    manifest = tmp_path / "models_manifest.yaml"
    manifest.write_text("version: 1\nmodels:\n  fake-vad:\n    source: bundled\n    locator: fake_bundled_vad\n"
                        "    paths: [data]\n    license: mit\n    task: voice-activity-detection\n")
    pkg = tmp_path / "pkgs" / "fake_bundled_vad"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    with pytest.raises(ModelError, match="pip install fake-bundled-vad|fake_bundled_vad"):  # no dist metadata
        pull_models(load_manifest(manifest), ["fake-vad"])
    info = tmp_path / "pkgs" / "fake_bundled_vad-6.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-bundled-vad\nVersion: 6.0.0\n")
    (info / "top_level.txt").write_text("fake_bundled_vad\n")
    import importlib

    importlib.invalidate_caches()
    [res] = pull_models(load_manifest(manifest), ["fake-vad"])
    assert res.status == "bundled" and res.detail == "fake_bundled_vad 6.0.0"


# --- Hugging Face through snapshot_download, against a minimal hub on 127.0.0.1 ------------------
def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _HubHandler(BaseHTTPRequestHandler):
    """The four endpoints snapshot_download uses: revision info, tree listing, HEAD and GET resolve."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_HEAD(self):  # noqa: N802
        self._serve(head=True)

    def do_GET(self):  # noqa: N802
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        hub, path = self.server, self.path.split("?")[0]
        hub.requests.append((self.command, path))
        rid, commit, files = hub.repo
        if path in (f"/api/models/{rid}/revision/main", f"/api/models/{rid}/revision/{commit}"):
            return self._send(200, json.dumps({"id": rid, "sha": commit,
                                               "siblings": [{"rfilename": n} for n in files]}).encode())
        if path == f"/api/models/{rid}/tree/{commit}":
            tree = [{"type": "file", "oid": _git_sha1(d), "size": len(d), "path": n,
                     **({"lfs": {"oid": hashlib.sha256(d).hexdigest(), "size": len(d), "pointerSize": 130}}
                        if len(d) > 1024 else {})} for n, d in files.items()]
            return self._send(200, json.dumps(tree).encode())
        prefix = f"/{rid}/resolve/{commit}/"
        if not path.startswith(prefix) or path[len(prefix):] not in files:
            return self._send(404, head=head)
        data = files[path[len(prefix):]]
        lfs = len(data) > 1024
        etag = hashlib.sha256(data).hexdigest() if lfs else _git_sha1(data)
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"'}
        if lfs:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        if head:
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return
        if lfs and hub.cut_after is not None:  # drop the connection mid-file
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:hub.cut_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(200, data, headers)


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # it was read at import, under conftest's =1
    pinned = load_manifest()["smollm2-360m-instruct"].revision  # the manifest's pin is what pull asks for
    repo = ("HuggingFaceTB/SmolLM2-360M-Instruct", pinned,
            {"config.json": b'{"model_type": "llama"}', "model.safetensors": os.urandom(200_000),
             "tf_model.h5": os.urandom(5_000)})
    with local_server(_HubHandler, repo=repo, requests=[], cut_after=None) as srv:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{srv.server_port}")
        yield srv


def test_hf_pull_through_snapshot_download(hub):
    rid, commit, files = hub.repo
    hub.cut_after = 50_000
    result = _pull("smollm2-360m-instruct", code=EXIT_MODEL)
    text = " ".join(result.output.split())
    assert f"cannot reach 127.0.0.1:{hub.server_port}" in text and "Traceback" not in text
    repo = CacheRoots.from_env().hf_hub / "models--HuggingFaceTB--SmolLM2-360M-Instruct"
    assert not list(repo.rglob("*.incomplete"))  # huggingface_hub 2.x removes its partial file
    listed = CliRunner().invoke(main, ["models", "list", "--json"])
    row = next(r for r in json.loads(listed.stdout)["models"] if r["id"] == "smollm2-360m-instruct")
    assert not row["cached"] and row["partial"]  # config.json arrived, model.safetensors did not

    hub.cut_after, hub.requests = None, []
    out = json.loads(_pull("smollm2-360m-instruct", "--json").stdout)
    assert out[0]["status"] == "downloaded"
    snapshot = repo / "snapshots" / commit
    assert (snapshot / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert not (snapshot / "tf_model.h5").exists()  # the manifest's ignore patterns
    assert ("GET", f"/{rid}/resolve/{commit}/tf_model.h5") not in hub.requests
    assert ("GET", f"/{rid}/resolve/{commit}/config.json") not in hub.requests  # kept from the first try
    entry = ModelLock.load(CacheRoots.from_env()).get("smollm2-360m-instruct")
    assert entry["revision"] == commit and set(entry["files"]) == {"config.json", "model.safetensors"}

    hub.requests = []  # pulled again: the locked commit is cached, nothing is asked of the hub
    assert json.loads(_pull("smollm2-360m-instruct", "--json").stdout)[0]["status"] == "cached"
    assert hub.requests == []
    verify = CliRunner().invoke(main, ["models", "verify", "smollm2-360m-instruct", "--json"])
    assert verify.exit_code == 0 and json.loads(verify.stdout)[0]["status"] == "ok"


def test_ultralytics_pull_checks_the_manifest_sha256(tmp_path, online, monkeypatch):
    """The release asset ultralytics fetched must match the manifest's SHA-256 (here: other bytes)."""
    import ultralytics.utils.downloads as ul_downloads

    def fake_release_download(file, **kwargs):  # stands in for github.com: writes other weights
        Path(file).write_bytes(b"not the v8.4.0 release asset")
        return str(file)

    monkeypatch.setattr(ul_downloads, "attempt_download_asset", fake_release_download)
    monkeypatch.chdir(tmp_path)  # ultralytics' default weights dir is ./weights
    result = _pull("yolov8n", code=EXIT_MODEL)
    assert "SHA-256 differs from the manifest's" in " ".join(result.output.split())
    assert ModelLock.load(CacheRoots.from_env()).get("yolov8n") is None  # nothing recorded as pulled
    assert not (CacheRoots.from_env().ultralytics_weights / "yolov8n.pt").exists()  # nor left to look cached


@pytest.mark.parametrize("offline", [False, True])
def test_a_bundled_model_whose_package_is_missing_says_what_to_install(tmp_path, offline):
    """Not `framework models pull`, which cannot help: the weights ship inside the package."""
    from framework.models import ModelResolver

    manifest = tmp_path / "models_manifest.yaml"
    manifest.write_text("version: 1\nmodels:\n  absent-vad:\n    source: bundled\n    locator: absent_bundled_vad\n"
                        "    paths: [data]\n    license: mit\n    task: voice-activity-detection\n")
    resolver = ModelResolver(load_manifest(manifest), offline=offline, progress=False)
    found, missing = resolver.resolve(["absent-vad"])
    assert found == {}
    why = missing["absent-vad"]
    assert "pip install absent-bundled-vad" in why and "models pull" not in why, why


def test_an_hf_host_whose_name_does_not_resolve_fails_at_once(monkeypatch):
    """A host name that does not resolve (no network, no DNS; ``.invalid`` never does) fails before
    huggingface_hub's retries (five, with pauses: about 23 s a model), with the same one clear line; with a
    proxy in the environment the name is the proxy's to resolve, and the download is tried."""
    import huggingface_hub
    import huggingface_hub.constants as hf_constants

    from framework.models.download import unresolvable

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    tried = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: tried.append(a) or 1 / 0)
    result = _pull("smollm2-360m-instruct", code=EXIT_MODEL)
    text = " ".join(result.output.split())
    assert "cannot reach hub.invalid" in text and "Traceback" not in text
    assert tried == []  # (not tried: no retries, no pauses)
    assert unresolvable("hub.invalid") is not None and unresolvable("localhost") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert unresolvable("hub.invalid") is None
