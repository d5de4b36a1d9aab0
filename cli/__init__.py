"""The ``framework`` command. Thin: each command parses options and calls the framework API.

Subcommands live in one module each (``cli/run.py``, ``cli/models.py``, ...) and are added here.
"""
from __future__ import annotations

import functools
import logging
import sys
from typing import Any, Callable

import click
from rich.logging import RichHandler

from framework import __version__
from framework.errors import EXIT_INTERNAL, FrameworkError

from framework.progress import console
logger = logging.getLogger("framework.cli")


def setup_logging(verbose: int, quiet: bool) -> None:
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
        except KeyboardInterrupt:
            console.print("interrupted; finished tracks are saved and a rerun resumes from them")
            sys.exit(130)
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


from . import run as _run  # noqa: E402  (commands register themselves on ``main``)
from . import report as _report  # noqa: E402
from . import models as _models  # noqa: E402
from . import scaffold as _scaffold  # noqa: E402
