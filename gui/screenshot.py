"""Developer tool: regenerate docs/screenshot.png from the real app.

    xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python -m gui.screenshot [OUT.png]

Opens a test photo, paints a mask over one face's eyes, repairs it with the
shipped model and grabs the window in before/after split view. Never saves
the repaired photo.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer

PHOTO = Path(__file__).resolve().parents[1] / "tests" / "data" / "photos" / "faceapi_sample1.jpg"


def _spin(msecs: int) -> None:
    """Run Qt's own event loop for a while. Not repeated processEvents():
    PySide6 6.12.0 loses a reference to None on every such call, and enough
    of them end the process ("Fatal Python error: none_dealloc")."""
    loop = QEventLoop()
    QTimer.singleShot(msecs, loop.quit)
    loop.exec()


def _wait(condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        _spin(50)


def _shrink(path: str, limit: int = 400_000) -> None:
    """Keep the README light: a 256-colour dithered PNG if the full one is too big."""
    import os

    from PIL import Image

    if os.path.getsize(path) > limit:
        im = Image.open(path).convert("RGB")
        im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)


def main(out: str = "docs/screenshot.png") -> int:
    from dataclasses import replace

    from gui.app import make_app
    from gui.main_window import MainWindow
    from gui.mask_layer import MaskEditCommand
    from gui.settings import GuiSettings

    app = make_app()  # noqa: F841  (the QApplication must outlive the window)
    w = MainWindow()
    w.settings = replace(GuiSettings(), steps=120, restarts=3, candidates=3, seed=1)
    w.resize(1400, 860)
    w.show()
    assert w.open_path(str(PHOTO))
    _wait(lambda: w.engine is not None and bool(w.faces), 180, "model and faces")
    face = max(range(len(w.faces)), key=lambda i: w.faces[i].box[0])  # the rightmost face
    (lx, ly), (rx, ry) = w.faces[face].landmarks[:2]
    size = 0.45 * abs(rx - lx)
    w.canvas.set_brush_size(round(size))
    # A scratch across both eyes, as a user would paint it.
    w.layer.begin_stroke(True)
    w.layer.stroke_to((lx - 0.4 * size, ly), (rx + 0.4 * size, ry), size / 2)
    w.undo_stack.push(MaskEditCommand(w.layer, w.layer.end_stroke(), "Brush stroke"))
    w.select_face(face)
    job = w.start_repair()
    _wait(lambda: job.state in ("succeeded", "failed", "cancelled"), 600, "the repair")
    _wait(lambda: w.repair_job is None, 10, "the window to settle")
    if job.state != "succeeded":
        raise SystemExit(f"repair {job.state}: {w.statusBar().currentMessage()}")
    w.mask_visible_action.setChecked(True)
    w.compare_action.setChecked(True)
    x, y, bw, bh = w.faces[face].box
    w.canvas.set_zoom(1.7, w.canvas.map_from_photo(x + bw / 2, y + bh / 2))
    w.canvas.set_split((x + bw / 2) / w.photo.width)
    _spin(500)
    w.grab().save(out)
    _shrink(out)
    print(f"saved {out}: {w.statusBar().currentMessage()} | {w.engine_label.text()}")
    w.undo_stack.setClean()
    w._result_saved = True
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
