"""The FastAPI application behind ``framework serve`` (see the package docstring)."""
from __future__ import annotations

import importlib.resources
import ipaddress
import logging
import mimetypes
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..library.fetch import Incoming, SubmitError, TooLarge, local_file, safe_filename
from ..library.jobs import JobQueue
from ..library.search import clock, search
from ..library.store import Library, LibraryError

logger = logging.getLogger(__name__)

LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
_PLAYER_SRC = re.compile(r'(<(?:video|audio) id="player"[^>]*?\ssrc=")[^"]*(")')


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def report_css() -> str:
    """The report's stylesheet, so the app and the reports look alike."""
    text = (importlib.resources.files("framework.outputs") / "templates" / "report.html").read_text("utf-8")
    m = re.search(r"<style>(.*?)</style>", text, re.S)
    return m.group(1) if m else ""


def inside(base: Path, relative: str) -> Path | None:
    """``base/relative`` if it stays inside ``base`` once resolved (links included) and names no
    dot-file or dot-folder; else None."""
    if not relative or any(part.startswith(".") for part in re.split(r"[\\/]", relative) if part):
        return None
    base = base.resolve()
    try:
        target = (base / relative).resolve()
    except (OSError, RuntimeError):
        return None
    return target if target != base and target.is_relative_to(base) else None


def create_app(library: Library, jobs: JobQueue, *, max_upload_bytes: int, media_roots: list[Path] | None = None,
               allow_paths: bool = True, local_only: bool = True) -> FastAPI:
    """The app. ``media_roots``: folders a submitted path must be in (None: any readable file);
    ``allow_paths=False`` refuses path submissions (the default off loopback without roots)."""
    app = FastAPI(title="framework library", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS if local_only else ["*"])
    templates = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
                            autoescape=select_autoescape(["html"]))
    templates.globals.update(clock=clock, css=report_css())
    roots = [r.resolve() for r in media_roots] if media_roots else None

    def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**values), status_code=status)

    @app.middleware("http")
    async def same_origin_posts(request: Request, call_next):  # noqa: ANN202
        """A page of another site must not make the browser submit jobs or uploads here (CSRF)."""
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            host = request.headers.get("host", "")
            if request.headers.get("sec-fetch-site") == "cross-site" or (
                    origin and origin != "null" and urlsplit(origin).netloc != host):
                return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
            if origin == "null":
                return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        return await call_next(request)

    def check_path(text: str) -> Path:
        if not allow_paths:
            raise SubmitError("this server takes no local paths (it is not bound to localhost and has no "
                              "--media-root); upload the file or give a URL")
        return local_file(text, roots)

    def submit(values: dict[str, str]):  # noqa: ANN202
        if values.get("url", "").strip():
            return jobs.submit_url(values["url"])
        if values.get("path", "").strip():
            return jobs.submit_path(check_path(values["path"]))
        raise SubmitError("give a path or a URL")

    # --- pages --------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return page("index.html", jobs=jobs.jobs(), max_mb=max_upload_bytes / 2**20, allow_paths=allow_paths,
                    error=None, nav="analyze")

    @app.post("/jobs")
    async def post_job(request: Request) -> Response:
        form = await request.form()
        try:
            job = submit({k: str(v) for k, v in form.items()})
        except SubmitError as exc:
            return page("index.html", status=400, jobs=jobs.jobs(), max_mb=max_upload_bytes / 2**20,
                        allow_paths=allow_paths, error=str(exc), nav="analyze")
        return RedirectResponse(f"/#job-{job.id}", status_code=303)

    @app.get("/library", response_class=HTMLResponse)
    def library_page() -> HTMLResponse:
        return page("library.html", videos=library.videos(), nav="library")

    @app.get("/search", response_class=HTMLResponse)
    def search_page(q: str = "", analyzer: str = "", video: str = "", ranking: str = "auto") -> HTMLResponse:
        result, error = None, None
        if q.strip():
            try:
                result = search(library, q, analyzers=[analyzer] if analyzer else None,
                                videos=[video] if video else None, limit=30,
                                mode=ranking if ranking in ("auto", "text", "semantic") else "auto")
            except LibraryError as exc:
                error = str(exc)
        analyzers = [r[0] for r in library.connection().execute("SELECT DISTINCT analyzer FROM moments ORDER BY 1")]
        return page("search.html", q=q, result=result, error=error, analyzers=analyzers, analyzer=analyzer,
                    videos=library.videos(), video=video, ranking=ranking, nav="search")

    @app.get("/videos/{video_id}")
    def video_page(video_id: int) -> Response:
        return RedirectResponse(f"/videos/{video_id}/report.html", status_code=307)

    @app.get("/videos/{video_id}/report.html", response_class=HTMLResponse)
    def report(video_id: int) -> Response:
        record = _record(library, video_id)
        if record is None:
            return page("missing.html", status=404, what=f"video #{video_id} is not in the library", nav="")
        try:
            text = record.report.read_text(encoding="utf-8")
        except OSError:
            return page("missing.html", status=404, nav="",
                        what=f"{record.name}: its report {record.report} cannot be read (run `framework report` on it)")
        text = _PLAYER_SRC.sub(lambda m: f"{m.group(1)}/media/{record.id}{m.group(2)}", text, count=1)
        back = ('<div id="app-bar" style="background:#0f131b;padding:6px 28px;font-size:13px"><a style="color:#aab2c5" '
                'href="/library">&larr; library</a> &middot; <a style="color:#aab2c5" href="/">analyze</a> &middot; '
                '<form action="/search" method="get" style="display:inline"><input name="q" aria-label="search" '
                'placeholder="Search inside every video" style="background:#1d2330;color:#f2f4f8;border:1px solid '
                '#2d3548;border-radius:6px;padding:3px 8px;width:260px"></form></div>')
        text = text.replace('<header class="top">', back + '<header class="top">', 1)
        return HTMLResponse(text)

    @app.get("/videos/{video_id}/{file_path:path}")
    def run_file(video_id: int, file_path: str) -> Response:
        record = _record(library, video_id)
        target = inside(Path(record.run_dir), file_path) if record else None
        if target is None or not target.is_file():
            return JSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(target)

    @app.get("/media/{video_id}")
    def media(video_id: int) -> Response:
        record = _record(library, video_id)
        if record is None or not record.file_exists:
            return JSONResponse({"error": "the video file is not reachable"}, status_code=404)
        kind = mimetypes.guess_type(record.name)[0] or "application/octet-stream"
        return FileResponse(record.path, media_type=kind)

    # --- JSON API -----------------------------------------------------------------------------
    @app.get("/api/jobs")
    def api_jobs() -> dict[str, Any]:
        return {"jobs": [j.to_dict() for j in jobs.jobs()]}

    @app.get("/api/jobs/{job_id}")
    def api_job(job_id: int) -> Response:
        job = jobs.get(job_id)
        return JSONResponse(job.to_dict()) if job else JSONResponse({"error": "no such job"}, status_code=404)

    @app.post("/api/jobs")
    async def api_submit(request: Request) -> Response:
        try:
            values = await request.json()
            job = submit({k: str(v) for k, v in dict(values).items()})
        except SubmitError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except ValueError:
            return JSONResponse({"error": 'send JSON: {"path": ...} or {"url": ...}'}, status_code=400)
        return JSONResponse(job.to_dict(), status_code=202)

    @app.post("/api/upload")
    async def api_upload(request: Request, filename: str = "upload.mp4") -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_upload_bytes:
            return JSONResponse({"error": f"the upload is larger than the limit of {max_upload_bytes / 2**20:.0f} MiB"},
                                status_code=413)
        try:
            path = await _receive(request, library.folder / "uploads", safe_filename(filename, "upload"),
                                  max_upload_bytes)
        except TooLarge as exc:
            return JSONResponse({"error": str(exc)}, status_code=413)
        except SubmitError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(jobs.submit_file(path).to_dict(), status_code=202)

    @app.get("/api/search")
    def api_search(q: str, analyzer: str = "", video: str = "", limit: int = 20, ranking: str = "auto") -> Response:
        try:
            result = search(library, q, analyzers=[analyzer] if analyzer else None, videos=[video] if video else None,
                            limit=max(1, min(limit, 200)),
                            mode=ranking if ranking in ("auto", "text", "semantic") else "auto")
        except LibraryError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        data = result.to_dict()
        for hit in data["hits"]:
            hit["link"] = f"/videos/{hit['video_id']}/report.html#t={hit['start']:.2f}"
            hit.pop("run_dir", None)
        return JSONResponse(data)

    @app.get("/api/videos")
    def api_videos() -> dict[str, Any]:
        return {"videos": [{k: v for k, v in r.to_dict().items() if k not in ("run_dir", "report")}
                           for r in library.videos()]}

    return app


def _record(library: Library, video_id: int):  # noqa: ANN202
    try:
        return library.get(video_id)
    except LibraryError:
        return None


async def _receive(request: Request, folder: Path, name: str, max_bytes: int) -> Path:
    """Stream the request body into ``folder`` (a temporary name first); past ``max_bytes`` it is deleted."""
    with Incoming(folder, name, max_bytes, empty="the upload is empty") as incoming:
        async for chunk in request.stream():
            incoming.write(chunk)
        return incoming.keep()
