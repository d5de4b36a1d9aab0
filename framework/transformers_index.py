"""transformers' lazy-import table read from a file, instead of from every file of its models.

``import transformers`` builds the table its lazy modules import from (which names each of its model
files defines, and which backends each needs) by reading and parsing every ``.py`` file under
``transformers/models``: some 2,500 files, 0.7 s of pure Python on this project's 2-CPU machine, and
on an H200 host a third of the run's import warm-up, beside the run's other threads
(``bench/results/run_start_profile_h200.txt``).

``install()`` (the CLI calls it before any command, and an analyzer's own process at its start)
adds a one-shot import hook: once ``transformers.utils.import_utils`` has loaded, its
``create_import_structure_from_path`` is wrapped. For the ``models`` folder beside it the table is
read from ``$FRAMEWORK_HOME/cache/transformers_imports/`` (JSON: nothing in it runs) when every file
under that folder is as it was when the table was saved (each file's path, size and modification
time: ~2,500 stats, 30-40 ms), else computed by transformers' own function and saved for the next
run. Any other folder, a table that cannot be read or written or is not of the shape this module
knows (folders to tables, backend sets to modules to names), a transformers without that function:
transformers' own function, as if nothing were installed. The table is a pure function of those files' text (transformers parses
``__all__`` and ``@requires``; no package is imported), so a table read back is the one it would
compute. ``FRAMEWORK_TRANSFORMERS_INDEX=0`` turns it off.
"""
from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from .work_streams import switched_on

logger = logging.getLogger(__name__)

SWITCH = "FRAMEWORK_TRANSFORMERS_INDEX"
TARGET = "transformers.utils.import_utils"
FUNCTION = "create_import_structure_from_path"
FORMAT = 1  # the saved file's layout: {"format", "fingerprint", "table": encode(table)}

_lock = threading.Lock()
_installed = False
#: what this process did, by folder: "read" (the saved table), "saved" (computed and saved), "computed"
#: (computed, not saved) -- for the log and the tests
outcomes: dict[str, str] = {}


def install(env: Any = None, home: Path | None = None) -> bool:
    """Read transformers' model table from ``home`` (``$FRAMEWORK_HOME``) from now on in this process, where
    transformers is not imported yet. True when the hook is in place (or was already); False when switched
    off (``FRAMEWORK_TRANSFORMERS_INDEX=0``) or too late (transformers already imported)."""
    global _installed
    if not switched_on(SWITCH, env):
        return False
    with _lock:
        if _installed:
            return True
        if "transformers" in sys.modules:
            return False
        if home is None:
            from .models.roots import framework_home

            home = framework_home()
        sys.meta_path.insert(0, _Finder(Path(home) / "cache" / "transformers_imports"))
        _installed = True
        return True


def fingerprint(folder: Path) -> str:
    """A digest of every file under ``folder`` (``__pycache__`` left out): path, size and modification
    time. It changes when transformers is upgraded, reinstalled or edited in place."""
    digest = hashlib.sha1()
    stack = [str(folder)]
    while stack:
        current = stack.pop()
        with os.scandir(current) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name == "__pycache__":
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    digest.update(f"d {entry.path}\n".encode())
                    continue
                st = entry.stat()
                digest.update(f"f {entry.path} {st.st_size} {st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``transformers.utils.import_utils`` as Python would and wraps its function after it loads."""

    def __init__(self, cache_dir: Path):
        self.cache_dir = cache_dir

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != TARGET:
            return None
        with _lock:
            if self in sys.meta_path:
                sys.meta_path.remove(self)  # one shot: the module loads once
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _WrappingLoader(spec.loader, self.cache_dir)
        return spec


class _WrappingLoader(importlib.abc.Loader):
    """The module's own loader, then ``wrap`` on the loaded module."""

    def __init__(self, loader: Any, cache_dir: Path):
        self.loader, self.cache_dir = loader, cache_dir

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        wrap(module, self.cache_dir)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename...: the module's own loader's
        return getattr(self.loader, name)


def wrap(module: Any, cache_dir: Path) -> bool:
    """Wrap ``module.create_import_structure_from_path`` so that the ``models`` folder's table comes from
    ``cache_dir``; False (nothing changed) when the module has no such function or it is wrapped already."""
    original = getattr(module, FUNCTION, None)
    if not callable(original) or getattr(original, "_table_from_file", False):
        return False
    models = os.path.realpath(os.path.join(os.path.dirname(module.__file__), os.pardir, "models"))
    table: list[Any] = []  # (one object, as transformers' own cache gives)

    def create_import_structure_from_path(module_path: Any) -> Any:
        # (called for each of the 550 model folders while the table is computed: a path that cannot name the
        # models folder goes on without a syscall, each of which lets go of the interpreter's lock)
        if os.path.basename(os.path.normpath(module_path)) not in ("models", "__init__.py"):
            return original(module_path)
        folder = module_path if os.path.isdir(module_path) else os.path.dirname(module_path)
        if os.path.realpath(folder) != models:
            return original(module_path)
        if not table:
            table.append(_table(Path(models), original, cache_dir))
        return table[0]

    create_import_structure_from_path.__wrapped__ = original  # type: ignore[attr-defined]
    create_import_structure_from_path._table_from_file = True  # type: ignore[attr-defined]
    setattr(module, FUNCTION, create_import_structure_from_path)
    return True


def _table(folder: Path, compute: Callable[[Any], Any], cache_dir: Path) -> Any:
    """The saved table when its fingerprint still matches the folder's, else ``compute(folder)`` (saved)."""
    key = folder.as_posix()
    try:
        mark = fingerprint(folder)
    except OSError as exc:
        logger.debug("transformers' model table: %s not fingerprinted (%s); computed", folder, exc)
        outcomes[key] = "computed"
        return compute(str(folder))
    path = cache_dir / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("format") == FORMAT and saved.get("fingerprint") == mark:
            table = decode(saved["table"])
            outcomes[key] = "read"
            return table
    except FileNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file is computed again and replaced
        logger.debug("transformers' model table: %s unreadable (%s: %s); computed again", path, type(exc).__name__, exc)
    table = compute(str(folder))
    outcomes[key] = "saved" if _save(path, lambda: {"format": FORMAT, "fingerprint": mark, "table": encode(table)}) \
        else "computed"
    return table


def encode(table: dict[Any, Any]) -> list[list[Any]]:
    """transformers' nested table as JSON: in order, ``["d", folder, encode(its table)]`` for a subfolder and
    ``["b", sorted backends, {module: sorted names}]`` for the modules that need one set of backends.

    :raises TypeError: a key or value of another shape (a transformers this module does not know)."""
    out: list[list[Any]] = []
    for key, value in table.items():
        if isinstance(key, str) and isinstance(value, dict):
            out.append(["d", key, encode(value)])
        elif isinstance(key, frozenset) and isinstance(value, dict):
            out.append(["b", sorted(key), {str(m): sorted(names) for m, names in value.items()}])
        else:
            raise TypeError(f"unexpected entry {type(key).__name__} -> {type(value).__name__} in transformers' table")
    return out


def decode(entries: list[list[Any]]) -> dict[Any, Any]:
    """``encode``'s inverse: folders to tables, frozensets of backends to modules to sets of names."""
    table: dict[Any, Any] = {}
    for tag, key, value in entries:
        if tag == "d":
            table[key] = decode(value)
        elif tag == "b":
            table[frozenset(key)] = {module: set(names) for module, names in value.items()}
        else:
            raise ValueError(f"unknown entry {tag!r}")
    return table


def _save(path: Path, payload: Callable[[], dict[str, Any]]) -> bool:
    """Write ``payload()`` as JSON to ``path``, whole or not at all (``timeline.atomic_write_text``)."""
    try:
        from .timeline import atomic_write_text

        atomic_write_text(path, json.dumps(payload(), separators=(",", ":")))
        return True
    except Exception as exc:  # noqa: BLE001 - the table is an optimisation: the run goes on without it
        logger.debug("transformers' model table not saved as %s (%s: %s)", path, type(exc).__name__, exc)
        return False


__all__ = ["decode", "encode", "fingerprint", "install", "wrap"]
