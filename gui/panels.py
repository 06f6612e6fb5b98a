"""Strips of thumbnails: the opened photos (filmstrip) and repair candidates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImageReader, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QWidget

from gui.canvas import qimage_from_rgb

THUMB = 96


class _Strip(QListWidget):
    def __init__(self, icon_size: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(icon_size, icon_size))
        self.setSpacing(4)
        self.setFixedHeight(icon_size + 48)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)


class Filmstrip(_Strip):
    """Photos opened together (dropped or chosen at once); click to switch."""

    photoActivated = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(THUMB, parent)
        self.itemClicked.connect(lambda item: self.photoActivated.emit(item.data(Qt.ItemDataRole.UserRole)))

    def set_paths(self, paths: list[str]) -> None:
        self.clear()
        for p in paths:
            item = QListWidgetItem(Path(p).name)
            item.setData(Qt.ItemDataRole.UserRole, p)
            item.setToolTip(p)
            # QImageReader decodes JPEGs at the thumbnail size: cheap for big photos.
            reader = QImageReader(p)
            reader.setAutoTransform(True)
            size = reader.size()
            if size.isValid():
                reader.setScaledSize(size.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio))
            image = reader.read()
            if not image.isNull():
                item.setIcon(QIcon(QPixmap.fromImage(image)))
            self.addItem(item)

    def select_path(self, path: str) -> None:
        for i in range(self.count()):
            if self.item(i).data(Qt.ItemDataRole.UserRole) == path:
                self.setCurrentRow(i)
                return


class CandidateStrip(_Strip):
    """Repair alternatives side by side, cropped around the repaired area."""

    candidateChosen = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(112, parent)
        self.currentRowChanged.connect(lambda row: row >= 0 and self.candidateChosen.emit(row))

    def set_candidates(self, rgbs: list[np.ndarray], losses: list[float], mask: np.ndarray) -> None:
        self.blockSignals(True)
        self.clear()
        ys, xs = np.nonzero(mask)
        if len(ys):
            pad = max(16, int(0.25 * max(ys.max() - ys.min(), xs.max() - xs.min())))
            y0, y1 = max(0, ys.min() - pad), min(mask.shape[0], ys.max() + pad + 1)
            x0, x1 = max(0, xs.min() - pad), min(mask.shape[1], xs.max() + pad + 1)
        else:
            y0, y1, x0, x1 = 0, mask.shape[0], 0, mask.shape[1]
        for k, (rgb, loss) in enumerate(zip(rgbs, losses)):
            pix = QPixmap.fromImage(qimage_from_rgb(rgb[y0:y1, x0:x1])).scaled(
                self.iconSize(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
            item = QListWidgetItem(QIcon(pix), f"#{k + 1}  loss {loss:.3f}" + ("  (best)" if k == 0 else ""))
            self.addItem(item)
        self.setCurrentRow(0)
        self.blockSignals(False)
