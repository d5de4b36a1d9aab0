"""`framework new-analyzer NAME`: the package it writes installs, is discovered, runs on a video,
and its own test passes; bad names and existing folders are refused with a clear message."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from plugin_helpers import framework_cli, pip_install_target, subprocess_env

from framework.scaffold import ScaffoldError, new_analyzer, plugin_names, suggest_name
from framework.testing.synth import ShotSpec, make_video


def test_names_derive_from_the_analyzer_name():
    n = plugin_names("scene_brightness")
    assert (n.name, n.dist, n.module, n.entry_point, n.cls) == (
        "scene_brightness", "framework-scene-brightness", "framework_scene_brightness",
        "scene_brightness", "SceneBrightness")


@pytest.mark.parametrize("bad, suggestion", [
    ("Scene Brightness", "scene_brightness"),
    ("sceneBrightness", "scene_brightness"),
    ("scene-brightness", "scene_brightness"),
    ("2pass", "my_2pass"),
    ("double__underscore", "double_underscore"),
    ("", None),
])
def test_bad_names_are_refused_with_a_suggestion(bad, suggestion, tmp_path):
    with pytest.raises(ScaffoldError) as info:
        new_analyzer(bad, tmp_path, check_installed=False)
    assert "not snake_case" in str(info.value) and info.value.exit_code == 2
    if suggestion:
        assert f"try: framework new-analyzer {suggestion}" in str(info.value)
        plugin_names(suggest_name(bad))  # the suggestion itself is valid
    assert list(tmp_path.iterdir()) == []


def test_other_unusable_names(tmp_path):
    for bad, why in [("framework_foo", "leave out the 'framework_' prefix"), ("class", "keyword"),
                     ("a" * 60, "characters long")]:
        with pytest.raises(ScaffoldError, match=why):
            new_analyzer(bad, tmp_path, check_installed=False)


def test_an_existing_folder_is_never_overwritten(tmp_path):
    folder = tmp_path / "framework-mine"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ScaffoldError, match="already exists"):
        new_analyzer("mine", tmp_path, check_installed=False)
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_a_name_an_installed_analyzer_uses_is_refused(tmp_path):
    from framework.plugins import build_plugin_manager

    taken = sorted(build_plugin_manager(load_entrypoints=False).analyzers)[0]  # a built-in analyzer
    with pytest.raises(ScaffoldError, match=f"an analyzer named '{taken}' is already installed"):
        new_analyzer(taken, tmp_path)


def test_the_generated_sources_compile_and_register(tmp_path):
    folder = new_analyzer("edge_density", tmp_path, check_installed=False)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        ".gitignore", "README.md", "pyproject.toml", "src/framework_edge_density/__init__.py",
        "tests/test_edge_density.py"]
    text = (folder / "pyproject.toml").read_text()
    assert 'name = "framework-edge-density"' in text
    assert '[project.entry-points.framework]\nedge_density = "framework_edge_density"' in text
    for path in folder.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
        assert "{{" not in path.read_text()


def test_cli_refuses_a_bad_name_with_exit_code_2(tmp_path):
    proc = framework_cli("new-analyzer", "Bad Name", "--dir", str(tmp_path), env=subprocess_env())
    assert proc.returncode == 2
    assert "try: framework new-analyzer bad_name" in " ".join(proc.stderr.split())
    assert list(tmp_path.iterdir()) == []


def test_scaffold_install_discover_test_and_run_on_a_generated_video(tmp_path):
    """The whole promise: scaffold, pip install, `analyzers list` finds it, its own test passes,
    and `framework run` runs it on a generated video."""
    env = subprocess_env(tmp_path / "site", COLUMNS="200")
    proc = framework_cli("new-analyzer", "scene_brightness", "--dir", str(tmp_path), env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    package = tmp_path / "framework-scene-brightness"
    assert f"created {package}/" in proc.stdout and "pip install -e" in proc.stdout

    pip_install_target(package, tmp_path / "site")

    listed = framework_cli("analyzers", "list", "--json", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (row,) = [r for r in json.loads(listed.stdout)["analyzers"] if r["name"] == "scene_brightness"]
    assert row["distribution"] == "framework-scene-brightness" and row["available"]

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=package,
                           env=env, capture_output=True, text=True, timeout=300)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout  # including the entry-point check, which needs the install

    make_video(tmp_path / "clip.mp4", [ShotSpec(1.5), ShotSpec(1.5, "pan")], audio=False)
    (tmp_path / "registry.yaml").write_text("analyzers:\n  scene_brightness:\n    params: {fps: 4}\n")
    run = framework_cli("run", "clip.mp4", "--registry", "registry.yaml", "--json", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["tracks"]["scene_brightness"]["status"] == "ok"
    results = json.loads((tmp_path / "runs" / "clip" / "results.json").read_text())
    track = results["tracks"]["scene_brightness"]
    assert track["plugin"] == "scene_brightness" and track["params"] == {"fps": 4.0, "dark_below": 0.1}
    assert len(track["series"][0]["times"]) == pytest.approx(3.0 * 4, abs=1)
