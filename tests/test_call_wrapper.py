"""The call wrapper: any BaseException but KeyboardInterrupt becomes a failed track with its phase
and a saved traceback, while the other analyzers finish and results.json is written."""
from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from framework import Analyzer, Event
from framework.analyzer import AnalyzerInputs, AnalyzerUnavailable
from framework.callinfo import CallInfo, call_analyzer
from framework.plugins import build_plugin_manager
from framework.registry import load_registry
from framework.runner import analyze
from framework.testing.plugins import analyzers_plugin

UNLOADS: list[str] = []


class _Counting(Analyzer):
    version = "1.0"

    def unload(self):
        UNLOADS.append(self.name)


class Exits(_Counting):
    name = "t_exits"

    def analyze(self, inputs):
        sys.exit(3)


class NoMemory(_Counting):
    name = "t_nomemory"

    def analyze(self, inputs):
        raise MemoryError("cannot allocate 40 GB for the frame batch")


class BadUnload(Analyzer):
    name = "t_badunload"
    version = "1.0"

    def analyze(self, inputs):
        return self.track(events=[Event(start=0, end=1, label="x")])

    def unload(self):
        raise RuntimeError("CUDA context already destroyed")


class BadLoad(_Counting):
    name = "t_badload"

    def load(self, device, models):
        raise OSError("weights file truncated")

    def analyze(self, inputs):  # pragma: no cover - never reached
        raise AssertionError("analyze() ran after a failed load()")


class NotAnException(BaseException):
    """A plugin's exception class that forgot to derive from Exception."""


class OddBase(_Counting):
    name = "t_oddbase"

    def analyze(self, inputs):
        raise NotAnException("weird")


class Good(Analyzer):
    name = "t_good"
    version = "1.0"

    def analyze(self, inputs):
        return self.track(events=[Event(start=0, end=inputs.video.duration, label="all")])


class AfterGood(Analyzer):
    name = "t_after_good"
    version = "1.0"
    depends_on = ("t_good",)

    def analyze(self, inputs):
        return self.track(data={"saw": len(inputs.upstream["t_good"].events)})


FAILING = {"t_exits": ("analyze", "SystemExit"), "t_nomemory": ("analyze", "MemoryError"),
           "t_badunload": ("unload", "CUDA context already destroyed"),
           "t_badload": ("load", "weights file truncated"), "t_oddbase": ("analyze", "NotAnException")}
ALL = [*FAILING, "t_good", "t_after_good"]


_Plugin = analyzers_plugin(Exits, NoMemory, BadUnload, BadLoad, OddBase, Good, AfterGood)


def _registry(tmp_path, names):
    p = tmp_path / "registry.yaml"
    p.write_text("analyzers:\n" + "".join(f"  {n}: {{}}\n" for n in names))
    return load_registry(p)


@pytest.fixture
def host():
    UNLOADS.clear()
    return build_plugin_manager(load_entrypoints=False, extra_plugins=[_Plugin])


def test_call_info_catches_every_base_exception_but_keyboard_interrupt():
    assert CallInfo.from_call(lambda: 7, "analyze").result == 7
    for exc in (SystemExit(3), MemoryError("x"), NotAnException("y"), ValueError("z")):
        def boom(exc=exc):
            raise exc
        info = CallInfo.from_call(boom, "load")
        assert info.failed and info.excinfo is exc and info.phase == "load"
        assert type(exc).__name__ in info.traceback and "boom" in info.traceback
    with pytest.raises(KeyboardInterrupt):
        CallInfo.from_call(lambda: (_ for _ in ()).throw(KeyboardInterrupt()), "analyze")


def test_each_failure_is_a_failed_track_with_phase_and_traceback_while_others_finish(tmp_path, sample_video, host):
    run = tmp_path / "run"
    res = analyze(sample_video.path, registry=_registry(tmp_path, ALL), host=host, out_dir=run,
                  progress=False)
    tracks = res.timeline.tracks
    assert sorted(res.failed) == sorted(FAILING)
    for name, (phase, needle) in FAILING.items():
        t = tracks[name]
        assert t.status == "failed" and t.failed_phase == phase, (name, t)
        assert needle in t.reason, (name, t.reason)
        assert t.traceback_file == f"tracks/{name}.traceback.txt"
        text = (run / t.traceback_file).read_text()
        assert needle in text and "Traceback (most recent call last)" in text and f"phase {phase}" in text
    assert "SystemExit(3)" in tracks["t_exits"].reason and "sys.exit" in tracks["t_exits"].reason
    assert tracks["t_badunload"].events == []  # a failed track carries no events
    assert tracks["t_good"].status == "ok" and tracks["t_good"].traceback_file is None
    assert tracks["t_after_good"].status == "ok" and tracks["t_after_good"].data == {"saw": 1}
    # results.json and the saved tracks say the same
    saved = json.loads((run / "results.json").read_text())
    assert saved["tracks"]["t_nomemory"]["failed_phase"] == "analyze"
    assert saved["tracks"]["t_badunload"]["failed_phase"] == "unload"
    assert json.loads((run / "tracks" / "t_exits.json").read_text())["track"]["traceback_file"] \
        == "tracks/t_exits.traceback.txt"
    # unload ran after every failure, also after a failed load
    assert sorted(UNLOADS) == sorted(["t_exits", "t_nomemory", "t_badload", "t_oddbase"])


def test_a_fixed_analyzer_loses_its_old_traceback_on_rerun(tmp_path, sample_video, host):
    run = tmp_path / "run"
    analyze(sample_video.path, registry=_registry(tmp_path, ["t_nomemory"]), host=host, out_dir=run,
            progress=False)
    assert (run / "tracks" / "t_nomemory.traceback.txt").is_file()
    NoMemory.analyze = lambda self, inputs: self.track()
    try:
        res = analyze(sample_video.path, registry=_registry(tmp_path, ["t_nomemory"]), host=host,
                      out_dir=run, progress=False)
    finally:
        del NoMemory.analyze
    assert res.timeline.tracks["t_nomemory"].status == "ok"
    assert not (run / "tracks" / "t_nomemory.traceback.txt").exists()


def test_unavailable_at_load_is_skipped_and_unload_failure_is_recorded(sample_video):
    class Unavailable(Analyzer):
        name = "t_unavailable"

        def load(self, device, models):
            raise AnalyzerUnavailable("needs the foo package: pip install foo")

    saved: list[str] = []
    inputs = AnalyzerInputs(video=_meta(sample_video.path))
    track = call_analyzer(Unavailable(), inputs, "cpu", save_traceback=lambda t: saved.append(t) or "tb.txt")
    assert track.status == "skipped" and "pip install foo" in track.reason
    track = call_analyzer(BadUnload(), inputs, "cpu", save_traceback=lambda t: saved.append(t) or "tb.txt")
    assert track.status == "failed" and track.failed_phase == "unload" and track.traceback_file == "tb.txt"
    assert "unload() raised RuntimeError" in track.reason and "analyze() had finished" in track.reason
    assert "CUDA context already destroyed" in saved[-1]


def test_load_and_unload_both_failing_records_load_and_keeps_both_tracebacks(sample_video):
    class Both(BadLoad):
        name = "t_both"

        def unload(self):
            raise RuntimeError("nothing to unload")

    saved: list[str] = []
    track = call_analyzer(Both(), AnalyzerInputs(video=_meta(sample_video.path)), "cpu",
                          save_traceback=lambda t: saved.append(t) or "tb.txt")
    assert track.failed_phase == "load" and "unload() also raised RuntimeError" in track.reason
    assert "weights file truncated" in saved[0] and "nothing to unload" in saved[0]


def test_keyboard_interrupt_propagates_after_unload(sample_video):
    class CtrlC(_Counting):
        name = "t_ctrlc"

        def analyze(self, inputs):
            raise KeyboardInterrupt

    UNLOADS.clear()
    with pytest.raises(KeyboardInterrupt):
        call_analyzer(CtrlC(), AnalyzerInputs(video=_meta(sample_video.path)), "cpu")
    assert UNLOADS == ["t_ctrlc"]


def test_run_verbose_prints_the_saved_traceback(tmp_path, sample_video, monkeypatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "exits.py").write_text(
        "import sys\n"
        "from framework import Analyzer, hookimpl\n"
        "class Exits(Analyzer):\n"
        "    name = 'exits'\n"
        "    def analyze(self, inputs):\n"
        "        sys.exit('the frame at 2.5 s made me quit')\n"
        "@hookimpl\n"
        "def register_analyzers(register):\n"
        "    register(Exits)\n")
    reg = tmp_path / "registry.yaml"
    reg.write_text("plugin_dirs: [plugins]\nanalyzers:\n  exits: {}\n")
    from cli import main

    base = ["run", str(sample_video.path), "--registry", str(reg), "--out", str(tmp_path / "run"),
            "--no-progress", "--json"]
    quiet = CliRunner().invoke(main, base)
    assert quiet.exit_code == 5, quiet.output
    report = json.loads(quiet.stdout)
    assert report["tracks"]["exits"]["failed_phase"] == "analyze"
    assert "Traceback (most recent call last)" not in quiet.output
    for args in (base + ["-v"], ["-v"] + base, base[:1] + ["--verbose"] + base[1:]):
        loud = CliRunner().invoke(main, args)
        assert loud.exit_code == 5, loud.output
        assert "Traceback (most recent call last)" in loud.stderr, args
        assert "the frame at 2.5 s made me quit" in loud.stderr and "tracks/exits.traceback.txt" in loud.stderr
        json.loads(loud.stdout)  # --json stays parseable: tracebacks go to stderr


def _meta(path):
    from framework import media

    return media.probe(path)
