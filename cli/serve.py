"""`framework serve`: the local web app (submit videos, watch jobs, browse and search the library)."""
from __future__ import annotations

from pathlib import Path

import click

from . import console, main, user_errors
from .library import library_option
from .run import _names, gpu_options


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but localhost lets other machines in: a warning is printed.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port (0: any free one).")
@library_option
@click.option("--registry", "registry_path", type=click.Path(path_type=Path),
              help="registry.yaml for the analyses started here (default: as `framework run`).")
@click.option("--only", help="Comma list: analyses started here run only these analyzers (and their dependencies).")
@click.option("--max-upload-mb", type=click.IntRange(1), default=4096, show_default=True,
              help="Largest upload or download accepted, in MiB.")
@click.option("--media-root", "media_roots", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              metavar="FOLDER", help="Submitted file paths must be inside FOLDER (repeatable). Without it any "
                                     "readable file may be submitted while bound to localhost, and none otherwise.")
@click.option("--offline", is_flag=True, help="Analyses started here never download a model.")
@gpu_options
@user_errors
def serve_cmd(host: str, port: int, library: Path | None, registry_path: Path | None, only: str | None,
              max_upload_mb: int, media_roots: tuple[Path, ...], offline: bool, vram_budget: str | None,
              devices: str | None) -> None:
    """Run the library's web app: submit a file path, an upload or a URL (video sites through
    yt-dlp, or a plain link to a file), watch the jobs' progress, browse the library, search
    inside every video and open each video's report at the moment found.

    \b
    Examples:
      framework serve                                  # http://127.0.0.1:8000
      framework serve --port 8080 --library ~/videos/library.db --media-root ~/Videos
      framework serve --vram-budget 12GB --devices cuda:0   # the app's analyses on one GPU, 12 GB
    """
    try:
        import uvicorn

        from framework.web import create_app, is_loopback
    except ImportError as exc:
        raise click.ClickException(f"`framework serve` needs the app extras ({exc.name} is missing): "
                                   "pip install 'video-framework[app]'") from None
    from framework.library import Library
    from framework.library.jobs import JobQueue

    local = is_loopback(host)
    if not local:
        console.print(f"[bold yellow]warning:[/] binding {host}: other machines on the network can reach this "
                      "server, see your videos and start analyses. There is no login. Use --host 127.0.0.1 "
                      "unless you mean it.", highlight=False)
    lib = Library.open(library)
    lib.count()  # open (and create) it now: a wrong --library fails here, not on the first request
    max_bytes = max_upload_mb * 2**20
    queue = JobQueue(lib, registry_path, only=_names(only), max_bytes=max_bytes, offline=offline,
                     vram_budget=vram_budget, devices=_names(devices))
    app = create_app(lib, queue, max_upload_bytes=max_bytes, media_roots=list(media_roots) or None,
                     allow_paths=local or bool(media_roots), local_only=local)
    console.print(f"library: {lib.path} ({lib.count()} videos) · http://{host if ':' not in host else f'[{host}]'}:{port}/",
                  highlight=False)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:  # an idle queue stops at once (and its MPS server, with registry.yaml mps: true, is told to quit)
        queue.close(wait_s=2.0)
