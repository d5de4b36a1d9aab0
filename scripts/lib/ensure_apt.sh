# Sourced by scripts/ensure_ffmpeg.sh and scripts/ensure_chromium.sh (a system tool a test drives).
# apt_install PACKAGE PURPOSE: on CI (CI=true or 1) or with INSTALL_SYSTEM_DEPS=1, install the Debian
# PACKAGE with apt-get as root or through passwordless sudo. Sets $ci (1 on CI, else 0) and $why (why
# the tool may still be missing: "not installed", or why installing it failed).
apt_install() {
  local package=$1 purpose=$2 as_root=""
  case "$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')" in true|1) ci=1 ;; *) ci=0 ;; esac
  why="not installed"
  if [ "$ci" = 1 ] || [ "${INSTALL_SYSTEM_DEPS:-}" = "1" ]; then
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      as_root="sudo -n"  # a CI runner user with passwordless sudo
    fi
    if { [ "$(id -u)" = "0" ] || [ -n "$as_root" ]; } && command -v apt-get >/dev/null; then
      echo "installing Debian's $package for $purpose"
      if ! ($as_root apt-get update -qq && $as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq "$package" >/dev/null); then
        why="apt-get install $package failed"
      fi
    else
      why="installing it needs apt-get and root (or passwordless sudo)"
    fi
  fi
}
