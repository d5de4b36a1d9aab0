"""`framework new-analyzer`: scaffold an analyzer plugin package."""
from __future__ import annotations

from pathlib import Path

import click

from . import main, user_errors


@main.command("new-analyzer")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder in which to create the package's folder.")
@user_errors
def new_analyzer_cmd(name: str, directory: Path) -> None:
    """Create a pip-installable plugin package for a new analyzer NAME (snake_case).

    It holds the analyzer class, its entry point, a README and a test that runs it on a
    synthetic video, and passes as written. Guide: docs/writing-analyzers.md.

    \b
    Example:
      framework new-analyzer scene_brightness
      cd framework-scene-brightness
      pip install -e ".[test]" && pytest
      framework analyzers list
    """
    from framework.scaffold import new_analyzer

    folder = new_analyzer(name, directory)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    click.echo(f"created {folder}/")
    for f in files:
        click.echo(f"  {f}")
    click.echo(f"\nnext:\n  cd {folder}\n  pip install -e \".[test]\"\n  pytest\n"
               f"  framework analyzers list        # shows {name}")
