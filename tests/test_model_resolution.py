"""The one model-resolution path: the runner resolves manifest ids to local paths and revisions,
tracks record the revisions, the resume key includes them, `--offline` never downloads, and a
missing model is fetched on first use through `framework models pull`'s code. Also the rows of
`framework models list` and the missing-model column of `framework analyzers list`."""
from __future__ import annotations

import hashlib
import json
import os
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from framework import Analyzer
from framework.inventory import analyzer_inventory
from framework.models import ModelResolver, find_model, load_manifest
from framework.models.listing import model_listing, open_models
from framework.models.lockfile import ModelLock
from framework.devices import GPUs
from framework.models.roots import CacheRoots
from framework.plugins import build_plugin_manager
from framework.runner import analyze
from framework.testing.plugins import analyzers_plugin
from local_http import local_server

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40
PAYLOAD = os.urandom(200_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Weights(BaseHTTPRequestHandler):
    """Serves PAYLOAD at /weights.bin and records every request."""

    def do_GET(self):  # noqa: N802
        self.server.requests.append(self.path)
        if self.path != "/weights.bin":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    with local_server(_Weights, requests=[]) as srv:
        yield srv


class UsesModel(Analyzer):
    """Records what the runner handed to load(); its track says which file it read."""

    name = "t_uses_model"
    version = "1.0"
    models = ("tiny-hf",)
    loads: list = []

    def load(self, device, models):
        UsesModel.loads.append(dict(models))

    def analyze(self, inputs):
        folder = UsesModel.loads[-1][self.models[0]]
        text = (folder / "config.json").read_text() if folder.is_dir() else folder.read_bytes()[:8].hex()
        return self.track(data={"read": text})


class UsesFile(UsesModel):
    name = "t_uses_file"
    models = ("test-weights",)


_Plugin = analyzers_plugin(UsesModel, UsesFile)


def _manifest(tmp_path: Path, url: str = "http://127.0.0.1:9/weights.bin", sha: str | None = SHA) -> Path:
    p = tmp_path / "models_manifest.yaml"
    checks = f'\n    checksums: {{weights.bin: "sha256:{sha}"}}' if sha else ""
    p.write_text("version: 1\nmodels:\n"
                 "  tiny-hf:\n    source: huggingface\n    locator: org/tiny\n    revision: null\n"
                 "    license: mit\n    task: test\n"
                 f"  test-weights:\n    source: url\n    locator: {url}\n    size_bytes: {len(PAYLOAD)}\n"
                 f"    license: mit\n    task: test{checks}\n")
    return p


def _snapshot(commit: str, text: str) -> Path:
    """A Hugging Face cache entry for org/tiny at ``commit``, which refs/main points to."""
    repo = CacheRoots.from_env().hf_hub / "models--org--tiny"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (snap / "config.json").write_text(text)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap


def _registry(tmp_path: Path, name: str) -> Path:
    p = tmp_path / "registry.yaml"
    p.write_text(f"analyzers:\n  {name}:\n    enabled: true\n")
    return p


def _run(video, tmp_path, name, **kwargs):
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[_Plugin])
    res = analyze(video, registry_path=_registry(tmp_path, name), host=host, out_dir=tmp_path / "run",
                  progress=False, **kwargs)
    return res.timeline.tracks[name], res


# --- revisions in tracks and in the resume key -------------------------------------------------
def test_a_changed_hf_revision_invalidates_the_resumed_track(tmp_path, sample_video, monkeypatch):
    monkeypatch.setenv("FRAMEWORK_MANIFEST", str(_manifest(tmp_path)))
    snap_a = _snapshot(COMMIT_A, '{"weights": "A"}')
    UsesModel.loads = []
    track, _ = _run(sample_video.path, tmp_path, "t_uses_model")
    assert track.status == "ok", track.reason
    assert [(m.id, m.revision) for m in track.models] == [("tiny-hf", COMMIT_A)]
    assert UsesModel.loads == [{"tiny-hf": snap_a}] and track.data["read"] == '{"weights": "A"}'

    track, res = _run(sample_video.path, tmp_path, "t_uses_model")  # same weights: reused
    assert res.reused == ["t_uses_model"] and len(UsesModel.loads) == 1

    snap_b = _snapshot(COMMIT_B, '{"weights": "B"}')  # the cache now holds newer weights
    track, res = _run(sample_video.path, tmp_path, "t_uses_model")
    assert res.reused == [] and UsesModel.loads[-1] == {"tiny-hf": snap_b}
    assert track.models[0].revision == COMMIT_B and track.data["read"] == '{"weights": "B"}'


def test_a_replaced_weights_file_invalidates_the_resumed_track(tmp_path, sample_video, monkeypatch):
    monkeypatch.setenv("FRAMEWORK_MANIFEST", str(_manifest(tmp_path, sha=None)))
    weights = CacheRoots.from_env().torch_checkpoints / "weights.bin"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"first weights")
    track, _ = _run(sample_video.path, tmp_path, "t_uses_file")
    first = hashlib.sha256(b"first weights").hexdigest()
    assert track.status == "ok" and track.models[0].revision == f"sha256:{first}"
    _, res = _run(sample_video.path, tmp_path, "t_uses_file")
    assert res.reused == ["t_uses_file"]
    weights.write_bytes(b"other weights, same name")
    track, res = _run(sample_video.path, tmp_path, "t_uses_file")
    assert res.reused == [] and track.models[0].revision == "sha256:" + hashlib.sha256(
        b"other weights, same name").hexdigest()


# --- offline never downloads ------------------------------------------------------------------
@pytest.mark.parametrize("how", ["--offline", "HF_HUB_OFFLINE=1"])
def test_offline_never_downloads_and_the_track_says_how_to_pull(how, tmp_path, sample_video, server, monkeypatch):
    url = f"http://127.0.0.1:{server.server_port}/weights.bin"
    monkeypatch.setenv("FRAMEWORK_MANIFEST", str(_manifest(tmp_path, url)))
    if how == "--offline":
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    track, _ = _run(sample_video.path, tmp_path, "t_uses_file", offline=how == "--offline")
    assert track.status == "skipped"
    assert "`framework models pull test-weights`" in track.reason and how.split("=")[0] in track.reason
    assert track.models[0].revision is None
    assert server.requests == []  # no connection was made
    assert not (CacheRoots.from_env().torch_checkpoints / "weights.bin").exists()


def test_run_offline_flag_on_the_command_line(tmp_path, sample_video, server, monkeypatch):
    url = f"http://127.0.0.1:{server.server_port}/weights.bin"
    monkeypatch.setenv("FRAMEWORK_MANIFEST", str(_manifest(tmp_path, url)))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "uses_file.py").write_text(
        "from framework import Analyzer, hookimpl\n\n"
        "class UsesFile(Analyzer):\n    name = 't_cli_file'\n    models = ('test-weights',)\n\n"
        "    def analyze(self, inputs):\n        return self.track()\n\n"
        "@hookimpl\ndef register_analyzers(register):\n    register(UsesFile)\n")
    reg = tmp_path / "registry.yaml"
    reg.write_text("plugin_dirs: [plugins]\nanalyzers:\n  t_cli_file: {enabled: true}\n")
    result = CliRunner().invoke(main, ["run", str(sample_video.path), "--registry", str(reg), "--offline",
                                       "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    track = json.loads(result.stdout)["tracks"]["t_cli_file"]
    assert track["status"] == "skipped" and "framework models pull test-weights" in track["reason"]
    assert server.requests == []


# --- online: fetched on first use through pull's code -----------------------------------------
def test_a_missing_model_is_fetched_on_first_use(tmp_path, sample_video, server, monkeypatch, caplog):
    url = f"http://127.0.0.1:{server.server_port}/weights.bin"
    monkeypatch.setenv("FRAMEWORK_MANIFEST", str(_manifest(tmp_path, url)))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with caplog.at_level("INFO", logger="framework.models"):
        track, _ = _run(sample_video.path, tmp_path, "t_uses_file")
    assert track.status == "ok", track.reason
    assert server.requests == ["/weights.bin"]
    target = CacheRoots.from_env().torch_checkpoints / "weights.bin"
    assert target.read_bytes() == PAYLOAD and track.data["read"] == PAYLOAD[:8].hex()
    assert track.models[0].revision == f"sha256:{SHA}"
    assert "downloading model test-weights (~200 kB" in caplog.text  # its size, announced
    assert ModelLock.load(CacheRoots.from_env()).get("test-weights")["files"]["weights.bin"]["sha256"] == SHA
    track, res = _run(sample_video.path, tmp_path, "t_uses_file")  # cached now: no second request
    assert res.reused == ["t_uses_file"] and server.requests == ["/weights.bin"]


def test_a_failed_first_use_download_skips_with_the_pull_command(tmp_path, sample_video, server, monkeypatch):
    url = f"http://127.0.0.1:{server.server_port}/missing.bin"
    monkeypatch.setenv("FRAMEWORK_MANIFEST", str(_manifest(tmp_path, url, sha=None)))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    track, _ = _run(sample_video.path, tmp_path, "t_uses_file")
    assert track.status == "skipped" and "HTTP 404" in track.reason
    assert "`framework models pull test-weights`" in track.reason and server.requests == ["/missing.bin"]


def test_resolver_resolves_each_model_once_and_reports_unknown_ids(tmp_path, monkeypatch):
    manifest = load_manifest(_manifest(tmp_path))
    snap = _snapshot(COMMIT_A, "{}")
    resolver = ModelResolver(manifest, offline=True)
    found, missing = resolver.resolve(["tiny-hf", "test-weights", "nope"])
    assert found["tiny-hf"].path == snap and found["tiny-hf"].revision == COMMIT_A
    assert "framework models pull test-weights" in missing["test-weights"]
    assert "'nope' is not in" in missing["nope"]
    assert find_model(manifest["test-weights"]) is None


# --- `framework models list` rows come from the framework ---------------------------------------
def test_models_list_json_is_the_framework_listing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manifest = _manifest(tmp_path)
    _snapshot(COMMIT_A, "{}")
    listing = model_listing(open_models(None, manifest))
    rows = {r["id"]: r for r in listing.rows}
    assert rows["tiny-hf"]["cached"] and not rows["test-weights"]["cached"]
    assert rows["tiny-hf"]["origin"].startswith(f"{manifest}:")
    result = CliRunner().invoke(main, ["models", "list", "--manifest", str(manifest), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["models"] == json.loads(json.dumps(listing.rows, default=str))


# --- `framework analyzers list` names the missing models ----------------------------------------
def test_analyzers_list_names_missing_models(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMEWORK_MANIFEST", str(_manifest(tmp_path, sha=None)))
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "uses.py").write_text(
        "from framework import Analyzer, hookimpl\n\n"
        "class Uses(Analyzer):\n    name = 't_inv'\n    models = ('test-weights',)\n\n"
        "    def analyze(self, inputs):\n        return self.track()\n\n"
        "@hookimpl\ndef register_analyzers(register):\n    register(Uses)\n")
    reg = tmp_path / "registry.yaml"
    reg.write_text("plugin_dirs: [plugins]\nanalyzers:\n  t_inv: {enabled: true}\n")
    rows = {r["name"]: r for r in analyzer_inventory(reg)[0]}
    assert rows["t_inv"]["models_missing"] == ["test-weights"] and not rows["t_inv"]["can_run"]
    assert "framework models pull test-weights" in rows["t_inv"]["run_note"]
    assert rows["cut_analysis"]["can_run"] and rows["cut_analysis"]["run_note"] == "yes"
    result = CliRunner().invoke(main, ["analyzers", "list", "--registry", str(reg)], env={"COLUMNS": "400"})
    assert "framework models pull test-weights" in result.output
    weights = CacheRoots.from_env().torch_checkpoints / "weights.bin"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"w")
    rows = {r["name"]: r for r in analyzer_inventory(reg)[0]}
    assert rows["t_inv"]["models_missing"] == [] and rows["t_inv"]["can_run"] and rows["t_inv"]["run_note"] == "yes"


def test_only_models_of_planned_analyzers_are_fetched_and_the_total_is_announced(tmp_path, sample_video, server,
                                                                                 monkeypatch, caplog):
    """On a machine without a GPU a 20 GB VLM is left out by the plan: its model is never
    downloaded, while the small planned model is, after one line announcing the total."""
    url = f"http://127.0.0.1:{server.server_port}/weights.bin"
    manifest = _manifest(tmp_path, url)
    manifest.write_text(manifest.read_text() + (
        f"  huge-vlm:\n    source: url\n    locator: http://127.0.0.1:{server.server_port}/huge.bin\n"
        "    size_bytes: 20000000000\n    vram_gb: {bf16: 20.0}\n    license: mit\n    task: test\n"))
    monkeypatch.setenv("FRAMEWORK_MANIFEST", str(manifest))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True: GPUs())  # no GPU

    class HugeVlm(UsesModel):
        name = "t_huge_vlm"
        device = "gpu"
        models = ("huge-vlm",)

    Plugin = analyzers_plugin(UsesFile, HugeVlm)

    registry = tmp_path / "registry.yaml"
    registry.write_text("analyzers:\n  t_uses_file: {}\n  t_huge_vlm: {}\n")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Plugin])
    with caplog.at_level("INFO"):
        res = analyze(sample_video.path, registry_path=registry, host=host, out_dir=tmp_path / "run", progress=False)
    assert server.requests == ["/weights.bin"]  # never /huge.bin
    assert res.timeline.tracks["t_uses_file"].status == "ok"
    huge = res.timeline.tracks["t_huge_vlm"]
    assert huge.status == "skipped" and "needs a GPU" in huge.reason and "device: cpu" in huge.reason
    assert "fetching 1 model(s) the plan will run, about 200 kB in all: test-weights" in caplog.text
