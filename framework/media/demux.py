"""One demux pass over a file's wanted streams into their sinks (``decoding`` and ``audio_child``)."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from .sinks import AudioSink, VideoSink
from .tally import DemuxTally, LoopTally

PROGRESS_EVERY_S = 0.2       # wall-clock seconds between progress() calls

ProgressFn = Callable[[float], None]


def demux_loop(container: Any, vs: Any, vsink: VideoSink | None, aus: Any,
               asink: AudioSink | None, start: float, duration: float, tally: DemuxTally,
               progress: ProgressFn | None, stop: threading.Event | None = None) -> str | None:
    """One demux pass over the wanted streams, counted in ``tally``. Returns the error that
    stopped it early, or ``None``; once ``stop`` is set it returns at the next packet (the caller,
    interrupted, discards what it decoded)."""
    import av

    wanted = ([vs] if vsink else []) + ([aus] if asink else [])
    read = LoopTally()
    next_report = time.perf_counter() + PROGRESS_EVERY_S
    position = 0.0
    try:
        for packet in container.demux(*wanted):
            if stop is not None and stop.is_set():
                return "stopped"
            read.read(packet)
            if vsink is not None and packet.stream is vs:
                for frame in packet.decode():
                    position = vsink.add(frame, start)
            elif asink is not None:
                for frame in packet.decode():
                    asink.add(frame, start)
                if vsink is None:
                    position = asink.last_end
            if progress is not None and duration > 0 and time.perf_counter() >= next_report:
                progress(min(1.0, position / duration))
                next_report = time.perf_counter() + PROGRESS_EVERY_S
    except (av.FFmpegError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        # drain what the decoders already hold: frames before the break are still good
        for stream, sink in ((vs, vsink), (aus, asink)):
            if sink is None:
                continue
            try:
                for frame in stream.decode(None):
                    sink.add(frame, start)
            except (av.FFmpegError, EOFError, ValueError):
                pass
        return reason
    finally:
        tally.add(read)
    return None
