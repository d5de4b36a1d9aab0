"""models_manifest.yaml: the shipped file's content, validation errors with file and line, the
analyzer-declared model ids, and where each source's cache is found."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from framework import Analyzer
from framework.models.manifest import ManifestError, load_manifest
from framework.models.usage import model_usage
from framework.models.roots import CacheRoots
from framework.plugins import build_plugin_manager
from framework.registry import load_registry
from framework.testing.plugins import analyzers_plugin

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def manifest():
    return load_manifest(REPO / "models_manifest.yaml")


# --- the shipped manifest ------------------------------------------------------------------
SEED_004 = {  # every model seed 004 names, active and disabled, by where it comes from
    "Qwen/Qwen2-VL-7B-Instruct", "yolov8x.pt", "yolov8s.pt", "english_g2.pth", "craft_mlt_25k.pth", "base",
    "openai/whisper-base", "nvidia/segformer-b0-finetuned-ade-512-512", "openai/clip-vit-base-patch32",
    "ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition", "mediapipe", "LanguageBind/Video-LLaVA-7B",
    "Salesforce/blip2-opt-2.7b", "Salesforce/blip-image-captioning-base", "yolov8x-pose.pt", "silero_vad",
    "https://github.com/isl-org/MiDaS/releases/download/v2_1/midas_v21_small_256.pt",
    "https://github.com/serengil/deepface_models/releases/download/v1.0/age_model_weights.h5",
}


def test_shipped_manifest_covers_the_seeds(manifest):
    locators = {s.locator for s in manifest}
    assert SEED_004 <= locators, SEED_004 - locators
    # MTCNN (facenet-pytorch), FER and DeepFace do not install beside our torch, or need TensorFlow:
    # their replacements stay findable by the seed's names
    for seed_name in ("MTCNN", "FER", "DeepFace"):
        assert any(seed_name in (s.description or "") for s in manifest), seed_name
    for mid in ("mediapipe-face-detection", "vit-face-expression", "vit-age-classifier"):
        assert mid in manifest, mid
    for mid in ("qwen2-vl-2b-instruct", "qwen2-vl-7b-instruct", "smolvlm2-256m-video-instruct",
                "smolvlm2-2.2b-instruct", "llava-next-video-7b", "llava-next-video-genai-ft",
                "whisper-tiny", "whisper-base", "whisper-small", "whisper-medium", "whisper-large-v3", "whisper-turbo",
                "yolov8n", "yolov8s", "yolov8m", "yolov8l", "yolov8x", "yolov8x-pose",
                "easyocr-en", "easyocr-craft", "rapidocr-ppocrv4", "silero-vad", "mediapipe-face-mesh"):
        assert mid in manifest, mid
    assert manifest["llava-next-video-genai-ft"].locator == "sm47466863/LLaVa-NeXT-Video-GENAI-FT-Project"
    assert manifest["llava-next-video-genai-ft"].requires == ("llava-next-video-7b",)


def test_summary_llm_ids_the_fusion_step_uses(manifest):
    expected = {"qwen2.5-1.5b-instruct": "Qwen/Qwen2.5-1.5B-Instruct", "qwen2.5-0.5b-instruct": "Qwen/Qwen2.5-0.5B-Instruct",
                "smollm2-360m-instruct": "HuggingFaceTB/SmolLM2-360M-Instruct",
                "smollm2-1.7b-instruct": "HuggingFaceTB/SmolLM2-1.7B-Instruct"}
    for mid, repo in expected.items():
        assert manifest[mid].source == "huggingface" and manifest[mid].locator == repo
        assert manifest[mid].instruction_tuned is True
    assert "default" in manifest["qwen2.5-1.5b-instruct"].tags
    for mid in ("dialogpt-medium", "gpt2"):
        assert manifest[mid].instruction_tuned is False


def test_every_entry_has_the_required_facts(manifest):
    for spec in manifest:
        assert spec.license and spec.task, spec.id
        if spec.source == "huggingface":
            # a pin is a full commit (taken from public code, see the manifest's notes), or null
            assert spec.pin_status == ("pinned" if spec.revision else "unverified"), spec.id
            assert spec.revision is None or re.fullmatch(r"[0-9a-f]{40}", spec.revision), spec.id
        if spec.source == "whisper":  # the SHA-256 embedded in whisper's download URL
            assert list(spec.checksums) == [spec.filename] and spec.checksums[spec.filename].startswith("sha256:")
        if spec.source not in ("bundled",) and spec.id != "llava-next-video-genai-ft":
            assert spec.size_bytes and spec.vram_gb, spec.id
    assert manifest["clip-vit-base-patch32"].vram_mb() == pytest.approx(0.5 * 1024)  # fp16 by default
    assert manifest["clip-vit-base-patch32"].vram_mb("fp32") == pytest.approx(0.9 * 1024)
    assert manifest["qwen2-vl-7b-instruct"].vram_mb("int4") == pytest.approx(6 * 1024)


def test_whisper_checksums_match_the_installed_whisper_urls(manifest):
    whisper_init = Path(__import__("importlib").util.find_spec("whisper").origin).read_text()
    for spec in manifest:
        if spec.source == "whisper":
            digest = spec.checksums[spec.filename].split(":")[1]
            assert f"{digest}/{spec.filename}" in whisper_init, spec.id


# --- analyzers name manifest ids ---------------------------------------------------------------
def test_builtin_analyzers_name_only_manifest_ids(manifest):
    """With default params and with the params of the shipped registry.yaml."""
    host = build_plugin_manager(load_entrypoints=False)
    for registry in (load_registry(None), load_registry(REPO / "registry.yaml")):
        usage = model_usage(registry.configure(host.analyzers), manifest)
        assert usage.unknown == [] and usage.failures == [], usage.problems()


class _Bad(Analyzer):
    name = "bad_models"
    models = ("clip-vit-base-patch32", "no-such-model")


def test_an_unknown_model_id_is_reported(manifest):
    Plugin = analyzers_plugin(_Bad)

    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Plugin])
    usage = model_usage(load_registry(None).configure(host.analyzers), manifest)
    assert usage.unknown == [("bad_models", "no-such-model")]
    assert "no-such-model" in usage.problems()[0]
    assert usage.enabled["clip-vit-base-patch32"] == ["bad_models"]


# --- validation errors name file and line ---------------------------------------------------------
def _write(tmp_path, body: str) -> Path:
    p = tmp_path / "models_manifest.yaml"
    p.write_text(textwrap.dedent(body))
    return p


GOOD = """\
version: 1
models:
  tiny-lm:
    source: huggingface
    locator: org/tiny-lm
    license: mit
    task: text-generation
"""


@pytest.mark.parametrize("patch, line, needle", [
    (("    task: text-generation\n", "    task: text-generation\n    colour: blue\n"), 8, "models.tiny-lm.colour: unknown key"),
    (("    license: mit\n", "    license: mit\n    size_bytes: lots\n"), 7, "size_bytes"),
    (("    locator: org/tiny-lm\n", "    locator: org/tiny-lm\n    revision: main\n"), 3, "not a 40-hex commit"),
    (("source: huggingface", "source: ftp"), 4, "source"),
    (("version: 1\n", "version: 1\ncolour: 2\n"), 2, "colour: unknown key"),
    (("  tiny-lm:\n", "  Tiny_LM:\n"), 3, "lowercase slug"),
    (("    task: text-generation\n", "    task: text-generation\n    requires: [ghost]\n"), 8, "unknown model id 'ghost'"),
    (("    task: text-generation\n", "    task: text-generation\n    vram_gb: {fp4: 3}\n"), 8, "vram_gb.fp4"),
    (("    task: text-generation\n", "    task: text-generation\n  tiny-lm:\n    source: url\n"), 8, "duplicate key"),
])
def test_manifest_errors_name_file_and_line(tmp_path, patch, line, needle):
    path = _write(tmp_path, GOOD.replace(*patch, 1))
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert f"{path}:{line}:" in str(err.value) and needle in str(err.value), str(err.value)


@pytest.mark.parametrize("entry, needle, line", [
    ("source: ultralytics\n    locator: ../../precious.pt", "plain file name", 3),
    ("source: easyocr\n    locator: model/../../x.pth", "plain file name", 3),
    ("source: url\n    locator: https://example.org/a/..", "plain file name", 3),
    ("source: url\n    locator: file:///etc/passwd", "http(s) URL", 3),
    ("source: bundled\n    locator: silero_vad\n    paths: [../../outside]", "without '..'", 3),
    ("source: bundled\n    locator: silero_vad\n    paths: [/abs/path]", "without '..'", 3),
    ("source: huggingface\n    locator: ../evil", "Hugging Face repo id", 3),
    ("source: whisper\n    locator: base\n    checksums: {base.pt: 'sha256:abc'}", "sha256:<64 hex>", 6),
    ("source: whisper\n    locator: base\n    checksums: {../base.pt: 'md5:" + "0" * 32 + "'}", "plain file name", 6),
])
def test_escapes_in_the_manifest_are_rejected(tmp_path, entry, needle, line):
    path = _write(tmp_path, f"version: 1\nmodels:\n  m:\n    {entry}\n    license: mit\n    task: t\n")
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert f"{path}:{line}:" in str(err.value) and needle in str(err.value), str(err.value)


def test_yaml_syntax_error_names_line(tmp_path):
    path = _write(tmp_path, GOOD + "  broken: [unclosed\n")
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert f"{path}:" in str(err.value) and "invalid YAML" in str(err.value)
    with pytest.raises(ManifestError, match="file not found"):
        load_manifest(tmp_path / "missing.yaml")


# --- cache locations ----------------------------------------------------------------------------------
def test_cache_roots_follow_each_librarys_variables(tmp_path, monkeypatch):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TORCH_HOME", "EASYOCR_MODULE_PATH", "MODULE_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo"))
    r = CacheRoots.from_env()
    assert r.hf_hub == tmp_path / "xdg" / "huggingface" / "hub"
    assert r.torch_checkpoints == tmp_path / "xdg" / "torch" / "hub" / "checkpoints"
    assert r.whisper == tmp_path / "xdg" / "whisper"
    assert r.easyocr == tmp_path / "home" / ".EasyOCR" / "model"
    assert r.ultralytics_weights == Path.cwd() / "weights"  # ultralytics' default without a settings file
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MODULE_PATH", str(tmp_path / "mp"))
    r = CacheRoots.from_env()
    assert r.hf_hub == tmp_path / "hfhome" / "hub"
    assert r.torch_checkpoints == tmp_path / "torch" / "hub" / "checkpoints"
    assert r.easyocr == tmp_path / "mp" / "model"
    monkeypatch.setenv("HF_HUB_CACHE", "~/hubcache")
    monkeypatch.setenv("EASYOCR_MODULE_PATH", str(tmp_path / "ez"))
    monkeypatch.setenv("FRAMEWORK_HOME", str(tmp_path / "fw"))
    (tmp_path / "yolo" / "Ultralytics").mkdir(parents=True)
    (tmp_path / "yolo" / "Ultralytics" / "settings.json").write_text(json.dumps({"weights_dir": str(tmp_path / "w")}))
    r = CacheRoots.from_env()
    assert r.hf_hub == tmp_path / "home" / "hubcache"
    assert r.easyocr == tmp_path / "ez" / "model"
    assert r.ultralytics_weights == tmp_path / "w"
    assert r.framework_home == tmp_path / "fw"


@pytest.mark.slow
def test_cache_roots_agree_with_the_libraries(tmp_path):
    """Ask huggingface_hub, torch and ultralytics themselves (in a fresh process) where they cache."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "XDG_CACHE_HOME": str(tmp_path / "xdg"),
           "TORCH_HOME": str(tmp_path / "torch"), "YOLO_CONFIG_DIR": str(tmp_path / "yolo")}
    env.pop("HF_HUB_CACHE", None)
    code = ("import json, huggingface_hub.constants as c, torch.hub\n"
            "from ultralytics.utils import SETTINGS\n"
            "print(json.dumps([c.HF_HUB_CACHE, torch.hub.get_dir(), SETTINGS['weights_dir']]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    hf, torch_dir, weights = json.loads(out.stdout.strip().splitlines()[-1])
    roots = CacheRoots.from_env(env)
    assert roots.hf_hub == Path(hf)
    assert roots.torch_checkpoints == Path(torch_dir) / "checkpoints"
    assert roots.ultralytics_weights == Path(weights).absolute()  # read from the settings.json it wrote
