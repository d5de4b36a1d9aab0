from __future__ import annotations

import textwrap

import pytest

from framework import Analyzer
from framework.errors import ConfigError
from framework.plugins import build_plugin_manager
from framework.registry import RegistryError, find_registry, load_registry
from framework.testing.plugins import analyzers_plugin


class Thresholded(Analyzer):
    name = "thresholded"
    version = "1.0"

    class Params(Analyzer.Params):
        threshold: float = 0.5
        mode: str = "fast"


class Other(Analyzer):
    name = "other"


_Plugin = analyzers_plugin(Thresholded, Other)


def _available():
    return build_plugin_manager(load_entrypoints=False, extra_plugins=[_Plugin]).analyzers


def write(tmp_path, text: str):
    p = tmp_path / "registry.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_valid_registry_configures_params_and_enabled(tmp_path):
    reg = load_registry(write(tmp_path, """
        analyzers:
          thresholded:
            params: {threshold: 0.8}
          other: {enabled: false}
    """))
    configured = {c.name: c for c in reg.configure(_available())}
    assert configured["thresholded"].enabled
    assert configured["thresholded"].params.threshold == 0.8
    # analyzers not listed in a registry file are disabled
    assert not configured["other"].enabled
    reg = load_registry(write(tmp_path, "analyzers: {thresholded: {}}\n"))
    configured = {c.name: c for c in reg.configure(_available())}
    assert configured["thresholded"].enabled and not configured["other"].enabled


@pytest.mark.parametrize("key, value, default, bad", [("gpu_stream_priority", "high", "normal", "urgent"),
                                                      ("gpu_stream_priority", "low", "normal", "lowest"),
                                                      ("wait_for_video", True, False, "later"),
                                                      ("cpu_priority", "low", "normal", "idle"),
                                                      ("load_first", True, False, "soon")])
def test_an_entry_sets_a_scheduling_key_of_its_instance_only(tmp_path, key, value, default, bad):
    reg = load_registry(write(tmp_path, f"""
        analyzers:
          thresholded: {{{key}: {str(value).lower()}}}
          other: {{}}
    """))
    configured = {c.name: c for c in reg.configure(_available())}
    assert getattr(configured["thresholded"].instantiate(), key) == value
    assert getattr(configured["other"].instantiate(), key) == default  # the class's
    assert getattr(Thresholded, key) == default  # the class is left as it is
    with pytest.raises(RegistryError, match=key):
        load_registry(write(tmp_path, f"analyzers: {{thresholded: {{{key}: {bad}}}}}\n"))


def test_unknown_top_level_key_names_file_line_and_valid_keys(tmp_path):
    path = write(tmp_path, """
        analyzers: {}
        anlyzers:
          foo: {}
    """)
    with pytest.raises(RegistryError) as exc:
        load_registry(path)
    msg = str(exc.value)
    assert f"{path}:3: anlyzers: unknown key" in msg
    assert "valid top-level keys" in msg and "analyzers" in msg


def test_unknown_analyzer_lists_valid_names(tmp_path):
    path = write(tmp_path, """
        analyzers:
          thresholdd: {}
    """)
    reg = load_registry(path)
    with pytest.raises(RegistryError) as exc:
        reg.configure(_available())
    msg = str(exc.value)
    assert f"{path}:3: analyzers.thresholdd: unknown analyzer" in msg
    assert "thresholded" in msg


def test_bad_params_name_the_key_and_line(tmp_path):
    path = write(tmp_path, """
        analyzers:
          thresholded:
            params:
              threshold: "high"
              modee: slow
    """)
    with pytest.raises(RegistryError) as exc:
        load_registry(path).configure(_available())
    msg = str(exc.value)
    assert f"{path}:5: analyzers.thresholded.params.threshold:" in msg
    assert f"{path}:6: analyzers.thresholded.params.modee: unknown key" in msg


def test_configuring_some_analyzers_checks_only_their_params_but_every_name(tmp_path):
    """What ``--only other`` configures (``names``): ``other`` alone; a bad ``thresholded`` entry is
    not its business, but a name no plugin registered is still an error."""
    path = write(tmp_path, """
        analyzers:
          thresholded:
            params: {threshold: "high"}
          other: {}
    """)
    configured = load_registry(path).configure(_available(), names={"other"})
    assert [c.name for c in configured] == ["other"]
    with pytest.raises(RegistryError, match="threshold"):
        load_registry(path).configure(_available())  # all of them: the bad entry is reported
    path = write(tmp_path, """
        analyzers:
          other: {}
          othr: {}
    """)
    with pytest.raises(RegistryError, match="analyzers.othr: unknown analyzer"):
        load_registry(path).configure(_available(), names={"other"})


def test_invalid_yaml_names_line(tmp_path):
    path = write(tmp_path, "analyzers:\n  a: [1, 2\n")
    with pytest.raises(ConfigError) as exc:
        load_registry(path)
    assert str(path) in str(exc.value) and "invalid YAML" in str(exc.value)


def test_registry_error_is_a_config_error_with_exit_code_4(tmp_path):
    assert RegistryError("x").exit_code == 4


def test_no_registry_file_enables_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_registry() is None
    configured = {c.name: c for c in load_registry(None).configure(_available())}
    assert configured["thresholded"].enabled  # enabled_by_default


def test_explicit_missing_registry_is_an_error(tmp_path):
    with pytest.raises(RegistryError, match="registry file not found"):
        find_registry(tmp_path / "nope.yaml")


def test_plugin_dirs_are_relative_to_the_registry(tmp_path):
    reg = load_registry(write(tmp_path, "plugin_dirs: [plugins]\n"))
    assert reg.plugin_dirs == [(tmp_path / "plugins").resolve()]


def test_repo_registry_yaml_is_valid():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    reg = load_registry(repo / "registry.yaml")
    host = build_plugin_manager(reg.plugin_dirs, load_entrypoints=False)
    configured = reg.configure(host.analyzers)
    assert any(c.enabled for c in configured)
