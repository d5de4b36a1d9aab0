"""`framework report` loads the registry's plugin_dirs, so a folder plugin's exporter re-renders too."""
from __future__ import annotations

import textwrap

from click.testing import CliRunner

from cli import main
from test_outputs import build_timeline

EXPORTER = textwrap.dedent('''
    from framework import hookimpl
    from framework.outputs import Exporter


    class ShotList(Exporter):
        """One line per shot event: start and end in seconds."""

        name = "shot_list"
        filenames = ("shots.txt",)

        def export(self, timeline, run_dir, context):
            path = run_dir / "shots.txt"
            shots = [e for t in timeline.tracks.values() for e in t.events if e.label == "shot"]
            path.write_text("".join(f"{e.start:.2f} {e.end:.2f}\\n" for e in shots), encoding="utf-8")
            return [path]


    @hookimpl
    def register_exporters(register):
        register(ShotList)
    ''')


def _run_folder_and_plugin(tmp_path, sample_video):
    timeline = build_timeline(sample_video)
    run = tmp_path / "run"
    timeline.write(run / "results.json")
    plugins = tmp_path / "project" / "my_plugins"
    plugins.mkdir(parents=True)
    (plugins / "shot_list.py").write_text(EXPORTER, encoding="utf-8")
    registry = tmp_path / "project" / "registry.yaml"
    registry.write_text("plugin_dirs: [my_plugins]\n")  # relative to the registry file
    return timeline, run, registry


def test_report_runs_the_exporters_of_the_registry_plugin_dirs(tmp_path, sample_video):
    timeline, run, registry = _run_folder_and_plugin(tmp_path, sample_video)
    result = CliRunner().invoke(main, ["report", str(run / "results.json"), "--registry", str(registry)])
    assert result.exit_code == 0, result.output
    shots = [e for e in timeline.tracks["cut_analysis"].events if e.label == "shot"]
    lines = (run / "shots.txt").read_text().splitlines()
    assert lines == [f"{e.start:.2f} {e.end:.2f}" for e in shots] and len(lines) == 6
    assert "shots.txt" in result.output


def test_report_finds_registry_yaml_in_the_working_folder(tmp_path, sample_video, monkeypatch):
    _, run, registry = _run_folder_and_plugin(tmp_path, sample_video)
    monkeypatch.chdir(registry.parent)  # ./registry.yaml, as `framework run` finds it
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "shots.txt").is_file()


def test_report_without_the_registry_writes_only_the_built_in_outputs(tmp_path, sample_video, monkeypatch):
    _, run, _ = _run_folder_and_plugin(tmp_path, sample_video)
    monkeypatch.chdir(tmp_path)  # no registry.yaml here, none in FRAMEWORK_HOME
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "report.html").is_file() and not (run / "shots.txt").exists()


def test_report_names_a_missing_registry(tmp_path, sample_video):
    _, run, _ = _run_folder_and_plugin(tmp_path, sample_video)
    result = CliRunner().invoke(main, ["report", str(run), "--registry", str(tmp_path / "nope.yaml")])
    assert result.exit_code != 0 and "nope.yaml: registry file not found" in " ".join(result.output.split())
