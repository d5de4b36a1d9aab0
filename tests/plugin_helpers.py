"""This repository's own plugin-test helpers: pip installs into a private folder, the ``framework``
command in a subprocess, and the documentation's code blocks. (Helpers for plugin authors, such as
``FakeSite`` and ``run_analyzer``, are in ``framework.testing``.)

``pip_install_target`` does a real ``pip install`` of a package folder into a private ``--target``
folder (never into the shared venv).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from framework.testing.plugins import FakeSite  # noqa: F401  (re-exported for the tests)

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def pip_install_target(package: Path, target: Path) -> Path:
    """``pip install`` a package folder into ``target`` (offline: no deps, the venv's setuptools).

    The folder is copied first: an in-tree setuptools build writes ``build/`` and ``*.egg-info``
    next to the sources, which must not land in the repository.
    """
    src = target.parent / f"src-{package.name}"
    shutil.copytree(package, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__",
                                                                ".pytest_cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip install {package} failed:\n{proc.stdout}\n{proc.stderr}"
    return target


def subprocess_env(site: Path | None = None, **extra: str) -> dict[str, str]:
    """The test's environment for a child process, with ``site`` on PYTHONPATH and plugins autoloading."""
    env = dict(os.environ)
    env.pop("FRAMEWORK_LOAD_PLUGINS", None)  # conftest sets it to "" for in-process tests
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    env.update(extra)
    return env


def framework_cli(*args: str, env: dict[str, str], cwd: Path | None = None,
                  timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``framework ARGS`` as a user would (the venv's console script) and capture its output."""
    return subprocess.run([str(VENV_BIN / "framework"), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


# --- code blocks of the documentation -------------------------------------------------------
class CodeBlock:
    """A fenced code block of a markdown page, with the heading it sits under."""

    def __init__(self, lang: str, text: str, line: int, heading: str, skip: bool):
        self.lang, self.text, self.line, self.heading, self.skip = lang, text, line, heading, skip

    @property
    def target(self) -> str | None:
        """``PATH`` when the block's first line is ``# file: PATH`` (or ``<!-- file: PATH -->``)."""
        first = self.text.split("\n", 1)[0].strip()
        m = re.fullmatch(r"(?:#|<!--)\s*file:\s*(\S+?)\s*(?:-->)?", first)
        return m.group(1) if m else None

    @property
    def body(self) -> str:
        """The block without its ``# file:`` line."""
        return self.text.split("\n", 1)[1] if self.target else self.text


def code_blocks(markdown: str) -> list[CodeBlock]:
    """Every fenced block; ``skip`` is set by a ``<!-- docs-test: skip ... -->`` line just above."""
    blocks: list[CodeBlock] = []
    lines = markdown.split("\n")
    heading, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip().strip("`")
        m = re.match(r"^(\s*)```(\S*)", line)
        if m:
            indent, lang, start = len(m.group(1)), m.group(2), i
            body = []
            i += 1
            while not lines[i].strip().startswith("```"):
                body.append(lines[i][indent:])
                i += 1
            above = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
            blocks.append(CodeBlock(lang, "\n".join(body) + "\n", start + 1, heading,
                                    above.strip().startswith("<!-- docs-test: skip")))
        i += 1
    return blocks


def extract_files(markdown: str) -> dict[str, str]:
    """The files a page defines: blocks for one path, in order, joined by one blank line."""
    parts: dict[str, list[str]] = {}
    for block in code_blocks(markdown):
        if block.target:
            parts.setdefault(block.target, []).append(block.body)
    return {path: "\n".join(texts) for path, texts in parts.items()}
