"""The desktop app repairing for real: the shipped model on a small real photo,
in background workers, driven through the window (pytest-qt, offscreen)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from core.repair import SEAM_DILATION_PX, dilate
from gui import workers
from gui.main_window import MainWindow

PHOTOS = Path(__file__).parent / "data" / "photos"
pytestmark = pytest.mark.usefixtures("isolated_settings")


@pytest.fixture(scope="module")
def engine():
    """TensorFlow, the shipped bundle and the detector, loaded once for the module."""
    return workers.load_engine("auto")


@pytest.fixture
def photo(tmp_path) -> Path:
    """A third-size PNG copy of a real group photo (3 faces)."""
    im = Image.open(PHOTOS / "faceapi_sample1.jpg").convert("RGB")
    im = im.resize((im.width // 3, im.height // 3), Image.Resampling.LANCZOS)
    path = tmp_path / "group.png"
    im.save(path)
    return path


@pytest.fixture
def window(qtbot, engine, messages, photo):
    w = MainWindow(engine)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.open_path(str(photo))
    qtbot.waitUntil(lambda: bool(w.faces), timeout=30000)
    yield w
    if w.repair_job is not None:
        w.repair_job.cancel()
    w.undo_stack.setClean()
    w._result_saved = True


def settings(w, **kw):
    w.apply_settings(replace(w.settings, **kw))


def paint_over_eyes(qtbot, w, face=0):
    """A real mouse stroke across one face's eyes."""
    (lx, ly), (rx, ry) = w.faces[face].landmarks[:2]
    w.canvas.set_brush_size(max(3, round(0.35 * abs(rx - lx))))
    pts = [w.canvas.map_from_photo(x, y).toPoint() for x, y in ((lx, ly), ((lx + rx) / 2, (ly + ry) / 2), (rx, ry))]
    qtbot.mousePress(w.canvas, Qt.MouseButton.LeftButton, pos=pts[0])
    for p in pts[1:]:
        qtbot.mouseMove(w.canvas, p)
    qtbot.mouseRelease(w.canvas, Qt.MouseButton.LeftButton, pos=pts[-1])
    assert w.layer.mask.any()


def run_repair(qtbot, w, timeout=60000):
    job = w.start_repair()
    assert job is not None
    qtbot.waitUntil(lambda: job.state in (workers.SUCCEEDED, workers.FAILED, workers.CANCELLED), timeout=timeout)
    qtbot.waitUntil(lambda: w.repair_job is None, timeout=5000)
    return job


def test_detected_faces_are_outlined_on_the_canvas(window):
    assert len(window.canvas.faces) == len(window.faces) >= 2
    assert window.face_combo.count() == len(window.faces) + 1  # + "Auto"


def test_repair_then_save_changes_only_the_masked_pixels(window, qtbot, photo):
    w = window
    settings(w, steps=3, restarts=1, candidates=1)
    paint_over_eyes(qtbot, w)
    mask = w.layer.mask.copy()
    job = run_repair(qtbot, w)
    assert job.state == workers.SUCCEEDED, w.statusBar().currentMessage()
    assert w.canvas.has_result and w.has_unsaved_work()
    assert w.result.backend in w.engine_label.text()
    assert w.save()
    out = photo.with_name("group.repaired.png")
    assert w.saved_path == out and out.exists()
    original = np.asarray(Image.open(photo).convert("RGB"))
    repaired = np.asarray(Image.open(out).convert("RGB"))
    outside = ~dilate(mask, SEAM_DILATION_PX + 1)
    assert np.array_equal(repaired[outside], original[outside])
    assert not np.array_equal(repaired[mask], original[mask])
    assert not w.has_unsaved_work()


def test_cancel_stops_a_long_repair_quickly(window, qtbot):
    w = window
    settings(w, steps=2000, restarts=1, candidates=1)
    paint_over_eyes(qtbot, w)
    steps_seen = []
    job = w.start_repair()
    job.signals.progress.connect(lambda p: steps_seen.append(p[0]))
    qtbot.waitUntil(lambda: bool(steps_seen), timeout=60000)
    w.cancel_button.click()
    qtbot.waitUntil(lambda: job.state == workers.CANCELLED, timeout=5000)
    assert max(steps_seen) < 2000
    assert w.result is None and not w.canvas.has_result
    qtbot.waitUntil(lambda: w.repair_button.isEnabled(), timeout=2000)


def test_several_candidates_are_offered_side_by_side(window, qtbot):
    w = window
    settings(w, steps=3, restarts=2, candidates=2, seed=3)
    paint_over_eyes(qtbot, w)
    job = run_repair(qtbot, w)
    assert job.state == workers.SUCCEEDED
    assert w.candidate_strip.count() == 2 and w.candidates_dock.isVisible()
    w.candidate_strip.setCurrentRow(1)
    assert w.chosen == 1
    mask = w.layer.mask
    assert not np.array_equal(w.result_rgbs[0][mask], w.result_rgbs[1][mask])


def test_saving_never_overwrites_the_original(window, qtbot, photo, messages):
    w = window
    settings(w, steps=3, restarts=1, candidates=1)
    paint_over_eyes(qtbot, w)
    assert run_repair(qtbot, w).state == workers.SUCCEEDED
    before = photo.read_bytes()
    assert not w.save_to(photo, overwrite=True)
    assert photo.read_bytes() == before
    assert "original" in messages["warning"][-1][1]


def test_mask_presets_are_placed_on_the_chosen_face(window):
    w = window
    w.select_face(1)
    w.apply_preset("eyes")
    ys, xs = np.nonzero(w.layer.mask)
    x, y, bw, bh = w.faces[1].box
    assert len(ys) > 0
    assert x - 0.2 * bw <= xs.mean() <= x + 1.2 * bw and y <= ys.mean() <= y + bh
    assert w.undo_stack.count() == 1


def test_compare_split_shows_original_left_and_repair_right(window, qtbot):
    w = window
    settings(w, steps=3, restarts=1, candidates=1)
    paint_over_eyes(qtbot, w)
    assert run_repair(qtbot, w).state == workers.SUCCEEDED
    w.compare_action.setChecked(True)
    qtbot.mousePress(w.canvas, Qt.MouseButton.LeftButton, pos=w.canvas.map_from_photo(w.photo.width * 0.25, 10).toPoint())
    qtbot.mouseRelease(w.canvas, Qt.MouseButton.LeftButton, pos=w.canvas.map_from_photo(w.photo.width * 0.25, 10).toPoint())
    assert w.canvas.split == pytest.approx(0.25, abs=0.02)
    assert w.split_slider.value() == round(w.canvas.split * 100)
