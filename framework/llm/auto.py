"""``auto``: the summary LLM the fusion step uses when none is configured.

``choose_summary_model`` picks, from the models manifest, the best instruction-tuned summary
model (tag ``summary-llm``, ``instruction_tuned: true``) that is **already cached** and fits the
memory allowed (``max_gb``: its smallest VRAM estimate, or its size when it lists none): the
manifest's ``default``-tagged model first, then larger before smaller. Nothing is downloaded (a
summary must not start a multi-gigabyte download behind the user's back): when none is cached
the choice is the extractive summary, and the reason names the ``framework models pull`` command
that would enable an LLM-written one.

The lookup goes through ``framework.models.find_model`` (the framework's model code), never
through a hub cache directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AUTO = "auto"


@dataclass(frozen=True)
class AutoChoice:
    """What ``auto`` resolved to: ``backend`` (``transformers`` or ``extractive``), the manifest id
    of the model (None for extractive), and why, in words the summary's notes can quote."""

    backend: str
    model: str | None
    reason: str


def _need_gb(spec: Any) -> float | None:
    if spec.vram_gb:
        return min(spec.vram_gb.values())
    return spec.size_bytes / 1e9 if spec.size_bytes else None


def summary_candidates(manifest: Any) -> list[Any]:
    """Instruction-tuned summary models of the manifest, best first (``default`` tag, then larger)."""
    found = [s for s in manifest if "summary-llm" in s.tags and s.instruction_tuned]
    return sorted(found, key=lambda s: ("default" not in s.tags, -(_need_gb(s) or 0.0), s.id))


def choose_summary_model(manifest: Any, max_gb: float | None = None, roots: Any = None) -> AutoChoice:
    """The cached summary model ``auto`` uses (see the module docstring)."""
    from ..models import find_model

    candidates = summary_candidates(manifest)
    too_big: list[str] = []
    for spec in candidates:
        if find_model(spec, roots) is None:
            continue
        need = _need_gb(spec)
        if max_gb is not None and need is not None and need > max_gb:
            too_big.append(f"{spec.id} (~{need:g} GB)")
            continue
        fit = f", within {max_gb:g} GB" if max_gb is not None else ""
        return AutoChoice("transformers", spec.id, f"auto chose the local instruct model {spec.id} (cached{fit})")
    default = next((s.id for s in candidates if "default" in s.tags), candidates[0].id if candidates else None)
    if too_big:
        why = (f"the cached summary models need more than the {max_gb:g} GB allowed "
               f"(analyzers.fusion.params.auto_max_gb): {', '.join(too_big)}")
    else:
        why = "no instruction-tuned summary model is cached"
    if default:
        why += f"; `framework models pull {default}` would let a local LLM write it"
    return AutoChoice("extractive", None, f"auto found no local summary model that fits ({why})")


__all__ = ["AUTO", "AutoChoice", "choose_summary_model", "summary_candidates"]
