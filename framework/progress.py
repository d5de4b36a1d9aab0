"""The console that progress bars and log lines share (stderr, so stdout stays machine-readable)."""
from __future__ import annotations

from rich.console import Console

console = Console(stderr=True)
