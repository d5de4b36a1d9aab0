from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from framework.timeline import SCHEMA_VERSION, Event, Series, Timeline, Track, VideoMeta, json_schema

DOC = Path(__file__).resolve().parents[1] / "docs" / "timeline.schema.json"


def _timeline():
    meta = VideoMeta(path="v.mp4", content_hash="b2:00", size_bytes=10, duration=3.0, has_video=True)
    track = Track(analyzer="a", version="1", events=[Event(start=0, end=1.5, label="shot", data={"index": 0})],
                  series=[Series(name="loudness", unit="dBFS", times=[0.0, 0.1], values=[-20.0, None])])
    return Timeline(video=meta, tracks={"a": track})


def test_round_trip(tmp_path):
    tl = _timeline()
    path = tl.write(tmp_path / "results.json")
    back = Timeline.read(path)
    assert back == tl
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_incompatible_schema_version_is_refused():
    raw = json.loads(_timeline().to_json())
    raw["schema_version"] = "9.0"
    with pytest.raises(ValueError, match="not readable by this framework"):
        Timeline.from_json(json.dumps(raw))


def test_event_end_before_start_is_rejected():
    with pytest.raises(ValidationError, match="ends"):
        Event(start=2.0, end=1.0, label="x")


def test_series_lengths_must_match():
    with pytest.raises(ValidationError):
        Series(name="x", times=[0.0, 1.0], values=[1.0])


def test_results_validate_against_the_documented_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(DOC.read_text())
    jsonschema.validate(json.loads(_timeline().to_json()), schema)


def test_documented_schema_is_current():
    assert json.loads(DOC.read_text()) == json_schema(), (
        "docs/timeline.schema.json is stale: run `python -m framework.timeline > docs/timeline.schema.json`")
