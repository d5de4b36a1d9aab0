"""``framework serve``: the local web app over the library.

Server-rendered pages (FastAPI + Jinja2) in the report's own look (its stylesheet is reused):

- ``/``: submit a video by path, upload or URL; the job queue with live progress (the page polls
  ``/api/jobs``);
- ``/library``: every analyzed video; ``/videos/{id}/report.html``: the report ``framework run``
  wrote, served from the run folder with its player pointed at ``/media/{id}``;
- ``/search?q=...``: moments across the library; each opens the report at its time (``#t=``).

Safety: it binds 127.0.0.1 unless told otherwise (and warns when not); only ``Host`` headers naming
this machine are answered while bound to loopback (no DNS rebinding); a form post from another
origin is refused; uploads stream into the library's ``uploads/`` under a size limit; URLs must be
http(s); files are served only from run folders (no dot-files, nothing outside them after resolving
links) and the library's own video files.
"""
from __future__ import annotations

from .app import create_app, is_loopback

__all__ = ["create_app", "is_loopback"]
