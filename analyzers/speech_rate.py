"""Speech rate: words per minute where there is a transcript, syllables per second always, and pauses.

Reads the speech segments of the upstream ``voice_activity`` track. Syllables are counted as
nuclei of the speech-band intensity (``analyzers/_speech/prosody.py``): no model, any language.
With ``transcript`` naming a transcription analyzer (e.g. ``speech_transcription``, which must be
enabled too) the words of the track it provides give words per minute and the pauses between
words; without it, pauses inside a segment are the stretches where its level drops well under
its loud frames.

Outputs:

- events ``speech_rate``: one per speech segment, ``data``: ``syllables``, ``syllables_per_s``
  (over the segment), ``articulation_rate`` (syllables per second of the segment less its
  pauses), ``words`` and ``wpm`` (``None`` without a transcript);
- events ``pause``: silences between segments (``kind: "between"``) and inside them
  (``kind: "within"``) of at least ``min_pause_s``, ``data["duration_s"]``;
- track data: ``rate_source`` (``"transcript"`` or ``"syllables"``), ``wpm``, ``syllables_per_s``,
  ``articulation_rate``, ``speech_s``, ``pause_count``, ``pause_s``, ``mean_pause_s``,
  ``pauses_per_min``.
"""
from __future__ import annotations

from pydantic import Field

from framework import AnalyzerInputs, Event, Track

from ._speech.audio import gaps, read, transcript_words, words_in
from ._speech.prosody import intensity_db, quiet_spans, syllable_nuclei
from ._speech.segmented import SpeechSegmentAnalyzer


class SpeechRate(SpeechSegmentAnalyzer):
    """Words per minute (with a transcript), syllable rate (always) and pauses per speech segment."""

    name = "speech_rate"
    original_status = "active"
    version = "1.0.0"
    description = "Speaking rate per speech segment (words/min with a transcript, syllables/s always) and pauses."

    class Params(SpeechSegmentAnalyzer.Params):
        transcript: str | None = Field(None, description="Analyzer whose transcript gives words per minute "
                                                         "(e.g. speech_transcription; enable it too). None: syllables only.")
        min_pause_s: float = Field(0.25, gt=0, description="Shortest pause reported.")
        prominence_db: float = Field(2.0, gt=0, description="How far a syllable nucleus stands out of its dips.")
        floor_db: float = Field(25.0, gt=0, description="Nuclei and speech lie within this many dB of the loudest.")

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        p = self.params
        regions = self.speech_regions(inputs)
        words = transcript_words(inputs) if p.transcript else None
        events: list[Event] = []
        pauses: list[Event] = [Event(start=round(a, 3), end=round(b, 3), label="pause",
                                     data={"duration_s": round(b - a, 3), "kind": "between"})
                               for a, b in gaps(regions, p.min_pause_s)]
        total_syll = total_words = 0
        speech_s = within_s = 0.0
        for i, (a, b) in enumerate(regions):
            y = read(inputs.audio, a, b)
            db = intensity_db(y)
            nuclei = syllable_nuclei(y, db, p.prominence_db, p.floor_db)
            dur = b - a
            if words is not None:
                seg_words = words_in(words, a, b)
                inside = gaps([(w.start, w.end) for w in seg_words], p.min_pause_s)
            else:
                seg_words = None
                inside = [(a + x, a + y) for x, y in quiet_spans(db, p.floor_db, p.min_pause_s)]
            pause_s = sum(y - x for x, y in inside)
            pauses += [Event(start=round(x, 3), end=round(y, 3), label="pause",
                             data={"duration_s": round(y - x, 3), "kind": "within"}) for x, y in inside]
            n_words = None if seg_words is None else len(seg_words)
            events.append(Event(start=round(a, 3), end=round(b, 3), label="speech_rate", data={
                "syllables": int(nuclei.size),
                "syllables_per_s": round(nuclei.size / dur, 2) if dur > 0 else None,
                "articulation_rate": round(nuclei.size / (dur - pause_s), 2) if dur - pause_s > 0 else None,
                "words": n_words,
                "wpm": round(n_words * 60.0 / dur, 1) if n_words is not None and dur > 0 else None,
            }))
            total_syll += int(nuclei.size)
            total_words += n_words or 0
            speech_s += dur
            within_s += pause_s
            inputs.report((i + 1) / len(regions))
        pauses.sort(key=lambda e: e.start)
        pause_total = sum(e.duration for e in pauses)
        span = (regions[-1][1] - regions[0][0]) if regions else 0.0
        return self.track(events=events + pauses, data={
            "rate_source": "transcript" if words is not None else "syllables",
            "wpm": round(total_words * 60.0 / speech_s, 1) if words is not None and speech_s > 0 else None,
            "syllables_per_s": round(total_syll / speech_s, 2) if speech_s > 0 else None,
            "articulation_rate": round(total_syll / (speech_s - within_s), 2) if speech_s - within_s > 0 else None,
            "speech_s": round(speech_s, 3),
            "pause_count": len(pauses),
            "pause_s": round(pause_total, 3),
            "mean_pause_s": round(pause_total / len(pauses), 3) if pauses else None,
            "pauses_per_min": round(len(pauses) * 60.0 / span, 2) if span > 0 else None,
        })

