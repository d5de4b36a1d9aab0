"""`framework models prune` never deletes what an enabled analyzer uses through another name:
a renamed Hugging Face repo holding the same commit, or two manifest entries on one repo or file."""
from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path

import pytest

from framework import hookimpl
from framework.models import ModelSpec, load_manifest
from framework.models.cache import scan_cache
from framework.models.manifest import Manifest, ManifestError
from framework.models.prune import plan_prune
from framework.models.roots import CacheRoots
from framework.models.usage import ModelUsage
from framework.plugins import build_plugin_manager
from test_models_cli import env, make_hf_repo, weights  # noqa: F401 - fixtures and the fake-cache builder


@pytest.mark.parametrize("used_first", [True, False])
def test_pruning_a_renamed_repo_keeps_the_used_repo_with_the_same_commit(env, monkeypatch, used_first):  # noqa: F811
    # huggingface_hub looks a commit up in every cached repo and takes the first that has it;
    # the scan's repos are put in a fixed order so that both orders are tried.
    import huggingface_hub

    real_scan = huggingface_hub.scan_cache_dir

    def ordered_scan(*args, **kwargs):
        info = real_scan(*args, **kwargs)
        return dataclasses.replace(info, repos=tuple(sorted(
            info.repos, key=lambda r: (r.repo_path != env.clip.resolve()) == used_first)))

    monkeypatch.setattr(huggingface_hub, "scan_cache_dir", ordered_scan)
    commit = (env.clip / "refs" / "main").read_text()
    renamed = make_hf_repo(env.hub, "someone/clip-renamed-copy",
                           {"config.json": b'{"copy": 1}', "model.safetensors": os.urandom(5_000)}, commit=commit)
    used_files = sorted(p for p in env.clip.rglob("*"))
    data = env.json("prune", "--include-unknown", "--yes")
    assert "someone/clip-renamed-copy" in data["removed"] and not renamed.exists()
    assert "clip-vit-base-patch32" not in data["removed"] and data["failed"] == []
    assert sorted(p for p in env.clip.rglob("*")) == used_files  # the used repo is untouched
    assert (env.clip / "snapshots" / commit / "model.safetensors").resolve().is_file()


def _manifest(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "models_manifest.yaml"
    p.write_text(textwrap.dedent(body))
    return p


@pytest.mark.parametrize("second", [["locator: ORG/Tiny-LM"], ["locator: org/other", "aliases: [org/tiny-lm]"]])
def test_two_manifest_entries_on_one_repo_are_rejected(tmp_path, second):
    fields = "".join(f"    {f}\n" for f in ["source: huggingface", *second, "license: mit", "task: text-generation"])
    path = tmp_path / "models_manifest.yaml"
    path.write_text("version: 1\nmodels:\n  tiny-lm:\n    source: huggingface\n    locator: org/tiny-lm\n"
                    "    license: mit\n    task: text-generation\n  tiny-lm-copy:\n" + fields)
    with pytest.raises(ManifestError) as exc:
        load_manifest(path)
    assert (f"{path}:8: model 'tiny-lm-copy' names the same Hugging Face repo org/tiny-lm as model 'tiny-lm' "
            f"({path}:3)") in str(exc.value)


def test_two_manifest_entries_on_one_cache_file_are_rejected(tmp_path):
    # ultralytics looks in the torch hub checkpoints folder too, where a url model is stored
    path = _manifest(tmp_path, """\
        version: 1
        models:
          det:
            source: ultralytics
            locator: det.pt
            license: agpl-3.0
            task: object-detection
          det-url:
            source: url
            locator: https://example.invalid/weights/det.pt
            license: mit
            task: object-detection
        """)
    with pytest.raises(ManifestError, match=r"models_manifest\.yaml:8: model 'det-url' names the same cache "
                                            r"file <torch_checkpoints>/det\.pt as model 'det' "
                                            r"\(.*models_manifest\.yaml:3\)"):
        load_manifest(path)


def test_a_plugin_entry_on_a_manifest_repo_is_rejected_naming_both():
    class Renamed:
        @hookimpl
        def register_models(self, register):
            register({"id": "my-clip", "source": "huggingface", "locator": "OpenAI/clip-vit-base-patch32",
                      "license": "mit", "task": "embedding"})

    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Renamed()])
    with pytest.raises(ManifestError, match=r"plugin Renamed-0.*: model 'my-clip' names the same Hugging Face repo "
                                            r"openai/clip-vit-base-patch32 as model 'clip-vit-base-patch32' "
                                            r"\(.*models_manifest\.yaml:\d+\)"):
        load_manifest(host=host)


def test_prune_keeps_an_entry_that_shares_files_with_one_in_use(tmp_path):
    # Two entries on one repo get past the loader only when built by hand: prune's second guard.
    roots = CacheRoots.from_env()
    repo = make_hf_repo(roots.hf_hub, "org/shared", {"config.json": b"{}", "model.safetensors": os.urandom(3_000)})
    specs = [ModelSpec(id=i, source="huggingface", locator=loc, license="mit", task="t")
             for i, loc in (("used", "org/shared"), ("unused", "ORG/Shared"))]
    manifest = Manifest(path=tmp_path / "m.yaml", models={s.id: s for s in specs})
    plan = plan_prune(manifest, scan_cache(manifest, roots), ModelUsage(enabled={"used": ["an_analyzer"]}))
    rows = {i.id: i for i in plan.items}
    assert rows["used"].action == "keep"
    assert rows["unused"].action == "keep" and f"shares {repo.resolve()} with used" in rows["unused"].reason
    assert plan.to_delete == []
