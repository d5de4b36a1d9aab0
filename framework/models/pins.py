"""``framework models check-pins``: ask the Hugging Face hub about the manifest's pinned commits.

The manifest's ``revision`` pins were written on machines that could not reach the hub (see the
notes at the top of ``models_manifest.yaml``). This module lets anyone online confirm them: for
each Hugging Face entry it asks the hub for the pinned commit (``ok`` or ``missing``) and for the
commit ``main`` points to now, which is also the commit to pin where the manifest has none.
Nothing is downloaded but the two small JSON answers per repo.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

from ..errors import ModelError
from .download import offline_reason
from .manifest import Manifest

logger = logging.getLogger(__name__)

@dataclass
class PinCheck:
    """One Hugging Face entry: ``status`` is ``ok`` (the pinned commit exists), ``missing`` (the
    repo has no such commit), ``unpinned`` (the manifest pins nothing; ``main`` is the candidate),
    ``repo-missing`` (no such repo, or it is private) or ``gated`` (log in to check it)."""

    id: str
    repo: str
    pinned: str | None
    status: str
    main: str | None = None

    @property
    def main_moved(self) -> bool:
        """``main`` now points past the pin (not an error: the pin still downloads)."""
        return bool(self.pinned and self.main and self.main != self.pinned)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "main_moved": self.main_moved}


def check_pins(manifest: Manifest, ids: Iterable[str] = (),
               progress: Callable[[str], None] | None = None) -> list[PinCheck]:
    """Check the pinned commits of the Hugging Face entries ``ids`` (default: all of them).

    :raises ModelError: an id is unknown or not a Hugging Face model, downloads are switched off
        (``HF_HUB_OFFLINE``), or the hub cannot be reached.
    """
    why = offline_reason()
    if why:
        raise ModelError(f"check-pins asks the Hugging Face hub, but {why} switches the network off; "
                         "unset it and run again")
    ids = list(ids)
    unknown = [i for i in ids if i not in manifest]
    if unknown:
        raise ModelError(f"unknown model id(s) {', '.join(unknown)}: not in {manifest.path}")
    specs = [manifest[i] for i in ids] if ids else list(manifest)
    not_hf = [s.id for s in specs if not s.handler.has_commits]
    if ids and not_hf:
        raise ModelError(f"{', '.join(not_hf)}: not Hugging Face models; only those have commits to check")
    from huggingface_hub import HfApi

    endpoint = os.environ.get("HF_ENDPOINT") or None  # read now, like every other setting here
    api = HfApi(endpoint=endpoint)
    results = []
    for spec in (s for s in specs if s.handler.has_commits):
        if progress is not None:
            progress(spec.id)
        status, main = spec.handler.check_pin(api, spec, endpoint)
        logger.debug("%s: pinned %s, main %s -> %s", spec.id, spec.revision, main, status)
        results.append(PinCheck(spec.id, spec.locator, spec.revision, status, main))
    return results
