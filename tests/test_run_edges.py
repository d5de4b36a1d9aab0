"""Edges users hit: the registry's device, inputs with one name, exit codes with unreadable files,
file modes, caches of killed runs, and Ctrl-C."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from framework import Analyzer, Event
from framework import cache_owner
from framework.errors import RunInterrupted
from framework.plugins import build_plugin_manager
from framework.registry import load_registry
from framework.runner import analyze, run_dirs, run_many
from framework.testing.synth import default_shots
from framework.timeline import atomic_write_text
from framework.testing.plugins import analyzers_plugin

REPO = Path(__file__).resolve().parents[1]
LOADED_ON: dict[str, str] = {}


class FakeGpu(Analyzer):
    name = "t_fake_gpu"
    version = "1.0"
    device = "gpu"

    def load(self, device, models):
        LOADED_ON[self.name] = device

    def analyze(self, inputs):
        return self.track()


_GpuPlugin = analyzers_plugin(FakeGpu)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- 2. the registry's device: ---------------------------------------------------------------
def _pretend_one_gpu(monkeypatch):
    """As if one 8 GB GPU were here: its discovery and memory simulated (framework.testing.devices)."""
    from framework.devices import GPUs
    from framework.testing.devices import SimulatedGPUs

    monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True: GPUs(
        ["cuda:0"], {"cuda:0": 8000.0}, {"cuda:0": 8192.0}, {"cuda:0": "simulated"}))
    monkeypatch.setattr("framework.executor.TorchMemory", lambda: SimulatedGPUs({"cuda:0": 8192.0}))


@pytest.mark.parametrize("configured, expected", [("cpu", "cpu"), (None, "cuda:0"), ("auto", "cuda:0")])
def test_registry_device_overrides_the_analyzer_class(tmp_path, sample_video, monkeypatch, configured, expected):
    _pretend_one_gpu(monkeypatch)
    entry = f"{{device: {configured}}}" if configured else "{}"
    reg = load_registry(_write(tmp_path / "registry.yaml", f"analyzers:\n  t_fake_gpu: {entry}\n"))
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[_GpuPlugin])
    LOADED_ON.clear()
    res = analyze(sample_video.path, registry=reg, host=host, out_dir=tmp_path / "run", progress=False)
    assert LOADED_ON["t_fake_gpu"] == expected
    assert res.timeline.tracks["t_fake_gpu"].device == expected
    plan = res.timeline.run["plan"]
    assert plan["devices"]["t_fake_gpu"] == expected
    if configured == "cpu":  # the plan says why
        assert "device: cpu in registry.yaml" in plan["notes"]["t_fake_gpu"]
    else:
        assert "t_fake_gpu" not in plan["notes"]


def test_top_level_registry_device_cpu_applies_to_every_analyzer(tmp_path, sample_video, monkeypatch):
    _pretend_one_gpu(monkeypatch)
    reg = load_registry(_write(tmp_path / "registry.yaml", "device: cpu\nanalyzers:\n  t_fake_gpu: {}\n"))
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[_GpuPlugin])
    LOADED_ON.clear()
    analyze(sample_video.path, registry=reg, host=host, out_dir=tmp_path / "run", progress=False)
    assert LOADED_ON["t_fake_gpu"] == "cpu"


@pytest.mark.parametrize("entries, high", [("t_batch: {}\n  t_stepper: {}", "t_stepper"),
                                           ("t_batch: {gpu_stream_priority: high}\n  t_stepper: "
                                            "{gpu_stream_priority: normal}", "t_batch")])
def test_each_gpu_analyzer_gets_a_stream_of_its_own_and_a_high_priority_one_when_it_asks(
        tmp_path, sample_video, monkeypatch, entries, high):
    """The runner hands the analyzer's ``gpu_stream_priority`` to the executor: the stepping
    decoder's stream is of high priority (the simulated stream's name ends in ``!``), the other's not;
    registry.yaml's ``gpu_stream_priority`` overrides the classes' choice."""
    from framework.devices import GPUs
    from framework.testing.devices import SimulatedGPUs

    gpus = SimulatedGPUs({"cuda:0": 8192.0})
    monkeypatch.setattr("framework.devices.discover", lambda requested, budget, wanted=True: GPUs(
        ["cuda:0"], {"cuda:0": 8000.0}, {"cuda:0": 8192.0}, {"cuda:0": "simulated"}))
    monkeypatch.setattr("framework.executor.TorchMemory", lambda: gpus)
    seen = {}

    class Batch(FakeGpu):
        name = "t_batch"

        def analyze(self, inputs):
            seen[self.name] = gpus.current_stream()
            return self.track()

    class Stepper(Batch):
        name = "t_stepper"
        gpu_stream_priority = "high"

    Plugin = analyzers_plugin(Batch, Stepper)

    reg = load_registry(_write(tmp_path / "registry.yaml", f"analyzers:\n  {entries}\n"))
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[Plugin])
    analyze(sample_video.path, registry=reg, host=host, out_dir=tmp_path / "run", progress=False)
    low = ({"t_batch", "t_stepper"} - {high}).pop()
    assert seen[high].startswith("cuda:0/stream") and seen[high].endswith("!")
    assert seen[low].startswith("cuda:0/stream") and not seen[low].endswith("!")


# --- 3. two inputs with one name --------------------------------------------------------------
def test_run_dirs_are_unique_and_deterministic():
    videos = [Path("a/clip.mp4"), Path("b/clip.mp4"), Path("c/CLIP.mov"), Path("clip-2.mp4"), Path("x.mp4")]
    assert run_dirs(videos) == [Path("runs/clip"), Path("runs/clip-2"), Path("runs/CLIP-3"),
                                Path("runs/clip-2-2"), Path("runs/x")]
    assert run_dirs(videos, "out") == [Path("out") / p.name for p in run_dirs(videos)]
    assert run_dirs([Path("a/clip.mp4")], "out") == [Path("out")]


@pytest.mark.parametrize("with_out", [False, True])
def test_two_inputs_with_one_name_get_their_own_folders(tmp_path, video_factory, monkeypatch, caplog, with_out):
    first = video_factory("clip.mp4", shots=default_shots(1.0))
    second = video_factory("other.mp4", shots=default_shots(1.5))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = shutil.move(first.path, tmp_path / "a" / "clip.mp4"), shutil.move(second.path, tmp_path / "b" / "clip.mp4")
    monkeypatch.chdir(tmp_path)
    reg = _write(tmp_path / "registry.yaml", "analyzers:\n  cut_analysis: {}\n")
    caplog.set_level(logging.INFO, logger="framework.runner")
    out = tmp_path / "results" if with_out else None
    outcomes, code = run_many([Path(a), Path(b)], registry_path=reg, out_dir=out, progress=False,
                              load_entrypoints=False)
    assert code == 0
    root = out if with_out else Path("runs")
    assert [o.result.run_dir for o in outcomes] == [root / "clip", root / "clip-2"]
    for o, video in zip(outcomes, (a, b)):
        saved = json.loads((o.result.run_dir / "results.json").read_text())
        assert Path(saved["video"]["path"]).resolve() == Path(video).resolve()
    assert f"{Path(b)} -> {root / 'clip-2'}" in caplog.text


# --- 4. exit codes: the framework, not the parser, checks each file ---------------------------
def _cli(args, cwd=None, **popen):
    proc = subprocess.run([sys.executable, "-m", "cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=300, env={**os.environ, "COLUMNS": "200"}, **popen)
    return proc.returncode, proc.stdout, proc.stderr


def test_unreadable_inputs_among_readable_ones_exit_3_and_the_others_run(tmp_path, video_factory):
    good = video_factory("good.mp4", shots=default_shots(1.0)).path
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    missing = tmp_path / "missing.mp4"
    text = _write(tmp_path / "notes.mp4", "not a video\n" * 50)
    reg = _write(tmp_path / "registry.yaml", "analyzers:\n  cut_analysis: {}\n")
    code, out, err = _cli(["run", missing, folder, good, fifo, text, "--registry", reg,
                           "--out", tmp_path / "runs", "--no-progress", "--json"])
    assert code == 3, err
    report = {Path(r["video"]).name: r for r in json.loads(out)}
    assert report["good.mp4"]["tracks"]["cut_analysis"]["status"] == "ok"
    assert report["good.mp4"]["exit_code"] == 0
    for name, needle in [("missing.mp4", "not found"), ("folder.mp4", "folder"),
                         ("pipe.mp4", "not a regular file"), ("notes.mp4", "not a video")]:
        assert report[name]["exit_code"] == 3 and needle in report[name]["error"], report[name]
        assert name in " ".join(err.split())  # reported on the console too
    assert "Traceback" not in err


def test_a_file_without_read_permission_is_exit_3_not_a_usage_error(tmp_path, video_factory):
    """chmod 000. Root reads anything, so as root the child runs without the capabilities that
    bypass file permissions (``setpriv``), as an ordinary user would."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: chmod 000 cannot bind")
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    good = video_factory("good.mp4", shots=default_shots(1.0)).path
    secret = Path(shutil.copy(good, tmp_path / "secret.mp4"))
    secret.chmod(0o000)
    reg = _write(tmp_path / "registry.yaml", "analyzers:\n  cut_analysis: {}\n")
    proc = subprocess.run([*prefix, sys.executable, "-m", "cli", "run", str(secret), str(good), "--registry",
                           str(reg), "--out", str(tmp_path / "runs"), "--no-progress", "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 3, proc.stderr  # click's parser would have said 2 and run nothing
    report = {Path(r["video"]).name: r for r in json.loads(proc.stdout)}
    assert "permission denied" in report["secret.mp4"]["error"]
    assert report["good.mp4"]["tracks"]["cut_analysis"]["status"] == "ok"


# --- 5. files others can open -----------------------------------------------------------------
def test_atomic_writes_honour_the_umask_and_keep_an_existing_mode(tmp_path):
    old = os.umask(0o022)
    try:
        assert (atomic_write_text(tmp_path / "a.json", "{}").stat().st_mode & 0o777) == 0o644
        os.umask(0o027)
        assert (atomic_write_text(tmp_path / "b.json", "{}").stat().st_mode & 0o777) == 0o640
        (tmp_path / "a.json").chmod(0o600)  # the user restricted it: a rewrite keeps that
        assert (atomic_write_text(tmp_path / "a.json", "[]").stat().st_mode & 0o777) == 0o600
    finally:
        os.umask(old)


def test_a_run_folder_is_readable_by_others_under_umask_022(tmp_path, sample_video):
    old = os.umask(0o022)
    try:
        reg = load_registry(_write(tmp_path / "registry.yaml", "analyzers:\n  cut_analysis: {}\n"))
        res = analyze(sample_video.path, registry=reg, host=build_plugin_manager(load_entrypoints=False),
                      out_dir=tmp_path / "run", progress=False)
    finally:
        os.umask(old)
    files = [p for p in res.run_dir.rglob("*") if p.is_file()]
    assert res.results_path in files and (res.run_dir / "tracks" / "cut_analysis.json") in files
    for p in files:
        assert p.stat().st_mode & 0o044 == 0o044, (p, oct(p.stat().st_mode))


# --- 6. caches of killed runs -----------------------------------------------------------------
def _wait_started(proc: subprocess.Popen, started: Path, what: str) -> None:
    """Wait (at most 120 s) until the plugin's analyzer, run by ``proc``, has created ``started``."""
    deadline = time.time() + 120
    while not started.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"the {what} never started"
        time.sleep(0.05)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _fake_cache(run_dir: Path, owner: dict | None, size: int = 4096) -> Path:
    cache = run_dir / ".cache"
    (cache / "frames").mkdir(parents=True)
    (cache / "frames" / "stream.bin").write_bytes(b"\0" * size)
    if owner is not None:
        (cache / cache_owner.MARKER).write_text(json.dumps(owner))
    return cache


def test_judge_removes_only_caches_whose_process_is_gone(tmp_path):
    me = {"pid": os.getpid(), "process_start": cache_owner._process_start(os.getpid()),
          "boot_id": cache_owner._boot_id()}
    alive = _fake_cache(tmp_path / "alive", me)
    dead = _fake_cache(tmp_path / "dead", {**me, "pid": _dead_pid()})
    reused = _fake_cache(tmp_path / "reused", {**me, "process_start": (me["process_start"] or 0) + 1})
    rebooted = _fake_cache(tmp_path / "rebooted", {**me, "boot_id": "another-boot"})
    other_host = _fake_cache(tmp_path / "otherhost", {**me, "pid": _dead_pid(), "host": "render-node-7"})
    container = _fake_cache(tmp_path / "container", {**me, "pid": _dead_pid(), "pid_namespace": 4026531836 + 7})
    unmarked = _fake_cache(tmp_path / "unmarked", None)
    kept = _fake_cache(tmp_path / "kept", {**me, "pid": _dead_pid(), "state": "kept"})
    report = cache_owner.sweep(tmp_path)
    removed = {v.path for v in report.removed}
    assert removed == {dead, reused, rebooted} if me["process_start"] is not None else {dead, rebooted}
    for c in (alive, other_host, container, unmarked, kept):
        assert c.is_dir()
    assert not dead.exists() and report.freed_bytes >= 3 * 4096
    assert {v.path for v in cache_owner.sweep(tmp_path, include_kept=True).removed} == {kept}


def test_a_run_folder_in_use_by_a_live_run_is_refused_and_left_alone(tmp_path, sample_video):
    """Two runs into one folder would share one frame cache, and the first to finish would delete
    it under the other: the second is refused (exit 3 in a multi-video run) and nothing is touched."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        run_dir = tmp_path / "run"
        cache = _fake_cache(run_dir, {"pid": other.pid, "process_start": cache_owner._process_start(other.pid),
                                      "boot_id": cache_owner._boot_id(), "state": "running"})
        reg = _write(tmp_path / "registry.yaml", "analyzers:\n  cut_analysis: {}\n")
        outcomes, code = run_many([sample_video.path], registry_path=reg, out_dir=run_dir, progress=False,
                                  load_entrypoints=False)
        assert code == 3 and outcomes[0].result is None
        assert "in use by another run" in outcomes[0].error and f"pid {other.pid}" in outcomes[0].error
        assert (cache / "frames" / "stream.bin").is_file()  # the live run's cache is untouched
        assert json.loads((cache / cache_owner.MARKER).read_text())["pid"] == other.pid
    finally:
        other.kill()
        other.wait()
    # once that run is gone, the folder is free again
    outcomes, code = run_many([sample_video.path], registry_path=reg, out_dir=run_dir, progress=False,
                              load_entrypoints=False)
    assert code == 0 and outcomes[0].result.timeline.tracks["cut_analysis"].status == "ok"


def test_clean_command_dry_run_then_removes_and_reports_the_space(tmp_path, monkeypatch):
    dead = _fake_cache(tmp_path / "runs" / "clip", {"pid": _dead_pid()}, size=2 * 1024 * 1024)
    deeper = _fake_cache(tmp_path / "runs" / "batch" / "clip", {"pid": _dead_pid()})
    live = _fake_cache(tmp_path / "runs" / "live", {"pid": os.getpid()})
    dry = CliRunner().invoke(main, ["clean", str(tmp_path / "runs"), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dead.is_dir() and deeper.is_dir()
    assert "would remove" in dry.output and "2.0 MB" in " ".join(dry.output.split())
    wet = CliRunner().invoke(main, ["clean", str(tmp_path / "runs")])
    assert wet.exit_code == 0, wet.output
    text = " ".join(wet.output.split())
    assert not dead.exists() and not deeper.exists() and live.is_dir()
    assert "removed 2 stale cache(s)" in text and "freed" in text and "still running" in text
    # the default folder is runs/ in the current directory
    again = _fake_cache(tmp_path / "runs" / "clip", {"pid": _dead_pid()})
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["clean"]).exit_code == 0
    assert not again.exists()


def test_a_cache_left_by_kill_9_is_removed_by_the_next_run_in_that_root(tmp_path, sample_video, video_factory):
    plugins = tmp_path / "plugins"
    _write(plugins / "stall.py",
           "import os, time\n"
           "from framework import Analyzer, FrameSpec, hookimpl\n"
           "class Stalls(Analyzer):\n"
           "    name = 'stalls'\n"
           "    def frame_specs(self):\n"
           "        return [FrameSpec(fps=2, width=32, pix_fmt='gray')]\n"
           "    def analyze(self, inputs):\n"
           "        open(os.environ['STARTED'], 'w').close()\n"
           "        while os.environ.get('STALL'):\n"
           "            time.sleep(0.1)\n"
           "        return self.track()\n"
           "@hookimpl\n"
           "def register_analyzers(register):\n"
           "    register(Stalls)\n")
    reg = _write(tmp_path / "registry.yaml", "plugin_dirs: [plugins]\nanalyzers:\n  stalls: {}\n")
    root = tmp_path / "runs"
    started = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-m", "cli", "run", str(sample_video.path), "--registry", str(reg),
                             "--out", str(root / "killed"), "--no-progress"], cwd=REPO,
                            env={**os.environ, "STALL": "1", "STARTED": str(started)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_started(proc, started, "stalling analyzer")
        cache = root / "killed" / ".cache"
        owner = json.loads((cache / cache_owner.MARKER).read_text())
        assert owner["pid"] == proc.pid and owner["state"] == "running"
        assert cache_owner.judge(cache).stale is False  # never removed while its run lives
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert cache.is_dir() and any(p.is_file() for p in cache.rglob("*") if p.name != cache_owner.MARKER)
    # a later run of another video into the same output root removes it
    other = video_factory("other.mp4", shots=default_shots(1.0)).path
    analyze(other, registry=load_registry(_write(tmp_path / "r2.yaml", "analyzers:\n  cut_analysis: {}\n")),
            host=build_plugin_manager(load_entrypoints=False), out_dir=root / "other", progress=False)
    assert not cache.exists()
    assert not (root / "other" / ".cache").exists()


def test_keep_cache_is_marked_kept_and_survives_the_next_run(tmp_path, sample_video):
    reg = load_registry(_write(tmp_path / "registry.yaml", "analyzers:\n  cut_analysis: {}\n"))
    host = build_plugin_manager(load_entrypoints=False)
    analyze(sample_video.path, registry=reg, host=host, out_dir=tmp_path / "runs" / "kept",
            progress=False, keep_cache=True)
    marker = json.loads((tmp_path / "runs" / "kept" / ".cache" / cache_owner.MARKER).read_text())
    assert marker["state"] == "kept"
    analyze(sample_video.path, registry=reg, host=host, out_dir=tmp_path / "runs" / "again", progress=False)
    assert (tmp_path / "runs" / "kept" / ".cache").is_dir()


# --- 1. Ctrl-C ------------------------------------------------------------------------------
STOPPED: list[str] = []


class Quick(Analyzer):
    name = "t_quick"
    version = "1.0"

    def analyze(self, inputs):
        return self.track(events=[Event(start=0, end=1, label="done")])


class PressesCtrlC(Analyzer):
    """Sends SIGINT to the main thread (as a terminal's Ctrl-C does) while it runs in a worker."""

    name = "t_presses_ctrl_c"
    version = "1.0"
    depends_on = ("t_quick",)

    def analyze(self, inputs):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        for _ in range(3000):  # reports progress until the runner asks it to stop
            inputs.report(0.5)
            time.sleep(0.01)

        return self.track()  # the test fails if the stop never came

    def unload(self):
        STOPPED.append(self.name)


class NeverStarts(Analyzer):
    name = "t_never_starts"
    version = "1.0"
    depends_on = ("t_presses_ctrl_c",)

    def analyze(self, inputs):  # pragma: no cover - must not run
        raise AssertionError("started after Ctrl-C")


_CtrlCPlugin = analyzers_plugin(Quick, PressesCtrlC, NeverStarts)


def test_sigint_while_workers_run_stops_cleanly_and_keeps_finished_tracks(tmp_path, sample_video):
    reg = load_registry(_write(tmp_path / "registry.yaml",
                               "analyzers:\n  t_quick: {}\n  t_presses_ctrl_c: {}\n  t_never_starts: {}\n"))
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[_CtrlCPlugin])
    run = tmp_path / "run"
    STOPPED.clear()
    with pytest.raises(RunInterrupted) as info:
        analyze(sample_video.path, registry=reg, host=host, out_dir=run, progress=False)
    assert info.value.saved == ["t_quick"] and info.value.run_dir == run
    assert STOPPED == ["t_presses_ctrl_c"]  # unloaded on the way out
    assert json.loads((run / "tracks" / "t_quick.json").read_text())["track"]["status"] == "ok"
    assert sorted(p.name for p in (run / "tracks").iterdir()) == ["t_quick.json"]  # nothing half-written
    assert not (run / "results.json").exists() and not (run / ".cache").exists()
    assert not [p for p in run.rglob("*.tmp")]


def test_ctrl_c_in_a_real_process_exits_130_and_says_the_command_that_resumes(tmp_path, sample_video):
    plugins = tmp_path / "plugins"
    _write(plugins / "slow.py",
           "import os, time\n"
           "from framework import Analyzer, Event, hookimpl\n"
           "class Quick(Analyzer):\n"
           "    name = 'quick'\n"
           "    def analyze(self, inputs):\n"
           "        return self.track(events=[Event(start=0, end=1, label='done')])\n"
           "class Slow(Analyzer):\n"
           "    name = 'slow'\n"
           "    depends_on = ('quick',)\n"
           "    def analyze(self, inputs):\n"
           "        open(os.environ['STARTED'], 'w').close()\n"
           "        while os.environ.get('STALL'):\n"
           "            inputs.report(0.5)\n"
           "            time.sleep(0.05)\n"
           "        return self.track()\n"
           "@hookimpl\n"
           "def register_analyzers(register):\n"
           "    register(Quick)\n"
           "    register(Slow)\n")
    reg = _write(tmp_path / "registry.yaml", "plugin_dirs: [plugins]\nanalyzers:\n  quick: {}\n  slow: {}\n")
    out, started = tmp_path / "my run", tmp_path / "started"
    args = ["run", str(sample_video.path), "--registry", str(reg), "--out", str(out), "--no-progress",
            "--no-resume", "--jobs", "2"]
    env = {**os.environ, "COLUMNS": "300", "STARTED": str(started)}
    proc = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=REPO, env={**env, "STALL": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_started(proc, started, "slow analyzer")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "1 finished track(s) (quick) saved in" in " ".join(err.split())
    line = next(l for l in err.splitlines() if "to resume, run:" in l)
    command = line.split("to resume, run:", 1)[1].strip()
    import shlex
    words = shlex.split(command)
    assert words[:2] == ["framework", "run"] and "--no-resume" not in words
    assert words[words.index("--jobs") + 1] == "2" and words[words.index("--out") + 1] == str(out)
    assert sorted(p.name for p in (out / "tracks").iterdir()) == ["quick.json"]
    assert not (out / ".cache").exists() and not list(out.rglob("*.tmp"))
    # the printed command resumes: quick is reused, slow finishes
    rerun = subprocess.run([str(Path(sys.executable).parent / "framework"), *words[1:], "--json"],
                           capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    tracks = json.loads(rerun.stdout)["tracks"]
    assert tracks["quick"]["reused"] is True and tracks["slow"]["status"] == "ok"


def test_a_second_ctrl_c_stops_waiting_for_an_analyzer_that_never_reports(tmp_path, sample_video):
    plugins = tmp_path / "plugins"
    _write(plugins / "deaf.py",
           "import os, time\n"
           "from framework import Analyzer, hookimpl\n"
           "class Deaf(Analyzer):\n"
           "    name = 'deaf'\n"
           "    def analyze(self, inputs):\n"
           "        open(os.environ['STARTED'], 'w').close()\n"
           "        time.sleep(120)  # never reports progress, so it cannot be asked to stop\n"
           "        return self.track()\n"
           "@hookimpl\n"
           "def register_analyzers(register):\n"
           "    register(Deaf)\n")
    reg = _write(tmp_path / "registry.yaml", "plugin_dirs: [plugins]\nanalyzers:\n  deaf: {}\n")
    started, log = tmp_path / "started", tmp_path / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "cli", "run", str(sample_video.path), "--registry", str(reg),
                                 "--out", str(tmp_path / "run"), "--no-progress"], cwd=REPO,
                                env={**os.environ, "COLUMNS": "300", "STARTED": str(started)},
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.time() + 120
            while not started.exists():
                assert proc.poll() is None and time.time() < deadline, log.read_text()
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            while "Ctrl-C again" not in log.read_text():
                assert proc.poll() is None and time.time() < deadline, log.read_text()
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)  # well before the analyzer's 120 s sleep ends
        finally:
            if proc.poll() is None:
                proc.kill()
    text = " ".join(log.read_text().split())
    assert proc.returncode == 130, text
    assert "stopped without waiting for deaf" in text and "to resume, run: framework run" in text
    assert not (tmp_path / "run" / "tracks" / "deaf.json").exists()
