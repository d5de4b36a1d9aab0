"""transformers' model table read from a file (``framework.transformers_index``).

The logic on a stand-in module (a counting table function over a folder of files), then the real hook on
the installed transformers in fresh interpreters: the first run saves the table, the next reads it, and the
table read back is the one transformers computes without the hook.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from framework import transformers_index as ti

ROOT = Path(__file__).resolve().parents[1]


def _fake_transformers(tmp_path: Path) -> tuple[types.ModuleType, Path, list[str]]:
    """Files under pkg/models, and a stand-in for pkg/utils/import_utils.py (``_stand_in``)."""
    models = tmp_path / "pkg" / "models"
    for name in ("albert", "qwen2_vl"):
        (models / name).mkdir(parents=True)
        (models / name / f"modeling_{name}.py").write_text(f"__all__ = ['{name.title()}Model']\n")
    (models / "__init__.py").write_text("")
    (tmp_path / "pkg" / "utils").mkdir()
    module, calls = _new_process_module(tmp_path)
    return module, models, calls


def _new_process_module(tmp_path: Path) -> tuple[types.ModuleType, list[str]]:
    """The module at pkg/utils/import_utils.py as a fresh process loads it (no wrapper): its table function reads
    every .py file under the folder given, and records each call."""
    calls: list[str] = []

    def create_import_structure_from_path(module_path):  # transformers' shape: subfolders, then backends
        folder = module_path if os.path.isdir(module_path) else os.path.dirname(module_path)
        calls.append(str(folder))
        return _table(Path(folder))

    module = types.ModuleType("pkg.utils.import_utils")
    module.__file__ = str(tmp_path / "pkg" / "utils" / "import_utils.py")
    module.create_import_structure_from_path = create_import_structure_from_path
    return module, calls


def _table(folder: Path) -> dict:
    table: dict = {sub.name: _table(sub) for sub in sorted(folder.iterdir()) if sub.is_dir()}
    for f in sorted(folder.glob("*.py")):
        if f.name != "__init__.py":
            names = set(re.findall(r"'(\w+)'", f.read_text()))
            table.setdefault(frozenset({"torch"} if f.stem.startswith("modeling_") else set()), {})[f.stem] = names
    return table


def test_the_models_table_is_saved_then_read_and_computed_again_when_a_file_changes(tmp_path):
    module, models, calls = _fake_transformers(tmp_path)
    cache = tmp_path / "home" / "cache"
    assert ti.wrap(module, cache)
    assert not ti.wrap(module, cache), "a wrapped function is not wrapped twice"
    first = module.create_import_structure_from_path(str(models))
    assert first == {"albert": {frozenset({"torch"}): {"modeling_albert": {"AlbertModel"}}},
                     "qwen2_vl": {frozenset({"torch"}): {"modeling_qwen2_vl": {"Qwen2_VlModel"}}}}
    assert ti.outcomes[Path(os.path.realpath(models)).as_posix()] == "saved"
    # the package's __init__.py names the same folder: the same table object, computed once
    assert module.create_import_structure_from_path(str(models / "__init__.py")) is first
    assert len(calls) == 1
    # another folder is transformers' own business
    module.create_import_structure_from_path(str(models / "albert"))
    assert calls[-1] == str(models / "albert")

    again, calls_again = _new_process_module(tmp_path)  # the next run
    ti.wrap(again, cache)
    assert again.create_import_structure_from_path(str(models)) == first
    assert calls_again == [], "the table came from the file"
    assert ti.outcomes[Path(os.path.realpath(models)).as_posix()] == "read"

    (models / "albert" / "modeling_albert.py").write_text("__all__ = ['AlbertModel', 'AlbertForMaskedLM']\n")
    third, calls_third = _new_process_module(tmp_path)  # transformers edited in place
    ti.wrap(third, cache)
    table = third.create_import_structure_from_path(str(models))
    assert calls_third == [str(models)]
    assert table["albert"][frozenset({"torch"})]["modeling_albert"] == {"AlbertModel", "AlbertForMaskedLM"}


def test_a_damaged_table_file_is_computed_again_and_replaced(tmp_path):
    module, models, calls = _fake_transformers(tmp_path)
    cache = tmp_path / "cache"
    ti.wrap(module, cache)
    module.create_import_structure_from_path(str(models))
    (saved,) = cache.glob("*.json")
    saved.write_text("{not json")
    again, calls_again = _new_process_module(tmp_path)
    ti.wrap(again, cache)
    assert "albert" in again.create_import_structure_from_path(str(models))
    assert calls_again == [str(models)]
    assert ti.outcomes[Path(os.path.realpath(models)).as_posix()] == "saved"
    assert list(cache.glob("*.part")) == []


def test_an_unwritable_cache_leaves_the_table_computed(tmp_path):
    module, models, calls = _fake_transformers(tmp_path)
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would go")
    ti.wrap(module, blocked / "cache")
    assert "albert" in module.create_import_structure_from_path(str(models))
    assert ti.outcomes[Path(os.path.realpath(models)).as_posix()] == "computed"


def test_the_fingerprint_follows_names_sizes_and_times_and_skips_bytecode(tmp_path):
    (tmp_path / "a").mkdir()
    f = tmp_path / "a" / "x.py"
    f.write_text("one")
    before = ti.fingerprint(tmp_path)
    assert ti.fingerprint(tmp_path) == before
    (tmp_path / "a" / "__pycache__").mkdir()
    (tmp_path / "a" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert ti.fingerprint(tmp_path) == before
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    moved = ti.fingerprint(tmp_path)
    assert moved != before
    (tmp_path / "a" / "y.py").write_text("")
    assert ti.fingerprint(tmp_path) != moved


def test_switched_off_or_too_late_installs_nothing(monkeypatch):
    finders = list(sys.meta_path)
    assert ti.install(env={"FRAMEWORK_TRANSFORMERS_INDEX": "0"}) is False
    monkeypatch.setattr(ti, "_installed", False)
    monkeypatch.setitem(sys.modules, "transformers", types.ModuleType("transformers"))
    assert ti.install(env={}) is False
    assert sys.meta_path == finders


CHILD = """
import hashlib, json, sys
if sys.argv[1] == "on":
    from framework import transformers_index
    print(transformers_index.install(home=sys.argv[2]), file=sys.stderr)
import transformers
from pathlib import Path
from transformers.utils import import_utils
models = Path(transformers.__file__).parent / "models"
table = import_utils.define_import_structure(models, prefix="models")
canon = sorted((sorted(k), sorted((m, sorted(v)) for m, v in d.items())) for k, d in table.items())
config = transformers.Qwen2VLConfig  # a name the lazy module finds through the table
outcome = sorted(set(transformers_index.outcomes.values())) if sys.argv[1] == "on" else []
print(json.dumps({"digest": hashlib.sha1(repr(canon).encode()).hexdigest(), "outcome": outcome,
                  "config": config.__name__, "modules": len(table[frozenset()])}))
"""


def _child(mode: str, home: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(home)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_installed_transformers_reads_the_table_it_saved_and_finds_the_same_names(tmp_path):
    pytest.importorskip("transformers")
    first, second, without = _child("on", tmp_path), _child("on", tmp_path), _child("off", tmp_path)
    assert first["outcome"] == ["saved"] and second["outcome"] == ["read"]
    assert first["digest"] == second["digest"] == without["digest"]
    assert second["config"] == "Qwen2VLConfig" and second["modules"] > 500
    assert len(list((tmp_path / "cache" / "transformers_imports").glob("*.json"))) == 1


def test_every_command_of_the_cli_installs_it_first(monkeypatch):
    from click.testing import CliRunner

    from cli import main

    calls = []
    monkeypatch.setattr(ti, "install", lambda *a, **k: calls.append(a) or True)
    result = CliRunner().invoke(main, ["clean", "--help"])
    assert result.exit_code == 0, result.output
    assert calls == [()]


def test_a_table_of_another_shape_is_computed_every_time_not_saved(tmp_path):
    module, models, calls = _fake_transformers(tmp_path)
    original = module.create_import_structure_from_path
    module.create_import_structure_from_path = lambda path: {("not", "a", "frozenset"): original(path)}
    ti.wrap(module, tmp_path / "cache")
    assert ("not", "a", "frozenset") in module.create_import_structure_from_path(str(models))
    assert ti.outcomes[Path(os.path.realpath(models)).as_posix()] == "computed"
    assert not list((tmp_path / "cache").glob("*"))


def test_encode_and_decode_keep_folders_backends_modules_and_names():
    table = {frozenset(): {"configuration_x": {"XConfig"}}, "x": {frozenset({"torch", "vision"}): {"modeling_x": {"A", "B"}}}}
    assert ti.decode(json.loads(json.dumps(ti.encode(table)))) == table
    assert list(ti.decode(ti.encode(table))) == list(table), "in order"
