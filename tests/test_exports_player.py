"""Chapters in real players: FFmpeg muxes ``chapters.ffmetadata`` into an MP4 and ``ffprobe``
reads the chapters back at the right times; Chromium parses the report's chapters track (the
cues of ``chapters.vtt``) and the page shows the current chapter as the player moves.

Debian's ``ffmpeg`` (at ``$FFMPEG``/``$FFPROBE``, default on the PATH) and ``chromium`` are needed:
without them these tests skip with the reason, except on CI (``CI=true``), where they fail;
``.ci/run`` installs both first (scripts/ensure_ffmpeg.sh, scripts/ensure_chromium.sh).
"""
from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from framework.media import probe
from framework.outputs import write_outputs
from framework.summary import Chapter, Summary
from framework.testing.synth import ShotSpec, make_video
from framework.timeline import Timeline, Track
from script_helpers import run_with_failing_apt
from test_outputs import build_timeline
from test_report_html import browser_page, skip_or_fail_on_ci  # noqa: F401 (browser_page is a fixture)

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> Path | None:
    found = os.environ.get(name.upper()) or shutil.which(name)
    return Path(found) if found and Path(found).exists() else None


@pytest.fixture
def ffmpeg_tools() -> tuple[Path, Path]:
    ffmpeg, ffprobe = _tool("ffmpeg"), _tool("ffprobe")
    if ffmpeg is None or ffprobe is None:
        skip_or_fail_on_ci("needs Debian's ffmpeg and ffprobe (apt-get install -y ffmpeg, or set FFMPEG and "
                           "FFPROBE to their paths; scripts/ensure_ffmpeg.sh installs it on CI)")
    return ffmpeg, ffprobe


CHAPTER_FRAMES = [(0, 61, "One"), (61, 241, "Two = ; #three"), (241, 359, "Three")]  # 2.0353..., 8.0413... s


def test_ffmetadata_chapters_survive_muxing_into_mp4(tmp_path, ffmpeg_tools):
    ffmpeg, ffprobe = ffmpeg_tools
    rate = Fraction(30000, 1001)
    truth = make_video(tmp_path / "clip.mp4", [ShotSpec(6.0, look=0), ShotSpec(6.0, look=1)], fps=float(rate),
                       width=96, height=54, audio=False, text=None)
    meta = probe(truth.path)
    assert meta.fps_rational == "30000/1001"
    t = lambda f: float(Fraction(f) / rate)  # noqa: E731
    summary = Summary(title="Muxed", paragraph="p",
                      chapters=[Chapter(start=t(a), end=t(b), title=title) for a, b, title in CHAPTER_FRAMES])
    timeline = Timeline(video=meta, tracks={"fusion": Track(analyzer="fusion", version="1", provides=["summary"],
                                                            data=summary.to_data())})
    write_outputs(timeline, tmp_path, video_path=truth.path, exporters=["ffmetadata"])
    out = tmp_path / "chaptered.mp4"
    subprocess.run([str(ffmpeg), "-v", "error", "-y", "-i", str(truth.path), "-i",
                    str(tmp_path / "chapters.ffmetadata"), "-map_metadata", "1", "-map_chapters", "1", "-c", "copy",
                    str(out)], check=True, timeout=120)
    probed = json.loads(subprocess.run([str(ffprobe), "-v", "error", "-show_chapters", "-show_format", "-of", "json",
                                        str(out)], check=True, capture_output=True, text=True, timeout=60).stdout)
    chapters = probed["chapters"]
    assert [c["tags"]["title"] for c in chapters] == [title for *_, title in CHAPTER_FRAMES]
    assert probed["format"]["tags"]["title"] == "Muxed"
    for c, (a, b, _) in zip(chapters, CHAPTER_FRAMES):
        start, end = Fraction(c["start"]) * Fraction(c["time_base"]), Fraction(c["end"]) * Fraction(c["time_base"])
        # within a millisecond after the frame's start, and in that frame: a player seeking there shows it
        assert Fraction(a) / rate <= start < Fraction(a) / rate + Fraction(1, 1000), (c, a)
        assert math.floor(start * rate) == a and math.floor(end * rate) == min(b, meta.frame_count), (c, a, b)


def test_the_reports_player_shows_the_chapters(tmp_path, sample_video, browser_page):
    page = browser_page
    timeline = build_timeline(sample_video)
    run = tmp_path / "run"
    write_outputs(timeline, run, video_path=sample_video.path)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((run / "report.html").as_uri())
    page.wait_for_function("document.getElementById('player').readyState >= 2")

    # the track is chapters.vtt, and Chromium's WebVTT parser reads its three cues
    src = page.locator('#player track[kind="chapters"]').get_attribute("src")
    assert base64.b64decode(src.split(",", 1)[1]).decode("utf-8") == (run / "chapters.vtt").read_text()
    page.wait_for_function("(() => { const t = Array.from(document.getElementById('player').textTracks)"
                           ".find(t => t.kind === 'chapters'); return t && t.cues && t.cues.length === 3; })()")
    cues = page.evaluate("Array.from(Array.from(document.getElementById('player').textTracks)"
                         ".find(t => t.kind === 'chapters').cues).map(c => [c.startTime, c.endTime, c.text])")
    vtt = re.findall(r"^(\S+) --> (\S+)\n(.+)$", (run / "chapters.vtt").read_text(), re.M)
    assert len(cues) == len(vtt) == 3
    for (start, end, text), (a, b, title) in zip(cues, vtt):
        assert (f"{_stamp(start)}", f"{_stamp(end)}", text) == (a, b, title)

    # seeking moves the chapter shown under the player
    chapter_now = page.locator("#chapter-now")
    for t, title in ((5.0, "Middle"), (9.0, "Ending <i>"), (1.0, "Opening")):
        page.evaluate(f"document.getElementById('player').currentTime = {t}")
        page.wait_for_function("t => document.getElementById('chapter-now').textContent === 'Chapter: ' + t", arg=title)
        assert chapter_now.is_visible()
    assert not errors, errors


def _stamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


# --- scripts/ensure_ffmpeg.sh: installs on CI, only warns elsewhere ------------------------------------


def _ensure_ffmpeg(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """scripts/ensure_ffmpeg.sh with no ffmpeg and a fake apt-get that fails (and records its calls)."""
    return run_with_failing_apt(tmp_path, "ensure_ffmpeg.sh", **{"FFMPEG": str(tmp_path / "no-ffmpeg"),
                                                                  "FFPROBE": str(tmp_path / "no-ffprobe"), **env})


def test_ensure_ffmpeg_fails_on_ci_when_it_cannot_install(tmp_path):
    proc = _ensure_ffmpeg(tmp_path, CI="true")
    if os.geteuid() == 0:  # it tried apt-get, which failed
        assert "update" in (tmp_path / "apt-calls").read_text()
        assert "apt-get install ffmpeg failed" in proc.stderr
    assert proc.returncode == 1 and "CI does not skip" in proc.stderr, proc.stderr


def test_ensure_ffmpeg_only_warns_off_ci(tmp_path):
    proc = _ensure_ffmpeg(tmp_path)
    assert proc.returncode == 0 and "will be skipped" in proc.stderr, proc.stderr
    assert not (tmp_path / "apt-calls").exists()


def test_ensure_ffmpeg_accepts_existing_tools(tmp_path):
    for name in ("ffmpeg", "ffprobe"):
        tool = tmp_path / name
        tool.write_text("#!/bin/sh\nexit 0\n")
        tool.chmod(0o755)
    proc = _ensure_ffmpeg(tmp_path, CI="true", FFMPEG=str(tmp_path / "ffmpeg"), FFPROBE=str(tmp_path / "ffprobe"))
    assert proc.returncode == 0 and not (tmp_path / "apt-calls").exists(), proc.stderr
