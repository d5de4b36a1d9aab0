"""LLM backends behind one interface, registered through the ``register_llm_backends`` hook.

Built-in backends (each a plugin of this module, exactly as a third party would add one):

- ``transformers``: any local chat/instruct model (a manifest id such as
  ``qwen2.5-1.5b-instruct``, a Hugging Face repo id, or a local folder), loaded from the local
  Hugging Face cache with the tokenizer's chat template.
- ``openai``: any OpenAI-compatible HTTP server (Ollama, vLLM, llama.cpp server,
  ``transformers serve``): ``POST {base_url}/chat/completions``.
- ``extractive``: no model. The fusion step writes a structured summary straight from the
  timeline and says so (``Summary.extractive``).

A backend is a class with a ``name``, a pydantic ``Options`` model (``extra="forbid"``) and the
methods below. Importing this module imports neither torch nor transformers.

Writing a backend::

    from framework import hookimpl
    from framework.llm import LLMBackend

    class Echo(LLMBackend):
        name = "echo"

        def generate(self, messages, max_new_tokens, temperature=0.0):
            return messages[-1]["content"][:max_new_tokens]

    @hookimpl
    def register_llm_backends(register):
        register(Echo)
"""
from __future__ import annotations

import math
import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ..analyzer import AnalyzerUnavailable
from ..errors import FrameworkError
from ..hookspecs import hookimpl

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


class LLMError(FrameworkError):
    """A backend call failed (server error, bad answer, generation error); the message says why."""


class LLMUnavailable(AnalyzerUnavailable):
    """The backend cannot run here (model not cached offline, server unreachable, missing package).

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

    Lifecycle: ``check_available()`` (cheap, no model load) -> ``load()`` -> ``generate()`` ... ->
    ``close()``. ``load`` raises ``LLMUnavailable`` when the backend cannot run here.
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

    def close(self) -> None:
        """Release the model or connection."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} model={self.model_name!r}>"


def builtin_backends() -> dict[str, type[LLMBackend]]:
    """The built-in backend classes by name (what the hook registers)."""
    from .extractive import ExtractiveBackend
    from .openai_backend import OpenAIBackend
    from .transformers_backend import TransformersBackend

    return {cls.name: cls for cls in (TransformersBackend, OpenAIBackend, ExtractiveBackend)}


def make_backend(name: str, options: dict[str, Any], backends: dict[str, type] | None = None,
                 where: str = "analyzers.fusion.params") -> LLMBackend:
    """Instantiate backend ``name`` with ``options`` (validated), from ``backends`` or the built-ins.

    :raises LLMError: unknown backend name, or options its ``Options`` model rejects; the message
        names the registry key and lists the valid choices.
    """
    table = dict(backends) if backends else builtin_backends()
    if name not in table:
        raise LLMError(f"{where}.backend: unknown LLM backend {name!r}; registered backends: "
                       f"{', '.join(sorted(table)) or '(none)'}")
    cls = table[name]
    try:
        return cls(options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        valid = ", ".join(getattr(cls, "Options", LLMBackend.Options).model_fields) or "(none)"
        raise LLMError(f"{where}: options for LLM backend {name!r} are invalid ({problems}); "
                       f"valid options: {valid}") from None


@hookimpl
def register_llm_backends(register):
    for cls in builtin_backends().values():
        register(cls)


__all__ = ["LLMBackend", "LLMError", "LLMUnavailable", "Message", "builtin_backends",
           "estimate_tokens", "make_backend"]
