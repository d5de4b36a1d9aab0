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
