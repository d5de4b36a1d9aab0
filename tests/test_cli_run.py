"""`framework run` end to end through the CLI, including every kind of bad input."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from cli import main
from framework.testing.synth import make_audio_only

REPO = Path(__file__).resolve().parents[1]


def run_cli(args, cwd=None):
    """Run the real console entry point in a subprocess (exit code, stdout, stderr)."""
    import os

    proc = subprocess.run([sys.executable, "-m", "cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env={**os.environ, "COLUMNS": "200"})
    return proc.returncode, proc.stdout, proc.stderr


def _registry(tmp_path, names=("cut_analysis",)):
    p = tmp_path / "registry.yaml"
    p.write_text("analyzers:\n" + "".join(f"  {n}: {{enabled: true}}\n" for n in names))
    return p


def _assert_one_line_error(code, out, err, expected_code, *needles):
    assert code == expected_code, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    text = " ".join(err.split())  # rich may wrap long lines
    for needle in needles:
        assert needle in text, (needle, err)
    assert text.count(needles[0]) == 1, err  # said once: not logged as well as printed


def test_missing_file(tmp_path):
    code, out, err = run_cli(["run", tmp_path / "nope.mp4", "--no-progress"])
    _assert_one_line_error(code, out, err, 3, "nope.mp4")


def test_zero_byte_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    code, out, err = run_cli(["run", empty, "--no-progress"])
    _assert_one_line_error(code, out, err, 3, "empty.mp4", "empty")


def test_text_file_named_mp4(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my notes, not a video\n" * 20)
    code, out, err = run_cli(["run", fake, "--no-progress"])
    _assert_one_line_error(code, out, err, 3, "notes.mp4")


def test_a_truncated_file_whose_index_is_lost_is_an_input_error(tmp_path, sample_video):
    # make_video writes the MP4 index (moov) at the end: cut in half, nothing can be decoded
    data = sample_video.path.read_bytes()
    assert data.rfind(b"moov") > len(data) // 2
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 2])
    code, out, err = run_cli(["run", cut, "--registry", _registry(tmp_path), "--out", tmp_path / "run",
                              "--no-progress", "--json"])
    assert "Traceback" not in err
    assert code == 3 and "truncated.mp4" in err
    assert not (tmp_path / "run" / "results.json").exists()


def test_truncated_tail_of_a_faststart_file_gives_partial_results(tmp_path, sample_video):
    # a file whose index is at the front (as streaming files are) loses only its tail
    from framework.testing.synth import make_faststart_copy

    fast = make_faststart_copy(sample_video.path, tmp_path / "fast.mp4")
    data = fast.read_bytes()
    cut = tmp_path / "fast_truncated.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    code, out, err = run_cli(["run", cut, "--registry", _registry(tmp_path), "--out", tmp_path / "run",
                              "--no-progress", "--json"])
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert any("truncated" in w or "damaged" in w for w in results["run"]["warnings"])
    shots = [e for e in results["tracks"]["cut_analysis"]["events"] if e["label"] == "shot"]
    assert shots and shots[-1]["end"] < sample_video.duration


def test_audio_only_input_skips_video_analyzers(tmp_path):
    audio = make_audio_only(tmp_path / "voice.m4a")
    code, out, err = run_cli(["run", audio, "--registry", _registry(tmp_path, ["cut_analysis", "audio_analysis"]),
                              "--out", tmp_path / "run", "--no-progress", "--json"])
    assert code == 0, err
    report = json.loads(out)
    assert report["tracks"]["cut_analysis"]["status"] == "skipped"
    assert "no video" in report["tracks"]["cut_analysis"]["reason"]
    assert report["tracks"]["audio_analysis"]["status"] == "ok"


def test_video_only_input_skips_audio_analyzers(tmp_path, video_factory):
    clip = video_factory("silent film.mp4", audio=False)
    code, out, err = run_cli(["run", clip.path, "--registry", _registry(tmp_path, ["cut_analysis", "audio_analysis"]),
                              "--out", tmp_path / "run", "--no-progress", "--json"])
    assert code == 0, err
    report = json.loads(out)
    assert report["tracks"]["audio_analysis"]["status"] == "skipped"
    assert "no audio" in report["tracks"]["audio_analysis"]["reason"]
    assert report["tracks"]["cut_analysis"]["status"] == "ok"


def test_path_with_spaces_and_non_ascii(tmp_path, sample_video):
    odd = tmp_path / "Mein Urlaub – été 2026 ✓" / "clip ünïcode.mp4"
    odd.parent.mkdir()
    shutil.copy(sample_video.path, odd)
    code, out, err = run_cli(["run", odd, "--registry", _registry(tmp_path), "--no-progress", "--json"],
                             cwd=tmp_path)
    assert code == 0, err
    report = json.loads(out)
    assert Path(report["results"]).is_file()
    assert report["run_dir"].endswith("clip ünïcode")


def test_bad_file_among_good_ones_does_not_stop_the_others(tmp_path, sample_video):
    missing = tmp_path / "missing.mp4"
    code, out, err = run_cli(["run", missing, sample_video.path, "--registry", _registry(tmp_path),
                              "--out", tmp_path / "runs", "--no-progress", "--json"])
    assert code == 3
    report = json.loads(out)
    assert "error" in report[0] and report[1]["tracks"]["cut_analysis"]["status"] == "ok"


def test_unknown_analyzer_in_only_is_a_config_error(tmp_path, sample_video):
    code, out, err = run_cli(["run", sample_video.path, "--only", "cut_analysys", "--no-progress"], cwd=tmp_path)
    _assert_one_line_error(code, out, err, 4, "cut_analysys", "cut_analysis")


def test_failed_analyzer_gives_exit_5_and_results(tmp_path, sample_video):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "explodes.py").write_text(
        "from framework import Analyzer, hookimpl\n"
        "class Explodes(Analyzer):\n"
        "    name = 'explodes'\n"
        "    def analyze(self, inputs):\n"
        "        raise ValueError('bad frame at 1.5 s')\n"
        "@hookimpl\n"
        "def register_analyzers(register):\n"
        "    register(Explodes)\n")
    reg = tmp_path / "registry.yaml"
    reg.write_text("plugin_dirs: [plugins]\nanalyzers:\n  explodes: {}\n  cut_analysis: {}\n")
    code, out, err = run_cli(["run", sample_video.path, "--registry", reg, "--out", tmp_path / "run",
                              "--no-progress", "--json"])
    assert code == 5, err
    report = json.loads(out)
    assert report["tracks"]["explodes"]["status"] == "failed"
    assert "bad frame at 1.5 s" in report["tracks"]["explodes"]["reason"]
    assert "explodes" in report["tracks"]["explodes"]["reason"]  # the plugin is named
    assert report["tracks"]["cut_analysis"]["status"] == "ok"
    assert (tmp_path / "run" / "results.json").is_file()


def test_every_command_has_help_with_an_example():
    runner = CliRunner()

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            yield prefix + [name], cmd
            if hasattr(cmd, "commands"):
                yield from walk(cmd, prefix + [name])

    commands = list(walk(main, []))
    assert commands
    for path, cmd in commands:
        result = runner.invoke(main, path + ["--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example" in result.output and "framework " in result.output, f"`framework {' '.join(path)} --help` has no example"


def test_a_killed_run_loses_no_finished_track(tmp_path, sample_video):
    """kill -9 mid-run: the finished track survives on disk and the rerun reuses it."""
    import os
    import signal
    import time

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    calls = tmp_path / "quick_calls.txt"
    (plugins / "two.py").write_text(
        "import os, time\n"
        "from framework import Analyzer, Event, hookimpl\n"
        "class Quick(Analyzer):\n"
        "    name = 'quick'\n"
        "    def analyze(self, inputs):\n"
        f"        with open({str(calls)!r}, 'a') as fh: fh.write('x')\n"
        "        return self.track(events=[Event(start=0, end=1, label='done')])\n"
        "class Stalls(Analyzer):\n"
        "    name = 'stalls'\n"
        "    depends_on = ('quick',)\n"
        "    def analyze(self, inputs):\n"
        "        while os.environ.get('STALL'):\n"
        "            time.sleep(0.1)\n"
        "        return self.track()\n"
        "@hookimpl\n"
        "def register_analyzers(register):\n"
        "    register(Quick)\n"
        "    register(Stalls)\n")
    reg = tmp_path / "registry.yaml"
    reg.write_text("plugin_dirs: [plugins]\nanalyzers:\n  quick: {}\n  stalls: {}\n")
    out = tmp_path / "run"
    args = [sys.executable, "-m", "cli", "run", str(sample_video.path), "--registry", str(reg),
            "--out", str(out), "--no-progress", "--json"]
    proc = subprocess.Popen(args, env={**os.environ, "STALL": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (out / "tracks" / "quick.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "the quick track was never saved"
            time.sleep(0.1)
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (out / "results.json").exists()  # the run really died before finishing
    assert json.loads((out / "tracks" / "quick.json").read_text())["track"]["status"] == "ok"
    assert calls.read_text() == "x"
    code, stdout, err = run_cli(["run", sample_video.path, "--registry", reg, "--out", out, "--no-progress", "--json"])
    assert code == 0, err
    report = json.loads(stdout)
    assert report["tracks"]["quick"]["reused"] is True and report["tracks"]["stalls"]["status"] == "ok"
    assert calls.read_text() == "x"  # not computed again


def test_analyzers_list_shows_enabled_models_and_availability(tmp_path):
    reg = tmp_path / "registry.yaml"
    reg.write_text("analyzers:\n  cut_analysis: {}\n  fusion: {params: {backend: transformers}}\n")
    code, out, err = run_cli(["analyzers", "list", "--registry", reg, "--json"])
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)["analyzers"]}
    assert rows["cut_analysis"]["enabled"] and not rows["audio_analysis"]["enabled"]
    assert rows["fusion"]["models"] == ["qwen2.5-1.5b-instruct"]
    assert all(r["available"] for r in rows.values())
    code, out, err = run_cli(["analyzers", "list", "--registry", reg])
    assert code == 0 and "cut_analysis" in out and "can run here" in out
