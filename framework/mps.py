"""A run's own MPS server: every GPU process of the run a client of one NVIDIA Multi-Process Service server.

On one GPU the run's processes (its own, which runs the VLM and the in-process GPU analyzers, and the
analyzers in processes of their own: Whisper, the YOLOs, OCR) otherwise take turns on the device, one
context at a time. As clients of one MPS server their kernels run side by side; an analyzer marked
``gpu_stream_priority: low`` then becomes a client of below-normal priority (``own_process``), so the
GPU schedules the others' waiting work first.

``run_server()`` (``framework run --mps``, registry.yaml ``mps: true``) starts a control daemon of the
run's own, with its pipes and log in a fresh folder under the temp folder, asks it to start the server
at once (a daemon whose server cannot start would fail every CUDA client later; this way the run is told
before anything is computed), puts this process and every child it starts under it
(``CUDA_MPS_PIPE_DIRECTORY``, set before CUDA starts anywhere in the run) and tells it to quit when the
block ends, whatever happened (a helper process sends that: see ``_quit``). A daemon left by a run that
was killed outright is told to quit when the next run starts one (``_reap_left_behind``). Where
``CUDA_MPS_PIPE_DIRECTORY`` is set already, the user's own MPS setup is used as it is. ``receipt()`` is
the run receipt's ``mps`` entry.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .devices import gpu_driver_present
from .errors import ConfigError

logger = logging.getLogger(__name__)

CONTROL = "nvidia-cuda-mps-control"
PIPE_ENV, LOG_ENV = "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"
FOLDER_PREFIX, OWNER = "framework-mps-", "owner.pid"  # a run's daemon folder under the temp folder, its run's PID
#: how long a control command may take (the daemon answers at once; a server's start takes well under this)
COMMAND_TIMEOUT_S = 30.0


@dataclass
class MpsServer:
    """The MPS setup the run's processes are clients of: the daemon's pipe and log folders, and whether
    this run started it (``own``) or found the user's (``CUDA_MPS_PIPE_DIRECTORY`` already set)."""

    pipe_directory: str
    log_directory: str | None
    own: bool
    server_pids: tuple[int, ...] = ()

    def client_connections(self) -> int | None:
        """How many client connections the daemon's log shows so far (None: no log to read)."""
        if not self.log_directory:
            return None
        control = Path(self.log_directory) / "control.log"
        try:
            return control.read_text(errors="replace").count("NEW CLIENT")
        except OSError:
            return None


_current: MpsServer | None = None


def receipt() -> dict | None:
    """The run receipt's ``mps`` entry: the server the run's processes were clients of and how many client
    connections its log shows; None when the run did not use MPS."""
    server = _current
    if server is None and os.environ.get(PIPE_ENV):
        server = MpsServer(os.environ[PIPE_ENV], os.environ.get(LOG_ENV), own=False)
    if server is None:
        return None
    return {"own_server": server.own, "pipe_directory": server.pipe_directory,
            "client_connections": server.client_connections()}


def _control(binary: str, env: dict[str, str], commands: str = "", *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([binary, *args], input=commands.encode(), env=env, capture_output=True,
                              timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"--mps: {binary} {' '.join(args) or commands.strip()} did not answer within "
                          f"{COMMAND_TIMEOUT_S:.0f} s; run without --mps") from exc


def _cuda_started_here() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and getattr(torch, "cuda", None) is not None and torch.cuda.is_initialized())


def for_run(on: bool, devices: list[str] | None, registry_device: str) -> contextlib.AbstractContextManager:
    """``run_server()`` when ``on`` and the run may use an NVIDIA GPU, else a block that does nothing (a run on
    the CPU only, by ``devices`` or registry.yaml's ``device``, or a machine without a GPU driver)."""
    if not on:
        return contextlib.nullcontext()
    cpu_only = (devices is not None and all(d == "cpu" for d in devices)) or (devices is None and registry_device == "cpu")
    if cpu_only or not gpu_driver_present():
        logger.warning("--mps: %s; running without MPS", "the run uses no GPU" if cpu_only else "no NVIDIA GPU here")
        return contextlib.nullcontext()
    return run_server()


@contextlib.contextmanager
def run_server(binary: str = CONTROL) -> Iterator[MpsServer]:
    """Make every GPU process of the block a client of one MPS server (see the module docstring).

    :raises ConfigError: the control program is not on PATH, or its daemon or server did not start (the
        daemon is told to quit then too); the message says to run without ``--mps``.
    """
    global _current
    if os.environ.get(PIPE_ENV):  # the user's own MPS setup
        server = MpsServer(os.environ[PIPE_ENV], os.environ.get(LOG_ENV), own=False)
        logger.info("MPS: using the server whose pipes are in %s (CUDA_MPS_PIPE_DIRECTORY)", server.pipe_directory)
        _current = server
        try:
            yield server
        finally:
            _current = None
        return
    found = shutil.which(binary)
    if found is None:
        raise ConfigError(f"--mps: {binary} is not on PATH. It comes with NVIDIA's driver utilities (the "
                          "nvidia-utils or nvidia-compute-utils package); install them, or run without --mps")
    if _cuda_started_here():
        logger.warning("MPS: this process started CUDA already; it stays outside the MPS server (its children "
                       "are clients)")
    _reap_left_behind(found)
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))  # short: the daemon's sockets live in it
    pipe, log = folder / "pipe", folder / "log"
    pipe.mkdir()
    log.mkdir()
    (folder / OWNER).write_text(str(os.getpid()))
    env = dict(os.environ, **{PIPE_ENV: str(pipe), LOG_ENV: str(log)})
    started = _control(found, env, "", "-d")
    if started.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise ConfigError(f"--mps: {binary} -d failed (exit {started.returncode}): "
                          f"{(started.stderr or started.stdout).decode(errors='replace').strip()}; run without --mps")
    server = MpsServer(str(pipe), str(log), own=True)
    saved = {k: os.environ.get(k) for k in (PIPE_ENV, LOG_ENV)}
    try:
        server.server_pids = _start_server(found, env, log)
        os.environ.update({PIPE_ENV: str(pipe), LOG_ENV: str(log)})
        _current = server
        logger.info("MPS: the run's GPU processes are clients of server %s (pipes in %s)",
                    ",".join(map(str, server.server_pids)), pipe)
        yield server
    finally:
        _current = None
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _quit(found, env, server, folder)


def _start_server(binary: str, env: dict[str, str], log: Path) -> tuple[int, ...]:
    """Ask the daemon for this user's server now and return its PIDs; ConfigError when none comes up."""
    _control(binary, env, f"start_server -uid {os.getuid()}\n")
    listed = _control(binary, env, "get_server_list\n")
    pids = tuple(int(w) for w in listed.stdout.decode(errors="replace").split() if w.isdigit())
    if not pids:
        control = log / "control.log"
        tail = control.read_text(errors="replace").strip().splitlines()[-3:] if control.is_file() else []
        raise ConfigError("--mps: the MPS control daemon started but no server came up"
                          + (f" ({' | '.join(tail)})" if tail else "") + "; run without --mps")
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (someone else's process: alive)
        return True
    return True


def _reap_left_behind(binary: str) -> None:
    """Tell the daemons of earlier runs that died without stopping theirs (killed outright) to quit, and remove
    their folders: a folder of ours whose run's process (``owner.pid``) is gone."""
    for folder in Path(tempfile.gettempdir()).glob(FOLDER_PREFIX + "*"):
        try:
            owner = int((folder / OWNER).read_text())
        except (OSError, ValueError):
            continue  # not (yet) a folder of a run's daemon
        if owner == os.getpid() or _alive(owner):
            continue
        env = dict(os.environ, **{PIPE_ENV: str(folder / "pipe"), LOG_ENV: str(folder / "log")})
        logger.info("MPS: the daemon of %s was left by run %d, which is gone: telling it to quit", folder, owner)
        _send_quit(binary, env, folder)


def _send_quit(binary: str, env: dict[str, str], folder: Path) -> subprocess.Popen:
    """A helper process that tells the daemon to quit (it returns once the daemon's last client has gone),
    then removes ``folder``; nobody waits for it, and it may outlive this process."""
    return subprocess.Popen(["/bin/sh", "-c", 'echo quit | "$0"; rm -rf "$1"', binary, str(folder)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _quit(binary: str, env: dict[str, str], server: MpsServer, folder: Path) -> None:
    """Tell the daemon to quit, then remove its folder, from a helper process that may outlive this one.

    The daemon quits once its last client has gone, and this process is a client from its first CUDA work
    (the VLM, the in-process analyzers) until it exits: a quit awaited here waited for itself (on an H200
    the command hung for the full 30 s the first time). Where this process started no CUDA, the helper is
    awaited (it ends at once)."""
    connections = server.client_connections()
    helper = _send_quit(binary, env, folder)
    if not _cuda_started_here():
        try:
            helper.wait(COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("MPS: the daemon of %s did not quit within %.0f s", server.pipe_directory, COMMAND_TIMEOUT_S)
    logger.info("MPS: %s client connection(s); the daemon was told to quit (once this process's CUDA is gone)",
                connections)
