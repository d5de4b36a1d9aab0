"""The ``extractive`` backend: no model at all.

It writes no text. The fusion step sees ``extractive = True`` and builds the summary straight
from the analyzers' tracks (titles, chapters at scene boundaries, key moments at the most
salient events), marking it ``Summary.extractive`` so every output says no LLM wrote it.
"""
from __future__ import annotations

from typing import ClassVar

from .backend import LLMBackend, LLMError, Message


class ExtractiveBackend(LLMBackend):
    """No language model: the summary is assembled from the timeline itself."""

    name: ClassVar[str] = "extractive"
    extractive: ClassVar[bool] = True

    class Options(LLMBackend.Options):
        """The extractive backend takes no options."""

    @property
    def context_window(self) -> int:
        return 1 << 30  # no model, so no window; the fusion token budget still applies

    def generate(self, messages: list[Message], max_new_tokens: int, temperature: float = 0.0) -> str:
        raise LLMError("the extractive backend writes no text: the fusion step builds the summary from "
                       "the timeline (set analyzers.fusion.params.backend to transformers or openai "
                       "for a written summary)")
