"""Getting a submitted video into the library's folder: an upload, or a URL (http/https only).

- ``check_url``: only ``http://`` and ``https://`` URLs with a host are taken; ``file:``, ``ftp:``,
  ``data:`` and every other scheme are refused before anything is opened, and so is a redirect to one.
- ``download``: a link to a media file (its ``Content-Type`` is video/audio/octet-stream, or its
  path ends in a media extension) is streamed to ``downloads/``; any other page goes to yt-dlp
  (video sites), with yt-dlp's own size limit and no playlists. Both stop at ``max_bytes``.
- ``Incoming``: a file arriving (a download, or an upload to ``framework serve``) is streamed into
  the folder under a temporary name; past ``max_bytes`` the partial file is deleted and ``TooLarge``
  raised.
- ``local_file``: a submitted local path (the web app's and the MCP server's): absolute, existing,
  and inside the allowed folders when there are some.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import EXIT_INPUT, FrameworkError
from .inputs import MEDIA_EXTENSIONS

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
DEFAULT_MAX_BYTES = 4 << 30  # 4 GiB
ALLOWED_SCHEMES = ("http", "https")
_FILE_TYPES = ("video/", "audio/", "application/octet-stream", "application/mp4", "application/ogg",
               "application/x-matroska", "binary/octet-stream")


class SubmitError(FrameworkError):
    """A submitted path, URL or upload that cannot be taken; the message says why."""

    exit_code = EXIT_INPUT


class TooLarge(SubmitError):
    """An upload or download over the size limit."""


def check_url(url: str) -> str:
    """``url`` stripped, if it is an http(s) URL with a host; else ``SubmitError``."""
    url = (url or "").strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        shown = f"{parts.scheme}:" if parts.scheme else "no scheme"
        raise SubmitError(f"{url[:200]!r}: only http:// and https:// URLs are accepted ({shown} is not)")
    if not parts.hostname:
        raise SubmitError(f"{url[:200]!r}: the URL has no host")
    return url


def safe_filename(name: str, default: str = "video") -> str:
    """A plain file name from a user-supplied one: no folders, no leading dots, no odd characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^\w.\- ]+", "_", base, flags=re.UNICODE).strip(" .")
    base = base.lstrip(".-")
    if not base:
        base = default
    stem, dot, ext = base.rpartition(".")
    if dot and len(ext) <= 10:
        return f"{stem[:120]}.{ext}" if stem else f"{default}.{ext}"
    return base[:130]


def unique_path(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/stem-2.ext`` ... if that exists."""
    folder.mkdir(parents=True, exist_ok=True)
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{stem}-{n}{suffix}"
    return candidate


class Incoming:
    """A file arriving in ``folder`` under a temporary name (``with Incoming(...) as f``): ``write``
    raises ``TooLarge`` past ``max_bytes``, ``keep`` gives it a free ``name`` beside it (``SubmitError``
    when nothing came: ``{name}: {empty}``); a file not kept is deleted when the block ends."""

    def __init__(self, folder: Path, name: str, max_bytes: int, empty: str = "it is empty") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=folder)
        self._fh, self._tmp, self._kept = os.fdopen(fd, "wb"), Path(tmp), False
        self.folder, self.name, self.max_bytes, self.empty, self.written = folder, name, max_bytes, empty, 0

    def __enter__(self) -> "Incoming":
        return self

    def write(self, chunk: bytes) -> int:
        """Append ``chunk``; the bytes written so far."""
        self.written += len(chunk)
        if self.written > self.max_bytes:
            raise TooLarge(f"{self.name}: larger than the limit of {self.max_bytes / 2**20:.0f} MiB")
        self._fh.write(chunk)
        return self.written

    def keep(self) -> Path:
        """Move the file to a free ``name`` in the folder; its path."""
        self._fh.close()
        if self.written == 0:
            raise SubmitError(f"{self.name}: {self.empty}")
        target = unique_path(self.folder, self.name)
        os.replace(self._tmp, target)
        self._kept = True
        return target

    def __exit__(self, *exc: object) -> None:
        self._fh.close()
        if not self._kept:
            self._tmp.unlink(missing_ok=True)


def local_file(text: str, roots: list[Path] | None = None) -> Path:
    """The existing file a submitted path names, resolved; it must be absolute and, with ``roots``
    (resolved folders), inside one of them. Else ``SubmitError`` saying why."""
    path = Path(os.path.expanduser(text.strip()))
    if not path.is_absolute():
        raise SubmitError(f"{text!r}: give the file's full path")
    resolved = path.resolve()
    if roots is not None and not any(resolved.is_relative_to(r) for r in roots):
        raise SubmitError(f"{text}: outside the folders this server may read ({', '.join(map(str, roots))})")
    if not resolved.is_file():
        raise SubmitError(f"{text}: no such file")
    return resolved


def _stream_to(folder: Path, name: str, chunks: Iterable[bytes], max_bytes: int,
               progress: Callable[[int], None] | None = None) -> Path:
    """Write ``chunks`` to a new file in ``folder``; past ``max_bytes`` delete it and raise ``TooLarge``."""
    with Incoming(folder, name, max_bytes) as incoming:
        for chunk in chunks:
            written = incoming.write(chunk)
            if progress:
                progress(written)
        return incoming.keep()


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s) URLs (urllib would also follow one to ftp:)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _looks_like_file(url: str, content_type: str) -> bool:
    ctype = content_type.split(";")[0].strip().lower()
    if any(ctype.startswith(t) for t in _FILE_TYPES):
        return True
    return Path(urllib.parse.urlsplit(url).path).suffix.lower() in MEDIA_EXTENSIONS and not ctype.startswith("text/")


def _name_from(url: str, headers: Any) -> str:
    disposition = headers.get("Content-Disposition") or ""
    m = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', disposition)
    name = urllib.parse.unquote(m.group(1)) if m else urllib.parse.unquote(Path(urllib.parse.urlsplit(url).path).name)
    name = safe_filename(name, "download")
    if not Path(name).suffix:
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        name += {"video/webm": ".webm", "video/x-matroska": ".mkv", "audio/mpeg": ".mp3",
                 "audio/wav": ".wav", "video/quicktime": ".mov"}.get(ctype, ".mp4")
    return name


def download(url: str, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES,
             progress: Callable[[float | None, str], None] | None = None, timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``folder`` (the library's ``downloads/``); ``progress(fraction or None, text)``."""
    url = check_url(url)
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": "framework-library/1"})
    try:
        response = opener.open(request, timeout=timeout)
    except SubmitError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SubmitError(f"{url}: cannot be fetched ({getattr(exc, 'reason', exc)})") from None
    with response:
        final = response.geturl()
        check_url(final)
        ctype = response.headers.get("Content-Type") or ""
        if not _looks_like_file(final, ctype):
            response.close()
            return _yt_dlp(url, folder, max_bytes, progress)
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            raise TooLarge(f"{url}: {total / 2**20:.0f} MiB is larger than the limit of {max_bytes / 2**20:.0f} MiB")

        def chunks() -> Iterator[bytes]:
            while chunk := response.read(CHUNK):
                yield chunk

        def report(done: int) -> None:
            if progress:
                progress(done / total if total else None, f"downloading {done / 2**20:.1f} MiB")

        return _stream_to(folder, _name_from(final, response.headers), chunks(), max_bytes, report)


def _yt_dlp(url: str, folder: Path, max_bytes: int, progress: Callable[[float | None, str], None] | None) -> Path:
    """A video site's page: yt-dlp downloads the video (one file; no playlists)."""
    try:
        import yt_dlp
    except ImportError:
        raise SubmitError(f"{url}: not a link to a media file, and yt-dlp (for video sites) is not installed; "
                          "pip install yt-dlp") from None
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".yt-dlp-", dir=folder))

    def hook(d: dict[str, Any]) -> None:
        if progress and d.get("status") == "downloading":
            total = d.get("total_bytes") or d.get("total_bytes_estimate")
            done = d.get("downloaded_bytes") or 0
            progress(done / total if total else None, f"downloading {done / 2**20:.1f} MiB (yt-dlp)")

    options = {
        "outtmpl": str(work / "%(title).80B-%(id)s.%(ext)s"), "noplaylist": True, "max_filesize": max_bytes,
        "quiet": True, "no_warnings": True, "noprogress": True, "restrictfilenames": True,
        "progress_hooks": [hook], "format": "bv*+ba/b" if shutil.which("ffmpeg") else "b",
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            ydl.download([url])
    except Exception as exc:  # noqa: BLE001 - yt-dlp raises its own DownloadError and others
        shutil.rmtree(work, ignore_errors=True)
        raise SubmitError(f"{url}: yt-dlp could not download a video from it ({exc})") from None
    files = [p for p in work.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))]
    if not files:
        shutil.rmtree(work, ignore_errors=True)
        raise SubmitError(f"{url}: yt-dlp found no video there (or it is over {max_bytes / 2**20:.0f} MiB)")
    source = max(files, key=lambda p: p.stat().st_size)
    target = unique_path(folder, safe_filename(source.name, "download"))
    os.replace(source, target)
    shutil.rmtree(work, ignore_errors=True)
    return target
