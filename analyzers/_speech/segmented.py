"""The base of the analyzers that measure the speech segments of the upstream ``voice_activity``
track, optionally with the words of a transcript (``speech_rate``, ``speech_flow``)."""
from __future__ import annotations

from typing import Any

from framework import Analyzer, AnalyzerInputs, AnalyzerUnavailable

from .audio import speech_regions


class SpeechSegmentAnalyzer(Analyzer):
    """Needs the audio and ``voice_activity``; a subclass's ``transcript`` param (an analyzer name or
    None) makes that analyzer an upstream of the instance too."""

    needs_audio = True
    requires_audio = True
    depends_on = ("voice_activity",)

    def __init__(self, params: Any = None):
        super().__init__(params)
        if self.params.transcript:  # the transcript's analyzer becomes an upstream of this instance
            self.depends_on = (*type(self).depends_on, self.params.transcript)

    def speech_regions(self, inputs: AnalyzerInputs) -> list[tuple[float, float]]:
        """The (start, end) speech segments; AnalyzerUnavailable when the video has no audio."""
        if inputs.audio is None:
            raise AnalyzerUnavailable(f"{self.name}: the video has no audio stream")
        return speech_regions(inputs)
