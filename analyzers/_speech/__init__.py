"""Shared by the speech and sound analyzers (``voice_activity``, ``speech_transcription``,
``speech_rate``, ``speech_flow``, ``speech_emotion``, ``audio_environment``, ``sound_effects``).

- ``audio``: reading stretches of the run's 16 kHz audio, the speech regions of the upstream
  track providing ``"voice_activity"``, the words of the one providing ``"transcript"``, pauses.
- ``segmented``: the base of speech_rate and speech_flow (speech regions, optional transcript).
- ``windows``: packing speech regions into Whisper windows, and mapping times back.
- ``whisper_backends``: openai-whisper and faster-whisper behind one small interface.
- ``prosody``: syllable nuclei, pitch (librosa pyin), intonation and fillers.
- ``sound``: frame features, the feature-based sound classes, and AudioSet label groups.
- ``random_models``: random-weight checkpoints in each library's real on-disk format, for the
  tests and the benchmarks (never for results).

(A private package: the auto-registration in ``analyzers/__init__.py`` skips names that start
with ``_``. Importing it loads no model.)
"""
