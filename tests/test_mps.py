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


def stand_in(tmp_path: Path, servers: str = "4242", quit_after: Path | None = None) -> Path:
    """A control program that records its calls in ``calls.txt`` and lists ``servers`` as its server PIDs; with
    ``quit_after``, its ``quit`` waits until that file exists (as the real one waits for its last client)."""
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
        f'  if [ "$line" = get_server_list ] && [ -n "{servers}" ]; then echo "{servers}"; fi\n'
        + (f'  if [ "$line" = quit ]; then while [ ! -e {quit_after} ]; do sleep 0.05; done; fi\n'
           if quit_after else "")
        + f'  echo "$line pipe=$CUDA_MPS_PIPE_DIRECTORY" >> {calls}\n'
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


def test_a_run_whose_own_process_holds_cuda_leaves_the_quit_to_a_helper_that_outlives_it(control, monkeypatch,
                                                                                        caplog):
    """The real daemon quits once its last client is gone, and the run's process is one until it exits: the quit
    is sent by a helper that is not awaited, which then removes the folder (awaited, it waited for itself)."""
    released = control / "last-client-gone"
    calls = stand_in(control, quit_after=released)
    monkeypatch.setattr(mps, "_cuda_started_here", lambda: True)
    with mps.run_server() as server:
        pipe = server.pipe_directory
    assert not any(line.startswith("quit") for line in calls.read_text().splitlines())
    assert Path(pipe).exists() and "did not quit" not in caplog.text and mps.PIPE_ENV not in os.environ
    released.touch()  # this process's CUDA is gone: the daemon quits
    deadline = time.monotonic() + 15.0
    while Path(pipe).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls.read_text().splitlines()[-1] == f"quit pipe={pipe}" and not Path(pipe).parent.exists()


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
    from framework.outputs.receipt import run_line

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
    assert "; GPU processes clients of the run's own MPS server (0 client connections)" in run_line(result.timeline)
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


@pytest.mark.gpu
def test_a_run_that_did_cuda_work_under_its_own_server_exits_at_once_and_leaves_no_daemon(monkeypatch):
    """The run's process is an MPS client once it has done CUDA work (the VLM): leaving the block must not
    wait for the daemon's quit (which waits for that very process; on an H200 the whole command took 30 s
    longer so), and once the process has exited the daemon and its server are gone."""
    import subprocess
    import sys

    monkeypatch.delenv(mps.PIPE_ENV, raising=False)
    script = ("import torch\nfrom framework import mps\n"
              "with mps.run_server() as server:\n"
              "    print(server.pipe_directory, flush=True)\n"
              "    x = torch.arange(1000, device='cuda', dtype=torch.float32)\n"
              "    assert int(x.sum().item()) == 499500\n")
    # (a deadline, not a speed check: the block's wait for itself ran into the 30 s command timeout)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=25,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    pipe = out.stdout.split()[0]
    deadline = time.monotonic() + 15.0
    while (mps_processes(pipe) or Path(pipe).exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mps_processes(pipe) == [] and not Path(pipe).parent.exists()


def test_a_daemon_left_by_a_run_killed_outright_is_told_to_quit_when_the_next_run_starts_one(control, monkeypatch):
    """A folder of ours whose run's process is gone (killed with SIGKILL: no quit was sent) gets a quit and is
    removed; one whose run is alive, or that is not a run's (no owner), is left alone."""
    import subprocess
    import sys
    import tempfile

    calls = stand_in(control)
    monkeypatch.setattr(tempfile, "tempdir", str(control / "tmp"))
    (control / "tmp").mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folders = {}
    for name, owner in (("dead", gone.stdout.strip()), ("alive", str(os.getppid())), ("no-owner", None)):
        folders[name] = control / "tmp" / f"{mps.FOLDER_PREFIX}{name}"
        (folders[name] / "pipe").mkdir(parents=True)
        if owner is not None:
            (folders[name] / mps.OWNER).write_text(owner)
    with mps.run_server() as server:
        assert Path(server.pipe_directory).parent.parent == control / "tmp"
        deadline = time.monotonic() + 15.0
        while folders["dead"].exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"quit pipe={folders['dead'] / 'pipe'}" in calls.read_text().splitlines()
        assert not folders["dead"].exists() and folders["alive"].exists() and folders["no-owner"].exists()
        assert (Path(server.pipe_directory).parent / mps.OWNER).read_text() == str(os.getpid())


def test_the_apps_jobs_run_as_clients_of_one_server_of_the_queues_own(control, sample_video, monkeypatch):
    """``framework serve`` (and the MCP server): with registry.yaml ``mps: true`` the job queue starts one server
    before its first job, every job's run is its client, and the server is told to quit when the queue closes."""
    import json
    import shutil

    from framework.library import Library
    from framework.library.jobs import JobQueue
    from library_helpers import write_registry

    calls = stand_in(control)
    monkeypatch.setattr(mps, "gpu_driver_present", lambda: True)
    registry = write_registry(control / "config")
    registry.write_text(registry.read_text() + "mps: true\n")
    second = shutil.copy(sample_video.path, control / "second.mp4")
    queue = JobQueue(Library.open(control / "lib.db"), registry)
    jobs = [queue.wait(queue.submit_path(path).id, timeout=120) for path in (sample_video.path, second)]
    assert [j.status for j in jobs] == ["done", "done"], [j.error for j in jobs]
    receipts = [json.loads((Path(j.run_dir) / "results.json").read_text())["run"]["receipt"]["mps"] for j in jobs]
    pipe = receipts[0]["pipe_directory"]
    assert receipts[0]["own_server"] is True and receipts[1]["pipe_directory"] == pipe
    queue.close(wait_s=15.0)
    assert not queue._thread.is_alive()
    lines = calls.read_text().splitlines()
    assert [line for line in lines if line.startswith("-d")] == [f"-d pipe={pipe}"]  # one server for both jobs
    assert lines[-1] == f"quit pipe={pipe}" and mps.PIPE_ENV not in os.environ


def test_a_queue_whose_server_does_not_come_up_fails_each_job_saying_what_to_change(control, sample_video,
                                                                                  monkeypatch):
    from framework.library import Library
    from framework.library.jobs import JobQueue
    from library_helpers import write_registry

    stand_in(control, servers="")
    monkeypatch.setattr(mps, "gpu_driver_present", lambda: True)
    registry = write_registry(control / "config")
    registry.write_text(registry.read_text() + "mps: true\n")
    queue = JobQueue(Library.open(control / "lib.db"), registry)
    job = queue.wait(queue.submit_path(sample_video.path).id, timeout=60)
    assert job.status == "failed" and job.run_dir is None
    assert "no server came up" in job.error and "set mps: false there" in job.error
    queue.close()
