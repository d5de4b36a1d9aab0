"""The decode pass in a process of its own, while the run's process loads the models.

In a run that uses a GPU the models take seconds to load (imports, weights to the device), and
decoding the video takes seconds too: done one after the other, each analyzer waited for both.
``BackgroundDecode`` runs ``media.decode`` in a child process (``python -m framework.decode_process``,
a fresh interpreter, as ``framework.own_process`` starts) while the run's process goes on: the
executor admits and loads the models at once, and starts the analyses when the streams are there
(``Executor(inputs_ready=...)``). In a thread of the run's process the decode would take turns on the
interpreter's lock with the loads and the import warm-up: on 2 CPUs a warm-up thread beside it made
a decode 5 times slower (``bench/decode_phase.py``).

The child writes the streams where ``media.decode`` would (the run's cache folder); their folders,
the audio file and the ``DecodeStats`` come back, and the streams are opened here from disk. Its
progress comes back as it decodes, and the audio as soon as its own pass is complete (``on_audio``,
``audio_ready``): the analyzers that hear only the audio may start seconds before the video is done.
An error comes back as the same exception (a ``MediaError`` that names the file and says what to
do), a child that died as a ``MediaError`` with its stderr. The run's stop (Ctrl-C) ends the child
at once.
"""
from __future__ import annotations

import logging
import os
import pickle
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

from . import media
from .process_workers import _Child, child_env, children_supported, exit_with_parent
from .streams import AudioTrack, FrameSpec, FrameStream
from .timeline import VideoMeta
from .work_streams import switched_on

logger = logging.getLogger(__name__)

POLL_S = 0.2  # how often the waiting thread looks at the run's stop while the child is quiet


class BackgroundDecode:
    """``media.decode`` in a child process, waited for on a thread of this one.

    ``ready`` is set when it has ended (decoded, failed or stopped); ``result()`` then returns the
    ``DecodedMedia`` or raises the decode's error. Called on the waiting thread before ``ready`` is
    set: ``on_done(decoded)`` when the decode succeeded, ``on_failure()`` when it failed (the run
    stops its analyzers). ``stop`` (the run's Ctrl-C) or ``close()`` end the child at once.

    ``audio_ready`` is set when the audio is complete: early, after ``on_audio(track)``, when the audio
    decoded on a pass of its own and reached its end; else when ``ready`` is.

    ``first``: streams (some of ``specs``) decoded in a pass of their own before the others (with the
    audio), so that the analyzers reading only them may start while the rest are decoded: after it,
    ``on_first(decoded)`` is called with them and ``first_ready`` is set (also when the decode ends
    otherwise). The video is then decoded twice, the second time for the other streams only. When the
    first pass finds the file broken off, ``first_ready`` waits for the end (the run's length changes).
    """

    def __init__(self, path: Path, video: VideoMeta, specs: list[FrameSpec], want_audio: bool, cache_dir: Path,
                 progress: Callable[[float], None] | None = None, stop: threading.Event | None = None,
                 on_done: Callable[[media.DecodedMedia], None] | None = None,
                 on_failure: Callable[[], None] | None = None,
                 on_audio: Callable[[AudioTrack], None] | None = None, first: list[FrameSpec] | None = None,
                 on_first: Callable[[media.DecodedMedia], None] | None = None,
                 features: media.StreamFeatures | None = None):
        self.ready = threading.Event()
        self.audio_ready = threading.Event()
        self.first_ready = threading.Event()
        self.first = [s for s in (first or []) if s in specs]
        if set(self.first) >= set(specs):
            self.first = []  # (nothing left for a second pass: one pass)
        self._on_first = on_first
        self._on_audio = on_audio
        self.stop = stop
        self._halt = threading.Event()
        self._on_failure = on_failure
        self._decoded: media.DecodedMedia | None = None
        self._error: BaseException | None = None
        self.path, self.video, self.cache_dir = Path(path), video, Path(cache_dir)
        self.specs, self.want_audio = list(specs), want_audio  # what it makes
        self.features = dict(features or {})  # per-frame features of its streams (``media.decode``)
        self.progress, self._on_done = progress, on_done  # progress may be set later (the run's bars)
        self._thread = threading.Thread(target=self._wait, name="decode-pass", daemon=True)
        self._thread.start()

    @property
    def error(self) -> BaseException | None:
        """The decode's error once it has ended with one (not a stop: that is the run's)."""
        if not self.ready.is_set() or isinstance(self._error, _Stopped):
            return None
        return self._error

    def result(self) -> media.DecodedMedia:
        """Wait for the decode; its ``DecodedMedia``, or its error raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._decoded is not None
        return self._decoded

    def close(self) -> None:
        """Stop the child if it still runs and wait for the waiting thread."""
        self._halt.set()
        self._thread.join()

    def _wait(self) -> None:
        child: _Child | None = None
        try:
            child = _Child(0, child_env(), module=__name__)
            child.send_conn.send((str(self.path), self.video, self.specs, self.want_audio, str(self.cache_dir),
                                  self.first, self.features))
            while True:
                if self._halt.is_set() or (self.stop is not None and self.stop.is_set()):
                    raise _Stopped()
                if not child.recv_conn.poll(POLL_S):
                    continue
                kind, value = _receive(child, str(self.path))
                if kind == "progress":
                    if self.progress is not None:
                        self.progress(value)
                    continue
                if kind == "audio":
                    if self._on_audio is not None:
                        self._on_audio(AudioTrack(Path(value)))
                    self.audio_ready.set()
                    continue
                if kind == "first":
                    part = _opened(*value)
                    if part.stats.truncated_at is None:  # (a broken-off file: its length is known at the end)
                        if self._on_first is not None:
                            self._on_first(part)
                        self.first_ready.set()
                    continue
                if kind == "error":
                    raise value
                self._decoded = _opened(*value)
                break
            if self._on_done is not None:
                self._on_done(self._decoded)
        except _Stopped as exc:
            self._error = exc
        except BaseException as exc:  # noqa: BLE001 - handed to result(), in the run's thread
            self._error = exc
            if self._on_failure is not None:
                self._on_failure()
        finally:
            if child is not None:
                child.stop(timeout=0 if self._error is not None else 5.0)
            self.ready.set()
            self.audio_ready.set()
            self.first_ready.set()


def wanted(env: Any = None) -> bool:
    """Whether a run that uses a GPU decodes in a process of its own (``FRAMEWORK_DECODE_PROCESS``, on by default)."""
    return switched_on("FRAMEWORK_DECODE_PROCESS", env) and children_supported()


class _Stopped(KeyboardInterrupt):
    """The run stopped (Ctrl-C) while the video decoded."""


def _receive(child: _Child, path: str) -> tuple[str, Any]:
    try:
        return child.recv_conn.recv()
    except (EOFError, OSError):
        raise media.MediaError(f"{path}: the decoding process died {child.death()}") from None


def _opened(streams: list[tuple[FrameSpec, str]], audio: str | None, stats: media.DecodeStats) -> media.DecodedMedia:
    return media.DecodedMedia({spec: FrameStream(Path(folder), spec) for spec, folder in streams},
                              AudioTrack(Path(audio)) if audio is not None else None, stats)


# --- the child ------------------------------------------------------------------------------
def _payload(decoded: media.DecodedMedia) -> tuple[Any, ...]:
    return ([(spec, str(s.folder)) for spec, s in decoded.streams.items()],
            str(decoded.audio.path) if decoded.audio is not None else None, decoded.stats)


def change_priority(env: Any = None) -> None:
    """``FRAMEWORK_DECODE_NICE=N``: the decoding process's priority moved by ``N`` (``os.nice``: negative is
    higher, which needs the privilege to raise a priority: root or CAP_SYS_NICE), to measure how much the CPU
    work beside the decode slows it. Unset (the default): the run's own priority. A change refused is logged."""
    value = (os.environ if env is None else env).get("FRAMEWORK_DECODE_NICE", "").strip()
    if not value:
        return
    try:
        os.nice(int(value))
    except (ValueError, AttributeError, OSError) as exc:
        logger.warning("FRAMEWORK_DECODE_NICE=%s: the decode keeps the run's priority (%s)", value, exc)


def _serve(recv_conn: Connection, send_conn: Connection) -> None:
    exit_with_parent()  # (a run killed outright leaves no decode writing on into its cache)
    path, video, specs, want_audio, cache_dir, first, features = recv_conn.recv()
    change_priority()  # (before the decoders' threads start: a thread takes its creator's priority)
    sending = threading.Lock()  # progress and the audio come from different threads of the decode

    def send(message: tuple[str, Any]) -> None:
        with sending:
            send_conn.send(message)

    def decode(which: list[FrameSpec], audio: bool, done: float, share: float) -> media.DecodedMedia:
        return media.decode(path, video, which, audio, Path(cache_dir),
                            progress=lambda f: send(("progress", done + share * f)),
                            on_audio=lambda track: send(("audio", str(track.path))),
                            features={s: f for s, f in features.items() if s in which})

    try:
        if first:  # two passes: the first streams (and the audio), then the others
            part = decode(first, want_audio, 0.0, 0.5)
            send(("first", _payload(part)))
            rest = decode([s for s in specs if s not in first], False, 0.5, 0.5)
            decoded = media.DecodedMedia({**part.streams, **rest.streams}, part.audio, media.merged_stats(part.stats, rest.stats))
        else:
            decoded = decode(specs, want_audio, 0.0, 1.0)
        reply: tuple[str, Any] = ("ok", _payload(decoded))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the run
        reply = ("error", exc)
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception that does not pickle: its type's name and message
            reply = ("error", media.MediaError(f"{path}: decoding failed: {type(exc).__name__}: {exc}\n"
                                               f"{traceback.format_exc()}"))
    send(reply)


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
