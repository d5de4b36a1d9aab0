"""The network side of ``pull``: whether downloads are off, a resumable verified download, and
the errors a user can act on when a host cannot be reached."""
from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import ModelError
from .digest import file_digest

logger = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}


def offline_reason(flag: bool = False) -> str | None:
    """Why downloads are off (``--offline`` or the HF offline variables), or None."""
    if flag:
        return "--offline"
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]}"
    return None


def unreachable(locator: str, host: str, exc: BaseException) -> ModelError:
    """The one-line error for a host that could not be reached while fetching ``locator``."""
    return ModelError(f"cannot reach {host} to download {locator} ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); check the network or proxy "
                      "and run the pull again (it resumes)")


def unresolvable(host: str) -> OSError | None:
    """Why ``host``'s name does not resolve here (no network, no DNS), or None: it resolves, or a proxy
    from the environment would resolve it instead. Asked before a download whose library retries a
    failed connection with growing pauses (huggingface_hub: about 23 s a model with no network), so
    that a machine without a network learns it in milliseconds for every model of a run."""
    import socket

    if host.split(":")[0] in ("", "localhost") or any(
            os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                                        "all_proxy")):
        return None
    try:
        socket.getaddrinfo(host.split(":")[0], 443)
    except OSError as exc:  # socket.gaierror: Name or service not known, temporary failure...
        return exc
    return None


def is_network_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from an HTTP library's transport (a dropped connection, a timeout)."""
    return type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3")


def quiet_tqdm() -> type:
    from tqdm.auto import tqdm

    class Quiet(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Quiet



def download_url(url: str, dest: Path, sha256: str | None = None, md5: str | None = None,
                 progress: bool = True, timeout: float = 30.0, what: str | None = None) -> Path:
    """Download ``url`` to ``dest``, resuming a ``dest.part`` left by an earlier attempt.

    Holds ``dest.lock`` (so prune sees the download), appends with an HTTP Range request when
    the server honours it (206) and restarts when it does not (200), checks the hash, then
    renames ``.part`` to ``dest``. Raises ``ModelError`` on a network error or a hash mismatch.
    """
    from filelock import FileLock, Timeout

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    host = urlparse(url).netloc or url
    try:
        guard = FileLock(str(dest.with_name(dest.name + ".lock")), timeout=0)
        guard.acquire()
    except Timeout:
        raise ModelError(f"another process is downloading {dest} (its .lock is held); wait for it") from None
    try:
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "video-framework-models-pull", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # nothing left to fetch: the .part is complete
                response = None
            else:
                raise ModelError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ModelError(f"cannot reach {host} to download {what or url} ({reason}); check the network "
                             "and run the pull again (it resumes)") from None
        if response is not None:
            with response:
                resumed = offset and response.status == 206
                if not resumed:
                    offset = 0
                length = int(response.headers.get("Content-Length") or 0)
                total = offset + length if length else None
                _stream(response, part, "ab" if resumed else "wb", offset, total, progress, what or dest.name)
                if resumed:
                    logger.info("resumed %s at byte %d", dest.name, offset)
        for algo, want in (("sha256", sha256), ("md5", md5)):
            if want and (got := file_digest(part, algo)) != want:
                part.unlink()
                raise ModelError(f"{dest.name}: {algo} {got[:12]}... differs from the expected {want[:12]}...; "
                                 "the partial file was removed, pull again")
        os.replace(part, dest)
    finally:
        guard.release()
    return dest


def _stream(response: Any, part: Path, mode: str, offset: int, total: int | None, progress: bool, label: str) -> None:
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    from ..progress import console  # stderr, shared with the run's bars: stdout stays machine-readable

    with Progress(*columns, console=console, disable=not progress, transient=False) as bar, \
            open(part, mode) as fh:
        task = bar.add_task(label, total=total, completed=offset)
        while chunk := response.read(1 << 20):
            fh.write(chunk)
            bar.update(task, advance=len(chunk))
