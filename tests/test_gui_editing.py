"""The desktop app's editing UI, with real widgets and real input events
(pytest-qt, offscreen). No model here: these windows never load TensorFlow."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from gui.canvas import qimage_from_rgb
from gui.main_window import MainWindow
from gui.settings import load_settings, recent_files

PHOTOS = Path(__file__).parent / "data" / "photos"
pytestmark = pytest.mark.usefixtures("isolated_settings")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def photo(tmp_path) -> Path:
    """A small copy of a real photo (PNG, so saved pixels can be compared exactly)."""
    im = Image.open(PHOTOS / "faceapi_sample1.jpg").convert("RGB")
    im = im.resize((im.width // 3, im.height // 3), Image.Resampling.LANCZOS)
    path = tmp_path / "portrait.png"
    im.save(path)
    return path


@pytest.fixture
def window(qtbot, messages):
    w = MainWindow(background=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.undo_stack.setClean()  # teardown must not stop on the unsaved-work prompt
    w.result = None


def drop_files(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.width() / 2, window.height() / 2)
    with warnings.catch_warnings():  # PySide flags the QPoint constructor; it is Qt 6's only one
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)


def screen(window, x, y) -> QPoint:
    return window.canvas.map_from_photo(x, y).toPoint()


def drag(qtbot, window, points, button=Qt.MouseButton.LeftButton):
    canvas = window.canvas
    qtbot.mousePress(canvas, button, pos=screen(window, *points[0]))
    for p in points[1:]:
        qtbot.mouseMove(canvas, screen(window, *p))
    qtbot.mouseRelease(canvas, button, pos=screen(window, *points[-1]))


@pytest.fixture
def opened(window, photo, qtbot):
    drop_files(window, [photo])
    qtbot.waitUntil(lambda: window.photo is not None)
    return window


def test_dropping_a_photo_opens_it(window, photo, qtbot):
    drop_files(window, [photo])
    qtbot.waitUntil(lambda: window.photo is not None, timeout=5000)
    expected = np.asarray(Image.open(photo).convert("RGB"))
    assert window.photo_path == str(photo)
    assert np.array_equal(window.photo.rgb, expected)
    assert window.canvas.has_photo
    assert not window.layer.mask.any()


def test_dropping_several_photos_lists_them_in_the_filmstrip(window, photo, qtbot):
    second = photo.with_name("second.png")
    Image.open(photo).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(second)
    drop_files(window, [photo, second])
    qtbot.waitUntil(lambda: window.photo is not None)
    assert window.filmstrip.count() == 2
    assert window.filmstrip_dock.isVisible()
    window.filmstrip.photoActivated.emit(str(second))
    assert window.photo_path == str(second)


def test_dropping_a_file_that_is_not_an_image_shows_a_message_and_keeps_running(window, tmp_path, messages, qtbot):
    bogus = tmp_path / "holiday.jpg"
    bogus.write_text("this is not a JPEG")
    drop_files(window, [bogus])
    qtbot.waitUntil(lambda: bool(messages["warning"]), timeout=5000)
    _title, text = messages["warning"][0]
    assert "holiday.jpg" in text
    assert window.photo is None and window.isVisible()


def test_dragging_the_brush_paints_the_mask_under_the_cursor(opened, qtbot):
    w = opened
    w.canvas.set_brush_size(10)
    drag(qtbot, w, [(40, 50), (80, 50), (120, 50)])
    mask = w.layer.mask
    assert mask[50, 40] and mask[50, 80] and mask[50, 119]
    assert not mask[80, 80] and not mask[50, 200]
    assert w.undo_stack.count() == 1  # one drag, one undo step


def test_eraser_and_right_drag_erase_painted_pixels(opened, qtbot):
    w = opened
    w.canvas.set_brush_size(20)
    drag(qtbot, w, [(40, 60), (160, 60)])
    w.set_eraser(True)
    drag(qtbot, w, [(60, 60), (70, 60)])
    assert not w.layer.mask[60, 65] and w.layer.mask[60, 120]
    w.set_eraser(False)
    drag(qtbot, w, [(110, 60), (130, 60)], button=Qt.MouseButton.RightButton)
    assert not w.layer.mask[60, 120] and w.layer.mask[60, 150]


def test_undo_and_redo_restore_the_mask_exactly(opened, qtbot):
    w = opened
    snapshots = [w.layer.mask.copy()]
    for y, size in ((30, 8), (45, 25), (60, 4)):
        w.canvas.set_brush_size(size)
        drag(qtbot, w, [(20, y), (90, y + 20), (150, y - 10)])
        snapshots.append(w.layer.mask.copy())
    for expected in reversed(snapshots[:-1]):
        qtbot.keyClick(w.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        assert np.array_equal(w.layer.mask, expected)
    for expected in snapshots[1:]:
        qtbot.keyClick(w.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        assert np.array_equal(w.layer.mask, expected)


def test_undo_history_stores_only_the_touched_rectangle(opened, qtbot):
    w = opened
    w.canvas.set_brush_size(6)
    drag(qtbot, w, [(50, 50), (60, 52)])
    diff = w.undo_stack.command(0).diff
    height, width = w.layer.shape
    assert diff.before.shape == diff.after.shape
    assert diff.before.size < height * width / 50
    assert (diff.x0, diff.y0) <= (47, 47) and diff.x1 >= 63


def test_clear_and_invert_are_single_undo_steps(opened, qtbot):
    w = opened
    drag(qtbot, w, [(40, 40), (100, 60)])
    painted = w.layer.mask.copy()
    w.invert_action.trigger()
    assert np.array_equal(w.layer.mask, ~painted)
    w.clear_action.trigger()
    assert not w.layer.mask.any()
    w.undo_stack.undo()
    assert np.array_equal(w.layer.mask, ~painted)
    w.undo_stack.undo()
    assert np.array_equal(w.layer.mask, painted)


def test_bracket_keys_and_slider_set_the_brush_size(opened, qtbot):
    w = opened
    w.size_slider.setValue(40)
    assert w.canvas.brush_size == 40
    qtbot.keyClick(w.canvas, Qt.Key.Key_BracketRight)
    assert w.canvas.brush_size > 40 and w.size_slider.value() == w.canvas.brush_size
    qtbot.keyClick(w.canvas, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(w.canvas, Qt.Key.Key_BracketLeft)
    assert w.canvas.brush_size < 40


def test_exported_mask_is_white_where_damaged_and_imports_back(opened, qtbot, tmp_path):
    w = opened
    drag(qtbot, w, [(30, 30), (120, 90)])
    painted = w.layer.mask.copy()
    out = tmp_path / "mask.png"
    assert w.export_mask(str(out))
    png = np.asarray(Image.open(out))
    assert np.array_equal(png == 255, painted) and set(np.unique(png)) <= {0, 255}
    w.clear_mask()
    assert w.import_mask(str(out))
    assert np.array_equal(w.layer.mask, painted)


def test_importing_a_mask_of_the_wrong_size_explains_why(opened, tmp_path, messages):
    small = tmp_path / "small.png"
    Image.new("L", (10, 10), 255).save(small)
    assert not opened.import_mask(str(small))
    assert "10x10" in messages["warning"][-1][1]
    assert not opened.layer.mask.any()


def test_zoom_keys_and_fit(opened, qtbot):
    w = opened
    fitted = w.canvas.zoom
    qtbot.keyClick(w.canvas, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert w.canvas.zoom == pytest.approx(fitted * 1.25)
    qtbot.keyClick(w.canvas, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert w.canvas.zoom == 1.0
    qtbot.keyClick(w.canvas, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert w.canvas.zoom == pytest.approx(fitted)


def test_middle_drag_pans_without_painting(opened, qtbot):
    w = opened
    before = w.canvas.map_from_photo(0, 0)
    drag(qtbot, w, [(50, 50), (80, 70)], button=Qt.MouseButton.MiddleButton)
    after = w.canvas.map_from_photo(0, 0)
    assert after.x() > before.x() and after.y() > before.y()
    assert not w.layer.mask.any()


def test_pasting_an_image_from_the_clipboard_opens_it(window, qtbot):
    rgb = np.random.default_rng(1).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    QApplication.clipboard().setImage(qimage_from_rgb(rgb))
    assert window.paste()
    assert np.array_equal(window.photo.rgb, rgb)
    assert window.default_save_path().name == "pasted.repaired.png"


def test_closing_with_a_painted_mask_asks_and_cancel_keeps_the_window(opened, qtbot, messages):
    w = opened
    drag(qtbot, w, [(30, 30), (60, 40)])
    messages["answers"].append(QMessageBox.StandardButton.Cancel)
    w.close()
    assert messages["question"] and w.isVisible()
    messages["answers"].append(QMessageBox.StandardButton.Discard)
    w.close()
    assert not w.isVisible()


def test_settings_and_recent_files_persist_between_windows(qtbot, messages, photo):
    first = MainWindow(background=False)
    qtbot.addWidget(first)
    from dataclasses import replace

    first.apply_settings(replace(first.settings, steps=77, restarts=3, candidates=2, seed=9, backend="cpu"))
    first.open_path(str(photo))
    first.canvas.set_brush_size(33)
    first.close()
    s = load_settings()
    assert (s.steps, s.restarts, s.candidates, s.seed, s.backend, s.brush_size) == (77, 3, 2, 9, "cpu", 33)
    assert recent_files()[0] == str(photo.resolve())
    second = MainWindow(background=False)
    qtbot.addWidget(second)
    assert second.settings.steps == 77 and second.canvas.brush_size == 33


def test_shortcuts_dialog_lists_the_keys_of_every_action(window):
    rows = {what: keys for keys, what in window.shortcut_list()}
    assert "Ctrl+Z" in rows["Undo"] and "Ctrl+Shift+Z" in rows["Redo"]
    assert rows["Smaller brush"] == "[" and rows["Bigger brush"] == "]"
    assert "Hold Tab" in dict(window.shortcut_list())


def test_about_names_the_model_version_and_licence():
    from core import bundle as bundles
    from gui.dialogs import about_html

    info = bundles.read_manifest(bundles.find_bundle())
    text = about_html("9.9")
    assert info.name in text and info.version in text
    assert "MIT" in text and "gan-face-generate" in text


def test_window_opens_without_importing_tensorflow_on_the_gui_thread():
    # The model loads in the background right after the window appears; the
    # GUI thread itself must never pay TensorFlow's multi-second import.
    code = (
        "import builtins, os, sys, threading, time\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "HEAVY = ('tensorflow', 'keras', 'core.model', 'core.complete', 'core.lazy_tf', 'mtcnn')\n"
        "seen = []\n"
        "real_import = builtins.__import__\n"
        "def spy(name, *a, **k):\n"
        "    if name.startswith(HEAVY) and threading.current_thread() is threading.main_thread():\n"
        "        seen.append(name)\n"
        "    return real_import(name, *a, **k)\n"
        "builtins.__import__ = spy\n"
        "from gui.app import make_app; app = make_app()\n"
        "from gui.main_window import MainWindow; w = MainWindow(); w.show()\n"
        # One C++ event loop for a second. Not a Python loop of processEvents():
        # PySide6 6.12.0's binding drops a reference to None on every call and
        # a fast machine reaches None's refcount in well under a second
        # ("Fatal Python error: none_dealloc").
        "from PySide6.QtCore import QEventLoop, QTimer\n"
        "loop = QEventLoop(); QTimer.singleShot(1000, loop.quit); loop.exec()\n"
        "print(sorted(set(seen)), w.engine_job is not None); sys.stdout.flush(); os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert out.stdout.strip() == "[] True", out.stdout + out.stderr


def test_faces_menu_opens_the_analysis_dock_on_the_current_photo(qtbot, window, photo):
    from core.faces import Face

    drop_files(window, [photo])
    qtbot.waitUntil(lambda: window.photo is not None, timeout=10000)
    assert getattr(window, "analysis_dock", None) is None  # not built at start-up (boto3 stays unloaded)
    window.analysis_action.trigger()
    dock = window.analysis_dock
    assert dock.isVisible()
    assert dock.rgb is not None and dock.rgb.shape == window.photo.rgb.shape
    face = Face((10.0, 12.0, 30.0, 40.0), 0.99, None)
    dock.facesChanged.emit([face])  # the dock's results are drawn on the canvas
    assert window.canvas.faces == [face]


def test_settings_dialog_keeps_aws_region_and_lists_consents(qtbot, window):
    from cloud.consent import ConsentStore
    from gui.dialogs import SettingsDialog

    ConsentStore().grant("rekognition", "eu-west-1")
    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    dialog.aws_region.setText("eu-west-1")
    new = dialog.settings()
    assert new.aws_region == "eu-west-1" and new.aws_settings().region == "eu-west-1"
    assert new.aws_profile == "" and new.aws_settings().profile is None
    listed = [dialog.consents.list.item(i).text() for i in range(dialog.consents.list.count())]
    assert len(listed) == 1 and "eu-west-1" in listed[0]
    window.apply_settings(new)
    assert load_settings().aws_region == "eu-west-1"
