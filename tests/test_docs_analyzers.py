from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_analyzer_reference_is_current():
    spec = importlib.util.spec_from_file_location("gen_analyzer_docs", REPO / "scripts" / "gen_analyzer_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    assert (REPO / "docs" / "analyzers.md").read_text(encoding="utf-8") == expected, (
        "docs/analyzers.md is stale: run `.venv/bin/python scripts/gen_analyzer_docs.py > docs/analyzers.md`")
