"""report.html in a real browser: Debian's headless Chromium, driven by Playwright.

Checks that the lanes and thumbnails render (count, size, decoded images), that the page makes
no request except for itself and the video, and that clicking a key moment, a chapter, a lane
event or a shot seeks the player to that time. Debian's chromium plays the H.264 sample, so the
test uses the ordinary MP4 fixture.

Without Chromium (at ``$CHROMIUM``, default /usr/bin/chromium) or Playwright the tests skip with the
reason, except on CI (``CI=true``), where they fail: CI must not pass without having run them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from framework.outputs import write_outputs
from script_helpers import run_with_failing_apt
from test_outputs import build_timeline

CHROMIUM = Path(os.environ.get("CHROMIUM") or "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
REPO = Path(__file__).resolve().parents[1]


def on_ci() -> bool:
    """``CI=true`` (or ``1``), as GitHub Actions, GitLab and most CI services set it."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def skip_or_fail_on_ci(reason: str) -> None:
    """Skip the test with ``reason``; on CI, fail it: CI must not pass without running it."""
    if on_ci():
        pytest.fail(f"{reason}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def browser_page():
    if not CHROMIUM.exists():
        skip_or_fail_on_ci(f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium, "
                           "or set CHROMIUM to its path)")
    try:
        from playwright import sync_api
    except ImportError:
        skip_or_fail_on_ci("needs the playwright package (pip install playwright)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def _wait_seeked_to(page, t: float) -> float:
    page.wait_for_function(
        "t => { const v = document.getElementById('player');"
        " return Math.abs(v.currentTime - t) < 0.02 && !v.seeking && v.readyState >= 2; }", arg=t)
    return page.evaluate("document.getElementById('player').currentTime")


def test_report_renders_and_seeks_in_chromium(tmp_path, sample_video, browser_page):
    page = browser_page
    timeline = build_timeline(sample_video)
    run = tmp_path / "run"
    write_outputs(timeline, run, video_path=sample_video.path)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((run / "report.html").as_uri())

    # the player loaded the real video (not just a default start position)
    page.wait_for_function("document.getElementById('player').readyState >= 2")
    assert page.evaluate("document.getElementById('player').duration") == pytest.approx(sample_video.duration, abs=0.1)

    # one lane per analyzer, each laid out with a real size; blocks and sparklines drawn
    lanes = page.locator(".lane[data-analyzer]")
    assert lanes.count() == len(timeline.tracks)
    for i in range(lanes.count()):
        box = lanes.nth(i).bounding_box()
        assert box and box["width"] > 600 and box["height"] >= 24, lanes.nth(i).get_attribute("data-analyzer")
    cut_blocks = page.locator('.lane[data-analyzer="cut_analysis"] .ev')
    assert cut_blocks.count() == len(timeline.tracks["cut_analysis"].events)
    shot_block = page.locator('.lane[data-analyzer="cut_analysis"] .ev', has_text="shot").nth(2)
    assert shot_block.bounding_box()["width"] > 50  # 2 s of 12 s across ~1100 px
    spark = page.locator('.lane[data-analyzer="audio_analysis"] svg.spark polyline')
    assert spark.count() == 2  # the loudness series has one gap (None)
    assert spark.nth(1).bounding_box()["width"] > 800 and spark.nth(1).bounding_box()["height"] > 10
    assert page.locator('.lane[data-analyzer="object_detection"]').get_attribute("data-status") == "failed"
    assert page.locator(".chapters-lane .ev").count() == 3

    # thumbnails: one per shot, decoded, visible
    thumbs = page.locator("img.thumb")
    assert thumbs.count() == 6
    sizes = page.evaluate("Array.from(document.querySelectorAll('img.thumb'))"
                          ".map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width])")
    for complete, nat_w, nat_h, shown_w in sizes:
        assert complete and nat_w == 160 and nat_h == 90 and shown_w > 100

    # clicking a key moment seeks the player to it, and moves the playhead
    moments = page.locator(".moment")
    assert moments.count() == 3
    for i in (2, 0, 1):
        t = float(moments.nth(i).get_attribute("data-t"))
        moments.nth(i).click()
        assert _wait_seeked_to(page, t) == pytest.approx(t, abs=0.02)
        p = float(page.evaluate("getComputedStyle(document.getElementById('tl')).getPropertyValue('--p')"))
        assert p == pytest.approx(t / timeline.video.duration, abs=0.01)
    # and so do a chapter, an event in a lane and a shot card
    for selector in ('.chapter >> nth=2', '.lane[data-analyzer="audio_analysis"] .ev >> nth=0',
                     '.shot[data-index="4"]'):
        target = page.locator(selector)
        t = float(target.get_attribute("data-t"))
        target.click()
        assert _wait_seeked_to(page, t) == pytest.approx(t, abs=0.02), selector

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("REPORT_SCREENSHOT"):  # docs/report-screenshot.png is made this way
        shutil.copyfile(shot, os.environ["REPORT_SCREENSHOT"])

    assert not errors, errors
    assert all(u.startswith("file://") for u in requests), requests  # nothing fetched from elsewhere
    assert {Path(u[len("file://"):]).name for u in requests} == {"report.html", sample_video.path.name}


def test_report_without_video_hides_the_player(tmp_path, sample_video, browser_page):
    page = browser_page
    timeline = build_timeline(sample_video, video_path="/nowhere/gone.mp4")
    run = tmp_path / "run"
    write_outputs(timeline, run)
    page.goto((run / "report.html").as_uri())
    assert page.locator("video").count() == 0
    assert page.locator("#no-video").is_visible() and "not reachable" in page.locator("#no-video").inner_text()
    assert page.locator(".thumb-missing").count() == 6
    moment = page.locator(".moment").nth(1)
    moment.click()  # still moves the playhead
    t = float(moment.get_attribute("data-t"))
    p = float(page.evaluate("getComputedStyle(document.getElementById('tl')).getPropertyValue('--p')"))
    assert p == pytest.approx(t / timeline.video.duration, abs=0.01)


# --- what happens without Chromium: a skip locally, a failure on CI ------------------------------
def _report_test_without_chromium(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["CHROMIUM"] = str(tmp_path / "no-chromium")
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           f"{Path(__file__)}::test_report_without_video_hides_the_player"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_without_chromium_the_report_test_skips_locally_and_fails_on_ci(tmp_path):
    local = _report_test_without_chromium(tmp_path, None)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout[-2000:]
    assert "needs Debian's chromium" in local.stdout
    ci = _report_test_without_chromium(tmp_path, "true")
    assert ci.returncode == 1 and "1 error" in ci.stdout, ci.stdout[-2000:]
    assert "CI=true, so this is a failure, not a skip" in ci.stdout


def _ensure_chromium(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """scripts/ensure_chromium.sh with a fake apt-get that fails (and records that it was called)."""
    return run_with_failing_apt(tmp_path, "ensure_chromium.sh", **{"CHROMIUM": str(tmp_path / "no-chromium"), **env})


def test_ensure_chromium_fails_on_ci_when_it_cannot_install(tmp_path):
    proc = _ensure_chromium(tmp_path, CI="true")
    if os.geteuid() == 0:  # it tried apt-get, which failed
        assert "update" in (tmp_path / "apt-calls").read_text()
        assert "apt-get install chromium failed" in proc.stderr
    assert proc.returncode == 1 and "CI does not skip that test" in proc.stderr, proc.stderr


def test_ensure_chromium_only_warns_off_ci(tmp_path):
    proc = _ensure_chromium(tmp_path)
    assert proc.returncode == 0 and "the report test will be skipped" in proc.stderr, proc.stderr
    assert not (tmp_path / "apt-calls").exists()  # nothing installed without CI or INSTALL_SYSTEM_DEPS


def test_ensure_chromium_accepts_an_existing_browser(tmp_path):
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    proc = _ensure_chromium(tmp_path, CI="true", CHROMIUM=str(browser))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_test_sh_runs_the_chromium_check_before_pytest():
    lines = (REPO / "scripts" / "test.sh").read_text().splitlines()
    check = lines.index("bash scripts/ensure_chromium.sh")
    assert any(ln.startswith("exec .venv/bin/python -m pytest") for ln in lines[check + 1:])
    ci_run = (REPO / ".ci" / "run").read_text()
    assert 'export CI="${CI:-true}"' in ci_run  # .ci/run is CI even where the service sets no CI
    assert "exec bash scripts/test.sh" in ci_run  # pytest's exit code passes through
