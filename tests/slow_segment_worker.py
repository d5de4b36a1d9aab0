"""A segment worker that holds every segment for minutes before decoding it (imported by the worker processes
of ``tests/test_media.py``'s stop test: a fresh interpreter, so it lives in a module of its own)."""
from __future__ import annotations

import time

from framework.media.segments import SegmentWorker


class SlowSegmentWorker(SegmentWorker):
    def __call__(self, seg):
        time.sleep(300)  # the test stops the decode long before: a worker still here is killed, not waited for
        return super().__call__(seg)
