"""``source: easyocr``: a model file in EasyOCR's model folder, fetched with
``easyocr.utils.download_and_unzip`` from the URL in ``easyocr.config``, then checked with its MD5."""
from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlparse

from ...errors import ModelError
from ..digest import file_digest
from ..download import unreachable
from .base import FileSource
from .common import plain_filename

if TYPE_CHECKING:
    from ..lockfile import ModelLock
    from ..manifest import ModelSpec
    from ..roots import CacheRoots


class EasyOCR(FileSource):
    name: ClassVar[str] = "easyocr"

    def validate(self, spec: ModelSpec) -> None:
        super().validate(spec)
        plain_filename(spec.locator, "locator")

    def cache_dirs(self, roots: CacheRoots) -> list[Path]:
        return [roots.easyocr]

    def extra_partials(self, folder: Path) -> list[Path]:
        return [folder / "temp.zip"]  # easyocr.utils.download_and_unzip's download file

    def pull(self, spec: ModelSpec, roots: CacheRoots, lock: ModelLock, update: bool, progress: bool) -> Path:
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
            raise unreachable(spec.locator, urlparse(entry["url"]).netloc, exc) from None
        target = folder / spec.locator
        md5 = entry.get("md5sum") or entry.get("filesize")
        if md5 and file_digest(target, "md5") != md5:
            raise ModelError(f"{target}: MD5 differs from easyocr's config ({md5}); delete it and pull again")
        return target
