"""Exporters: summary.md, report.html, transcript.srt/.vtt, cuts.csv/.edl, thumbnails, `framework report`.

Timelines are built by hand from a synthetic video's ground truth (``build_timeline``), so each
test knows exactly what the outputs must say; one end-to-end test runs the real pipeline.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from framework.errors import InputError
from framework.outputs import ExportContext, Exporter, load_results, rerender, write_outputs
from framework.outputs import thumbnails as thumbs_mod
from framework.outputs.base import Shot
from framework.outputs.cuts import (cuts_csv, cuts_edl, frames_to_timecode, seconds_to_frame,
                                    seconds_to_timecode, timecode_base)
from framework.outputs.subtitles import to_srt, to_vtt
from framework.summary import Chapter, Evidence, KeyMoment, Summary
from framework.testing.synth import SynthTruth
from framework.timeline import Event, Series, Timeline, Track, VideoMeta

CAMERA = "camera_analysis"


def _transitions(truth: SynthTruth) -> list[str]:
    out = ["start"]
    for start in truth.shot_starts[1:]:
        kind = next((k for a, b, k in truth.gradual if abs((a + b) / 2 - start) < 0.1), "cut")
        out.append(kind)
    return out


def build_timeline(truth: SynthTruth, *, summary: bool = True, transcript: bool = True,
                   video_path: str | None = None, capabilities: bool = True) -> Timeline:
    """A realistic timeline for ``truth``: shots, cuts, scenes, camera, palette, audio, (speech), fusion.

    Tracks say what they provide (shots, scenes, transcript, summary) as the analyzers' tracks do;
    ``capabilities=False`` gives a results.json as written before tracks declared capabilities."""
    starts = truth.shot_starts + [truth.duration]
    frames = [round(t * truth.fps) for t in starts]
    trans = _transitions(truth)
    shots = [Event(start=starts[i], end=starts[i + 1], label="shot",
                   data={"index": i + 1, "transition_in": trans[i], "first_frame": frames[i],
                         "last_frame": frames[i + 1] - 1}) for i in range(len(starts) - 1)]
    cuts = [Event(start=f / truth.fps, end=f / truth.fps, label="cut", score=0.9, data={"frame": f})
            for f in truth.cut_frames]
    gradual = [Event(start=a, end=b, label=k, score=0.7) for a, b, k in truth.gradual]
    video = VideoMeta(path=video_path or str(truth.path), content_hash="0123456789abcdef" * 4,
                      size_bytes=truth.path.stat().st_size, duration=truth.duration, has_video=True,
                      width=truth.width, height=truth.height, fps=truth.fps, video_codec="h264",
                      frame_count=truth.frame_count, audio_streams=[{"codec": "aac", "channels": 1}])
    diff_t = [i / 10 for i in range(int(truth.duration * 10))]
    diff = [5.0 if any(abs(t - s) < 0.06 for s in truth.shot_starts[1:]) else 0.4 for t in diff_t]
    tracks = {
        "cut_analysis": Track(analyzer="cut_analysis", version="1.0.0", events=shots + cuts + gradual,
                              series=[Series(name="content_diff", times=diff_t, values=diff)],
                              duration_s=0.8, device="cpu"),
        "scene_segmentation": Track(analyzer="scene_segmentation", version="0.3.0", events=[
            Event(start=starts[0], end=starts[2], label="scene", data={"index": 1}),
            Event(start=starts[2], end=starts[4], label="scene", data={"index": 2}),
            Event(start=starts[4], end=starts[6], label="scene", data={"index": 3})]),
        CAMERA: Track(analyzer=CAMERA, version="1.0.0", events=[
            Event(start=s.start, end=s.end, label=m, score=0.8) for s, m in zip(shots, truth.motions, strict=True)]),
        "color_analysis": Track(analyzer="color_analysis", version="1.0.0", events=[
            Event(start=s.start, end=s.end, label="palette",
                  data={"colors": ["#203040", "#8090a0", "#c0a070", "#f0e0d0"][: 2 + i % 3]})
            for i, s in enumerate(shots)]),
        "audio_analysis": Track(analyzer="audio_analysis", version="1.0.0", events=[
            Event(start=5.4, end=7.2, label="silence", data={"mean_db": -80.0})],
            series=[Series(name="loudness", unit="dBFS", times=[i / 4 for i in range(int(truth.duration * 4))],
                           values=[(-20.0 if (0.2 < i / 4 < 5.4 or 7.2 < i / 4 < 11.8) else -80.0) if i != 3 else None
                                   for i in range(int(truth.duration * 4))])]),
        "object_detection": Track(analyzer="object_detection", version="0.1.0", status="failed",
                                  reason="RuntimeError: model exploded at 3.2 s"),
    }
    if transcript:
        tracks["speech_to_text"] = Track(analyzer="speech_to_text", version="0.1.0", events=[
            Event(start=0.3, end=2.1, label="speech", data={"text": "Hello & welcome <b>to</b> the sample."}),
            Event(start=2.4, end=2.4, label="speech", data={"text": "Short.", "speaker": "Ann"}),
            Event(start=3.0, end=5.2, label="speech", data={"text": "Line one\n\nline two"}),
            Event(start=6.0, end=6.5, label="speech", data={})])  # no text: not a transcript line
    if summary:
        ev = lambda i: Evidence(analyzer="cut_analysis", event_index=i, start=shots[i].start,  # noqa: E731
                                end=shots[i].end, label="shot")
        s = Summary(title="A sample in six shots",
                    paragraph="Six shots of textured colour fields move past the camera.",
                    detailed="The camera pans and zooms.\n\nA fade and a dissolve join the last shots.",
                    chapters=[Chapter(start=starts[0], end=starts[2], title="Opening", summary="Static, then a pan.",
                                      evidence=[ev(0), ev(1)]),
                              Chapter(start=starts[2], end=starts[4], title="Middle", evidence=[ev(2)]),
                              Chapter(start=starts[4], end=starts[6], title="Ending <i>", evidence=[ev(4)])],
                    key_moments=[KeyMoment(time=starts[1], text="First hard cut", evidence=[ev(1)]),
                                 KeyMoment(time=starts[3], end=starts[3] + 1, text="A fade to black", evidence=[ev(3)]),
                                 KeyMoment(time=starts[5], text="Dissolve into the last shot", evidence=[ev(5)])],
                    extractive=True)
        tracks["fusion"] = Track(analyzer="fusion", version="0.1.0", data=s.to_data())
    provides = {"cut_analysis": ["shots"], "scene_segmentation": ["scenes"], "speech_to_text": ["transcript"],
                "fusion": ["summary"]} if capabilities else {}
    tracks = {n: t.model_copy(update={"provides": provides.get(n, [])}) for n, t in tracks.items()}
    return Timeline(framework_version="0.1.0", video=video, tracks=tracks)


# --- timecode and the EDL ---------------------------------------------------------------------


def test_timecode_math():
    assert timecode_base(30) == 30 and timecode_base(29.97) == 30 and timecode_base(30000 / 1001) == 30
    assert timecode_base(24000 / 1001) == 24 and timecode_base(25) == 25 and timecode_base(60000 / 1001) == 60
    assert frames_to_timecode(0, 30) == "00:00:00:00"
    assert frames_to_timecode(29, 30) == "00:00:00:29"
    assert frames_to_timecode(30, 30) == "00:00:01:00"
    assert frames_to_timecode(30 * 3600 + 30 * 61 + 7, 30) == "01:01:01:07"
    assert frames_to_timecode(25 * 90 + 24, 25) == "00:01:30:24"
    # 29.97: one clock minute is 1798.2 frames -> frame 1798 -> NDF 00:00:59:28 (timecode runs behind)
    assert seconds_to_frame(60.0, 30000 / 1001) == 1798
    assert seconds_to_timecode(60.0, 30000 / 1001) == "00:00:59:28"
    # one clock hour at 29.97 is 107892 frames -> 00:59:56:12 NDF (3.6 s behind)
    assert seconds_to_timecode(3600.0, 30000 / 1001) == "00:59:56:12"
    # frame-exact round trips: frame n starts at n/fps
    for fps in (24, 25, 30, 24000 / 1001, 30000 / 1001, 60000 / 1001):
        for n in (0, 1, 59, 60, 1001, 107891):
            assert seconds_to_frame(n / fps, fps) == n
    with pytest.raises(ValueError):
        timecode_base(0)
    with pytest.raises(ValueError):
        frames_to_timecode(-1, 30)


def _edl_events(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if re.match(r"^\d{3}\s", line)]


def _tc_frames(tc: str, base: int) -> int:
    """Frames of ``HH:MM:SS:FF``, or of drop-frame ``HH:MM:SS;FF`` (2 frame numbers skipped each
    minute but every tenth at 30 frames per second, 4 at 60)."""
    h, m, s, f = (int(x) for x in re.split("[:;]", tc))
    frames = ((h * 60 + m) * 60 + s) * base + f
    if ";" in tc:
        minutes = h * 60 + m
        frames -= (base // 15) * (minutes - minutes // 10)
    return frames


@pytest.mark.parametrize("fps", [25.0, 30000 / 1001, 24000 / 1001])
def test_edl_timecodes_match_frames(fps):
    cut_frames = [0, 48, 137, 1800, 2001]
    end_frame = 2300
    bounds = cut_frames + [end_frame]
    shots = [Shot(i + 1, bounds[i] / fps, bounds[i + 1] / fps, "cut" if i else "start") for i in range(len(cut_frames))]
    shots.append(Shot(99, end_frame / fps, end_frame / fps + 0.1 / fps, "cut"))  # shorter than a frame
    text = cuts_edl(shots, fps, "clip", "clip.mp4")
    lines = text.splitlines()
    drop_frame = fps == 30000 / 1001  # 29.97: drop-frame timecode (HH:MM:SS;FF), as editors expect
    assert lines[0] == "TITLE: clip" and lines[1] == ("FCM: DROP FRAME" if drop_frame else "FCM: NON-DROP FRAME")
    assert ("NON-DROP TIMECODE COUNTS" in text) == (fps == 24000 / 1001)  # 23.976 has no drop-frame timecode
    events = _edl_events(text)
    assert all((";" in tc) == drop_frame for e in events for tc in e[4:])
    assert len(events) == len(cut_frames)  # the sub-frame shot is left out
    base = timecode_base(fps)
    prev_out = None
    for i, (num, reel, track, kind, src_in, src_out, rec_in, rec_out) in enumerate(events):
        assert num == f"{i + 1:03d}" and reel == "AX" and track == "V" and kind == "C"
        assert _tc_frames(src_in, base) == bounds[i] and _tc_frames(src_out, base) == bounds[i + 1]
        assert (rec_in, rec_out) == (src_in, src_out)
        assert prev_out is None or rec_in == prev_out  # contiguous record
        prev_out = rec_out
    # the fixed CMX3600 columns: event(3) 2sp reel(8) sp track(5) sp transition(4) sp dur(3) sp
    first = next(line for line in lines if line.startswith("001"))
    assert first.startswith("001  AX       V     C        00:00:00" + (";" if drop_frame else ":") + "00 ")
    assert "* FROM CLIP NAME:  clip.mp4" in text  # two spaces, as Avid writes it (OpenTimelineIO's adapter)
    if drop_frame:  # frame 1800 is one clock minute plus 2 frames; drop-frame skips ;00 and ;01 there
        assert "00:01:00;02" in [e[4] for e in events]


def test_cuts_csv_rows():
    shots = [Shot(1, 0.0, 2.0, "start"), Shot(2, 2.0, 5.5, "dissolve")]
    rows = list(csv.DictReader(io.StringIO(cuts_csv(shots, 30.0))))
    assert [r["index"] for r in rows] == ["1", "2"]
    assert rows[1] == {"index": "2", "start": "2.000", "end": "5.500", "duration": "3.500", "start_frame": "60",
                       "end_frame": "165", "transition_in": "dissolve", "start_timecode": "00:00:02:00",
                       "end_timecode": "00:00:05:15"}
    no_fps = list(csv.DictReader(io.StringIO(cuts_csv(shots, None))))
    assert no_fps[0]["start_frame"] == "" and no_fps[0]["duration"] == "2.000"


# --- subtitles ----------------------------------------------------------------------------------


def test_srt_and_vtt_format(sample_video):
    ctx = ExportContext(timeline=build_timeline(sample_video), run_dir=Path("."))
    cues = ctx.transcript()
    assert [c.text for c in cues][0] == "Hello & welcome <b>to</b> the sample."
    assert len(cues) == 3  # the speech event without text is not a line
    srt = to_srt(cues)
    assert srt.startswith("1\n00:00:00,300 --> 00:00:02,100\nHello & welcome <b>to</b> the sample.\n")
    assert "2\n00:00:02,400 --> 00:00:02,900\nAnn: Short.\n" in srt  # an instant lasts MIN_CUE_S
    assert "Line one\nline two" in srt  # no blank line inside a cue
    vtt = to_vtt(cues)
    assert vtt.startswith("WEBVTT\n\n00:00:00.300 --> 00:00:02.100\nHello &amp; welcome &lt;b&gt;to&lt;/b&gt;")
    assert "<v Ann>Short." in vtt


# --- the whole set ------------------------------------------------------------------------------


def test_write_outputs_writes_every_file(tmp_path, sample_video):
    timeline = build_timeline(sample_video)
    run = tmp_path / "run"
    written = write_outputs(timeline, run, video_path=sample_video.path)
    names = {p.relative_to(run).as_posix() for p in written}
    for name in ("summary.md", "report.html", "transcript.srt", "transcript.vtt", "cuts.csv", "cuts.edl"):
        assert name in names and (run / name).stat().st_size > 0
    assert "thumbs" in names  # the folder, not one entry per shot
    thumbs = sorted((run / "thumbs").glob("*.jpg"))
    assert len(thumbs) == len(sample_video.shot_starts) == 6
    import cv2

    img = cv2.imread(str(thumbs[0]))
    assert img.shape == (90, 160, 3)  # 320x180 -> 160x90
    # each thumbnail is the frame at its shot's midpoint: compare with a full sequential decode
    import av
    import numpy as np

    with av.open(str(sample_video.path)) as c:
        frames = [f.reformat(width=160, height=90, format="bgr24").to_ndarray().astype(np.float32)
                  for f in c.decode(video=0)]
    bounds = sample_video.shot_starts + [sample_video.duration]
    mids = [int((bounds[i] + bounds[i + 1]) / 2 * sample_video.fps) for i in range(6)]
    for i, p in enumerate(thumbs):  # named by time, so sorted by time
        got = cv2.imread(str(p)).astype(np.float32)
        errs = [float(np.abs(got - frames[m]).mean()) for m in mids]
        assert errs[i] < 6 and errs[i] == min(errs), (i, errs)
        if sample_video.motions[i] != "static":  # a moving shot: not just any frame of it
            assert float(np.abs(got - frames[mids[i] + 15]).mean()) > errs[i] + 1, i

    rows = list(csv.DictReader((run / "cuts.csv").open()))
    assert [int(r["start_frame"]) for r in rows] == [round(s * 30) for s in sample_video.shot_starts]
    assert rows[3]["transition_in"] == "fade" and rows[5]["transition_in"] == "dissolve"

    md = (run / "summary.md").read_text()
    assert md.startswith("# A sample in six shots\n")
    assert "**extractive**" in md and "## Chapters" in md and "Ending \\<i\\>" in md
    assert "| `object_detection` | 0.1.0 | failed |" in md and "model exploded at 3.2 s" in md
    assert "6 shots" in md and "3 lines" in md

    page = (run / "report.html").read_text()
    assert page.count('class="thumb"') == 6 and page.count("data:image/jpeg;base64,") == 6
    for name in ("cut_analysis", "scene_segmentation", CAMERA, "color_analysis", "audio_analysis",
                 "object_detection", "speech_to_text", "fusion"):
        assert f'data-analyzer="{name}"' in page
    assert 'data-status="failed"' in page and "model exploded at 3.2 s" in page
    src = re.search(r'<video id="player"[^>]* src="([^"]+)"', page).group(1)
    assert not src.startswith("/") and (run / src).resolve() == sample_video.path.resolve()  # relative
    assert page.count('class="moment"') == 3 and page.count('class="chapter"') == 3
    assert "Ending &lt;i&gt;" in page and "Hello &amp; welcome &lt;b&gt;to&lt;/b&gt;" in page
    assert 'kind="subtitles"' in page  # the transcript rides along as a data: URI track
    assert "<polyline" in page  # loudness sparkline
    assert "linear-gradient(90deg,#203040" in page  # palette blocks
    assert ">pan<" in page and ">scene 2<" in page  # per-shot tags on the cards


def test_report_is_self_contained_and_escapes_plugin_text(tmp_path, sample_video):
    timeline = build_timeline(sample_video)
    evil = Track(analyzer="evil_plugin", version="1", events=[
        Event(start=1, end=2, label='<script>alert("x")</script>', data={"colors": ["red;background:url(http://x)"],
                                                                        "note": "<img src=x onerror=alert(1)>"})],
        series=[Series(name="<svg onload=alert(1)>", times=[0, 1], values=[0, 1])])
    timeline.tracks["evil_plugin"] = evil
    write_outputs(timeline, tmp_path / "run", video_path=sample_video.path)
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and "<svg onload" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "url(http" not in page  # an invalid colour never reaches a style attribute
    # nothing is fetched from elsewhere: no http(s) or protocol-relative src/href
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert page.count("<script>") == 1  # only the report's own script


def test_no_video_no_summary_no_transcript(tmp_path, sample_video, caplog):
    timeline = build_timeline(sample_video, summary=False, transcript=False, video_path="/nowhere/gone.mp4")
    run = tmp_path / "run"
    (run).mkdir()
    (run / "transcript.srt").write_text("stale")
    with caplog.at_level("INFO", logger="framework.outputs"):
        written = write_outputs(timeline, run)
    assert not (run / "transcript.srt").exists() and not (run / "transcript.vtt").exists()
    assert "no transcript" in caplog.text
    assert not (run / "thumbs").exists() or not list((run / "thumbs").glob("*.jpg"))
    md = (run / "summary.md").read_text()
    assert "No summary was produced" in md and "No transcript" in md
    page = (run / "report.html").read_text()
    assert '<video' not in page and 'id="no-video"' in page and "/nowhere/gone.mp4 is not reachable" in page
    assert "6 of 6 shots have no thumbnail" in page and "No transcript" in page
    assert {p.name for p in written} >= {"summary.md", "report.html", "cuts.csv", "cuts.edl"}


def test_a_moved_video_of_another_size_is_not_taken(tmp_path, sample_video):
    timeline = build_timeline(sample_video, video_path="sample.mp4")
    run = tmp_path / "run"
    run.mkdir()
    (run / "sample.mp4").write_bytes(b"not the video")  # same name, different size
    write_outputs(timeline, run)
    assert "is not the analyzed video" in (run / "report.html").read_text()


class Broken(Exporter):
    name = "broken"

    def export(self, timeline, run_dir, context):
        raise RuntimeError("disk on fire")


class Host:  # the part of PluginHost write_outputs reads
    def __init__(self, exporters):
        self.exporters = exporters


def test_one_failing_exporter_does_not_stop_the_others(tmp_path, sample_video, caplog):
    from framework.outputs.markdown import MarkdownExporter

    host = Host({"broken": Broken, "markdown": MarkdownExporter})
    written = write_outputs(build_timeline(sample_video), tmp_path, host=host, video_path=sample_video.path)
    assert written == [tmp_path / "summary.md"]
    assert "exporter broken failed: RuntimeError: disk on fire" in caplog.text


def test_builtin_exporters_register_through_the_hook():
    from framework.plugins import build_plugin_manager

    host = build_plugin_manager(load_entrypoints=False)
    assert {"markdown", "html", "subtitles", "cuts", "thumbnails"} <= set(host.exporters)
    assert not [p for p in host.problems if "outputs" in p.plugin]


# --- re-rendering -------------------------------------------------------------------------------


def test_rerender_reuses_cached_thumbnails(tmp_path, sample_video, monkeypatch):
    run = tmp_path / "run"
    timeline = build_timeline(sample_video)
    timeline.write(run / "results.json")
    write_outputs(timeline, run, video_path=sample_video.path)
    before = (run / "report.html").read_text()

    def no_decoding(*a, **k):
        raise AssertionError("framework report must not decode cached thumbnails again")

    monkeypatch.setattr(thumbs_mod, "grab_frames", no_decoding)
    for name in ("report.html", "summary.md", "cuts.edl"):
        (run / name).unlink()
    rerender(run / "results.json")
    assert (run / "report.html").read_text() == before
    assert (run / "cuts.edl").exists() and (run / "summary.md").exists()
    # into another folder: thumbnails are copied from the run's cache, not decoded
    out = tmp_path / "elsewhere"
    rerender(run / "results.json", out)
    page = (out / "report.html").read_text()
    src = re.search(r'<video id="player"[^>]* src="([^"]+)"', page).group(1)
    assert page.count('class="thumb"') == 6 and (out / src).resolve() == sample_video.path.resolve()


def test_changed_shot_list_makes_new_thumbnails_and_drops_old(tmp_path, sample_video):
    run = tmp_path / "run"
    timeline = build_timeline(sample_video)
    write_outputs(timeline, run, video_path=sample_video.path)
    old = {p.name for p in (run / "thumbs").glob("*.jpg")}
    cut = timeline.tracks["cut_analysis"]
    shots = [e for e in cut.events if e.label == "shot"][:2]
    timeline.tracks["cut_analysis"] = cut.model_copy(update={"events": shots})
    write_outputs(timeline, run, video_path=sample_video.path)
    new = {p.name for p in (run / "thumbs").glob("*.jpg")}
    assert len(new) == 2 and new <= old


def test_load_results_errors_name_the_file(tmp_path, sample_video):
    missing = tmp_path / "nope" / "results.json"
    with pytest.raises(InputError, match=r"nope/results.json: no such file"):
        load_results(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"bad.json: not a valid results.json .*re-run `framework run"):
        load_results(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(InputError, match="other.json: not a framework results.json"):
        load_results(other)
    raw = json.loads(build_timeline(sample_video).to_json())
    raw["schema_version"] = "9.0"
    future = tmp_path / "future.json"
    future.write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"future.json: results schema_version '9.0' is not readable"):
        load_results(future)
    raw["schema_version"] = "1.0"
    raw["tracks"]["cut_analysis"]["events"][0]["start"] = "soon"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"broken.json: invalid results.json at tracks.cut_analysis.events.0.start"):
        load_results(broken)
    folder = tmp_path / "runfolder"
    build_timeline(sample_video).write(folder / "results.json")
    assert load_results(folder).video.fps == 30.0  # a run folder is accepted too


def test_cli_report(tmp_path, sample_video):
    from cli import main

    run = tmp_path / "run"
    build_timeline(sample_video).write(run / "results.json")
    runner = CliRunner()
    result = runner.invoke(main, ["report", str(run / "results.json"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "report.html").exists() and (tmp_path / "out" / "cuts.edl").exists()
    assert "report.html" in result.output
    help_text = runner.invoke(main, ["report", "--help"]).output
    assert "Example" in help_text and "framework report runs/" in help_text
    missing = runner.invoke(main, ["report", str(tmp_path / "missing.json")])
    assert missing.exit_code == 3
    one_line = " ".join(missing.output.split())  # rich wraps long lines at the terminal width
    assert "missing.json: no such file" in one_line and "Traceback" not in missing.output


# --- the real pipeline --------------------------------------------------------------------------


def test_end_to_end_run_writes_the_outputs(tmp_path, sample_video):
    runner = pytest.importorskip("framework.runner")
    reg = tmp_path / "registry.yaml"
    reg.write_text("analyzers:\n  cut_analysis: {enabled: true}\n  scene_segmentation: {enabled: true}\n"
                   "  fusion: {enabled: true, params: {backend: extractive}}\n")
    res = runner.analyze(sample_video.path, registry_path=reg, out_dir=tmp_path / "run", progress=False,
                         load_entrypoints=False)
    assert res.timeline.tracks["cut_analysis"].status == "ok", res.timeline.tracks["cut_analysis"].reason
    run = tmp_path / "run"
    for name in ("results.json", "summary.md", "report.html", "cuts.csv", "cuts.edl"):
        assert (run / name).exists(), name
    assert not (run / "transcript.srt").exists()  # no speech-to-text analyzer ran
    n_shots = sum(1 for e in res.timeline.tracks["cut_analysis"].events if e.label == "shot")
    assert n_shots >= 4
    thumbs = list((run / "thumbs").glob("*.jpg"))
    assert len(thumbs) == n_shots and all(re.fullmatch(r"[0-9A-Za-z]+_\d{9}\.jpg", p.name) for p in thumbs)
    page = (run / "report.html").read_text()
    assert page.count('class="thumb"') == n_shots and 'data-analyzer="cut_analysis"' in page
    summary = Summary.from_track(res.timeline.tracks["fusion"])
    assert summary is not None and summary.chapters
    md = (run / "summary.md").read_text()
    assert md.startswith("# ") and "**extractive**" in md and "## Chapters" in md
    assert page.count('class="chapter"') == len(summary.chapters) and "chapters-lane" in page
    # `framework report` re-renders the same page from results.json alone
    before = page
    (run / "report.html").unlink()
    rerender(run / "results.json")
    assert (run / "report.html").read_text() == before


@pytest.mark.parametrize("ends", [(10.0,), (4.0, 10.0), (2.0, 4.0, 10.0)])
def test_the_shots_section_says_1_shot_not_1_shots(tmp_path, ends):
    from framework.outputs.markdown import _shots_section

    starts = (0.0, *ends[:-1])
    shots = Track(analyzer="cut_analysis", version="1", provides=["shots"], events=[
        Event(start=a, end=b, label="shot", data={"index": i}) for i, (a, b) in enumerate(zip(starts, ends))])
    video = VideoMeta(path="clip.mp4", content_hash="x", size_bytes=1, duration=10.0, has_video=True, fps=25.0)
    text = "\n".join(_shots_section(ExportContext(Timeline(video=video, tracks={"cut_analysis": shots}), tmp_path)))
    assert ("1 shot of 10.0 s; transitions: none." in text) == (len(ends) == 1), text
    assert ("2 shots, 5.0 s on average; transitions: 1 cut." in text) == (len(ends) == 2), text
    assert ("3 shots, 3.3 s on average; transitions: 2 cuts." in text) == (len(ends) == 3), text
    assert "1 shots" not in text


def test_without_a_summary_summary_md_says_what_each_analyzer_found(tmp_path, sample_video):
    """No summary to quote the events: each ok analyzer's events counted by label, its first ones with their times
    and text; the shot list's and the transcript's tracks only in their own sections; a failed track not at all."""
    from framework.outputs.markdown import MAX_FOUND_EVENTS

    timeline = build_timeline(sample_video, summary=False)
    timeline.tracks["text_overlay"] = Track(analyzer="text_overlay", version="1.0.0", events=[
        Event(start=i * 0.5, end=i * 0.5 + 2.0, label="text", data={"text": f"line  {i}\nshown"})
        for i in range(MAX_FOUND_EVENTS + 3)])
    run = tmp_path / "run"
    run.mkdir()
    write_outputs(timeline, run)
    md = (run / "summary.md").read_text()
    found = md.split("## What each analyzer found", 1)[1].split("\n## ", 1)[0]
    lines = {line.split("`")[1]: line for line in found.splitlines() if line.startswith("- `")}
    assert set(lines) == {"scene_segmentation", CAMERA, "color_analysis", "audio_analysis", "text_overlay"}
    ocr = lines["text_overlay"]
    assert ocr.startswith(f"- `text_overlay` ({MAX_FOUND_EVENTS + 3} events: text×{MAX_FOUND_EVENTS + 3}): ")
    assert '`0:00–0:02` text "line 0 shown"' in ocr and '"line 7 shown"' in ocr and '"line 8' not in ocr
    assert ocr.endswith("; … 3 more")
    assert lines["audio_analysis"].endswith("(1 event: silence): `0:05–0:07` silence")
    # with a summary, the chapters and key moments quote the events: no such section
    write_outputs(build_timeline(sample_video), run)
    assert "## What each analyzer found" not in (run / "summary.md").read_text()
