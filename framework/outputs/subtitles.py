"""``transcript.srt`` and ``transcript.vtt`` from the ``speech`` events that carry ``data.text``.

With no transcript (no speech-to-text analyzer ran) nothing is written and the log says so;
empty subtitle files would only look like a broken transcription.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..timeline import Timeline, atomic_write_text
from .base import Cue, ExportContext, Exporter


MIN_CUE_S = 0.5  # an instant speech event still needs to stay on screen


def _stamp(t: float, sep: str) -> str:
    ms_total = int(round(max(0.0, t) * 1000))
    h, rem = divmod(ms_total, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _lines(cue: Cue) -> str:
    text = re.sub(r"\n\s*\n+", "\n", cue.text.strip())  # a blank line would end the cue early
    return f"{cue.speaker}: {text}" if cue.speaker else text


def _end(cue: Cue) -> float:
    return max(cue.end, cue.start + MIN_CUE_S)


def to_srt(cues: list[Cue]) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    blocks = [f"{i}\n{_stamp(c.start, ',')} --> {_stamp(_end(c), ',')}\n{_lines(c)}\n"
              for i, c in enumerate(cues, 1)]
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: list[Cue]) -> str:
    """WebVTT: ``HH:MM:SS.mmm --> HH:MM:SS.mmm``; speakers as ``<v Name>`` voice spans."""
    blocks = ["WEBVTT\n"]
    for c in cues:
        text = re.sub(r"\n\s*\n+", "\n", c.text.strip())
        body = _vtt_escape(text)
        if c.speaker:
            body = f"<v {_vtt_escape(c.speaker)}>{body}"
        blocks.append(f"{_stamp(c.start, '.')} --> {_stamp(_end(c), '.')}\n{body}\n")
    return "\n".join(blocks)


class SubtitlesExporter(Exporter):
    """``transcript.srt`` / ``transcript.vtt``, only when some analyzer transcribed speech."""

    name = "subtitles"
    filenames = ("transcript.srt", "transcript.vtt")
    description = "the transcript as SubRip and WebVTT subtitles"

    def export(self, timeline: Timeline, run_dir: Path, context: ExportContext) -> list[Path]:
        cues = context.transcript()
        if not cues:
            return self.nothing_to_write(
                run_dir, "no transcript (no 'speech' events with text; enable a speech-to-text analyzer)")
        return [atomic_write_text(run_dir / "transcript.srt", to_srt(cues)),
                atomic_write_text(run_dir / "transcript.vtt", to_vtt(cues))]
