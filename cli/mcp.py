"""`framework mcp`: the library's MCP server on stdio, for assistants."""
from __future__ import annotations

from pathlib import Path

import click

from . import main, user_errors
from .library import library_option
from .run import _names, gpu_options


@main.command("mcp")
@library_option
@click.option("--registry", "registry_path", type=click.Path(path_type=Path),
              help="registry.yaml for analyses the assistant starts (default: as `framework run`).")
@click.option("--only", help="Comma list: analyses started through MCP run only these analyzers.")
@click.option("--media-root", "media_roots", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              metavar="FOLDER", help="Files the assistant asks to analyze must be inside FOLDER (repeatable).")
@click.option("--offline", is_flag=True, help="Analyses started through MCP never download a model.")
@gpu_options
@user_errors
def mcp_cmd(library: Path | None, registry_path: Path | None, only: str | None, media_roots: tuple[Path, ...],
            offline: bool, vram_budget: str | None, devices: str | None) -> None:
    """Serve the library to an assistant over MCP (stdio): tools to search the videos, list them,
    read a video's summary and its events between two times, and start an analysis. Logs go to
    stderr; stdout carries the protocol. Configure your MCP client to run this command.

    \b
    Examples:
      framework mcp
      framework mcp --library ~/videos/library.db --media-root ~/Videos --offline
    """
    try:
        from framework.mcp_server import run_stdio
    except ImportError as exc:
        raise click.ClickException(f"`framework mcp` needs the mcp package ({exc}): pip install mcp") from None
    run_stdio(library, registry_path=registry_path, only=_names(only), offline=offline,
              media_roots=list(media_roots) or None, vram_budget=vram_budget, devices=_names(devices))
