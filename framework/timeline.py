"""Event / Series / Track / Timeline: the values every analyzer produces and every exporter reads.

Times are seconds (float) from the start of the video's presentation timeline.
The JSON form is versioned (``schema_version``); ``docs/timeline.schema.json`` is generated
from these models and checked by a test.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = "1.0"

TrackStatus = Literal["ok", "skipped", "failed"]


class _Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(_Value):
    """Something that happens between ``start`` and ``end`` seconds (``start == end`` for an instant)."""

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    label: str
    score: float | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> "Event":
        if self.end < self.start:
            raise ValueError(f"event {self.label!r} ends ({self.end}) before it starts ({self.start})")
        return self

    @property
    def duration(self) -> float:
        return self.end - self.start


class Series(_Value):
    """A continuous signal sampled at ``times`` (seconds): loudness, brightness, motion."""

    name: str
    unit: str = ""
    times: list[float]
    values: list[float | None]

    @model_validator(mode="after")
    def _same_length(self) -> "Series":
        if len(self.times) != len(self.values):
            raise ValueError(f"series {self.name!r}: {len(self.times)} times but {len(self.values)} values")
        return self


class ModelRef(_Value):
    """A model an analyzer used: its manifest id and the revision that was loaded."""

    id: str
    revision: str | None = None


class Track(_Value):
    """One analyzer's output for one video, with the provenance needed to trust and reuse it."""

    analyzer: str
    version: str
    params: dict[str, Any] = Field(default_factory=dict)
    params_hash: str = ""
    models: list[ModelRef] = Field(default_factory=list)
    status: TrackStatus = "ok"
    reason: str | None = None  # why it was skipped, or the error it failed with
    failed_phase: Literal["load", "analyze", "unload"] | None = None  # where a failed track failed
    traceback_file: str | None = None  # the failure's traceback, relative to the run folder
    device: str | None = None
    started_at: float | None = None  # unix time
    duration_s: float | None = None
    peak_vram_mb: float | None = None
    # how it ran: variant, load/busy seconds, batch sizes, fallbacks (the scheduler's receipt)
    receipt: dict[str, Any] = Field(default_factory=dict)
    plugin: str | None = None
    reused: bool = False
    provides: list[str] = Field(default_factory=list)  # capabilities: "shots", "transcript", ... (Analyzer.provides)
    events: list[Event] = Field(default_factory=list)
    series: list[Series] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)  # track-level facts (tempo, palette, ...)

    def series_by_name(self, name: str) -> Series | None:
        return next((s for s in self.series if s.name == name), None)


class StreamInfo(_Value):
    """One stream of the input file, as the probe found it (``index`` is the container's)."""

    index: int
    kind: Literal["video", "audio", "subtitle", "data"]
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    language: str | None = None
    default: bool = False  # the file marks it as a default stream of its kind
    analyzed: bool = False  # this run decodes it (the chosen video or audio stream)


class VideoMeta(_Value):
    """What the probe learned about the input file."""

    path: str
    content_hash: str
    size_bytes: int
    duration: float
    start_time: float = 0.0
    has_video: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    variable_frame_rate: bool = False
    rotation: int = 0
    video_codec: str | None = None
    frame_count: int | None = None
    audio_streams: list[dict[str, Any]] = Field(default_factory=list)
    container: str | None = None
    fps_rational: str | None = None  # the exact rate behind ``fps`` when it is one, e.g. "30000/1001"
    streams: list[StreamInfo] = Field(default_factory=list)  # every stream in the file
    video_stream: int | None = None  # container index of the video stream analyzed
    audio_stream: int | None = None  # container index of the audio stream analyzed

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_streams)


class Timeline(BaseModel):
    """Everything known about one video: its metadata and one Track per analyzer."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = SCHEMA_VERSION
    framework_version: str = ""
    video: VideoMeta
    tracks: dict[str, Track] = Field(default_factory=dict)
    run: dict[str, Any] = Field(default_factory=dict)  # timings, decode stats, warnings

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "Timeline":
        raw = json.loads(text)
        version = str(raw.get("schema_version", ""))
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise ValueError(
                f"results schema_version {version!r} is not readable by this framework "
                f"(it reads {SCHEMA_VERSION}); re-run the analysis to regenerate it"
            )
        return cls.model_validate(raw)

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Timeline":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def write(self, path: str | os.PathLike) -> Path:
        # UTF-8 bytes straight from pydantic-core: no str copy of an hour-long run's 5 MB
        return atomic_write_bytes(Path(path), self.__pydantic_serializer__.to_json(self, indent=2))


#: the ``data`` keys an event's text is under, in the order they are looked at (``event_text``)
TEXT_KEYS = ("text", "caption", "description", "transcript")


def event_text(event: Event, keys: tuple[str, ...] = TEXT_KEYS) -> str | None:
    """The first non-empty string of ``event.data`` under ``keys``, its whitespace runs made one space."""
    for key in keys:
        value = event.data.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return None


def tracks_providing(tracks: Mapping[str, Track], capability: str) -> list[Track]:
    """The tracks whose ``provides`` lists ``capability`` ("shots", "transcript", "summary", ...).

    ``ok`` tracks come first, each group in the mapping's order, so ``[0]`` is the usable one
    when there is one; a reader still checks ``status`` before trusting the events.
    """
    matching = [t for t in tracks.values() if capability in t.provides]
    return [t for t in matching if t.status == "ok"] + [t for t in matching if t.status != "ok"]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``results.json`` (written to ``docs/timeline.schema.json``)."""
    schema = Timeline.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"framework results.json (schema_version {SCHEMA_VERSION})"
    return schema


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _new_file_mode(path))  # mkstemp makes 0600; others must be able to read results
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _new_file_mode(path: Path) -> int:
    """The mode ``open(path, "w")`` would give: the existing file's, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask, read without changing it (``/proc``; else set-and-restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc (macOS): the only portable way, restored at once
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> Path:
    """``atomic_write_bytes`` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))

if __name__ == "__main__":  # python -m framework.timeline > docs/timeline.schema.json
    print(json.dumps(json_schema(), indent=2))
