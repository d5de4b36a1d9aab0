"""`framework search`: moments across every video of the library."""
from __future__ import annotations

import json
from pathlib import Path

import click

from . import console, main, user_errors
from .library import library_option


@main.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("--analyzer", "analyzers", multiple=True, metavar="NAME",
              help="Only moments from this analyzer (repeatable, or a comma list), e.g. --analyzer speech_transcription.")
@click.option("--video", "videos", multiple=True, metavar="VIDEO",
              help="Only this video: number, file, name or hash prefix (repeatable), e.g. --video clip.mp4.")
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many moments to return.")
@click.option("--ranking", type=click.Choice(["auto", "text", "semantic"]), default="auto", show_default=True,
              help="auto: full text plus the embedding rankers whose models are cached; text: full text "
                   "only; semantic: embeddings only.")
@click.option("--text-model", default="all-minilm-l6-v2", show_default=True, metavar="ID",
              help="Manifest id of the sentence-embedding model.")
@library_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@user_errors
def search_cmd(query: tuple[str, ...], analyzers: tuple[str, ...], videos: tuple[str, ...], limit: int,
               ranking: str, text_model: str, library: Path | None, as_json: bool) -> None:
    """Search every analyzed video for moments: transcript, descriptions, on-screen text, labels,
    chapters and summaries. Each result gives the video, the time, the text, the analyzer that
    produced it and a link that opens the report with the player at that moment.

    \b
    Examples:
      framework search "a red car at night"
      framework search lighthouse --analyzer speech_transcription --video holiday.mp4 --json
    """
    from framework.library import Library, search
    from framework.library.search import clock

    names = [n.strip() for a in analyzers for n in a.split(",") if n.strip()]
    result = search(Library.open(library), " ".join(query), analyzers=names or None, videos=list(videos) or None,
                    limit=limit, mode=ranking, text_model=text_model)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    console.print(f"[dim]ranking: {result.ranking} · {len(result.hits)} moment(s) · {result.took_ms:.0f} ms[/]",
                  highlight=False)
    for note in result.notes:
        console.print(f"[dim]{note}[/]", highlight=False)
    for i, h in enumerate(result.hits, 1):
        console.print(f"{i:>2}. [bold]{h.video_name}[/] {clock(h.start)}–{clock(h.end)} [cyan]{h.analyzer}[/] "
                      f"{h.text[:200]}", highlight=False)
        console.print(f"    {h.link}", highlight=False, soft_wrap=True)
    if not result.hits:
        console.print("no moment matches", highlight=False)
