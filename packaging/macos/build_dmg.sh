#!/usr/bin/env bash
# Build FaceMend for macOS: FaceMend.app (PyInstaller, settings in
# packaging/facemend.spec and packaging/macos/Info.plist) and a .dmg.
# Run on macOS 12+ (PyInstaller cannot cross-build); the .app is built for the
# machine's own architecture (arm64 on Apple silicon, x86_64 on Intel).
#
#   bash packaging/macos/build_dmg.sh
#
# Needs: python3.11 and Xcode command line tools (hdiutil, codesign ship with macOS).
# Optional: CODESIGN_IDENTITY="Developer ID Application: ..." signs the app
# (hardened runtime); notarise the .dmg afterwards with `xcrun notarytool`.
# Without a signature Gatekeeper asks the user to confirm (right-click > Open).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(uname -s)" = Darwin ] || { echo "build_dmg: run this on macOS" >&2; exit 2; }

VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[package]"
VERSION=$("$VENV/bin/python" -c 'import facemend; print(facemend.__version__)')
ICONS=build/packaging/icons
"$VENV/bin/python" packaging/make_icons.py "$ICONS" >/dev/null

FACEMEND_ICON_DIR="$PWD/$ICONS" "$VENV/bin/python" -m PyInstaller --noconfirm --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/facemend.spec
APP=dist/FaceMend.app
"$APP/Contents/MacOS/facemend" --self-test

if [ -n "${CODESIGN_IDENTITY:-}" ]; then
  codesign --deep --force --options runtime --timestamp --sign "$CODESIGN_IDENTITY" "$APP"
  codesign --verify --deep --strict "$APP"
fi

STAGE=build/packaging/dmg
rm -rf "$STAGE" && mkdir -p "$STAGE"
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"  # drag-to-install
DMG="dist/FaceMend-$VERSION.dmg"
rm -f "$DMG"
hdiutil create -volname "FaceMend $VERSION" -srcfolder "$STAGE" -ov -format UDZO "$DMG"
echo "build_dmg: $(du -sh "$APP" | cut -f1) app, $(du -h "$DMG" | cut -f1) $DMG"
