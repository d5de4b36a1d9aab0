"""LLM backends behind one interface, registered through the ``register_llm_backends`` hook.

Built-in backends (each a plugin of this module, exactly as a third party would add one):

- ``transformers``: any local chat/instruct model (a manifest id such as
  ``qwen2.5-1.5b-instruct``, whose folder the runner resolves, or a local folder), run with the
  tokenizer's chat template.
- ``openai``: any OpenAI-compatible HTTP server (Ollama, vLLM, llama.cpp server,
  ``transformers serve``): ``POST {base_url}/chat/completions``.
- ``extractive``: no model. The fusion step writes a structured summary straight from the
  timeline and says so (``Summary.extractive``).

``auto`` (the fusion step's default) is not a backend class: ``framework.llm.auto`` resolves it to
``transformers`` with the best instruction-tuned summary model that is already cached and fits,
else to ``extractive``, and says which and why.

A backend is a class with a ``name``, a pydantic ``Options`` model (``extra="forbid"``) and the
methods of ``LLMBackend`` (in ``framework.llm.backend``, re-exported here). Importing this
module imports neither torch nor transformers nor httpx.

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

from typing import Any

from pydantic import ValidationError

from ..hookspecs import hookimpl
from .backend import LLMBackend, LLMError, LLMUnavailable, Message, estimate_tokens


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
