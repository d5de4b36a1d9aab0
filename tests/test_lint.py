"""The code has no undefined names, unused imports or variables, nor syntax errors (ruff's pyflakes rules, F, and
E9), in the packages, the benchmarks, the scripts and the tests: pyproject.toml's ``[tool.ruff]`` lists the two
deliberate exceptions (the CLI's command modules imported for their side effect, the tests' fixtures imported by
name)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ruff")
ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_no_undefined_or_unused_names():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F,E9",
                           "--output-format", "concise", "framework", "analyzers", "cli", "bench", "scripts", "tests"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
