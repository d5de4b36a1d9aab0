"""YAML loading that remembers where each key came from, for errors that name file and line."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import ConfigError

__all__ = ["ConfigError", "load_yaml", "line_of", "format_validation_error"]


def load_yaml(path: Path, duplicates: list[tuple[tuple, int, int]] | None = None) -> tuple[Any, dict[tuple, int]]:
    """Parse ``path``; return (data, {key path: 1-based line}). Raises ``ConfigError``.

    ``duplicates``: a list to receive (key path, line, line of the first one) for every key a
    mapping repeats (PyYAML keeps the last silently), in document order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(f"{path}:{mark.line + 1 if mark else '?'}: invalid YAML at {where}: {exc.problem}") from None
    lines: dict[tuple, int] = {}
    if node is None:
        return {}, lines
    constructor = yaml.SafeLoader("")  # one for the file: it turns scalar nodes into values
    try:
        return _construct(node, (), lines, constructor, duplicates if duplicates is not None else []), lines
    finally:
        constructor.dispose()


#: libyaml's parser when PyYAML was built with it: the same nodes and line marks, about ten times
#: faster (the models manifest: 14 ms against 155 ms), which every run with models pays
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _construct(node: yaml.Node, path: tuple, lines: dict[tuple, int], constructor: Any,
               duplicates: list[tuple[tuple, int, int]]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if key in out:
                duplicates.append((path + (key,), key_node.start_mark.line + 1, lines[path + (key,)]))
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, path + (key,), lines, constructor, duplicates)
            lines[path + (key,)] = key_node.start_mark.line + 1  # the key's line, not its value's
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, path + (i,), lines, constructor, duplicates) for i, child in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)


def line_of(lines: dict[tuple, int], loc: tuple) -> int | None:
    """The line of the deepest known prefix of ``loc``."""
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def format_validation_error(path: Path, exc: ValidationError, lines: dict[tuple, int],
                            prefix: tuple = ()) -> str:
    """One line per problem: ``file:line: key.path: message``."""
    out = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        line = line_of(lines, loc)
        key = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append(f"{path}:{line or '?'}: {key}: {msg}")
    return "\n".join(out)
