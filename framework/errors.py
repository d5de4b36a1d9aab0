"""Errors a user can act on, each with the process exit code the CLI uses for it.

Exit codes (documented in docs/getting-started.md):
  0  every analyzer finished (ok or skipped)
  1  an unexpected internal error (a bug: please report it with the log)
  2  wrong command-line usage
  3  the input file cannot be analyzed (missing, empty, not a video, no streams)
  4  a configuration file is wrong (registry.yaml, models_manifest.yaml)
  5  the run finished and wrote its results, but one or more analyzers failed
  6  a plugin broke a rule (duplicate names), or --strict and a plugin failed
  7  a model cannot be fetched (offline, host unreachable) or failed `framework models verify`
130  interrupted (Ctrl-C): finished tracks are saved; the same command resumes
"""
from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_CONFIG = 4
EXIT_ANALYZER_FAILED = 5
EXIT_PLUGIN = 6
EXIT_MODEL = 7
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class FrameworkError(Exception):
    """Base of the errors the CLI reports as one line, without a traceback."""

    exit_code = EXIT_INTERNAL


class InputError(FrameworkError):
    """The input file cannot be analyzed; the message names the file and what to do."""

    exit_code = EXIT_INPUT


class ConfigError(FrameworkError, ValueError):
    """A configuration file is wrong; the message names the file, the key and the line."""

    exit_code = EXIT_CONFIG


class PluginFailure(FrameworkError):
    """With --strict: a plugin failed to load, or an analyzer from a plugin failed."""

    exit_code = EXIT_PLUGIN


class ModelError(FrameworkError):
    """A model cannot be fetched (offline, host unreachable) or its files fail verification."""

    exit_code = EXIT_MODEL


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run. A ``KeyboardInterrupt``, so nothing on the way out mistakes it for a
    failure; it carries what was kept so the CLI can say how to resume.

    :ivar run_dir: the run folder of the video being analyzed (None before one was chosen).
    :ivar saved: analyzers whose finished tracks are saved in ``run_dir/tracks``.
    :ivar finished_videos: videos of the same command that were completely analyzed.
    :ivar abandoned: analyzers still running in worker threads when a second Ctrl-C stopped the
        wait for them (the process must then exit without joining its threads).
    """

    exit_code = EXIT_INTERRUPTED

    def __init__(self, run_dir: Path | None = None, saved: list[str] | None = None,
                 finished_videos: list[Path] | None = None, video: Path | None = None,
                 abandoned: list[str] | None = None):
        super().__init__("interrupted")
        self.run_dir, self.video = run_dir, video
        self.saved = list(saved or [])
        self.finished_videos = list(finished_videos or [])
        self.abandoned = list(abandoned or [])
