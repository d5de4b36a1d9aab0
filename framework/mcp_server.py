"""An MCP server (the official Python SDK, stdio transport) over the video library.

``framework mcp`` starts it; an assistant (Claude Desktop, an IDE, any MCP client) then answers
questions about the user's videos with these tools, and nothing leaves the machine:

- ``search_videos(query, analyzer?, video?, limit?, ranking?)``: moments across the library, best
  first, each with the video, times, text, analyzer and the report link; says which ranking ran.
- ``list_videos()``: every video: number, file, length, title, summary, searchable moments.
- ``video_summary(video)``: one video's title, summary, chapters and key moments, analyzers, report.
- ``video_events(video, start, end, analyzer?, limit?)``: every event (text or not) of the video's
  run between two times, from its ``results.json``.
- ``start_analysis(source)``: analyze a local file or an http(s) URL; returns the job.
- ``analysis_status(job_id, wait_seconds?)``: the job's progress (optionally waiting for it).

``video`` is anything ``Library.find`` accepts: the number, the file (found by content if it moved),
the file name or a content-hash prefix. Errors come back as tool errors with the reason.
"""
from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any, Callable

from .errors import FrameworkError

from .library.fetch import local_file
from .library.search import search
from .library.store import Library

logger = logging.getLogger(__name__)

INSTRUCTIONS = ("Tools over the user's local video library: every video analyzed with the `framework` tool. "
                "Search moments with search_videos, list the videos, read a video's summary and its events "
                "between two times, and start analyses of new files or URLs. Times are seconds.")


def _server_class() -> Any:
    try:  # mcp 2.x
        from mcp.server.mcpserver import MCPServer

        return MCPServer
    except ImportError:  # mcp 1.x
        from mcp.server.fastmcp import FastMCP

        return FastMCP


def _tool_error() -> type[Exception]:
    try:  # mcp 2.x: only a ToolError's message reaches the client
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError:  # mcp 1.x
        from mcp.server.fastmcp.exceptions import ToolError
    return ToolError


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A library error (unknown video, bad URL, empty query) becomes a tool error with its message."""
    tool_error = _tool_error()

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (FrameworkError, ValueError) as exc:
            raise tool_error(str(exc)) from None

    return wrapper


def build_server(library: Library, registry_path: str | os.PathLike | None = None, only: list[str] | None = None,
                 offline: bool = False, media_roots: list[Path] | None = None, vram_budget: str | float | None = None,
                 devices: list[str] | None = None) -> Any:
    """The MCP server object with the library's tools (``.run("stdio")`` serves it); ``vram_budget``
    and ``devices`` apply to the analyses it starts, as ``framework run``'s options."""
    server = _server_class()(name="framework-video-library", instructions=INSTRUCTIONS)
    state: dict[str, Any] = {}
    roots = [r.resolve() for r in media_roots] if media_roots else None

    def queue():  # noqa: ANN202 - started on the first analysis only
        if "jobs" not in state:
            from .library.jobs import JobQueue

            state["jobs"] = JobQueue(library, registry_path, only=only, offline=offline, vram_budget=vram_budget,
                                     devices=devices)
        return state["jobs"]

    @server.tool()
    @_user_errors
    def search_videos(query: str, analyzer: str | None = None, video: str | None = None, limit: int = 10,
                      ranking: str = "auto") -> dict[str, Any]:
        """Search inside every analyzed video (transcripts, descriptions, on-screen text, labels, chapters,
        summaries). Returns moments best first: video, start and end seconds, text, analyzer, report link.
        ranking: auto (full text plus embeddings when available), text, or semantic."""
        result = search(library, query, analyzers=[analyzer] if analyzer else None, videos=[video] if video else None,
                        limit=max(1, min(int(limit), 100)),
                        mode=ranking if ranking in ("auto", "text", "semantic") else "auto")
        return result.to_dict()

    @server.tool()
    @_user_errors
    def list_videos() -> dict[str, Any]:
        """Every video in the library: number, file, length in seconds, title, summary, moments."""
        return {"library": str(library.path), "videos": [
            {"id": v.id, "name": v.name, "path": v.path, "file_exists": v.file_exists, "duration": v.duration,
             "title": v.title, "summary": v.summary, "moments": v.moments, "analyzed_at": v.updated_at}
            for v in library.videos()]}

    @server.tool()
    @_user_errors
    def video_summary(video: str) -> dict[str, Any]:
        """One video's summary: title, paragraph, chapters and key moments (with times), the analyzers
        that ran and the report's path. video: its number, file, file name or content-hash prefix."""
        v = library.find(video)
        moments = library.moments(v.id)
        pick = lambda kind: [{"start": m.start, "end": m.end, "text": m.text} for m in moments if m.kind == kind]  # noqa: E731
        return {"id": v.id, "name": v.name, "path": v.path, "duration": v.duration, "title": v.title,
                "summary": v.summary, "chapters": pick("chapter"), "key_moments": pick("key_moment"),
                "analyzers": v.tracks, "report": str(v.report), "run_dir": v.run_dir}

    @server.tool()
    @_user_errors
    def video_events(video: str, start: float, end: float, analyzer: str | None = None,
                     limit: int = 200) -> dict[str, Any]:
        """Every event the analyzers found in a video between start and end seconds (shots, speech,
        objects, descriptions, ...), in time order; text is included where the event has some."""
        if end < start:
            raise ValueError(f"end ({end}) is before start ({start})")
        v = library.find(video)
        limit = max(1, min(int(limit), 2000))
        events = library.events(v.id, float(start), float(end), [analyzer] if analyzer else None, limit=limit + 1)
        return {"video": v.name, "id": v.id, "start": start, "end": end, "events": events[:limit],
                "truncated": len(events) > limit}

    @server.tool()
    @_user_errors
    def start_analysis(source: str) -> dict[str, Any]:
        """Analyze a video: a local file path or an http(s) URL (a video site or a link to a file).
        Returns the job; follow it with analysis_status. The video joins the library when done."""
        text = source.strip()
        if "://" in text or text.lower().startswith(("file:", "data:", "ftp:")):
            return queue().submit_url(text).to_dict()
        return queue().submit_path(local_file(text, roots)).to_dict()

    @server.tool()
    @_user_errors
    def analysis_status(job_id: int, wait_seconds: float = 0.0) -> dict[str, Any]:
        """A started analysis: status (queued, downloading, analyzing, indexing, done, failed), progress
        0..1, stage, error, and the library number once done. wait_seconds (up to 600) waits for it."""
        jobs = state.get("jobs")
        job = jobs.get(int(job_id)) if jobs else None
        if job is None:
            raise ValueError(f"no analysis job {job_id} was started by this server")
        if wait_seconds > 0:
            job = jobs.wait(job.id, timeout=min(float(wait_seconds), 600.0))
        return job.to_dict()

    return server


def run_stdio(library: str | os.PathLike | None = None, **kwargs: Any) -> None:
    """Serve the library's tools over stdin/stdout until the client disconnects."""
    lib = Library.open(library)
    lib.count()
    logger.info("MCP server on stdio; library %s (%d videos)", lib.path, lib.count())
    build_server(lib, **kwargs).run("stdio")
