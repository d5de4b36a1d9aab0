#!/usr/bin/env bash
# Create .venv and install the project with the pinned dependencies (requirements.lock).
# Safe to re-run: an up-to-date environment is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
fi
# the lock pins every package (torch 2.14.1 + torchvision 0.29.1 among them); the project is editable
# --compile-bytecode: start-up reads .pyc files instead of compiling every module on each run
# (matters where PYTHONDONTWRITEBYTECODE is set, as on CI machines)
.venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python -r requirements.lock -e .
# our own modules too (editable install: they are not in site-packages); quick when up to date
.venv/bin/python -m compileall -q -j 0 framework analyzers cli >/dev/null
