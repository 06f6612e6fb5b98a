"""Fast checks of the installers' inputs; the full build is `make package`
(packaging/build_linux.sh) and packaging/smoke_test.sh, too slow for CI.

Tools that may be missing (desktop-file-validate, makensis) skip their test
with the reason, rather than pass silently.
"""

from __future__ import annotations

import ast
import configparser
import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
IMAGE_MIME_TYPES = {"image/jpeg", "image/png", "image/webp", "image/tiff"}


def _run_self_test(env_extra: dict[str, str] | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    # A child process: the self-test makes its own QApplication, which must not
    # become the one pytest-qt's widget tests share.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    code = "import facemend.selftest as s; raise SystemExit(s.run_self_test())"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


class _Recorded:
    """Stands in for PyInstaller's build targets (Analysis, EXE, ...), which can
    only run inside a build: keeps the arguments the spec passes them."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        for key in ("pure", "scripts", "binaries", "datas", "zipfiles"):
            setattr(self, key, [])


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    """Execute packaging/facemend.spec with PyInstaller's real hook utilities."""
    pytest.importorskip("PyInstaller", reason="PyInstaller not installed (pip install -e '.[package]')")
    namespace = {"SPECPATH": str(PACKAGING), "DISTPATH": str(tmp_path_factory.mktemp("dist")),
                 "__file__": str(PACKAGING / "facemend.spec")}
    for target in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE"):
        namespace[target] = type(target, (_Recorded,), {})
    source = (PACKAGING / "facemend.spec").read_text(encoding="utf-8")
    exec(compile(source, "facemend.spec", "exec"), namespace)
    return namespace


def test_spec_bundles_every_model_bundle_file(spec):
    datas = {Path(src).resolve() for src, _dest in spec["a"].kwargs["datas"]}
    shipped = [p.resolve() for p in (ROOT / "models").glob("*/*") if p.suffix in {".json", ".npz", ".md"}]
    assert shipped, "no model bundle files in models/"
    assert set(shipped) <= datas


def test_spec_places_model_bundles_where_core_bundle_looks(spec):
    # Frozen, models.__file__ is <bundle>/_internal/models/__init__.pyc, so the
    # bundles must land in a `models/<bundle>` folder.
    for src, dest in spec["a"].kwargs["datas"]:
        if Path(src).name == "manifest.json":
            assert Path(dest).parts[0] == "models" and len(Path(dest).parts) == 2


def test_spec_bundles_mtcnn_weights(spec):
    datas = {Path(src).name: dest for src, dest in spec["a"].kwargs["datas"]}
    for weights in ("pnet.lz4", "rnet.lz4", "onet.lz4"):
        assert datas.get(weights) == os.path.join("mtcnn", "assets", "weights")


def test_spec_includes_every_cli_command(spec):
    from facemend.cli import COMMANDS

    hidden = set(spec["a"].kwargs["hiddenimports"])
    assert {f"facemend.commands.{name}" for name in COMMANDS} <= hidden
    assert "facemend.selftest" in hidden


def _imported_top_level_modules(folders: list[str]) -> set[str]:
    names = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
    return names


def test_spec_excludes_nothing_the_desktop_app_imports(spec):
    # facemend/commands/serve.py and core/train are developer commands the
    # desktop build leaves out on purpose (packaging/README.md).
    imported = _imported_top_level_modules(["core", "gui", "facemend", "cloud"])
    server_or_training = {"uvicorn", "fastapi", "starlette", "mangum", "skimage"}
    excluded = set(spec["EXCLUDES"])
    clashes = {m for m in imported for x in excluded
               if (m == x or m.startswith(x + ".")) and x not in server_or_training}
    assert not clashes


def test_self_test_from_source_passes():
    proc = _run_self_test()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("ok")] == ["window", "model", "sample", "detect", "repair"]
    assert "self-test passed" in lines[-1]


def test_self_test_fails_on_an_altered_model_bundle(tmp_path):
    src = ROOT / "models" / "facemend-faces64-v1"
    altered = tmp_path / src.name
    shutil.copytree(src, altered)
    data = bytearray((altered / "generator.npz").read_bytes())
    data[-100] ^= 0xFF
    (altered / "generator.npz").write_bytes(bytes(data))
    proc = _run_self_test({"FACEMEND_MODELS_DIR": str(tmp_path)})
    assert proc.returncode != 0
    assert "FAIL model" in proc.stdout and "does not match the manifest" in proc.stdout


def test_desktop_entry_validates():
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate not installed (Debian: desktop-file-utils)")
    proc = subprocess.run([tool, str(PACKAGING / "linux" / "facemend.desktop")], capture_output=True, text=True)
    assert proc.returncode == 0 and "error" not in proc.stdout, proc.stdout


def test_desktop_entry_opens_jpeg_png_webp_tiff_with_facemend():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(PACKAGING / "linux" / "facemend.desktop", encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert set(filter(None, desktop["MimeType"].split(";"))) == IMAGE_MIME_TYPES
    # `facemend FILE` is not a command: files go to the `gui` subcommand.
    assert desktop["Exec"].split() == ["facemend", "gui", "%F"]
    assert desktop["Icon"] == "facemend"


def test_launcher_runs_the_bundle_installed_beside_it(tmp_path):
    # As `dpkg -x` unpacks it: <root>/usr/bin/facemend -> <root>/usr/lib/facemend/facemend.
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "facemend").mkdir(parents=True)
    launcher = tmp_path / "usr" / "bin" / "facemend"
    shutil.copy(PACKAGING / "linux" / "facemend-launcher.sh", launcher)
    bundle_exe = tmp_path / "usr" / "lib" / "facemend" / "facemend"
    bundle_exe.write_text('#!/bin/sh\necho "bundle got: $*"\n')
    bundle_exe.chmod(0o755)
    launcher.chmod(0o755)
    proc = subprocess.run([str(launcher), "--self-test", "a photo.jpg"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "bundle got: --self-test a photo.jpg"


def test_icons_are_drawn_at_every_freedesktop_size(tmp_path):
    from PIL import Image

    sys.path.insert(0, str(PACKAGING))
    try:
        import make_icons
    finally:
        sys.path.remove(str(PACKAGING))
    make_icons.write_icons(tmp_path)
    for n in make_icons.HICOLOR_SIZES:
        with Image.open(tmp_path / "hicolor" / f"{n}x{n}" / "apps" / "facemend.png") as im:
            assert im.size == (n, n) and im.mode == "RGBA"
    with Image.open(tmp_path / "facemend.ico") as ico:
        assert {(n, n) for n in make_icons.ICO_SIZES} <= set(ico.info["sizes"])


def test_macos_bundle_settings_offer_open_with_for_image_types():
    with open(PACKAGING / "macos" / "Info.plist", "rb") as fh:
        plist = plistlib.load(fh)
    types = {t for doc in plist["CFBundleDocumentTypes"] for t in doc["LSItemContentTypes"]}
    assert types == {"public.jpeg", "public.png", "org.webmproject.webp", "public.tiff"}
    assert all(doc["CFBundleTypeRole"] == "Viewer" for doc in plist["CFBundleDocumentTypes"])


def test_nsis_installer_script_compiles(tmp_path):
    makensis = shutil.which("makensis")
    if makensis is None:
        pytest.skip("makensis not installed (Debian: nsis); the Windows installer script is not linted")
    sys.path.insert(0, str(PACKAGING))
    try:
        import make_icons
    finally:
        sys.path.remove(str(PACKAGING))
    icons = make_icons.write_icons(tmp_path / "icons")
    dist = tmp_path / "dist"
    (dist / "_internal").mkdir(parents=True)
    for name in ("facemend.exe", "facemend-cli.exe", "_internal/placeholder.txt"):
        (dist / name).write_text("placeholder for the PyInstaller bundle\n")
    ico = next(p for p in icons if p.suffix == ".ico")
    out = tmp_path / "FaceMend-test-installer.exe"
    proc = subprocess.run(
        [makensis, "-NOCONFIG", "-V2", "-WX", f"-DDIST={dist}", f"-DICON={ico}", f"-DOUTFILE={out}",
         str(PACKAGING / "windows" / "facemend.nsi")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.stat().st_size > 0
