"""The web app's API and its safety: localhost by default (warning otherwise), Host and Origin
checks, uploads with a size limit into the library's folder, http(s)-only URLs (also after a
redirect), and no file served from outside the run folders (traversal, absolute paths, links,
dot-files)."""
from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from cli import main
from framework.library import Library
from framework.library.jobs import JobQueue
from framework.web import create_app, is_loopback
from library_helpers import fake_run, fake_video, write_registry
from local_http import local_server


@pytest.fixture
def app_env(tmp_path):
    lib = Library.open(tmp_path / "lib" / "library.db")
    video = fake_video(tmp_path / "media" / "clip.mp4")
    run = fake_run(tmp_path / "runs" / "clip", video, [(1.0, 2.0, "a lighthouse")])
    (run / "thumbs").mkdir()
    (run / "thumbs" / "0001.jpg").write_bytes(b"\xff\xd8jpeg")
    (run / ".finished.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("top secret")
    os.symlink(tmp_path / "secret.txt", run / "link.txt")
    record = lib.add_run(run)
    jobs = JobQueue(lib, write_registry(tmp_path / "config"))
    app = create_app(lib, jobs, max_upload_bytes=10_000, media_roots=[tmp_path / "media"])
    client = TestClient(app, base_url="http://127.0.0.1:8000")
    yield client, lib, record, jobs, tmp_path
    jobs.close()


def test_only_run_folder_files_are_served(app_env):
    client, lib, record, _, tmp = app_env
    base = f"/videos/{record.id}"
    assert client.get(f"{base}/thumbs/0001.jpg").content == b"\xff\xd8jpeg"
    assert client.get(f"{base}/results.json").status_code == 200
    for bad in ("..%2F..%2Fsecret.txt", "%2e%2e/%2e%2e/secret.txt", "thumbs/..%2F..%2F..%2Fsecret.txt",
                "%2Fetc%2Fpasswd", "link.txt", ".finished.json", "thumbs/../.finished.json", "nothing.txt"):
        r = client.get(f"{base}/{bad}")
        assert r.status_code == 404 and b"secret" not in r.content, bad
    assert client.get("/videos/999/results.json").status_code == 404
    assert client.get("/media/999").status_code == 404
    media = client.get(f"/media/{record.id}", headers={"Range": "bytes=0-9"})
    assert media.status_code == 206 and media.content == Path(record.path).read_bytes()[:10]


def test_the_report_is_served_with_its_player_pointed_at_the_app(app_env):
    client, lib, record, _, _ = app_env
    Path(record.report).write_text('<html><header class="top"></header><video id="player" controls '
                                   'src="../../media/clip.mp4"></video></html>')
    page = client.get(f"/videos/{record.id}/report.html").text
    assert f'src="/media/{record.id}"' in page and "../../media" not in page and 'href="/library"' in page


def test_urls_must_be_http_or_https(app_env):
    client, *_ = app_env
    for url in ("file:///etc/passwd", "FILE:///etc/passwd", "ftp://example.com/a.mp4", "data:video/mp4;base64,AAAA",
                "javascript:alert(1)", "/etc/passwd", "http://"):
        r = client.post("/api/jobs", json={"url": url})
        assert r.status_code == 400 and "http" in r.json()["error"], url
    form = client.post("/jobs", data={"url": "file:///etc/passwd"})
    assert form.status_code == 400 and "only http:// and https:// URLs are accepted" in form.text
    assert client.get("/api/jobs").json()["jobs"] == []


class _Redirect(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(302)
        self.send_header("Location", self.server.location)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/video.mp4"])
def test_a_redirect_to_another_scheme_is_refused(app_env, location):
    client, _, _, jobs, tmp = app_env
    with local_server(_Redirect, location=location) as srv:
        job = client.post("/api/jobs", json={"url": f"http://127.0.0.1:{srv.server_port}/video.mp4"}).json()
        done = jobs.wait(job["id"], timeout=60)
    assert done.status == "failed" and location in done.error
    assert "is not allowed" in done.error or "only http:// and https://" in done.error
    downloads = tmp / "lib" / "downloads"
    assert not downloads.exists() or list(downloads.iterdir()) == []


def test_uploads_have_a_size_limit_and_go_to_the_library_folder(app_env):
    client, lib, _, jobs, tmp = app_env
    uploads = tmp / "lib" / "uploads"
    big = client.post("/api/upload?filename=big.mp4", content=b"x" * 20_000)
    assert big.status_code == 413 and "limit" in big.json()["error"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(20):
            yield b"y" * 1000

    streamed = client.post("/api/upload?filename=streamed.mp4", content=chunks())
    assert streamed.status_code == 413
    assert not uploads.exists() or list(uploads.iterdir()) == []  # no partial file left behind
    ok = client.post("/api/upload?filename=../../evil/.hidden name.mp4", content=b"z" * 500)
    assert ok.status_code == 202
    saved = [p for p in uploads.iterdir()]
    assert [p.name for p in saved] == ["hidden name.mp4"] and saved[0].read_bytes() == b"z" * 500
    job = jobs.wait(ok.json()["id"], timeout=60)
    assert job.status == "failed" and "not a video" in job.error  # 500 bytes of "z" are no video


def test_paths_must_be_inside_the_media_roots(app_env):
    client, _, _, _, tmp = app_env
    outside = client.post("/api/jobs", json={"path": str(tmp / "secret.txt")})
    assert outside.status_code == 400 and "outside the folders" in outside.json()["error"]
    relative = client.post("/api/jobs", json={"path": "media/clip.mp4"})
    assert relative.status_code == 400 and "full path" in relative.json()["error"]
    inside = client.post("/api/jobs", json={"path": str(tmp / "media" / ".." / "secret.txt")})
    assert inside.status_code == 400 and "outside the folders" in inside.json()["error"]


def test_foreign_hosts_and_cross_origin_posts_are_refused(app_env):
    client, *_ = app_env
    assert client.get("/library", headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding
    assert client.get("/library", headers={"Host": "localhost:8000"}).status_code == 200
    r = client.post("/api/jobs", json={"url": "http://example.com/a.mp4"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = client.post("/jobs", data={"url": "http://example.com/a.mp4"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert client.get("/api/jobs").json()["jobs"] == []


def test_no_paths_when_not_on_localhost_without_roots(tmp_path):
    lib = Library.open(tmp_path / "lib.db")
    jobs = JobQueue(lib)
    app = create_app(lib, jobs, max_upload_bytes=1000, allow_paths=False, local_only=False)
    client = TestClient(app, base_url="http://192.0.2.10:8000")
    r = client.post("/api/jobs", json={"path": "/etc/hostname"})
    assert r.status_code == 400 and "takes no local paths" in r.json()["error"]
    assert 'id="path"' not in client.get("/").text
    jobs.close()


def test_serve_binds_localhost_by_default_and_warns_otherwise(monkeypatch, tmp_path):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: calls.append((host, port)))
    runner = CliRunner()
    local = runner.invoke(main, ["serve", "--library", str(tmp_path / "lib.db")])
    assert local.exit_code == 0 and calls[-1] == ("127.0.0.1", 8000) and "warning" not in local.output
    wide = runner.invoke(main, ["serve", "--host", "0.0.0.0", "--port", "9000", "--library", str(tmp_path / "lib.db")])
    assert wide.exit_code == 0 and calls[-1] == ("0.0.0.0", 9000)
    assert "warning" in wide.output and "other machines" in " ".join(wide.output.split())
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_the_apps_analyses_take_the_gpu_options(monkeypatch, tmp_path, sample_video):
    """``framework serve --vram-budget/--devices`` reach every analysis the app starts (and the
    finished-run check, so a run under another budget is not taken as done); a budget that cannot
    be read is refused before the server starts."""
    import uvicorn

    from framework import runner
    from framework.library import jobs as jobs_module

    calls, started, queues = [], [], []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: started.append(app))

    class Recorded(JobQueue):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            queues.append(self)

    monkeypatch.setattr(jobs_module, "JobQueue", Recorded)

    def fake_analyze(video, **kw):
        calls.append(kw)
        raise RuntimeError("stop here")

    monkeypatch.setattr(runner, "analyze", fake_analyze)
    cli = CliRunner()
    ok = cli.invoke(main, ["serve", "--library", str(tmp_path / "lib.db"), "--vram-budget", "12GB",
                           "--devices", "cuda:0, cuda:1"])
    assert ok.exit_code == 0, ok.output
    assert (queues[0].vram_budget, queues[0].devices) == ("12GB", ["cuda:0", "cuda:1"])
    queues[0].close()
    bad = cli.invoke(main, ["serve", "--library", str(tmp_path / "lib.db"), "--vram-budget", "lots"])
    assert bad.exit_code == 2 and "cannot read VRAM budget 'lots'" in bad.output and len(started) == 1

    queue = JobQueue(Library.open(tmp_path / "lib2.db"), write_registry(tmp_path / "config"), vram_budget="12GB",
                     devices=["cuda:0"])
    try:
        job = queue.wait(queue.submit_path(sample_video.path).id, timeout=30)
    finally:
        queue.close()
    assert job.status == "failed" and "stop here" in job.error
    assert calls[-1]["vram_budget"] == "12GB" and calls[-1]["devices"] == ["cuda:0"]


def test_search_and_library_api(app_env):
    client, lib, record, _, _ = app_env
    data = client.get("/api/search", params={"q": "lighthouse"}).json()
    assert data["hits"][0]["link"] == f"/videos/{record.id}/report.html#t=1.00" and "run_dir" not in data["hits"][0]
    page = client.get("/search", params={"q": "lighthouse"}).text
    assert f'href="/videos/{record.id}/report.html#t=1.00"' in page and "Ranking: full-text" in page
    assert "clip.mp4" in client.get("/library").text
    assert client.get("/api/videos").json()["videos"][0]["name"] == "clip.mp4"


def test_a_page_with_a_video_goes_through_yt_dlp(tmp_path, sample_video):
    """Not a link to a file: yt-dlp's generic extractor finds the page's <video> (the only kind of
    "video site" reachable offline) and the file lands in the library's downloads folder."""
    import functools
    import shutil
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from framework.library.fetch import download

    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(sample_video.path, www / "clip.mp4")
    (www / "page.html").write_text('<!doctype html><html><head><title>Harbour film</title></head><body>'
                                   '<video controls src="clip.mp4"></video></body></html>')
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(www)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    stages: list[str] = []
    try:
        got = download(f"http://127.0.0.1:{srv.server_port}/page.html", tmp_path / "lib" / "downloads",
                       progress=lambda fraction, text: stages.append(text))
    finally:
        srv.shutdown()
        srv.server_close()
    assert got.parent == tmp_path / "lib" / "downloads" and got.suffix == ".mp4" and "Harbour" in got.name
    assert got.read_bytes() == sample_video.path.read_bytes()
    assert [p.name for p in got.parent.iterdir()] == [got.name]  # yt-dlp's work folder is gone
