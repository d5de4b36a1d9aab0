"""Private helpers of ``visual_effects``, ``temporal_consistency`` and ``temporal_flow``.

- ``signals``: per-frame signals (brightness, colour, frame difference, dark share) from the
  every-frame stream that ``cut_analysis`` also reads, so the three analyzers add no decoding;
- ``layout``: split screens and picture-in-picture from persistent straight edges.

(A private package: the auto-registration of ``analyzers`` skips names that start with ``_``.)
"""
