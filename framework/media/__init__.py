"""Probe a media file and decode it once into every frame stream and the audio the analyzers need.

Public API: ``probe(path, video_stream=None, audio_stream=None) -> VideoMeta``,
``decode(path, meta, specs, want_audio, cache_dir, progress=None) -> DecodedMedia``,
``file_hash``, ``MediaError``, ``DecodeStats``, ``DecodedMedia``.

Modules, each importing only the ones above it (no cycle):

- ``_container``: opening a file, its clock origin and display geometry, ``MediaError``;
- ``selection``: which video and audio stream to analyze (FFmpeg's choice, or the user's);
- ``probing``: ``probe``, the frame rate, still-image refusal;
- ``tally``: counting the packets and bytes actually demuxed;
- ``sinks``: decoded frames into frame streams, audio into 16 kHz mono;
- ``segments``: parallel keyframe-aligned segment decoding;
- ``decoding``: ``decode``, the one pass.

Time convention
---------------
Every time this package produces is in seconds on the file's *presentation* timeline, with
``t = 0`` at the container's start time: the earliest start of any of its streams
(``VideoMeta.start_time`` holds that offset in the file's own clock). So ``t`` equals the
position a media player shows. Times come from each frame's presentation timestamp
(``pts * time_base``), never from counting frames, so variable-frame-rate files and streams
that start late (a video track beginning at 1.0 s after its audio) come out right. A frame
without a timestamp (raw elementary streams) is placed one frame interval after the previous
one.

Geometry
--------
Frames come out in display orientation: ``VideoMeta.rotation`` is the clockwise angle
(0/90/180/270) a player turns the coded picture by (the display matrix; the old ``rotate``
tag), and ``width``/``height`` are the display size after that rotation and after the sample
aspect ratio (non-square pixels) is applied. Mirroring in a display matrix is ignored.
"""
from __future__ import annotations

from ._container import MediaError
from .decoding import DecodedMedia, DecodeStats, decode, merged_stats
from .probing import file_hash, probe
from .segments import StreamFeatures

__all__ = ["DecodeStats", "DecodedMedia", "MediaError", "StreamFeatures", "decode", "file_hash", "merged_stats",
           "probe"]
