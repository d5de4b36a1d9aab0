"""The ``LLMBackend`` base class, its errors and the token estimate every backend starts from.

A backend is a class with a ``name``, a pydantic ``Options`` model (``extra="forbid"``) and the
methods below; the ``register_llm_backends`` hook registers it (see ``framework.llm``). This
module imports nothing heavy: no torch, no transformers, no httpx.

Models: the runner resolves every manifest id to a local folder before the fusion step loads
(``Analyzer.load(device, models)``). A backend that loads a model from disk declares a
``model_path`` field in its ``Options``; the fusion step then fills it with the folder the
runner handed over for ``model``, and the backend loads from that folder and looks nothing up
itself (no hub, no cache, no download).
"""
from __future__ import annotations

import math
import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ..analyzer import AnalyzerUnavailable
from ..errors import FrameworkError

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


class LLMError(FrameworkError):
    """A backend call failed (server error, bad answer, generation error); the message says why."""


class LLMUnavailable(AnalyzerUnavailable):
    """The backend cannot run here (model not cached, server unreachable, missing package).

    The message says what to do, e.g. ``framework models pull qwen2.5-1.5b-instruct``.
    """


_WORDISH = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def estimate_tokens(text: str) -> int:
    """A conservative token estimate for backends without a local tokenizer.

    Takes the larger of ``chars / 3.5`` and ``1.3 x (words + punctuation marks)``: English
    prose under BPE tokenizers averages about 4 characters or 0.75 words per token, so this
    overestimates slightly, which keeps prompts inside a context window rather than over it.
    """
    if not text:
        return 0
    pieces = len(_WORDISH.findall(text))
    return int(math.ceil(max(len(text) / 3.5, pieces * 1.3)))


class LLMBackend:
    """Base class of every LLM backend.

    Class attributes: ``name`` (the key in ``analyzers.fusion.params.backend``), ``Options``
    (a pydantic model, ``extra="forbid"``), ``extractive`` (True only for a backend that writes
    no text), ``plugin`` (stamped by the host).

    Lifecycle: ``check_available()`` (cheap, no model load) -> ``load()`` -> ``generate()`` (and
    ``generate_many()`` for independent chats, by default ``generate`` in turn) ... -> ``close()``. ``load`` raises ``LLMUnavailable`` when the backend cannot run here; the fusion
    step then writes an extractive summary and records why (any other exception from ``load``
    or ``generate`` is treated the same way).
    """

    name: ClassVar[str] = ""
    extractive: ClassVar[bool] = False
    plugin: ClassVar[str | None] = None

    class Options(BaseModel):
        """Backend options, validated from ``analyzers.fusion.params``."""

        model_config = ConfigDict(extra="forbid")

    def __init__(self, options: BaseModel | dict[str, Any] | None = None):
        if options is None:
            options = {}
        if isinstance(options, dict):
            options = self.Options.model_validate(options)
        self.options = options

    # --- what the fusion step asks --------------------------------------------------
    @property
    def model_name(self) -> str | None:
        """The model this backend talks to (for ``Summary.model``), if any."""
        return getattr(self.options, "model", None)

    @property
    def context_window(self) -> int:
        """The most tokens (prompt plus answer) one call may use."""
        return int(getattr(self.options, "context_window", None) or 4096)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this backend's tokenizer (an estimate when it has none)."""
        return estimate_tokens(text)

    def count_messages(self, messages: list[Message]) -> int:
        """Tokens a chat prompt takes, with a small allowance per message for the template."""
        return sum(self.count_tokens(m.get("content", "")) + 6 for m in messages) + 4

    def check_available(self) -> str | None:
        """``None`` if the backend can run here, else a reason that says how to fix it."""
        return None

    def load(self) -> None:
        """Load the model or open the connection. Raises ``LLMUnavailable`` with a fix."""

    def generate(self, messages: list[Message], max_new_tokens: int, temperature: float = 0.0) -> str:
        """Answer a chat: ``messages`` are ``{"role", "content"}`` dicts; returns the reply text."""
        raise NotImplementedError(f"LLM backend {self.name!r} does not implement generate()")

    def generate_many(self, chats: list[list[Message]], max_new_tokens: int,
                      temperature: float = 0.0) -> list[str]:
        """Answer several independent chats at once, in order: the map step's parts, a merge level's
        groups. Backends that can batch (a local model) or run requests side by side override it;
        the default answers them one after another with ``generate``. On a failure the error is
        raised with ``partial_answers``: the answers before it, in order."""
        answers: list[str] = []
        for m in chats:
            try:
                answers.append(self.generate(m, max_new_tokens=max_new_tokens, temperature=temperature))
            except Exception as exc:
                exc.partial_answers = list(answers)  # type: ignore[attr-defined]
                raise
        return answers

    def close(self) -> None:
        """Release the model or connection."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} model={self.model_name!r}>"


__all__ = ["LLMBackend", "LLMError", "LLMUnavailable", "Message", "estimate_tokens"]
