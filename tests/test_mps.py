"""``framework.mps``: a run's own MPS server, started before the run's processes and told to quit after it.

A stand-in ``nvidia-cuda-mps-control`` on PATH records what it was asked (no GPU here); on the H200 the
end-to-end bench runs the real one (``bench/end_to_end_gpu.py --mps``)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from framework import mps
from framework.errors import ConfigError

from own_process_fixtures import PidReporter
from test_own_process import Gpu, one_simulated_gpu, registered


def stand_in(tmp_path: Path, servers: str = "4242") -> Path:
    """A control program that records its calls in ``calls.txt`` and lists ``servers`` as its server PIDs."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "bin" / mps.CONTROL
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-d" ]; then\n'
        f'  echo "-d pipe=$CUDA_MPS_PIPE_DIRECTORY" >> {calls}\n'
        '  echo "Startup" > "$CUDA_MPS_LOG_DIRECTORY/control.log"; exit 0\n'
        "fi\n"
        "while read -r line; do\n"
        f'  echo "$line pipe=$CUDA_MPS_PIPE_DIRECTORY" >> {calls}\n'
        f'  if [ "$line" = get_server_list ] && [ -n "{servers}" ]; then echo "{servers}"; fi\n'
        "done\n")
    fake.chmod(0o755)
    return calls


@pytest.fixture
def control(tmp_path, monkeypatch):
    monkeypatch.delenv(mps.PIPE_ENV, raising=False)
    monkeypatch.delenv(mps.LOG_ENV, raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def test_the_server_is_the_runs_own_started_at_once_and_told_to_quit_even_when_the_run_fails(control):
    calls = stand_in(control)
    with pytest.raises(RuntimeError, match="the run failed"):
        with mps.run_server() as server:
            pipe = server.pipe_directory
            assert os.environ[mps.PIPE_ENV] == pipe and server.own and server.server_pids == (4242,)
            with open(Path(server.log_directory) / "control.log", "a") as log:  # two clients connect
                log.write("NEW CLIENT 7 from user 0\nNEW CLIENT 8 from user 0\n")
            assert mps.receipt() == {"own_server": True, "pipe_directory": pipe, "client_connections": 2}
            raise RuntimeError("the run failed")
    assert calls.read_text().splitlines() == [f"-d pipe={pipe}", f"start_server -uid {os.getuid()} pipe={pipe}",
                                              f"get_server_list pipe={pipe}", f"quit pipe={pipe}"]
    assert mps.PIPE_ENV not in os.environ and mps.LOG_ENV not in os.environ and mps.receipt() is None
    assert not Path(pipe).parent.exists()  # its temporary folder went with it


def test_a_daemon_whose_server_does_not_come_up_is_told_to_quit_and_the_run_is_told_before_it_starts(control):
    calls = stand_in(control, servers="")
    with pytest.raises(ConfigError, match="no server came up.*Startup.*run without --mps"):
        with mps.run_server():
            pytest.fail("the block must not run")
    assert calls.read_text().splitlines()[-1].startswith("quit pipe=")
    assert mps.PIPE_ENV not in os.environ


def test_without_the_control_program_the_error_says_where_it_comes_from(control, monkeypatch):
    monkeypatch.setenv("PATH", str(control / "nowhere"))
    with pytest.raises(ConfigError, match="not on PATH[.] It comes with NVIDIA.s driver utilities"):
        with mps.run_server():
            pass


def test_a_users_own_mps_setup_is_used_as_it_is(control, monkeypatch):
    calls = stand_in(control)
    monkeypatch.setenv(mps.PIPE_ENV, str(control / "theirs"))
    with mps.run_server() as server:
        assert not server.own and os.environ[mps.PIPE_ENV] == str(control / "theirs")
        assert mps.receipt() == {"own_server": False, "pipe_directory": str(control / "theirs"),
                                 "client_connections": None}
    assert not calls.exists() and os.environ[mps.PIPE_ENV] == str(control / "theirs")


def test_off_or_on_the_cpu_only_nothing_is_started(control, caplog):
    calls = stand_in(control)
    for on, devices, device in ((False, None, "auto"), (True, ["cpu"], "auto"), (True, None, "cpu")):
        with mps.for_run(on, devices, device):
            assert mps.PIPE_ENV not in os.environ
    assert not calls.exists() and "the run uses no GPU; running without MPS" in caplog.text


def test_framework_run_mps_makes_the_analyzers_own_processes_clients_and_says_so_in_the_receipt(
        control, sample_video, monkeypatch):
    """``run_many(mps=True)`` (``framework run --mps``): an analyzer in a process of its own sees the run's pipe
    folder (its CUDA would connect there), the receipt names the server, and the environment is as before after."""
    from framework import runner

    calls = stand_in(control)
    monkeypatch.setattr(mps, "gpu_driver_present", lambda: True)
    one_simulated_gpu(monkeypatch)  # (beside a GPU analyzer the reporter runs in a process of its own)
    _reg, host = registered(control / "reg", [PidReporter, Gpu])
    monkeypatch.setattr(runner, "build_plugin_manager", lambda *a, **k: host)
    outcomes, code = runner.run_many([sample_video.path], registry_path=control / "reg" / "registry.yaml",
                                     out_dir=control / "runs", progress=False, mps=True)
    result = outcomes[0].result
    track = result.timeline.tracks["t_own_pid"]
    assert code == 0 and track.status == "ok" and track.data["pid"] != os.getpid(), track.reason
    receipt = result.timeline.run["receipt"]["mps"]
    assert receipt["own_server"] is True and track.data["mps_pipe"] == receipt["pipe_directory"]
    assert calls.read_text().splitlines()[-1] == f"quit pipe={receipt['pipe_directory']}"
    assert mps.PIPE_ENV not in os.environ


@pytest.mark.gpu
def test_a_real_mps_server_serves_the_cuda_work_of_a_child_and_quits(monkeypatch):
    """On a GPU machine with NVIDIA's MPS: the run's own daemon starts its server at once, a child's CUDA work
    connects to it (the log counts it) and comes out right, and the daemon is gone after."""
    import subprocess
    import sys

    monkeypatch.delenv(mps.PIPE_ENV, raising=False)
    child = ("import torch; x = torch.arange(1000, device='cuda', dtype=torch.float32); "
             "print(int(x.sum().item()))")
    with mps.run_server() as server:
        assert server.own and server.server_pids
        out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.strip() == "499500", out.stderr[-2000:]
        assert mps.receipt()["client_connections"] >= 1
        ours = mps_processes(server.pipe_directory)
        assert ours, "no MPS program runs with the run's pipe folder"  # the daemon (its server too, if it inherits it)
    deadline = time.monotonic() + 15.0
    while mps_processes(server.pipe_directory) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mps.PIPE_ENV not in os.environ and mps_processes(server.pipe_directory) == []


def mps_processes(pipe: str) -> list[int]:
    """PIDs of the MPS programs (control daemon, server) whose environment names ``pipe`` as their pipe folder."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (proc.name.isdigit() and (proc / "comm").read_text().startswith("nvidia-cuda-mps")
                    and f"{mps.PIPE_ENV}={pipe}".encode() in (proc / "environ").read_bytes()):
                found.append(int(proc.name))
        except OSError:
            continue
    return found
