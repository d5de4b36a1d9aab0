#!/usr/bin/env bash
# The report test (tests/test_report_html.py) drives Debian's Chromium at $CHROMIUM
# (default /usr/bin/chromium). When it is missing and CI=true (or INSTALL_SYSTEM_DEPS=1), install it
# with apt-get. On CI a Chromium that is still missing is an error (exit 1): CI never skips the report
# test. Elsewhere the script only says why, and the report test skips with that reason.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] && exit 0
. "$(dirname "${BASH_SOURCE[0]}")/lib/ensure_apt.sh"
apt_install chromium "the report test"
[ -x "$CHROMIUM" ] && exit 0
if [ "$ci" = 1 ]; then
  echo "error: the report test needs Chromium at $CHROMIUM and it could not be installed ($why)." >&2
  echo "CI does not skip that test: install chromium (apt-get install -y chromium) or set CHROMIUM to its path." >&2
  exit 1
fi
echo "note: no Chromium at $CHROMIUM ($why): the report test will be skipped" \
     "(INSTALL_SYSTEM_DEPS=1 installs it as root with apt-get)" >&2
