"""QApplication setup and the `facemend gui` entry point.

Imports stay light here: TensorFlow, the model and the detector load inside
a worker after the window is on screen (see gui.workers).
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from facemend import __version__
from gui.settings import APPLICATION, ORGANIZATION


def make_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("FaceMend")
    app.setApplicationVersion(__version__)
    return app


def main(files: list[str] | None = None) -> int:
    """Open the window (and FILES, several go to the filmstrip); run until it closes."""
    app = make_app()
    from gui.main_window import MainWindow

    window = MainWindow()
    window.show()
    if files:
        # After the first frame: a big photo must not hold the window back.
        QTimer.singleShot(0, lambda: window.open_files(list(files)))
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
