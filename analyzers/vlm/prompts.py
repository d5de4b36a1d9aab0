"""The words around the frames: the instruction, the frame times, and the context of earlier chunks.

Every family is told the real presentation times of its frames. Qwen2-VL and LLaVA-NeXT-Video
read them from a text line (``times_line``); Qwen2.5-VL also gets the frame rate for its absolute
time encoding; SmolVLM2 reads a ``Frame from MM:SS:`` line before each frame (its own video
prompt format); an OpenAI-compatible endpoint gets a ``Frame at 12.5 s:`` text part before each
image.

Context across chunks (seed 001's "Flow II"): the descriptions of the chunks before, newest
last, cut from the oldest end to ``max_tokens`` (counted by the model's tokenizer when it has
one). Each later chunk waits for the one before it, so context mode runs one chunk at a time.
"""
from __future__ import annotations

import re
from collections import deque
from typing import Callable, Sequence

DEFAULT_PROMPT = ("Describe what happens in this part of the video: the setting, the people and objects, "
                  "their actions, any text on screen, and how the shot changes. Be factual and concise.")


def fmt_seconds(t: float) -> str:
    return f"{t:.1f}"


def times_line(start: float, end: float, times: Sequence[float]) -> str:
    """``This part runs from 12.0 s to 22.0 s of the video; its 4 frames are at 12.0, 14.5, ... s.``"""
    shown = ", ".join(fmt_seconds(t) for t in times)
    n = len(times)
    return (f"This part runs from {fmt_seconds(start)} s to {fmt_seconds(end)} s of the video; "
            f"its {n} frame{'s' if n != 1 else ''} {'are' if n != 1 else 'is'} at {shown} s.")


def mmss(t: float) -> str:
    """SmolVLM2's frame stamp (``MM:SS``), as its video template writes it."""
    t = max(0.0, t)
    return f"{int(t // 60):02d}:{int(t % 60):02d}"


def context_block(previous: Sequence[str]) -> str:
    if not previous:
        return ""
    return "What happened before, in earlier parts of the video:\n" + "\n".join(previous) + "\n\n"


class Context:
    """The descriptions carried into the next chunk's prompt, newest last, under a token cap."""

    def __init__(self, max_tokens: int, count: Callable[[str], int]):
        self.max_tokens = max_tokens
        self.count = count
        self.items: deque[tuple[str, int]] = deque()
        self.total = 0

    def add(self, start: float, end: float, text: str) -> None:
        text = " ".join(text.split())
        if not text or self.max_tokens <= 0:
            return
        line = f"[{fmt_seconds(start)}-{fmt_seconds(end)} s] {text}"
        n = self.count(line)
        if n > self.max_tokens:  # one description longer than the cap: keep its end
            words = line.split()
            while words and self.count(" ".join(words)) > self.max_tokens:
                words = words[max(1, len(words) // 8):]
            line, n = " ".join(words), self.count(" ".join(words))
        self.items.append((line, n))
        self.total += n
        while self.total > self.max_tokens and self.items:
            _, dropped = self.items.popleft()
            self.total -= dropped

    def lines(self) -> list[str]:
        return [line for line, _ in self.items]


_TIME = re.compile(r"(?<![\w.])(?:(\d{1,2}):(\d{2})(?::(\d{2}))?|(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds)\b)")


def times_mentioned(text: str) -> list[float]:
    """Times a description writes (``12.5 s``, ``1:05``, ``0:01:05``), in seconds."""
    found = []
    for m in _TIME.finditer(text):
        if m.group(4) is not None:
            found.append(float(m.group(4)))
        elif m.group(3) is not None:
            found.append(int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3)))
        else:
            found.append(int(m.group(1)) * 60 + int(m.group(2)))
    return found


__all__ = ["Context", "DEFAULT_PROMPT", "context_block", "mmss", "times_line", "times_mentioned"]
