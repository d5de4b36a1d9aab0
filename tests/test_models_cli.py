"""`framework models list | prune | verify` on fake caches in the real on-disk layouts.

The caches live in tmp (conftest points HF_HOME, XDG_CACHE_HOME, TORCH_HOME and FRAMEWORK_HOME
there; these tests add YOLO_CONFIG_DIR and EASYOCR_MODULE_PATH):

- Hugging Face: ``models--org--name/{blobs,refs,snapshots}``: blobs named by their SHA-256 (LFS) or
  git SHA-1, snapshot entries as relative symlinks into blobs, ``refs/main`` holding the commit;
  ``huggingface_hub.scan_cache_dir`` must parse it.
- ultralytics: a real ``.pt`` saved by ``YOLO('yolov8n.yaml').save`` (loads with ``YOLO(path)``).
- whisper: a real checkpoint (``dims`` + ``model_state_dict``) that ``whisper.load_model`` loads.
- EasyOCR: ``craft_mlt_25k.pth`` / ``english_g2.pth`` / ``latin_g2.pth`` torch files in ``model/``.

The analyzers come from a plugin folder named in registry.yaml, as a user's would.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from framework.errors import EXIT_CONFIG, EXIT_MODEL
from framework.models import load_manifest

# --- real-format weight files, built once per session in a subprocess ----------------------
_BUILD = r'''
import os, sys, torch
from pathlib import Path
out = Path(sys.argv[1])
from ultralytics import YOLO
YOLO("yolov8n.yaml").save(str(out / "yolov8.pt"))
YOLO(str(out / "yolov8.pt"))                       # the real loader reads it back
import whisper
from framework.models import load_manifest
from whisper.model import ModelDimensions, Whisper
dims = ModelDimensions(n_mels=80, n_audio_ctx=8, n_audio_state=8, n_audio_head=2, n_audio_layer=1,
                       n_vocab=51865, n_text_ctx=8, n_text_state=8, n_text_head=2, n_text_layer=1)
torch.save({"dims": dims.__dict__, "model_state_dict": Whisper(dims).state_dict()}, out / "whisper.pt")
whisper.load_model(str(out / "whisper.pt"), device="cpu")
torch.manual_seed(0)
for name in ("craft_mlt_25k.pth", "english_g2.pth", "latin_g2.pth"):
    torch.save({"conv.weight": torch.randn(8, 3, 3, 3)}, out / name)
print("built")
'''


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("weights")
    env = {**os.environ, "YOLO_CONFIG_DIR": str(out / "cfg"), "YOLO_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", _BUILD, str(out)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


# --- fake caches ----------------------------------------------------------------------------
def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_hf_repo(hub: Path, repo_id: str, files: dict[str, bytes], commit: str | None = None) -> Path:
    """A repo the way huggingface_hub's file_download lays it out, at ``commit`` (default: the
    manifest's pin for ``repo_id``, as a pull would fetch, else a made-up commit)."""
    from huggingface_hub.file_download import repo_folder_name

    repo = hub / repo_folder_name(repo_id=repo_id, repo_type="model")
    pins = {spec.locator: spec.revision for spec in load_manifest() if spec.source == "huggingface"}
    commit = commit or pins.get(repo_id) or hashlib.sha1(repo_id.encode()).hexdigest()
    for name, data in files.items():
        etag = hashlib.sha256(data).hexdigest() if len(data) > 1024 else git_sha1(data)  # LFS vs git blob
        blob = repo / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return repo


PLUGIN = '''
from framework import Analyzer, hookimpl

class ContentQuality(Analyzer):
    name = "fake_content_quality"
    models = ("clip-vit-base-patch32",)

class Composition(Analyzer):
    name = "fake_composition"
    models = ("clip-vit-base-patch32",)

class VideoLlava(Analyzer):
    name = "fake_video_llava"
    models = ("video-llava-7b",)

class ObjectDetection(Analyzer):
    name = "fake_object_detection"
    models = ("yolov8x",)

class BodyPose(Analyzer):
    name = "fake_body_pose"
    models = ("yolov8x-pose",)

class Speech(Analyzer):
    name = "fake_speech"
    class Params(Analyzer.Params):
        size: str = "base"
    def model_ids(self):
        return [f"whisper-{self.params.size}"]

class TextOverlay(Analyzer):
    name = "fake_text_overlay"
    models = ("easyocr-en",)

class SpeechRate(Analyzer):
    name = "fake_speech_rate"
    models = ("silero-vad",)

@hookimpl
def register_analyzers(register):
    for cls in (ContentQuality, Composition, VideoLlava, ObjectDetection, BodyPose, Speech, TextOverlay,
                SpeechRate):
        register(cls)
'''

REGISTRY = """\
plugin_dirs: [plugins]
analyzers:
  fake_content_quality: {}
  fake_composition: {enabled: false}
  fake_video_llava: {enabled: false}
  fake_object_detection: {}
  fake_body_pose: {enabled: false}
  fake_speech: {params: {size: small}}
  fake_text_overlay: {}
  fake_speech_rate: {}
"""


class Env:
    """The fake caches of one test and handles to their paths."""

    def __init__(self, root: Path, weights: Path, monkeypatch):
        self.root = root
        env = {k: Path(os.environ[k]) for k in ("HF_HOME", "XDG_CACHE_HOME", "TORCH_HOME", "FRAMEWORK_HOME")}
        self.hub = env["HF_HOME"] / "hub"
        self.torch_ckpt = env["TORCH_HOME"] / "hub" / "checkpoints"
        self.whisper = env["XDG_CACHE_HOME"] / "whisper"
        self.home = env["FRAMEWORK_HOME"]
        self.yolo_cfg = root / "yolo-config"
        self.weights_dir = root / "ultralytics-weights"
        self.easyocr = root / "easyocr" / "model"
        monkeypatch.setenv("YOLO_CONFIG_DIR", str(self.yolo_cfg))
        monkeypatch.setenv("EASYOCR_MODULE_PATH", str(self.easyocr.parent))
        (self.yolo_cfg / "Ultralytics").mkdir(parents=True)
        (self.yolo_cfg / "Ultralytics" / "settings.json").write_text(json.dumps({"weights_dir": str(self.weights_dir)}))
        # bundled: a package folder on sys.path, as site-packages holds silero_vad
        self.pkgs = root / "pkgs"
        (self.pkgs / "silero_vad" / "data").mkdir(parents=True)
        (self.pkgs / "silero_vad" / "__init__.py").write_text("")
        (self.pkgs / "silero_vad" / "data" / "silero_vad.jit").write_bytes(b"\x00" * 3000)
        monkeypatch.syspath_prepend(str(self.pkgs))
        # Hugging Face
        self.clip = make_hf_repo(self.hub, "openai/clip-vit-base-patch32",
                                 {"config.json": b'{"model_type": "clip"}', "model.safetensors": os.urandom(40_000)})
        self.llava = make_hf_repo(self.hub, "LanguageBind/Video-LLaVA-7B",
                                  {"config.json": b"{}", "pytorch_model.bin": os.urandom(60_000)})
        self.gpt2 = make_hf_repo(self.hub, "gpt2", {"config.json": b"{}", "model.safetensors": os.urandom(20_000)})
        self.unknown = make_hf_repo(self.hub, "someone/unknown-model", {"model.bin": os.urandom(30_000)})
        # ultralytics: weights dir, and the torch hub folder seed 004 found yolov8x-pose.pt in
        self.weights_dir.mkdir(parents=True)
        self.yolov8x = self.weights_dir / "yolov8x.pt"
        shutil.copy(weights / "yolov8.pt", self.yolov8x)
        self.torch_ckpt.mkdir(parents=True)
        self.pose = self.torch_ckpt / "yolov8x-pose.pt"
        shutil.copy(weights / "yolov8.pt", self.pose)
        # whisper
        self.whisper.mkdir(parents=True)
        self.whisper_base = self.whisper / "base.pt"
        shutil.copy(weights / "whisper.pt", self.whisper_base)
        # easyocr
        self.easyocr.mkdir(parents=True)
        for name in ("craft_mlt_25k.pth", "english_g2.pth", "latin_g2.pth"):
            shutil.copy(weights / name, self.easyocr / name)
        # registry + plugin folder
        (root / "plugins").mkdir()
        (root / "plugins" / "fake_models_plugin.py").write_text(PLUGIN)
        self.registry = root / "registry.yaml"
        self.registry.write_text(REGISTRY)

    def cli(self, *args: str, code: int = 0):
        extra = ["--registry", str(self.registry)] if args[0] in ("list", "pull", "prune") else []
        result = CliRunner().invoke(main, ["models", *args, *extra])
        assert result.exit_code == code, (result.exit_code, result.output, result.exception)
        return result

    def json(self, *args: str, code: int = 0):
        return json.loads(self.cli(*args, "--json", code=code).stdout)


@pytest.fixture
def env(tmp_path, weights, monkeypatch) -> Env:
    return Env(tmp_path, weights, monkeypatch)


def tree(*roots: Path) -> dict[str, tuple]:
    """Every path under ``roots``: files and links with size, mtime and target (links not followed)."""
    out = {}
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            for name in dirs + files:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                if os.path.isdir(p) and not os.path.islink(p):
                    out[p] = (st.st_mode,)  # a folder's mtime changes when an entry goes
                else:
                    out[p] = (st.st_mode, st.st_size, st.st_mtime_ns, os.readlink(p) if os.path.islink(p) else None)
    return out


def size(path: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(path) for f in fs
               if not os.path.islink(os.path.join(d, f))) if path.is_dir() else path.stat().st_size


EXPECTED_CANDIDATES = {"video-llava-7b", "gpt2", "yolov8x-pose", "whisper-base", "easyocr-latin"}


# --- list --------------------------------------------------------------------------------------
def test_fake_hf_cache_is_what_huggingface_hub_reads(env):
    from huggingface_hub import scan_cache_dir, snapshot_download

    info = scan_cache_dir(env.hub)
    assert not info.warnings
    assert {r.repo_id for r in info.repos} == {"openai/clip-vit-base-patch32", "LanguageBind/Video-LLaVA-7B",
                                               "gpt2", "someone/unknown-model"}
    path = snapshot_download("openai/clip-vit-base-patch32", cache_dir=env.hub, local_files_only=True)
    assert (Path(path) / "model.safetensors").is_file()


def test_list_reports_each_source(env):
    data = env.json("list")
    rows = {r["id"]: r for r in data["models"]}

    clip = rows["clip-vit-base-patch32"]
    assert clip["cached"] and clip["size_on_disk"] == size(env.clip)
    assert clip["enabled_analyzers"] == ["fake_content_quality"]
    assert clip["disabled_analyzers"] == ["fake_composition"]
    assert not clip["prunable"] and "enabled" in clip["prune_reason"]

    assert rows["video-llava-7b"]["disabled_analyzers"] == ["fake_video_llava"] and rows["video-llava-7b"]["prunable"]
    assert rows["gpt2"]["cached"] and rows["gpt2"]["paths"] == [str(env.gpt2)]  # found under its alias
    assert rows["yolov8x"]["size_on_disk"] == env.yolov8x.stat().st_size and not rows["yolov8x"]["prunable"]
    assert rows["yolov8x-pose"]["paths"] == [str(env.pose)] and rows["yolov8x-pose"]["prunable"]
    # params decide the model: the registry asks for whisper small, so the cached base is unused
    assert rows["whisper-small"]["enabled_analyzers"] == ["fake_speech"] and not rows["whisper-small"]["cached"]
    assert rows["whisper-base"]["cached"] and rows["whisper-base"]["prunable"]
    assert rows["whisper-base"]["size_on_disk"] == env.whisper_base.stat().st_size
    # EasyOCR: the language model is in use, and so is the detector it requires
    assert not rows["easyocr-en"]["prunable"] and not rows["easyocr-craft"]["prunable"]
    assert "required by easyocr-en" in rows["easyocr-craft"]["prune_reason"]
    assert rows["easyocr-latin"]["prunable"]
    # bundled: found inside the package, never prunable
    # (the test's stand-in package, 3000 bytes, or the real silero-vad where it is installed)
    assert rows["silero-vad"]["cached"] and rows["silero-vad"]["size_on_disk"] >= 3000
    assert not rows["silero-vad"]["prunable"] and "bundled" in rows["silero-vad"]["prune_reason"]
    assert not rows["qwen2-vl-7b-instruct"]["cached"] and rows["qwen2-vl-7b-instruct"]["size_on_disk"] == 0

    assert [u["repo_id"] for u in data["unknown"]] == ["someone/unknown-model"]
    assert data["unknown"][0]["size_on_disk"] == size(env.unknown)
    totals = data["totals"]
    assert totals["cached_bytes"] == sum(r["size_on_disk"] for r in rows.values())
    assert totals["reclaimable_bytes"] == sum(r["size_on_disk"] for r in rows.values() if r["prunable"])
    assert {i for i, r in rows.items() if r["prunable"]} == EXPECTED_CANDIDATES
    # 9 in the caches + silero-vad in its package + the bundled models of packages installed here
    # (rapidocr, mediapipe: their weights ship in their wheels)
    assert totals["cached"] == 10 + _installed_bundles(rows)
    assert Path(data["roots"]["ultralytics_weights"]) == env.weights_dir


def _installed_bundles(rows: dict) -> int:
    """Bundled models other than the test's silero-vad whose package is installed in this environment."""
    from framework.models import load_manifest

    manifest = load_manifest()
    return sum(1 for mid, r in rows.items()
               if mid != "silero-vad" and mid in manifest and manifest[mid].source == "bundled" and r["cached"])


def test_list_table_shows_totals_and_unknown_repos(env):
    out = env.cli("list", "--cached").stdout
    assert "clip-vit-base-patch32" in out and "fake_composition" in out
    assert "qwen2-vl-7b-instruct" not in out  # --cached
    n = 10 + _installed_bundles({r["id"]: r for r in env.json("list")["models"]})
    assert f"total ({n}/{n} cached)" in out and "reclaimable" in out
    assert "someone/unknown-model" in out


# --- prune -------------------------------------------------------------------------------------
def test_prune_dry_run_deletes_nothing(env):
    before = tree(env.root, env.hub.parent, env.torch_ckpt, env.whisper, env.home.parent)
    data = env.json("prune")
    assert data["dry_run"] and data["removed"] == [] and data["record"] is None
    assert {i["id"] for i in data["items"] if i["action"] == "delete"} == EXPECTED_CANDIDATES
    unknown = [i for i in data["items"] if i["kind"] == "unknown"]
    assert [(u["id"], u["action"]) for u in unknown] == [("someone/unknown-model", "listed")]
    text = env.cli("prune").stdout
    assert "dry run: nothing deleted" in text and "--yes" in text
    assert tree(env.root, env.hub.parent, env.torch_ckpt, env.whisper, env.home.parent) == before


def test_prune_yes_deletes_exactly_the_candidates(env):
    doomed = [env.llava, env.gpt2, env.pose, env.whisper_base, env.easyocr / "latin_g2.pth"]
    before = tree(env.root, env.hub, env.torch_ckpt, env.whisper)
    planned = env.json("prune")
    data = env.json("prune", "--yes")
    assert set(data["removed"]) == EXPECTED_CANDIDATES and data["failed"] == []
    for p in doomed:
        assert not p.exists() and not p.is_symlink(), p
    after = tree(env.root, env.hub, env.torch_ckpt, env.whisper)
    expected = {p: v for p, v in before.items() if not any(p == str(d) or p.startswith(str(d) + os.sep) for d in doomed)}
    assert after == expected  # nothing else changed: the shared CLIP, yolov8x, EasyOCR's detector, the unknown repo
    # the record: what was cached and what was removed, written under FRAMEWORK_HOME
    record = json.loads(Path(data["record"]).read_text())
    assert Path(data["record"]).parent == env.home / "prune-records"
    assert {c["id"] for c in record["cached"]} >= EXPECTED_CANDIDATES | {"clip-vit-base-patch32", "someone/unknown-model"}
    assert {r["id"] for r in record["removed"]} == EXPECTED_CANDIDATES and record["finished"]
    assert sum(r["size_bytes"] for r in record["removed"]) == planned["reclaimable_bytes"]
    # a second run has nothing left to delete
    assert env.json("prune", "--yes")["removed"] == []


def test_prune_removes_hf_repos_through_huggingface_hub(env, monkeypatch):
    from huggingface_hub.utils import _cache_manager

    executed = []
    real = _cache_manager.DeleteCacheStrategy.execute

    def spy(self):
        executed.append(self)
        return real(self)

    monkeypatch.setattr(_cache_manager.DeleteCacheStrategy, "execute", spy)
    env.json("prune", "--yes")
    assert {p for s in executed for p in s.repos} == {env.llava.resolve(), env.gpt2.resolve()}


def test_unknown_repos_only_with_include_unknown(env):
    env.json("prune", "--yes")
    assert env.unknown.exists()
    data = env.json("prune", "--include-unknown", "--yes")
    assert data["removed"] == ["someone/unknown-model"] and not env.unknown.exists()
    assert env.clip.exists()


def test_shared_model_kept_until_its_last_enabled_user_is_disabled(env):
    assert "clip-vit-base-patch32" not in env.json("prune")["removed"]
    assert env.json("prune", "--yes") and env.clip.exists()
    env.registry.write_text(REGISTRY.replace("fake_content_quality: {}", "fake_content_quality: {enabled: false}"))
    data = env.json("prune", "--yes")
    assert data["removed"] == ["clip-vit-base-patch32"] and not env.clip.exists()


def test_keep_option(env):
    data = env.json("prune", "--keep", "video-llava-7b", "--keep", "someone/unknown-model",
                    "--include-unknown", "--yes")
    assert set(data["removed"]) == EXPECTED_CANDIDATES - {"video-llava-7b"}
    assert env.llava.exists() and env.unknown.exists()
    env.cli("prune", "--keep", "no-such-model", code=EXIT_CONFIG)


def test_keep_by_repo_id(env):
    data = env.json("prune", "--keep", "LanguageBind/Video-LLaVA-7B")  # names the manifest model by its repo
    assert {i["id"]: i["action"] for i in data["items"]}["video-llava-7b"] == "keep"


def test_enabled_analyzer_with_unknown_model_blocks_prune(env):
    plugin = env.root / "plugins" / "fake_models_plugin.py"
    plugin.write_text(PLUGIN.replace('models = ("yolov8x",)', 'models = ("yolov9-imaginary",)'))
    before = tree(env.hub, env.weights_dir)
    result = env.cli("prune", "--yes", code=EXIT_CONFIG)
    assert "yolov9-imaginary" in " ".join(result.output.split())
    assert tree(env.hub, env.weights_dir) == before


# --- escapes and downloads in progress ------------------------------------------------------------
def test_symlink_and_dotdot_escapes_are_refused(env):
    victim_dir = env.root / "precious"
    victim_dir.mkdir()
    victim = victim_dir / "weights.bin"
    victim.write_bytes(b"do not delete" * 100)
    # an HF snapshot entry whose relative link climbs out of the cache with '..'
    blip = make_hf_repo(env.hub, "Salesforce/blip-image-captioning-base", {"config.json": b"{}"})
    snap = next((blip / "snapshots").iterdir())
    os.symlink(os.path.relpath(victim, snap), snap / "model.safetensors")
    assert ".." in os.readlink(snap / "model.safetensors")
    # an HF blob that is an absolute symlink to a file outside
    segf = make_hf_repo(env.hub, "nvidia/segformer-b0-finetuned-ade-512-512", {"config.json": b"{}"})
    blob = next((segf / "blobs").iterdir())
    blob.unlink()
    os.symlink(victim, blob)
    # an ultralytics weights file that is a symlink out of the weights folder
    os.symlink(victim, env.weights_dir / "yolov8l.pt")

    data = env.json("prune")
    rows = {i["id"]: i for i in data["items"]}
    for mid in ("blip-image-captioning-base", "segformer-b0-ade-512", "yolov8l"):
        assert rows[mid]["action"] == "refused", rows[mid]
        assert "outside the cache folder" in rows[mid]["reason"]
    data = env.json("prune", "--yes")
    assert set(data["removed"]) == EXPECTED_CANDIDATES
    assert victim.read_bytes() == b"do not delete" * 100
    assert (snap / "model.safetensors").is_symlink() and blob.is_symlink() and (env.weights_dir / "yolov8l.pt").is_symlink()


def test_models_with_downloads_in_progress_are_refused(env):
    from filelock import FileLock

    incomplete = env.llava / "blobs" / ("ab" * 32 + ".incomplete")
    incomplete.write_bytes(b"partial")
    lock_path = env.hub / ".locks" / env.gpt2.name / f"{'cd' * 32}.lock"
    lock_path.parent.mkdir(parents=True)
    held = FileLock(str(lock_path))
    held.acquire()
    try:
        (env.torch_ckpt / ".yolov8x-pose.pt.0123abcd.part").write_bytes(b"partial")  # ultralytics' partial name
        data = env.json("prune", "--yes")
        rows = {i["id"]: i for i in data["items"]}
        for mid in ("video-llava-7b", "gpt2", "yolov8x-pose"):
            assert rows[mid]["action"] == "refused" and "download in progress" in rows[mid]["reason"], rows[mid]
        assert set(data["removed"]) == {"whisper-base", "easyocr-latin"}
        assert env.llava.exists() and env.gpt2.exists() and env.pose.exists()
    finally:
        held.release()
    # released lock, but the .incomplete blob and the .part file remain: only gpt2 may go now
    assert env.json("prune", "--yes")["removed"] == ["gpt2"]


def test_deletion_refusal_guards():
    from framework.models.fsguard import deletion_refusal

    root = Path(os.environ["XDG_CACHE_HOME"]) / "whisper"
    root.mkdir(parents=True)
    (root / "base.pt").write_bytes(b"x")
    assert deletion_refusal(root / "base.pt", root) is None
    assert "'..'" in deletion_refusal(root / ".." / "whisper" / "base.pt", root)
    assert "outside" in deletion_refusal(root.parent / "other.pt", root)
    assert "cache folder itself" in deletion_refusal(root, root)
    import click  # a real installed package: its files live in site-packages

    pkg = Path(click.__file__).parent
    assert "Python packages folder" in deletion_refusal(pkg / "core.py", pkg.parent)


# --- verify ------------------------------------------------------------------------------------------
def test_verify_hashes(env):
    results = {r["id"]: r for r in env.json("verify", code=EXIT_MODEL)}
    assert results["clip-vit-base-patch32"]["status"] == "ok"
    assert any("2 file hash(es)" in c for c in results["clip-vit-base-patch32"]["checks"])
    # our whisper file is not OpenAI's checkpoint: the SHA-256 from whisper's URL must not match
    assert results["whisper-base"]["status"] == "failed"
    assert "manifest says" in results["whisper-base"]["problems"][0]
    assert results["easyocr-en"]["status"] == "failed"  # MD5 from easyocr's table
    # our yolov8x.pt is not ultralytics' release asset: the manifest's SHA-256 must not match
    assert results["yolov8x"]["status"] == "failed" and "manifest says" in results["yolov8x"]["problems"][0]
    assert results["yolov8x-pose"]["status"] == "unverified"  # no hash known until pull records one
    assert results["silero-vad"]["status"] == "ok"
    # a flipped byte in an HF blob is found
    blob = (env.clip / "snapshots").glob("*/model.safetensors").__next__().resolve()
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    res = env.json("verify", "clip-vit-base-patch32", code=EXIT_MODEL)[0]
    assert res["status"] == "failed" and "model.safetensors" in res["problems"][0]


def test_verify_against_lock_recorded_by_pull(env):
    from framework.models import load_manifest
    from framework.models.lockfile import ModelLock
    from framework.models.pull import pull_models

    # offline, an already cached model is not downloaded, but its revision and hashes are locked
    results = pull_models(load_manifest(), ["yolov8x-pose", "clip-vit-base-patch32"])
    assert [r.status for r in results] == ["cached", "cached"]
    lock = ModelLock.load(__import__("framework.models.roots", fromlist=["CacheRoots"]).CacheRoots.from_env())
    assert lock.get("clip-vit-base-patch32")["revision"] == load_manifest()["clip-vit-base-patch32"].revision
    assert lock.get("yolov8x-pose")["files"]["yolov8x-pose.pt"]["sha256"] == hashlib.sha256(env.pose.read_bytes()).hexdigest()
    ok = env.json("verify", "yolov8x-pose", "clip-vit-base-patch32")
    assert [r["status"] for r in ok] == ["ok", "ok"]
    with open(env.pose, "ab") as fh:
        fh.write(b"\0")
    bad = env.json("verify", "yolov8x-pose", code=EXIT_MODEL)[0]
    assert bad["status"] == "failed" and any("lock says" in p for p in bad["problems"])
    assert env.json("verify", "yolov8x-pose", "--sizes-only", code=EXIT_MODEL)[0]["status"] == "failed"


# --- the manifest file the CLI reads ----------------------------------------------------------------
def test_corrupt_manifest_names_file_and_line(env):
    bad = env.root / "bad_manifest.yaml"
    bad.write_text("version: 1\nmodels:\n  tiny:\n    source: huggingface\n    locator: a/b\n"
                   "    license: mit\n    task: x\n    sise_bytes: 3\n")
    result = env.cli("list", "--manifest", str(bad), code=EXIT_CONFIG)
    text = "".join(result.output.split())  # rich wraps long lines
    assert f"{bad}:8:" in text and "models.tiny.sise_bytes:unknownkey" in text
    bad.write_text("version: 1\nmodels:\n  tiny: [unclosed\n")
    text = "".join(env.cli("prune", "--yes", "--manifest", str(bad), code=EXIT_CONFIG).output.split())
    assert f"{bad}:4:invalidYAML" in text


def test_a_packages_version_is_found_without_reading_every_installed_distribution(monkeypatch):
    """``package_version``: the distribution named like the import package is asked first; every
    installed distribution's file list is read (once) only for names that differ (cv2)."""
    import importlib.metadata

    from framework.models import cache

    calls = []
    real = importlib.metadata.packages_distributions
    monkeypatch.setattr(importlib.metadata, "packages_distributions", lambda: calls.append(1) or real())
    cache._packages_distributions.cache_clear()
    try:
        assert cache.package_version("rapidocr_onnxruntime") == importlib.metadata.version("rapidocr_onnxruntime")
        assert cache.package_version("silero_vad") == importlib.metadata.version("silero-vad")
        assert calls == []  # found by name
        cv2_version = cache.package_version("cv2")
        assert cv2_version in {importlib.metadata.version(d) for d in real()["cv2"]}  # opencv-python's
        assert cache.package_version("no_such_package_here") is None
        assert len(calls) == 1  # read once for both
    finally:
        cache._packages_distributions.cache_clear()
