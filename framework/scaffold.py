"""``framework new-analyzer NAME``: a pip-installable analyzer plugin package with a passing test.

The package it writes (``framework-<name>/``) holds a ``pyproject.toml`` with the ``framework``
entry point, ``src/framework_<name>/__init__.py`` with an ``Analyzer`` subclass and its
``register_analyzers`` hook, a test that runs the analyzer on a synthetic video through the real
pipeline, and a README. The templates live in ``framework/scaffold_templates/``.
"""
from __future__ import annotations

import keyword
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import __version__
from .errors import EXIT_USAGE, FrameworkError

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
MAX_NAME = 48

# template file -> path inside the package (placeholders allowed in paths too)
TEMPLATES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "gitignore.tmpl": ".gitignore",
    "module.py.tmpl": "src/{{module}}/__init__.py",
    "test_module.py.tmpl": "tests/test_{{name}}.py",
}


class ScaffoldError(FrameworkError):
    """The analyzer name is not usable, or the package folder already exists."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class PluginNames:
    """Every name the package uses, derived from the analyzer's snake_case name."""

    name: str          # scene_brightness: the analyzer's name and registry.yaml key
    dist: str          # framework-scene-brightness: the distribution (pip install ...)
    module: str        # framework_scene_brightness: the import name
    entry_point: str   # scene_brightness: the name in [project.entry-points.framework]
    cls: str           # SceneBrightness: the Analyzer subclass

    @property
    def folder(self) -> str:
        return self.dist

    def substitutions(self) -> dict[str, str]:
        return {"{{name}}": self.name, "{{dist}}": self.dist, "{{module}}": self.module,
                "{{entry_point}}": self.entry_point, "{{Class}}": self.cls,
                "{{framework_version}}": __version__}


def suggest_name(text: str) -> str:
    """A snake_case spelling of ``text`` (``"Scene Brightness"`` -> ``scene_brightness``)."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text.strip())
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    text = re.sub(r"^(framework_)+", "", text)
    return text if text and text[0].isalpha() else f"my_{text}".rstrip("_")


def plugin_names(name: str) -> PluginNames:
    """Validate ``name`` and derive the package's names.

    :raises ScaffoldError: the name is not a snake_case identifier (the message suggests one).
    """
    if not NAME_RE.match(name or ""):
        hint = suggest_name(name or "")
        raise ScaffoldError(
            f"analyzer name {name!r} is not snake_case (lower-case letters, digits and single "
            f"underscores, starting with a letter); try: framework new-analyzer {hint}")
    if len(name) > MAX_NAME:
        raise ScaffoldError(f"analyzer name {name!r} is {len(name)} characters long; keep it under {MAX_NAME + 1}")
    if name.startswith("framework_"):
        raise ScaffoldError(f"leave out the 'framework_' prefix: the package is already called "
                            f"framework-{name.removeprefix('framework_')}; try: framework new-analyzer "
                            f"{name.removeprefix('framework_')}")
    if keyword.iskeyword(name):
        raise ScaffoldError(f"analyzer name {name!r} is a Python keyword; pick another")
    cls = "".join(part.capitalize() for part in name.split("_"))
    return PluginNames(name=name, dist="framework-" + name.replace("_", "-"), module=f"framework_{name}",
                       entry_point=name, cls=cls)


def render(template: str, names: PluginNames) -> str:
    for key, value in names.substitutions().items():
        template = template.replace(key, value)
    return template


def new_analyzer(name: str, directory: str | Path = ".", *, check_installed: bool = True) -> Path:
    """Write the package for a new analyzer ``name`` into ``directory``; return its folder.

    :param check_installed: refuse a name an installed analyzer already uses (two analyzers
        with one name stop every run).
    :raises ScaffoldError: bad name, name already taken, or the folder already exists.
    """
    names = plugin_names(name)
    if check_installed:
        taken = _installed_analyzers()
        if name in taken:
            raise ScaffoldError(f"an analyzer named {name!r} is already installed (from {taken[name]}); "
                                "pick another name")
    target = Path(directory) / names.folder
    if target.exists():
        raise ScaffoldError(f"{target} already exists; remove it or pick another --dir (nothing was written)")
    files = {render(dest, names): render(_template(src), names) for src, dest in TEMPLATES.items()}
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    logger.debug("wrote %s", ", ".join(files))
    return target


def _template(name: str) -> str:
    return (resources.files("framework") / "scaffold_templates" / name).read_text(encoding="utf-8")


def _installed_analyzers() -> dict[str, str]:
    """Analyzer name -> where it comes from, for everything that loads here (best effort)."""
    from .plugins import build_plugin_manager

    try:
        host = build_plugin_manager()
    except FrameworkError as exc:  # a broken environment must not block scaffolding
        logger.warning("could not check installed analyzers: %s", exc)
        return {}
    return {n: host.origin(n) for n in host.analyzers}
