"""Where the library lives: ``--library PATH``, else ``$FRAMEWORK_LIBRARY``, else
``$FRAMEWORK_HOME/library/library.db``.

The database's folder is the library's folder: ``uploads/`` (files sent to ``framework serve``),
``downloads/`` (submitted URLs) and ``runs/`` (the run folders of analyses started from the web app
or the MCP server). ``framework run`` keeps its own run folders (``runs/<name>`` or ``--out``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

LIBRARY_ENV = "FRAMEWORK_LIBRARY"
DB_NAME = "library.db"


def default_library_path(env: Mapping[str, str] | None = None) -> Path:
    """``$FRAMEWORK_LIBRARY`` or ``$FRAMEWORK_HOME/library/library.db`` (``~/.framework`` by default)."""
    env = os.environ if env is None else env
    explicit = env.get(LIBRARY_ENV)
    if explicit:
        return Path(os.path.expanduser(explicit))
    from ..models.roots import framework_home

    return framework_home(env) / "library" / DB_NAME


def library_path(value: str | os.PathLike | None) -> Path:
    """The database file for a ``--library`` value: a file path, or a folder (``library.db`` inside)."""
    if value is None:
        return default_library_path()
    path = Path(os.path.expanduser(str(value)))
    return path / DB_NAME if path.is_dir() else path
