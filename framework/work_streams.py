"""One CUDA stream per GPU analyzer: its work queues apart from the others', and it waits for its own.

Without this, every thread's CUDA work goes to the device's one default stream. With several
analyzers on one GPU (the executor runs them side by side), that means:

- their kernels wait in one line, whatever the GPU could run at once;
- every wait for a result (``.item()``, ``.cpu()``, the device step's end of a batch, NMS, a beam
  search's bookkeeping) waits for everything *every* analyzer has queued: a speech model's
  thousands of small steps each wait behind a VLM's batch.

So the executor gives each attempt of a GPU analyzer its own stream (``DeviceMemory.new_stream``;
of higher priority for ``Analyzer.gpu_stream_priority = "high"``),
and runs its load, analyze and unload with it current (``using``). torch keeps the current stream
per thread, and a thread an analyzer starts begins on the default stream: ``carry`` hands the
stream to it. The device step carries it to its preprocessing and postprocessing threads; an
analyzer that starts threads of its own doing CUDA work wraps their function in
``framework.carry_work_stream``::

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(carry_work_stream(decode_window), windows))

``FRAMEWORK_WORK_STREAMS=0`` leaves every analyzer on the default stream (to compare the two).

A stream here is whatever ``new_stream`` returned: a function giving a context manager that makes
it current (``torch.cuda.stream(s)`` on a GPU; a recording stand-in in tests). This module imports
no torch.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
from typing import Any, Callable, ContextManager, Iterator, TypeVar

Stream = Callable[[], ContextManager[Any]]
HIGHEST = -1000  # a CUDA stream priority beyond any device's range: the highest there is
F = TypeVar("F", bound=Callable[..., Any])

_local = threading.local()


def switched_on(variable: str, env: Any = None) -> bool:
    """Whether the environment leaves a default-on switch on (anything but 0, off, false, no)."""
    text = (os.environ if env is None else env).get(variable, "").strip().lower()
    return text not in ("0", "off", "false", "no")


def asked_for(variable: str, env: Any = None) -> bool:
    """Whether the environment turns a default-off switch on (1, on, true, yes)."""
    text = (os.environ if env is None else env).get(variable, "").strip().lower()
    return text in ("1", "on", "true", "yes")


def number_setting(variable: str, env: Any = None, parse: Callable[[str], Any] = float,
                   valid: Callable[[Any], bool] = lambda value: value > 0,
                   hint: str = "give a number above 0") -> Any:
    """An environment setting's number, read with ``parse`` (None: unset or blank).

    :raises ValueError: ``VARIABLE='text': hint`` when it does not parse or is not ``valid``."""
    text = (os.environ if env is None else env).get(variable, "").strip()
    if not text:
        return None
    try:
        value = parse(text)
        if not valid(value):
            raise ValueError
    except ValueError:
        raise ValueError(f"{variable}={text!r}: {hint}") from None
    return value


def wanted(env: Any = None) -> bool:
    """Whether GPU analyzers get streams of their own (``FRAMEWORK_WORK_STREAMS``, on by default)."""
    return switched_on("FRAMEWORK_WORK_STREAMS", env)


def current() -> Stream | None:
    """This thread's work stream (None: the device's default stream)."""
    return getattr(_local, "stream", None)


@contextlib.contextmanager
def using(stream: Stream | None) -> Iterator[None]:
    """Make ``stream`` this thread's work stream inside the block (None: leave things as they are)."""
    if stream is None:
        yield
        return
    previous = current()
    _local.stream = stream
    try:
        with stream():
            yield
    finally:
        _local.stream = previous


def carry(fn: F) -> F:
    """``fn``, made to run with the calling thread's work stream in whatever thread calls it.

    Call it in the thread that has the stream (the analyzer's), and hand the result to the other
    thread. Without a work stream here, ``fn`` is returned as it is.
    """
    stream = current()
    if stream is None:
        return fn

    @functools.wraps(fn)
    def on_the_work_stream(*args: Any, **kwargs: Any) -> Any:
        with using(stream):
            return fn(*args, **kwargs)

    return on_the_work_stream  # type: ignore[return-value]


carry_work_stream = carry  # its name in the public API (``framework.carry_work_stream``)


def torch_stream(torch: Any, device: str, high_priority: bool = False) -> Stream:
    """A new CUDA stream on ``device``, as a ``Stream`` (what ``TorchMemory.new_stream`` returns).

    ``high_priority``: the device's highest stream priority (as high as torch's stream pools go). The
    GPU does not stop a running kernel for it; it starts this stream's waiting work first whenever
    room frees up, so a small model's short kernels do not wait for a large model's queue.
    """
    # lower is higher; torch maps a number beyond its pools' range to the highest it has
    stream = torch.cuda.Stream(device=torch.device(device), priority=HIGHEST if high_priority else 0)
    return lambda: torch.cuda.stream(stream)
