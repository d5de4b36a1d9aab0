"""The segmented decode's audio pass in a process of its own.

Beside the parallel segment decoders (threads of one process) the audio's own pass is a loop of
short calls into FFmpeg, each giving the interpreter's lock up and waiting to get it back from
eight threads that hold it for their frames' Python: on an H200 machine (16 CPUs, eight decoders)
the audio of a 10-minute clip was complete 21.13 s into a 21.15 s decode, though alone it decodes
in about a second. The analyzers that hear only the audio (voice activity, then Whisper) waited
for the whole video.

``audio_pass_in_child`` runs the same pass (``demux.demux_loop`` into an ``AudioSink``) in
``python -m framework.media.audio_child``, a fresh interpreter that writes ``audio.f32`` where the
thread would, and sends back what the thread would have left: the frame count, the last sample's
time, the packet tally and the error that stopped it, if any. The caller's ``AudioSink`` takes
them over (``adopt``), so truncation checks, stats and the track are as before. Where a child
cannot start (not POSIX, ``FRAMEWORK_AUDIO_PROCESS=0``) or dies, the caller decodes in its thread.
"""
from __future__ import annotations

import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..process_workers import child_env, children_supported, exit_with_parent
from ..work_streams import switched_on

POLL_S = 0.1  # how often the waiting thread looks at the decode's stop


@dataclass
class AudioPassResult:
    """What the pass left: its error (None: it reached the end), frames, last sample's end, tallies."""

    error: str | None
    frames: int
    last_end: float
    loops: list[Any] = field(default_factory=list)  # the LoopTally of the pass


class ChildUnavailable(RuntimeError):
    """The child could not run the pass (it could not start, or died): decode the audio here instead."""


def wanted(env: Any = None) -> bool:
    """Whether the segmented decode's audio goes to a process of its own (``FRAMEWORK_AUDIO_PROCESS``,
    on by default, where children can start)."""
    return switched_on("FRAMEWORK_AUDIO_PROCESS", env) and children_supported()


def audio_pass_in_child(path: Path, stream_index: int, start: float, duration: float, out: Path,
                        stop: threading.Event) -> AudioPassResult:
    """Decode audio stream ``stream_index`` of ``path`` to ``out`` (16 kHz mono float32, as
    ``AudioSink``) in a child process. Returns what the pass left; returns at once with the
    error ``"stopped"`` (the child killed) once ``stop`` is set; raises ``ChildUnavailable`` when
    the child could not do it."""
    args = [str(path), str(stream_index), repr(start), repr(duration), str(out)]
    try:
        proc = subprocess.Popen([sys.executable, "-m", __name__, *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    except OSError as exc:
        raise ChildUnavailable(f"could not start: {exc}") from exc
    try:
        while True:
            try:
                data, err = proc.communicate(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                if stop.is_set():
                    proc.kill()
                    proc.communicate()
                    return AudioPassResult("stopped", 0, 0.0)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0 or not data:
        tail = err.decode(errors="replace").strip()[-1500:]
        raise ChildUnavailable(f"exit code {proc.returncode}: {tail or 'nothing on its stderr'}")
    return AudioPassResult(**pickle.loads(data))


class _Loops:
    """A ``DemuxTally`` stand-in that keeps the pass's ``LoopTally`` to send back."""

    def __init__(self) -> None:
        self.loops: list[Any] = []

    def add(self, loop: Any) -> None:
        self.loops.append(loop)


def _main(argv: list[str]) -> int:
    from ._container import open_container, stream_at
    from .demux import demux_loop
    from .sinks import AudioSink

    exit_with_parent()  # (a stopped run kills the decoding process that started this one)
    path, index, start, duration, out = argv[0], int(argv[1]), float(argv[2]), float(argv[3]), Path(argv[4])
    loops = _Loops()
    with open_container(Path(path)) as container:
        sink = AudioSink(out)
        stream = stream_at(container, index)
        error = demux_loop(container, None, None, stream, sink, start, duration, loops, None)  # type: ignore[arg-type]
        sink.close()
    # a dict, not an AudioPassResult: here this module is __main__, which the parent cannot unpickle from
    result = {"error": error, "frames": sink.frames, "last_end": sink.last_end, "loops": loops.loops}
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
