"""``source: whisper``: ``NAME.pt`` in openai-whisper's download root. ``pull`` takes the URL from
``whisper._MODELS`` and fetches it with the resumable ``download_url``, checked against the
SHA-256 embedded in that URL as ``whisper._download`` checks it (which itself restarts from zero
and writes straight to the final name)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ...errors import ModelError
from ..download import download_url
from .base import FileSource

if TYPE_CHECKING:
    from ..lockfile import ModelLock
    from ..manifest import ModelSpec
    from ..roots import CacheRoots


class Whisper(FileSource):
    name: ClassVar[str] = "whisper"

    def validate(self, spec: ModelSpec) -> None:
        super().validate(spec)
        if not re.match(r"^[a-z0-9][a-z0-9.-]*$", spec.locator) or ".." in spec.locator:
            raise ValueError(f"locator {spec.locator!r} is not a whisper model name such as 'base' or 'large-v3'")

    def filename(self, spec: ModelSpec) -> str | None:
        return f"{spec.locator}.pt"

    def cache_dirs(self, roots: CacheRoots) -> list[Path]:
        return [roots.whisper]

    def pull(self, spec: ModelSpec, roots: CacheRoots, lock: ModelLock, update: bool, progress: bool) -> Path:
        import whisper

        url = whisper._MODELS.get(spec.locator)
        if url is None:
            raise ModelError(f"openai-whisper {getattr(whisper, '__version__', '')} has no model {spec.locator!r}; "
                             f"it has {', '.join(whisper._MODELS)}")
        sha256 = url.split("/")[-2]
        return download_url(url, roots.whisper / os.path.basename(url), sha256=sha256, progress=progress,
                            what=spec.id)
