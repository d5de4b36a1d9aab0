#!/usr/bin/env bash
# Install everything and run the tests (fast set; add `-m slow` for the slow ones).
# The report test needs Debian's chromium (scripts/ensure_chromium.sh): on CI (CI=true) or with
# INSTALL_SYSTEM_DEPS=1 it is installed when missing. On CI, a chromium that cannot be installed
# fails the run before any test; elsewhere the report test is skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/ensure_chromium.sh
exec .venv/bin/python -m pytest "$@"
