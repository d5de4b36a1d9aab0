"""Where one analyzer's time goes inside a run: ``framework run --profile NAME``.

Analyzers run as threads of one process, sharing the interpreter, the GPU and the CPUs, so an
analyzer can be several times slower in a full run than alone, and a profile of it alone does not
say why. ``StackSampler`` looks at the stacks of the analyzer's threads every ``interval_s`` from a
thread of its own and counts what it sees, in wall-clock time: a stack caught waiting for the
interpreter lock, the GPU or a file counts where it waits. The threads are the one running
``analyze()`` and those whose names start with the analyzer's name (the device step's
``NAME-pre`` and ``NAME-post`` pools; name the threads an analyzer starts the same way).

Two files are written (``<run folder>/profiles/``):

- ``NAME.txt``: the functions most often on top of a stack (own time) and anywhere in one
  (inclusive time), as shares of the samples;
- ``NAME.folded``: one line per distinct stack, ``root;...;leaf COUNT`` (the "folded" format that
  flamegraph.pl, speedscope and inferno read).

Sampling costs the run one more thread that wakes ``1 / interval_s`` times a second; it needs the
interpreter lock to look, so under heavy contention samples come less often than asked (the
report says how many it took). Unlike ``cProfile`` it works the same on every Python version and
does not slow the profiled code down.
"""
from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterator, TypeVar

from .work_streams import number_setting

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

#: seconds between two looks at the stacks
DEFAULT_INTERVAL_S = 0.005
Frame = tuple[str, str, int]  # (file, function, first line of the function)


class StackSampler:
    """Samples the stacks of one thread and of the threads named ``prefix...`` while it runs.

    Use as a context manager in the thread to profile::

        with StackSampler("speech_transcription") as sampler:
            analyzer.analyze(inputs)
        sampler.write(folder / "speech_transcription")
    """

    def __init__(self, prefix: str, interval_s: float = DEFAULT_INTERVAL_S, every_thread: bool = False):
        """:param every_thread: sample every thread of the process instead, each stack under a first frame
            that names its thread (``run_start``)."""
        self.prefix = prefix
        self.interval_s = interval_s
        self.every_thread = every_thread
        self.stacks: collections.Counter[tuple[Frame, ...]] = collections.Counter()
        self.samples = 0  # looks taken (each may count several threads' stacks)
        self.seconds = 0.0
        self._owner: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "StackSampler":
        self._owner = threading.get_ident()
        self._stop.clear()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name=f"{self.prefix}-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.seconds = time.perf_counter() - self._t0

    def _threads(self) -> list[int]:
        named = [t.ident for t in threading.enumerate()
                 if t.ident is not None and t.name.startswith(f"{self.prefix}-") and t is not self._thread]
        return [self._owner, *named] if self._owner is not None else named

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            frames = sys._current_frames()
            self.samples += 1
            if self.every_thread:
                names = {t.ident: t.name for t in threading.enumerate()}
                for ident, frame in frames.items():
                    if ident != threading.get_ident():
                        self.stacks[(("<thread>", names.get(ident, f"thread {ident}"), 0), *_walk(frame))] += 1
                continue
            for ident in self._threads():
                frame = frames.get(ident)
                if frame is not None:
                    self.stacks[tuple(_walk(frame))] += 1

    # --- reports ----------------------------------------------------------------------
    def folded(self) -> str:
        """One line per distinct stack, root first: ``file:function;...;file:function COUNT``."""
        return "".join(f"{';'.join(_label(f) for f in stack)} {count}\n"
                       for stack, count in self.stacks.most_common())

    def report(self, top: int = 30) -> str:
        """The functions with the most samples on top of a stack (own) and anywhere in one (inclusive)."""
        total = sum(self.stacks.values())
        own: collections.Counter[Frame] = collections.Counter()
        inclusive: collections.Counter[Frame] = collections.Counter()
        for stack, count in self.stacks.items():
            if stack:
                own[stack[-1]] += count
            for frame in set(stack):
                inclusive[frame] += count
        lines = [f"# {self.prefix}: {self.samples} looks in {self.seconds:.1f} s (asked: every "
                 f"{self.interval_s * 1000:.0f} ms), {total} thread stacks",
                 "", "## Own (on top of the stack)", "", "| share | samples | function |", "|---|---|---|"]
        lines += [f"| {c / max(1, total):.1%} | {c} | `{_label(f)}` |" for f, c in own.most_common(top)]
        lines += ["", "## Inclusive (anywhere in the stack)", "", "| share | samples | function |", "|---|---|---|"]
        lines += [f"| {c / max(1, total):.1%} | {c} | `{_label(f)}` |" for f, c in inclusive.most_common(top)]
        if self.every_thread:  # what each thread was doing: its stacks' tops
            by_thread: dict[str, collections.Counter[Frame]] = collections.defaultdict(collections.Counter)
            for stack, count in self.stacks.items():
                by_thread[stack[0][1]][stack[-1]] += count
            lines += ["", "## By thread (its samples; the functions most often on top of its stack)", "",
                      "| thread | samples | on top |", "|---|---|---|"]
            for name, tops in sorted(by_thread.items(), key=lambda kv: -sum(kv[1].values())):
                n = sum(tops.values())
                lines.append(f"| {name} | {n} | " + "; ".join(f"`{_label(f)}` {c / n:.0%}" for f, c in tops.most_common(3))
                             + " |")
        return "\n".join(lines) + "\n"

    def write(self, stem: Path) -> list[Path]:
        """``stem.txt`` (the report) and ``stem.folded``; returns their paths."""
        stem.parent.mkdir(parents=True, exist_ok=True)
        txt, folded = stem.with_suffix(".txt"), stem.with_suffix(".folded")
        txt.write_text(self.report(), encoding="utf-8")
        folded.write_text(self.folded(), encoding="utf-8")
        return [txt, folded]


def sampled(prefix: str, stem: Path, run: Callable[[], _T], where: str = "") -> _T:
    """``run()`` with this thread's stacks and those of the threads named ``prefix...`` sampled
    (``framework run --profile``); the report written to ``stem.txt`` and ``stem.folded`` and logged."""
    sampler = StackSampler(prefix)
    try:
        with sampler:
            return run()
    finally:
        report = sampler.write(stem)[0]
        logger.info("%s: where analyze() spent its time%s: %s", prefix, where, report)


def run_start(stem: Path, env: Any = None) -> Callable[[], None] | None:
    """``FRAMEWORK_PROFILE_START=SECONDS``: sample every thread of this process for the first ``SECONDS`` of the run
    (its plan, the import warm-up, the first loads: what held the interpreter while the warm-up imported), the
    report written to ``stem.txt`` and ``stem.folded`` then. Returns the call that ends it early (the run's end),
    or None when not asked."""
    seconds = number_setting("FRAMEWORK_PROFILE_START", env, hint="give the seconds to sample, e.g. 10")
    if seconds is None:
        return None
    sampler = StackSampler("run_start", every_thread=True)
    sampler.__enter__()
    pending = [sampler]  # (emptied by the first end: the timer's or the run's)
    lock = threading.Lock()

    def end() -> None:
        with lock:
            if not pending:
                return
            pending.clear()
        sampler.__exit__(None, None, None)
        logger.info("every thread's first %.1f s of the run: %s", sampler.seconds, sampler.write(stem)[0])

    timer = threading.Timer(seconds, end)
    timer.daemon = True
    timer.start()
    return end


def _walk(frame: FrameType | None) -> Iterator[Frame]:
    """The frames of a stack, root first."""
    stack = []
    while frame is not None:
        code = frame.f_code
        stack.append((code.co_filename, code.co_name, code.co_firstlineno))
        frame = frame.f_back
    return reversed(stack)


def _label(frame: Frame) -> str:
    file, function, line = frame
    parts = Path(file).parts
    short = "/".join(parts[-2:]) if len(parts) > 1 else file
    return f"{short}:{function}:{line}"
