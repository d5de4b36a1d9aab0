"""Worker processes for an analyzer's CPU-bound Python: each holds one object and reads items fed to it.

The analyzers of a run are threads of one process, so their Python takes turns on the GIL: a
Python-heavy CPU analyzer (rapidocr's pre- and post-processing, for one) slows itself and every
thread that feeds a GPU. ``ProcessWorkers`` moves such work into child processes::

    workers = ProcessWorkers("analyzers._vision.ocr:make_reader", settings, count=4)
    lines = workers.map(frames)  # in order; each worker reads one frame at a time
    workers.close()

``factory`` is ``"module:function"``: each child imports it, calls ``function(settings)`` once and
then calls the returned object on every item it is sent. Items, settings and results travel
pickled over pipes. The children are started as ``python -m framework.process_workers`` (never
forked from a process that may hold CUDA, and never re-running the user's ``__main__`` as
multiprocessing's ``spawn`` would, so a script without an ``if __name__ == "__main__"`` guard still
works). They are in their own session, so Ctrl-C in the terminal stops the run, and the run stops
them; a child whose parent dies exits at once, the item it holds unfinished (``exit_with_parent``).

An item that raises in a child raises ``WorkerError`` with the child's traceback; a child that
dies raises it with the end of the child's stderr.
"""
from __future__ import annotations

import importlib
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any, Iterable

logger = logging.getLogger(__name__)


class WorkerError(RuntimeError):
    """A worker process could not start, failed on an item, or died."""


class _Child:
    """One child process (``python -m MODULE READ_FD WRITE_FD``) and its two pipes."""

    def __init__(self, index: int, env: dict[str, str], module: str = __name__):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        self.index = index
        self.stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=self.stderr,
                stderr=self.stderr, env=env, start_new_session=True)
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.send_conn = Connection(to_child_w, readable=False)
        self.recv_conn = Connection(from_child_r, writable=False)

    def stderr_tail(self, chars: int = 2000) -> str:
        try:
            self.stderr.seek(0)
            return self.stderr.read().decode(errors="replace")[-chars:].strip()
        except (OSError, ValueError):
            return ""

    def death(self, fallback: str = "nothing on its stderr") -> str:
        """Why the pipe closed: ``(exit code N): <the end of its stderr>``, for a child that died."""
        try:  # the pipe can close a moment before the process's exit status is there to read
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            code = None
        return f"(exit code {code}): {self.stderr_tail() or fallback}"

    def receive(self) -> Any:
        try:
            status, value = self.recv_conn.recv()
        except (EOFError, OSError) as exc:
            raise WorkerError(f"worker process {self.index} died {self.death(str(exc))}") from None
        if status == "error":
            raise WorkerError(f"worker process {self.index} failed:\n{value}")
        return value

    def stop(self, timeout: float = 5.0) -> None:
        try:
            self.send_conn.send(None)
        except OSError:
            pass
        for conn in (self.send_conn, self.recv_conn):
            conn.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def default_worker_count(cpus: int | None) -> int:
    """Worker processes an analyzer starts when its ``workers`` is not set: one per 4 CPUs from 8
    CPUs on, at most 8; below 8 CPUs none (1: the analyzer's own process does the work). The rest
    of the CPUs stay with the other analyzers of the run (text_overlay's OCR, speech_flow's pitch).
    Where children cannot start (``children_supported``), none."""
    cpus = cpus or 2
    return 1 if cpus < 8 or not children_supported() else min(8, cpus // 4)


def children_supported() -> bool:
    """Whether this platform can start the children (``_Child`` hands them pipe descriptors by
    number, which only POSIX systems do): elsewhere the work stays in the run's process."""
    return os.name == "posix"


def child_env() -> dict[str, str]:
    """This process's environment, with ``PYTHONPATH`` set to its ``sys.path``: a child imports
    what this process can."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd() if p == "" else p for p in sys.path] if p)
    return env


class ProcessWorkers:
    """``count`` child processes, each calling the object ``factory(settings)`` built on its items.

    :param factory: ``"module:function"`` importable in a fresh interpreter with this process's
        ``sys.path``.
    :param settings: picklable; the one argument of ``function``.
    :raises WorkerError: when a child cannot import or build its object (with its traceback).
    """

    def __init__(self, factory: str, settings: Any, count: int):
        if count < 1:
            raise ValueError(f"ProcessWorkers needs at least one worker, not {count}")
        env = child_env()
        self.children: list[_Child] = []
        try:
            for i in range(count):
                self.children.append(_Child(i, env))
            for child in self.children:
                child.send_conn.send((factory, settings))
            for child in self.children:  # started side by side: the slowest start is what it costs
                child.receive()
        except BaseException:
            self.close()
            raise

    @property
    def count(self) -> int:
        return len(self.children)

    def map(self, items: Iterable[Any]) -> list[Any]:
        """Every item's result, in order. Each child has one item at a time, and gets the next as soon
        as it returns one, so a slow item holds up only its own child."""
        if not self.children:
            raise WorkerError("the worker processes were closed")
        todo = list(enumerate(items))
        todo.reverse()
        results: list[Any] = [None] * len(todo)
        busy: dict[Connection, tuple[_Child, int]] = {}

        def feed(child: _Child) -> None:
            if todo:
                index, item = todo.pop()
                child.send_conn.send(item)
                busy[child.recv_conn] = (child, index)

        for child in self.children:
            feed(child)
        while busy:
            for conn in wait(list(busy)):
                child, index = busy.pop(conn)  # type: ignore[index]
                results[index] = child.receive()
                feed(child)
        return results

    def ask(self, index: int, item: Any) -> Any:
        """Child ``index``'s result on ``item``, waited for here (for callers that give each child to one thread
        of theirs at a time, and take the results as they come instead of in ``map``'s order).

        :raises WorkerError: the item failed in the child, or the child died (``kill``)."""
        child = self.children[index]
        try:
            child.send_conn.send(item)
        except OSError:
            raise WorkerError(f"worker process {index} died {child.death()}") from None
        return child.receive()

    def kill(self) -> None:
        """End the children at once, the items they hold unfinished (a ``ask`` waiting on one raises
        ``WorkerError``); ``close`` still waits for their exits."""
        for child in self.children:
            try:
                child.proc.kill()
            except OSError:
                pass

    def close(self) -> None:
        """Stop the children (each finishes the item it holds; one that does not stop in 5 s is killed)."""
        children, self.children = self.children, []
        for child in children:
            child.stop()

    def __enter__(self) -> "ProcessWorkers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


PARENT_POLL_S = 0.25  # how often a child looks whether its parent still lives


def exit_with_parent() -> None:
    """End this child at once when its parent dies: the end-of-file on its pipe comes only after the item it
    holds (a video segment: seconds of work, written into the run's cache while a new run may be writing there)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:  # adopted: the parent died (killed, as a stopped decode's process is)
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _serve(recv_conn: Connection, send_conn: Connection) -> None:
    """A child's loop: build the object, then answer every item until ``None`` or end-of-file."""
    exit_with_parent()
    try:
        factory, settings = recv_conn.recv()
    except EOFError:
        return
    try:
        module, _, name = factory.partition(":")
        obj = getattr(importlib.import_module(module), name)(settings)
    except BaseException:
        send_conn.send(("error", traceback.format_exc()))
        return
    send_conn.send(("ready", None))
    while True:
        try:
            item = recv_conn.recv()
        except EOFError:
            return
        if item is None:
            return
        try:
            reply = pickle.dumps(("ok", obj(item)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # the item failed, or its result does not pickle
            reply = pickle.dumps(("error", traceback.format_exc()))
        try:
            send_conn.send_bytes(reply)
        except OSError:  # the parent is gone
            return


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
