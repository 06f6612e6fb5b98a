#!/usr/bin/env bash
# Install everything FaceMend needs into ./.venv, from nothing.
#   bash packaging/bootstrap.sh          # app + test dependencies
# System libraries Qt needs are installed with apt-get when missing and we run
# as root; otherwise the missing ones are listed so a user can install them.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-test}

# Qt (xcb + offscreen), QtMultimedia (libpulse0), offscreen test window (xvfb),
# real MP3s for the playback tests (lame) and an offline speech engine (espeak-ng);
# the installer checks validate the .desktop entry and compile the NSIS script.
APT_PACKAGES="libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libglib2.0-0 libdbus-1-3 \
libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 \
libxcb-render-util0 libxcb-image0 libxcb-xkb1 libpulse0 xvfb lame espeak-ng sox libsox-fmt-mp3 \
desktop-file-utils nsis binutils"

missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing system packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "bootstrap: missing system packages:$missing"
    echo "bootstrap: install them with: sudo apt-get install$missing"
  fi
fi

command -v "$PYTHON" >/dev/null || { echo "bootstrap: $PYTHON not found; FaceMend needs Python 3.11" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
stamp="$VENV/.facemend-installed"
# Reinstall only when the dependency list changed: a no-op run takes a second.
want="$(sha256sum pyproject.toml | cut -c1-64) $EXTRAS"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi
