#!/usr/bin/env bash
# Build FaceMend for Linux: the PyInstaller one-dir bundle and a .deb.
#
#   bash packaging/build_linux.sh                # bundle + .deb  (what `make package` runs)
#   bash packaging/build_linux.sh --deb-only     # .deb from an existing dist/facemend
#
# Outputs
#   dist/facemend/                          one-dir bundle; run dist/facemend/facemend
#   dist/facemend_<version>_<arch>.deb      /usr/bin/facemend, /usr/lib/facemend/,
#                                           .desktop entry, icons, image associations
# Environment
#   VENV=.venv            virtual environment with the app and PyInstaller
#   DEB_COMPRESS=zstd     zstd (default) or gzip; never xz (11 min for 1 GB here)
#   DEB_LEVEL=9           dpkg-deb -z level: zstd 9 is ~10 % smaller than 3 for ~5x the time (about a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

VENV=${VENV:-.venv}
PY="$VENV/bin/python"
DEB_COMPRESS=${DEB_COMPRESS:-zstd}
DEB_LEVEL=${DEB_LEVEL:-9}
BUILD=build/packaging
DIST=dist
BUNDLE="$DIST/facemend"
deb_only=0
case "${1:-}" in
  --deb-only) deb_only=1 ;;
  "") ;;
  *) echo "usage: $0 [--deb-only]" >&2; exit 2 ;;
esac
case "$DEB_COMPRESS" in
  zstd|gzip) ;;
  *) echo "build_linux: DEB_COMPRESS must be zstd or gzip (xz takes over 10 minutes)" >&2; exit 2 ;;
esac
command -v dpkg-deb >/dev/null || { echo "build_linux: dpkg-deb not found (apt-get install dpkg)" >&2; exit 2; }
[ -x "$PY" ] || { echo "build_linux: $PY missing; run 'make deps' (packaging/bootstrap.sh) first" >&2; exit 2; }

VERSION=$("$PY" -c 'import facemend; print(facemend.__version__)')
ARCH=$(dpkg --print-architecture)
t_start=$(date +%s)

"$PY" packaging/make_icons.py "$BUILD/icons" >/dev/null

if [ "$deb_only" = 0 ]; then
  if ! "$PY" -c 'import PyInstaller' 2>/dev/null; then
    echo "build_linux: installing PyInstaller (the 'package' extra)"
    "$PY" -m pip install -q --disable-pip-version-check "pyinstaller>=6.6"
  fi
  echo "build_linux: PyInstaller one-dir bundle -> $BUNDLE"
  FACEMEND_ICON_DIR="$ROOT/$BUILD/icons" "$PY" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$DIST" --workpath "$BUILD/pyinstaller" packaging/facemend.spec
fi
[ -x "$BUNDLE/facemend" ] || { echo "build_linux: no bundle at $BUNDLE; build it first (without --deb-only)" >&2; exit 2; }
t_bundle=$(date +%s)

# --- .deb ---------------------------------------------------------------------
PKG="$BUILD/deb/facemend_${VERSION}_${ARCH}"
rm -rf "$PKG"
mkdir -p "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/usr/lib" "$PKG/usr/share/applications" \
  "$PKG/usr/share/icons" "$PKG/usr/share/doc/facemend"
# Hard links when on the same file system: staging 1 GB costs no copy.
cp -al "$BUNDLE" "$PKG/usr/lib/facemend" 2>/dev/null || cp -a "$BUNDLE" "$PKG/usr/lib/facemend"
install -m 0755 packaging/linux/facemend-launcher.sh "$PKG/usr/bin/facemend"
install -m 0644 packaging/linux/facemend.desktop "$PKG/usr/share/applications/facemend.desktop"
cp -r "$BUILD/icons/hicolor" "$PKG/usr/share/icons/"
install -m 0755 packaging/linux/postinst packaging/linux/postrm "$PKG/DEBIAN/"
{
  echo "FaceMend $VERSION: MIT licence (see the project's README)."
  echo
  echo "The bundled model and its data licences: models/*/MODEL_CARD.md in the source"
  echo "and /usr/lib/facemend/_internal/models/. Third-party Python packages keep their"
  echo "own licences (TensorFlow: Apache-2.0; Qt for Python: LGPLv3; mtcnn: MIT)."
} > "$PKG/usr/share/doc/facemend/copyright"
installed_kb=$(du -sk --apparent-size "$PKG" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$installed_kb/" \
  packaging/linux/control.in > "$PKG/DEBIAN/control"

DEB="$DIST/facemend_${VERSION}_${ARCH}.deb"
level_args=()
[ -n "$DEB_LEVEL" ] && level_args=(-z "$DEB_LEVEL")
echo "build_linux: dpkg-deb ($DEB_COMPRESS) -> $DEB"
dpkg-deb --root-owner-group -Z "$DEB_COMPRESS" "${level_args[@]}" --build "$PKG" "$DEB" >/dev/null
rm -rf "$PKG"
t_end=$(date +%s)

bundle_mb=$(du -sm "$BUNDLE" | cut -f1)
deb_mb=$(( $(stat -c %s "$DEB") / 1048576 ))
echo "build_linux: bundle ${bundle_mb} MiB ($BUNDLE), .deb ${deb_mb} MiB ($DEB)"
echo "build_linux: bundle $((t_bundle - t_start)) s, .deb $((t_end - t_bundle)) s, total $((t_end - t_start)) s"
