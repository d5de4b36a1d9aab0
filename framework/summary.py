"""The summary the fusion step writes: every chapter and key moment cites its evidence.

Stored in the fusion track as ``track.data["summary"]`` (``Summary.model_dump(mode="json")``);
exporters read it back with ``Summary.from_track(track)``.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .timeline import Track


class _Value(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Evidence(_Value):
    """A pointer into the timeline: which analyzer, which event, which time range."""

    analyzer: str
    event_index: int | None = None  # index into that track's ``events``; None for a series
    start: float
    end: float
    label: str = ""


class Chapter(_Value):
    start: float
    end: float
    title: str
    summary: str = ""
    evidence: list[Evidence] = Field(default_factory=list)


class KeyMoment(_Value):
    time: float
    end: float | None = None
    text: str
    evidence: list[Evidence] = Field(default_factory=list)


class Grounding(_Value):
    """How the times the LLM wrote were checked against the timeline."""

    checked: int = 0
    kept: int = 0
    snapped: int = 0
    dropped: int = 0
    notes: list[str] = Field(default_factory=list)


class Summary(_Value):
    title: str
    paragraph: str
    detailed: str = ""
    chapters: list[Chapter] = Field(default_factory=list)
    key_moments: list[KeyMoment] = Field(default_factory=list)
    language: str = "en"
    backend: str = "extractive"          # which LLM backend wrote it
    model: str | None = None
    extractive: bool = True              # True when no LLM wrote it (said in every output)
    grounding: Grounding = Field(default_factory=Grounding)
    token_budget: int | None = None
    tokens_used: int | None = None
    notes: list[str] = Field(default_factory=list)

    @classmethod
    def from_track(cls, track: Track | None) -> "Summary | None":
        if track is None or track.status != "ok" or "summary" not in track.data:
            return None
        return cls.model_validate(track.data["summary"])

    def to_data(self) -> dict[str, Any]:
        return {"summary": self.model_dump(mode="json")}
