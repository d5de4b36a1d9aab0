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
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_CONFIG = 4
EXIT_ANALYZER_FAILED = 5
EXIT_PLUGIN = 6
EXIT_MODEL = 7


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
