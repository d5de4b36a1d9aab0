"""Exporters' slow imports are warmed up on a background thread during a run."""
from __future__ import annotations

import sys

from framework.outputs import Exporter, builtin_exporters, warm_up_imports


def _exporter(*modules: str) -> type[Exporter]:
    return type("E", (Exporter,), {"name": "e", "warm_imports": modules})


def test_the_named_modules_are_imported_on_a_thread(tmp_path, monkeypatch):
    (tmp_path / "warm_me_a.py").write_text("VALUE = 1\n")
    (tmp_path / "warm_me_b.py").write_text("raise ImportError('missing dependency')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("warm_me_a", "warm_me_b"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    thread = warm_up_imports([_exporter("warm_me_b", "warm_me_a"), _exporter("warm_me_a")])
    assert thread is not None and thread.daemon
    thread.join(30)
    assert sys.modules["warm_me_a"].VALUE == 1  # imported, after the failing one was skipped
    assert "warm_me_b" not in sys.modules       # its error is left for the exporter to report


def test_nothing_to_warm_up_starts_no_thread():
    assert warm_up_imports([_exporter(), _exporter("json")]) is None  # json is imported already


def test_the_editorial_exporters_warm_up_opentimelineio():
    warm = {c.name: c.warm_imports for c in builtin_exporters()}
    assert all(warm[n] == ("opentimelineio",) for n in ("otio", "fcpxml", "fcp7", "edl"))
