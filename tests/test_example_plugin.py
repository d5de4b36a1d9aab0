"""docs/examples/framework-blackframes, pip-installed (into a private folder, never the shared venv):
`framework analyzers list` discovers it through its entry point, enabling it in a registry runs
it, the fusion summary picks up its track, and the package's own tests pass.

The registry used is the one docs/writing-analyzers.md tells readers to write, and the package
is the one its blocks add up to (tests/test_docs.py checks that), so this also runs the tutorial.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from plugin_helpers import REPO, extract_files, framework_cli, pip_install_target, subprocess_env

from framework.testing.synth import AudioSegment, ShotSpec, make_video

EXAMPLE = REPO / "docs" / "examples" / "framework-blackframes"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The example installed with pip into ``<tmp>/site``, a test video, and the tutorial's registry."""
    root = tmp_path_factory.mktemp("example")
    site = pip_install_target(EXAMPLE, root / "site")
    # 0-2 s a still shot (frozen), a pan, then a fade through black at 4.5 s, in silence
    make_video(root / "clip.mp4", [ShotSpec(2.0, "static"), ShotSpec(2.5, "pan"),
                                   ShotSpec(3.5, "pan", transition="fade", transition_s=4.0)],
               audio=[AudioSegment(0.2, 3.5, "speech", freq=140.0), AudioSegment(5.5, 7.8, "tone")], text=None)
    tutorial = (REPO / "docs" / "writing-analyzers.md").read_text(encoding="utf-8")
    (root / "registry.yaml").write_text(extract_files(tutorial)["registry.yaml"])
    return root, site


def test_pip_install_writes_the_entry_point(installed):
    _, site = installed
    (info,) = site.glob("framework_blackframes-*.dist-info")
    assert "[framework]\nblackframes = framework_blackframes" in (info / "entry_points.txt").read_text()


def test_analyzers_list_discovers_it(installed, tmp_path):
    root, site = installed
    proc = framework_cli("analyzers", "list", "--json", env=subprocess_env(site), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (row,) = [r for r in json.loads(proc.stdout)["analyzers"] if r["name"] == "black_frozen"]
    assert row["distribution"] == "framework-blackframes"
    assert row["plugin"] == "blackframes (framework-blackframes)"
    assert row["available"] and row["description"].startswith("Black and frozen")


def test_a_registry_that_does_not_list_it_leaves_it_disabled(installed, monkeypatch, tmp_path):
    from framework.plugins import build_plugin_manager
    from framework.registry import load_registry

    _, site = installed
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("FRAMEWORK_LOAD_PLUGINS")
    try:
        host = build_plugin_manager()
        assert host.origin("black_frozen") == "plugin blackframes (distribution framework-blackframes)"
        reg = tmp_path / "registry.yaml"
        reg.write_text("analyzers:\n  cut_analysis: {}\n")
        enabled = {c.name: c.enabled for c in load_registry(reg).configure(host.analyzers)}
        assert enabled["black_frozen"] is False and enabled["cut_analysis"] is True
    finally:
        sys.modules.pop("framework_blackframes", None)


def test_enabled_in_the_registry_it_runs_and_fusion_picks_up_its_track(installed):
    root, site = installed
    proc = framework_cli("run", "clip.mp4", "--registry", "registry.yaml", "--json", env=subprocess_env(site),
                         cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tracks"]["black_frozen"]["status"] == "ok"
    results = json.loads((root / "runs" / "clip" / "results.json").read_text())

    track = results["tracks"]["black_frozen"]
    assert track["plugin"] == "blackframes" and track["params"]["min_duration"] == 0.5  # from the registry
    events = {e["label"]: e for e in track["events"]}
    assert sorted(events) == ["black", "frozen"]
    assert events["frozen"]["start"] == pytest.approx(0.0, abs=0.15)
    assert events["frozen"]["end"] == pytest.approx(2.0, abs=0.15)
    assert events["black"]["start"] < 4.5 < events["black"]["end"] and events["black"]["data"]["silent"] is True

    fusion = results["tracks"]["fusion"]
    assert fusion["status"] == "ok"
    assert "black_frozen" in fusion["data"]["fusion"]["tracks_used"]
    summary = fusion["data"]["summary"]
    assert "black_frozen: black" in summary["detailed"]  # the generic renderer's digest line
    cited = [ev for m in summary["key_moments"] for ev in m["evidence"] if ev["analyzer"] == "black_frozen"]
    assert any(ev["start"] <= 4.5 <= ev["end"] + 0.5 for ev in cited), summary["key_moments"]
    assert "black_frozen" in (root / "runs" / "clip" / "summary.md").read_text()


def test_the_example_package_own_tests_pass(installed, tmp_path):
    root, site = installed
    package = root / f"src-{EXAMPLE.name}"  # the copy pip built from (see pip_install_target)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=package, env=subprocess_env(site), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout
