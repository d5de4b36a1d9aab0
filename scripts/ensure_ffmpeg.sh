#!/usr/bin/env bash
# The chapter-muxing test (tests/test_exports_player.py) runs Debian's ffmpeg and ffprobe ($FFMPEG,
# $FFPROBE; default: the ones on the PATH). When either is missing and CI=true (or
# INSTALL_SYSTEM_DEPS=1), install the ffmpeg package with apt-get. On CI tools that are still
# missing are an error (exit 1): CI never skips that test. Elsewhere the script only says why, and
# the test skips with that reason. (The framework itself decodes with PyAV and needs no ffmpeg.)
set -euo pipefail
FFMPEG=${FFMPEG:-$(command -v ffmpeg || echo /usr/bin/ffmpeg)}
FFPROBE=${FFPROBE:-$(command -v ffprobe || echo /usr/bin/ffprobe)}
present() { [ -x "$FFMPEG" ] && [ -x "$FFPROBE" ]; }
present && exit 0
. "$(dirname "${BASH_SOURCE[0]}")/lib/ensure_apt.sh"
apt_install ffmpeg "the chapter-muxing test"
present && exit 0
if [ "$ci" = 1 ]; then
  echo "error: the chapter-muxing test needs ffmpeg and ffprobe ($FFMPEG, $FFPROBE) and they could not be" \
       "installed ($why)." >&2
  echo "CI does not skip that test: install ffmpeg (apt-get install -y ffmpeg) or set FFMPEG and FFPROBE." >&2
  exit 1
fi
echo "note: no ffmpeg/ffprobe at $FFMPEG, $FFPROBE ($why): the chapter-muxing test will be skipped" \
     "(INSTALL_SYSTEM_DEPS=1 installs them as root with apt-get)" >&2
