"""The scheduler's variants of an analyzer's models, from the manifest's VRAM table and ``smaller`` lists."""
from __future__ import annotations

from typing import Any

from ..scheduler import Variant


def model_variants(manifest: Any, model_ids: list[str], supported: tuple[str, ...] | None = None) -> list[Variant]:
    """The ways to load these models, best first: each precision they all list VRAM for (in
    ``PRECISION_ORDER``, limited to ``supported``), then the same with each model's ``smaller``
    stand-ins. Empty when no model lists VRAM (a CPU model)."""
    ids = [m for m in model_ids if manifest is not None and m in manifest]
    specs = [manifest[m] for m in ids if manifest[m].vram_gb]
    if not specs:
        return []

    def common(specs_: list[Any]) -> list[str]:
        return [p for p in specs_[0].precisions() if all(p in s.vram_gb for s in specs_)
                and (supported is None or p in supported)]

    variants = [Variant(p, sum(s.vram_mb(p) for s in specs)) for p in common(specs)]
    for spec in specs:
        for smaller in spec.smaller:
            if smaller not in manifest or not manifest[smaller].vram_gb:
                continue
            swapped = [manifest[smaller] if s is spec else s for s in specs]
            variants += [Variant(p, sum(s.vram_mb(p) for s in swapped), ((spec.id, smaller),))
                         for p in common(swapped)]
    return variants
