"""The web app in headless Chromium (Playwright): submit a generated video by its path and another
by a localhost URL, watch both jobs finish, open a report, search, and click a result that opens
the report with the player at that moment. SERVE_SCREENSHOT=docs/serve-screenshot.png keeps the
screenshot of the search page (that is how the one in docs/ is made)."""
from __future__ import annotations

import functools
import os
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from framework.library import Library
from framework.library.jobs import JobQueue
from framework.testing.synth import default_shots, make_video
from library_helpers import write_registry
from test_report_html import browser_page  # noqa: F401  (the fixture: Chromium, or a skip / CI failure)

CAPTIONS = {"harbour": [[1.2, 1.8, "a lighthouse on the harbour wall"]],
            "forest": [[0.6, 1.0, "deer crossing a forest road at dusk"]]}


@pytest.fixture
def served(tmp_path):
    """The app on a free localhost port, run by uvicorn in a thread; a second server with a video to fetch."""
    import uvicorn

    from framework.web import create_app

    media = tmp_path / "media"
    media.mkdir()
    harbour = make_video(media / "harbour.mp4", default_shots(2.4), text="HARBOUR")
    (tmp_path / "www").mkdir()
    make_video(tmp_path / "www" / "forest.mp4", default_shots(1.5), text="FOREST")
    lib = Library.open(tmp_path / "lib" / "library.db")
    jobs = JobQueue(lib, write_registry(tmp_path / "config", CAPTIONS))
    app = create_app(lib, jobs, max_upload_bytes=50 << 20)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    files = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler,
                                                                     directory=str(tmp_path / "www")))
    threading.Thread(target=files.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{port}", "video": harbour, "lib": lib,
           "file_url": f"http://127.0.0.1:{files.server_port}/forest.mp4"}
    files.shutdown()
    files.server_close()
    server.should_exit = True
    thread.join(10)
    jobs.close()


def _wait_job_done(page, job_id: int) -> None:
    page.wait_for_selector(f'tr.job[data-id="{job_id}"][data-status="done"]', timeout=120_000)
    assert page.locator(f'tr.job[data-id="{job_id}"] progress').get_attribute("value") == "1"


def test_submit_watch_open_search_and_seek(served, browser_page, tmp_path):  # noqa: F811
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served["url"] + "/")

    page.fill("#path", str(served["video"].path))
    page.click("#submit-path")
    page.wait_for_url("**/#job-1")
    seen = set()
    for _ in range(600):  # the page polls /api/jobs: the row moves through the stages by itself
        seen.add(page.locator('tr.job[data-id="1"]').get_attribute("data-status"))
        if "done" in seen or "failed" in seen:
            break
        time.sleep(0.05)
    _wait_job_done(page, 1)
    assert seen & {"queued", "analyzing", "indexing"}, seen  # it was watched before it finished

    page.fill("#url", served["file_url"])
    page.click("#submit-url")
    _wait_job_done(page, 2)
    assert "forest.mp4" in page.locator('tr.job[data-id="2"]').inner_text()

    page.click("nav.app >> text=Library")
    assert page.locator("tr.video").count() == 2
    page.click('tr.video:has-text("forest.mp4") a.report-link')
    page.wait_for_selector(".lane[data-analyzer='test_captions']")
    assert page.locator("#player").get_attribute("src").startswith("/media/")
    page.wait_for_function("document.getElementById('player').readyState >= 1")

    page.fill("#app-bar input[name=q]", "lighthouse harbour")  # the bar the app puts above each report
    page.press("#app-bar input[name=q]", "Enter")
    page.wait_for_selector("#results .hit")
    assert "full-text" in page.locator("#ranking").inner_text()
    first = page.locator("#results .hit").first
    assert "harbour.mp4" in first.inner_text() and "lighthouse" in first.inner_text()
    assert first.get_attribute("data-t") == "1.20"
    shot = tmp_path / "search.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("SERVE_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["SERVE_SCREENSHOT"])

    first.locator("a").first.click()
    page.wait_for_url("**/report.html#t=1.20")
    page.wait_for_function("() => { const v = document.getElementById('player');"
                           " return v.readyState >= 2 && !v.seeking && Math.abs(v.currentTime - 1.2) < 0.05; }")
    assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(1.2, abs=0.05)
    readout = page.locator("#time-readout").inner_text()
    assert readout == "0:01.2", readout
    assert not errors, errors
