"""framework.ProcessWorkers: child processes that each build one object and answer items in order;
failures (an item that raises, a child that dies, a factory that cannot build) raise WorkerError
with what the child said; a script without a ``__main__`` guard can use them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from framework import ProcessWorkers, WorkerError


def test_items_come_back_in_order_from_several_processes():
    with ProcessWorkers("process_worker_helpers:scaler", {"factor": 3}, count=2) as workers:
        assert workers.count == 2
        assert workers.map(range(20)) == [3 * i for i in range(20)]
        frames = [np.full((540, 960, 3), i, np.uint8) for i in range(5)]  # pipes carry frames bigger than their buffer
        assert [int(f[0, 0, 0]) for f in workers.map(frames)] == [3 * i % 256 for i in range(5)]
        pids = set(workers.map(["pid"] * 8))
        assert len(pids) == 2 and os.getpid() not in pids
        assert workers.map([]) == []
    assert workers.count == 0
    with pytest.raises(WorkerError, match="closed"):
        workers.map([1])


def test_an_item_that_raises_names_the_childs_traceback_and_the_workers_go_on():
    with ProcessWorkers("process_worker_helpers:scaler", {"factor": 2}, count=1) as workers:
        with pytest.raises(WorkerError, match="ValueError: boom item"):
            workers.map([1, "boom", 3])
        assert workers.map([4]) == [8]


def test_a_child_that_dies_is_an_error_with_its_exit_code():
    workers = ProcessWorkers("process_worker_helpers:scaler", {"factor": 2}, count=1)
    try:
        with pytest.raises(WorkerError, match=r"died \(exit code 7\)"):
            workers.map(["die"])
    finally:
        workers.close()


def test_a_factory_that_cannot_build_fails_at_start_with_its_traceback():
    with pytest.raises(WorkerError, match="this factory cannot build its object"):
        ProcessWorkers("process_worker_helpers:broken", None, count=2)
    with pytest.raises(WorkerError, match="No module named 'no_such_module_here'"):
        ProcessWorkers("no_such_module_here:make", None, count=1)
    with pytest.raises(ValueError, match="at least one worker"):
        ProcessWorkers("process_worker_helpers:scaler", {}, count=0)


def test_a_script_without_a_main_guard_can_start_workers(tmp_path):
    """multiprocessing's spawn would re-run this script in every child (and fail); the children here
    run ``python -m framework.process_workers``, never the user's script."""
    script = tmp_path / "script.py"
    script.write_text("from framework import ProcessWorkers\n"
                      "w = ProcessWorkers('process_worker_helpers:scaler', {'factor': 5}, count=2)\n"
                      "print(w.map([1, 2, 3]))\n"
                      "w.close()\n")
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.getcwd()])}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[5, 10, 15]"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads a process's state in /proc")
def test_a_child_whose_parent_is_killed_exits_without_finishing_its_item(tmp_path):
    """A parent killed outright (as a stopped run kills its decoding process) leaves no worker behind: the child
    holding a minutes-long item exits once it finds itself adopted, not when the item is done."""
    import signal
    import time

    code = ("import sys, threading\n"
            "from framework import ProcessWorkers\n"
            "w = ProcessWorkers('process_worker_helpers:scaler', {'factor': 1}, count=1)\n"
            "print(w.children[0].proc.pid, flush=True)\n"
            "w.ask(0, 'sleep')\n")
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent), str(here)])}
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    child = int(parent.stdout.readline())
    time.sleep(0.5)  # (the child has the item)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    def ended() -> bool:  # gone, or a zombie its new parent has not reaped (a container's PID 1 may not)
        try:
            return Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    for _ in range(200):  # the child looks every 0.25 s; it holds its item 300 s
        if ended():
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the worker outlived its killed parent")


@pytest.mark.parametrize("module", ["framework.decode_process", "framework.own_process", "framework.process_workers"])
def test_every_kind_of_child_watches_its_parent(module, monkeypatch):
    """The decoding process, an analyzer's own process and the workers start the parent watch first thing
    (``exit_with_parent``, shown above to end a worker whose parent was killed)."""
    import importlib

    import logging

    served = importlib.import_module(module)
    started = []
    monkeypatch.setattr(served, "exit_with_parent", lambda: started.append(True))
    if hasattr(served, "thread_settings"):  # (an analyzer's process takes its libraries' thread settings: not here)
        monkeypatch.setattr(served.thread_settings, "alone_in_this_process", lambda: None)
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))  # (it adds a relay)

    class Closed:
        def recv(self):
            raise EOFError

    try:
        served._serve(Closed(), Closed())
    except EOFError:
        pass  # (the decoding process reads its work first, without a guard: the run sent it before)
    assert started == [True]
