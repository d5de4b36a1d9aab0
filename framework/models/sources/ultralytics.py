"""``source: ultralytics``: a release asset (``yolov8x.pt``) in ultralytics' weights folder,
fetched with ``ultralytics.utils.downloads.attempt_download_asset`` (it retries with HTTP Range
within one call; a leftover ``.NAME.*.part`` is not resumed later)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ...errors import ModelError
from ..digest import file_digest
from ..download import is_network_error, unreachable
from .base import FileSource
from .common import plain_filename

if TYPE_CHECKING:
    from ..lockfile import ModelLock
    from ..manifest import ModelSpec
    from ..roots import CacheRoots


class Ultralytics(FileSource):
    name: ClassVar[str] = "ultralytics"

    def validate(self, spec: ModelSpec) -> None:
        super().validate(spec)
        plain_filename(spec.locator, "locator")

    def cache_dirs(self, roots: CacheRoots) -> list[Path]:
        return [roots.ultralytics_weights, roots.torch_checkpoints]

    def pull(self, spec: ModelSpec, roots: CacheRoots, lock: ModelLock, update: bool, progress: bool) -> Path:
        from ultralytics.utils.downloads import attempt_download_asset

        target = roots.ultralytics_weights / spec.locator
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            attempt_download_asset(str(target), progress=progress)
        except (ConnectionError, OSError) as exc:
            raise unreachable(spec.locator, "github.com", exc) from None
        except Exception as exc:
            if is_network_error(exc):
                raise unreachable(spec.locator, "github.com", exc) from None
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
