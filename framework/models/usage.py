"""Which configured analyzers use each model: asked of the analyzers, never written in the manifest."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from ..registry import ConfiguredAnalyzer
    from .manifest import Manifest


@dataclass
class ModelUsage:
    """Which configured analyzers use each model id.

    :ivar enabled: model id -> names of enabled analyzers that use it.
    :ivar disabled: model id -> names of disabled analyzers that use it.
    :ivar unknown: (analyzer, model id) pairs whose id the manifest lacks.
    :ivar failures: analyzers whose ``model_ids()`` raised, with the error.
    """

    enabled: dict[str, list[str]] = field(default_factory=dict)
    disabled: dict[str, list[str]] = field(default_factory=dict)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    enabled_failures: list[str] = field(default_factory=list)

    def in_use(self, manifest: Manifest, keep: Iterable[str] = ()) -> set[str]:
        """Every model an enabled analyzer uses, plus ``keep``, plus what those require."""
        return set(manifest.with_requirements([*self.enabled, *keep]))

    def problems(self) -> list[str]:
        out = [f"analyzer {a!r} names model id {m!r}, which the manifest lacks" for a, m in self.unknown]
        out += [f"analyzer {a!r}: model_ids() raised {e}" for a, e in self.failures]
        return out


def model_usage(configured: Iterable[ConfiguredAnalyzer], manifest: Manifest) -> ModelUsage:
    """Ask each configured analyzer (with its registry params) for its model ids."""
    usage = ModelUsage()
    for c in sorted(configured, key=lambda c: c.name):
        try:
            ids = list(c.instantiate().model_ids())
        except Exception as exc:  # noqa: BLE001 - one broken analyzer must not hide the others
            usage.failures.append((c.name, f"{type(exc).__name__}: {exc}"))
            if c.enabled:
                usage.enabled_failures.append(c.name)
            continue
        for mid in ids:
            (usage.enabled if c.enabled else usage.disabled).setdefault(mid, []).append(c.name)
            if mid not in manifest:
                usage.unknown.append((c.name, mid))
    return usage
