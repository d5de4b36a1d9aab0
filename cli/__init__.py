"""The ``framework`` command. Thin: each command parses options and calls the framework API.

Subcommands live in one module each (``cli/run.py``, ``cli/models.py``, ...) and are added here.
"""
from __future__ import annotations

import atexit
import functools
import gc
import logging
import os
import shlex
import sys
from typing import Any, Callable

import click

from framework import __version__
from framework.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, FrameworkError, RunInterrupted

from framework.progress import console
logger = logging.getLogger("framework.cli")

# Start-up creates 90-120k objects that live as long as the process (modules, classes, pydantic
# schemas): with the default first threshold (700) the cyclic collector runs over a hundred times
# meanwhile, rescanning them, about 0.1 s of a short `framework run`. In the command's process it
# runs after 200k new objects instead (the later generations keep their defaults). At exit the
# interpreter's last collections would walk every object still alive (another ~0.1 s): frozen
# first, they go with the process (atexit runs only when the process ends).
gc.set_threshold(200_000, *gc.get_threshold()[1:])
atexit.register(gc.freeze)


def setup_logging(verbose: int, quiet: bool) -> None:
    from rich.logging import RichHandler  # here, not at import: `framework --version` needs no logging

    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", force=True,
                        handlers=[RichHandler(console=console, show_path=verbose > 1, markup=False)])
    for noisy in ("numba", "matplotlib", "PIL", "urllib3", "httpx", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ``FrameworkError`` into one red line and its exit code; other errors into exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FrameworkError as exc:
            console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            _report_interrupt(exc)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Exception as exc:  # noqa: BLE001
            logger.debug("internal error", exc_info=True)
            console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                          "(rerun with -vv for the traceback and please report it)", highlight=False)
            sys.exit(EXIT_INTERNAL)

    return wrapper


def _report_interrupt(exc: KeyboardInterrupt) -> None:
    """Say what Ctrl-C kept and the exact command that resumes; exit 130."""
    ctx = click.get_current_context(silent=True)
    lines = ["[bold yellow]interrupted.[/]"]
    if isinstance(exc, RunInterrupted):
        if exc.finished_videos:
            lines.append("finished: " + ", ".join(str(v) for v in exc.finished_videos))
        if exc.run_dir is not None:
            kept = (f"{len(exc.saved)} finished track(s) ({', '.join(exc.saved)})" if exc.saved
                    else "no finished track")
            lines.append(f"{exc.video}: {kept} saved in {exc.run_dir / 'tracks'}")
        if exc.abandoned:
            lines.append(f"stopped without waiting for {', '.join(exc.abandoned)}: their work is lost")
    if ctx is not None:
        lines.append(f"to resume, run: [bold]{rerun_command(ctx)}[/]")
    console.print("\n".join(lines), highlight=False)
    if isinstance(exc, RunInterrupted) and exc.abandoned:
        # analyzer threads are still running and Python would wait for them at exit: leave now
        # (every file written so far was written atomically; the stale cache goes at the next run)
        logging.shutdown()
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_INTERRUPTED)


def short_note(text: str, limit: int = 40) -> str:
    """A reason short enough for a table's cell: up to its first ``" ("``, ``"; "`` or ``": "``, at most
    ``limit`` characters; the whole reason goes below the table (``print_full_notes``). "" for none."""
    cut = min((i for i in (text.find(" ("), text.find("; "), text.find(": ")) if i > 0), default=len(text))
    short = text[:cut]
    if len(short) > limit:
        short = short[:limit - 1].rstrip()
    return short + ("…" if short != text else "")


def table_of(title: str, columns: tuple[str, ...] | list[str], rows: list[tuple[str, ...]] | list[list[str]],
             right: tuple[str, ...] = (), width: int | None = None, drop_empty: bool = True,
             names: int = 0) -> Any:
    """A rich ``Table`` of ``rows`` (cells may hold rich markup) for a console ``width`` wide (``console``'s
    by default; 80 when piped), with the first column, of names (analyzers, models), never shortened:
    ``speech_flow`` and ``speech_rate`` must not both read ``speech…``. A middle column that is ``-`` in
    every row (VRAM on a machine without a GPU) is left out; the others wrap between words rather than
    inside one (``beside``, not ``bes…``) where the words fit the width, and the last column (a note)
    takes what is left. ``right``: the columns justified right (sizes); ``drop_empty=False`` keeps every
    column (rows are added after, a total say); ``names``: the column of names, where not the first."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    plain = [[Text.from_markup(str(c)).plain for c in row] for row in rows]
    keep = [i for i, _ in enumerate(columns)
            if not drop_empty or i in (names, len(columns) - 1) or not plain
            or any(row[i] not in ("-", "") for row in plain)]
    longest = {i: max([len(row[i]) for row in plain] + [len(columns[i])]) for i in keep}
    words = {i: max(len(w) for text in [*(row[i] for row in plain), columns[i]] for w in text.split() or [""])
             for i in keep}
    middle = [i for i in keep[:-1] if i != names]
    least = longest[names] + sum(words[i] for i in middle) + 8  # (8: a few characters of the note a line)
    width = width or console.width
    chrome = 3 * len(keep) + 1  # (each cell's padding and border, and the last border)
    if least + chrome <= width:
        table, fits = Table(title=title, title_justify="left"), True
    else:  # too narrow for boxes: columns one space apart, under a rule
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 0), show_edge=False)
        chrome = len(keep)
        fits = least + chrome <= width
    # the last column at most what the others leave at their narrowest: a long word there (a path) folds
    last = max(8, width - chrome - (least - 8)) if fits else None
    for i in keep:
        justify = "right" if columns[i] in right else "left"
        if i == names:
            table.add_column(columns[i], no_wrap=True, min_width=longest[names], justify=justify)
        elif i == keep[-1]:
            table.add_column(columns[i], max_width=last, justify=justify, overflow="fold")
        else:
            table.add_column(columns[i], min_width=words[i] if fits else None, justify=justify)
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table


def print_full_notes(notes: dict[str, str]) -> None:
    """Each note that its table cell shortened, whole, one per line (the terminal wraps it)."""
    long = {name: text for name, text in notes.items() if text and short_note(text) != text}
    if long:
        console.print("notes in full:", highlight=False)
    for name, text in long.items():
        console.print(f"  [yellow]{name}[/]: {text}", soft_wrap=True, highlight=False)


def rerun_command(ctx: click.Context) -> str:
    """The shell command that reruns ``ctx``'s command with its arguments (less ``--no-resume``)."""
    path = []
    c: click.Context | None = ctx
    while c is not None and c.parent is not None:
        path.append(c.info_name or "")
        c = c.parent
    words = ["framework", *reversed(path)]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            words += [str(v) for v in (value if isinstance(value, (list, tuple)) else [value]) if v is not None]
            continue
        if not isinstance(param, click.Option) or value in (None, False, (), []) or param.name == "no_resume":
            continue
        if value == param.get_default(ctx) and not param.is_flag:
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            words.append(flag)
        elif param.count:
            words += [flag] * int(value)
        elif param.multiple:
            for v in value:
                words += [flag, str(v)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="framework")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug and tracebacks).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def main(verbose: int, quiet: bool) -> None:
    """Understand what is in a video, on your own hardware.

    \b
    Examples:
      framework sample sample.mp4            # make a small test video
      framework run sample.mp4               # analyze it; results in runs/sample/
      framework analyzers list               # what can run here
    """
    setup_logging(verbose, quiet)
    from framework import transformers_index

    transformers_index.install()  # transformers' model table from a file: its import 0.6 s shorter on 2 CPUs


from . import run as _run  # noqa: E402  (commands register themselves on ``main``)
from . import report as _report  # noqa: E402
from . import export as _export  # noqa: E402
from . import models as _models  # noqa: E402
from . import scaffold as _scaffold  # noqa: E402
from . import clean as _clean  # noqa: E402
from . import plan as _plan  # noqa: E402
from . import library as _library  # noqa: E402
from . import search as _search  # noqa: E402
from . import serve as _serve  # noqa: E402
from . import mcp as _mcp  # noqa: E402
from . import describe as _describe  # noqa: E402
from . import bench as _bench  # noqa: E402
from . import finetune as _finetune  # noqa: E402
