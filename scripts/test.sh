#!/usr/bin/env bash
# Install everything and run the tests (fast set; add `-m slow` for the slow ones).
# The report test needs Debian's chromium; on CI (CI=true) or with INSTALL_SYSTEM_DEPS=1 it is
# installed when missing, otherwise that test is skipped with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ ! -x /usr/bin/chromium ] && { [ "${CI:-}" = "true" ] || [ "${INSTALL_SYSTEM_DEPS:-}" = "1" ]; } \
   && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the report test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the report test will be skipped"
fi
exec .venv/bin/python -m pytest "$@"
