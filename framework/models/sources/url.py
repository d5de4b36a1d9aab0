"""``source: url``: any http(s) file, stored in the torch hub checkpoints folder. ``pull`` streams
it to ``NAME.part`` under a held ``NAME.lock``, resumes with HTTP Range, checks the manifest's
checksum, then renames it."""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlparse

from ..download import download_url
from .base import FileSource
from .common import plain_filename

if TYPE_CHECKING:
    from ..lockfile import ModelLock
    from ..manifest import ModelSpec
    from ..roots import CacheRoots


class Url(FileSource):
    name: ClassVar[str] = "url"

    def validate(self, spec: ModelSpec) -> None:
        super().validate(spec)
        parsed = urlparse(spec.locator)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"locator {spec.locator!r} is not an http(s) URL")
        plain_filename(PurePosixPath(parsed.path).name, "the URL's file name")

    def filename(self, spec: ModelSpec) -> str | None:
        return PurePosixPath(urlparse(spec.locator).path).name

    def cache_dirs(self, roots: CacheRoots) -> list[Path]:
        return [roots.torch_checkpoints]

    def pull(self, spec: ModelSpec, roots: CacheRoots, lock: ModelLock, update: bool, progress: bool) -> Path:
        sums = dict(s.split(":", 1) for s in spec.checksums.values())
        return download_url(spec.locator, self.cache_dirs(roots)[0] / (self.filename(spec) or ""),
                            sha256=sums.get("sha256"), md5=sums.get("md5"), progress=progress, what=spec.id)
