"""The photo canvas: shows the photo, the mask overlay, detected faces and the
before/after split, and turns mouse drags into mask strokes.

Why a custom QWidget and not QGraphicsView: the canvas holds one image and a
few overlays that all live in the same photo pixel grid. A QWidget whose
paintEvent draws a short list of layers back to front (labelme's canvas) keeps
that grid exact with one transform (scale + offset), makes the brush map to
mask pixels without scene/item coordinate juggling, and lets a stroke repaint
only its dirty rectangle. QGraphicsView's scene graph, item selection and BSP
index would be machinery for objects we do not have.

Layers, back to front: background, photo (original / result / split of both),
mask overlay, face outlines, split handle, brush outline.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap, QTransform
from PySide6.QtWidgets import QSizePolicy, QWidget

from gui.mask_layer import MaskLayer

MIN_ZOOM, MAX_ZOOM = 0.02, 32.0
ZOOM_STEP = 1.25


def qimage_from_rgb(rgb: np.ndarray) -> QImage:
    """A QImage owning a copy of HxWx3 uint8 RGB pixels."""
    a = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = a.shape[:2]
    return QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def rgb_from_qimage(image: QImage) -> np.ndarray:
    """HxWx4 uint8 RGBA pixels of any QImage (e.g. from the clipboard)."""
    im = image.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h = im.width(), im.height()
    ptr = im.constBits()
    a = np.frombuffer(ptr, np.uint8, count=im.bytesPerLine() * h).reshape(h, im.bytesPerLine())
    return a[:, : 4 * w].reshape(h, w, 4).copy()


class Canvas(QWidget):
    zoomChanged = Signal(float)
    strokeFinished = Signal(object)  # gui.mask_layer.MaskDiff
    brushSizeChanged = Signal(int)
    splitChanged = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(False)  # the main window takes drops
        self.setMinimumSize(200, 150)
        self._original: QPixmap | None = None
        self._result: QPixmap | None = None
        self._layer: MaskLayer | None = None
        self._overlay: np.ndarray | None = None  # HxWx4 RGBA, alpha = mask
        self._overlay_image: QImage | None = None
        self._overlay_color = QColor("#ff3060")
        self.overlay_opacity = 0.5
        self.mask_visible = True
        self.show_original = False  # held key/button: the photo as loaded
        self.compare = False  # split view: original left of the handle, result right
        self.split = 0.5  # handle position, fraction of the photo width
        self.faces: list = []  # core.faces.Face
        self.selected_face: int | None = None
        self.brush_size = 24
        self.erasing = False
        self.painting_enabled = True
        self._scale = 1.0
        self._offset = QPointF(0, 0)
        self._fit_pending = True
        self._space_held = False
        self._pan_from: QPointF | None = None
        self._stroke_last: tuple[float, float] | None = None
        self._dragging_split = False
        self._cursor_pos: QPointF | None = None

    # -- content -------------------------------------------------------------
    def set_photo(self, rgb: np.ndarray, layer: MaskLayer) -> None:
        self._original = QPixmap.fromImage(qimage_from_rgb(rgb))
        self._result = None
        self.compare = False
        self.faces, self.selected_face = [], None
        if self._layer is not None:
            try:
                self._layer.changed.disconnect(self._mask_changed)
            except (RuntimeError, TypeError):
                pass
        self._layer = layer
        h, w = layer.shape
        self._overlay = np.zeros((h, w, 4), np.uint8)
        self._overlay[..., :3] = self._overlay_color.getRgb()[:3]
        layer.changed.connect(self._mask_changed)
        self._mask_changed(0, 0, w, h)
        self._fit_pending = True
        self.fit()

    def clear_photo(self) -> None:
        self._original = self._result = None
        self._layer = None
        self._overlay = self._overlay_image = None
        self.update()

    def set_result(self, rgb: np.ndarray | None) -> None:
        self._result = None if rgb is None else QPixmap.fromImage(qimage_from_rgb(rgb))
        if self._result is None:
            self.compare = False
        self.update()

    @property
    def has_photo(self) -> bool:
        return self._original is not None

    @property
    def has_result(self) -> bool:
        return self._result is not None

    def set_faces(self, faces: list, selected: int | None = None) -> None:
        self.faces, self.selected_face = list(faces), selected
        self.update()

    def set_overlay_color(self, color: QColor) -> None:
        self._overlay_color = QColor(color)
        if self._overlay is not None:
            self._overlay[..., :3] = self._overlay_color.getRgb()[:3]
            h, w = self._overlay.shape[:2]
            self._mask_changed(0, 0, w, h)

    @property
    def overlay_color(self) -> QColor:
        return QColor(self._overlay_color)

    def _mask_changed(self, x0: int, y0: int, x1: int, y1: int) -> None:
        if self._overlay is None or self._layer is None:
            return
        self._overlay[y0:y1, x0:x1, 3] = self._layer.mask[y0:y1, x0:x1] * np.uint8(255)
        h, w = self._overlay.shape[:2]
        # QImage over our buffer (no copy); the buffer outlives it.
        self._overlay_image = QImage(self._overlay.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self.update(self.map_from_photo_rect(QRectF(x0, y0, x1 - x0, y1 - y0)).toAlignedRect().adjusted(-2, -2, 2, 2))

    # -- view transform --------------------------------------------------------
    @property
    def zoom(self) -> float:
        return self._scale

    def _transform(self) -> QTransform:
        return QTransform(self._scale, 0, 0, self._scale, self._offset.x(), self._offset.y())

    def map_to_photo(self, p: QPointF) -> tuple[float, float]:
        return ((p.x() - self._offset.x()) / self._scale, (p.y() - self._offset.y()) / self._scale)

    def map_from_photo(self, x: float, y: float) -> QPointF:
        return QPointF(x * self._scale + self._offset.x(), y * self._scale + self._offset.y())

    def map_from_photo_rect(self, r: QRectF) -> QRectF:
        return self._transform().mapRect(r)

    def fit(self) -> None:
        if self._original is None:
            return
        w, h = self._original.width(), self._original.height()
        margin = 8
        avail_w, avail_h = max(1, self.width() - 2 * margin), max(1, self.height() - 2 * margin)
        self._scale = min(avail_w / w, avail_h / h)
        self._center()

    def actual_size(self) -> None:
        self.set_zoom(1.0)

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.set_zoom(self._scale * factor, anchor)

    def set_zoom(self, scale: float, anchor: QPointF | None = None) -> None:
        if self._original is None:
            return
        self._fit_pending = False
        scale = float(np.clip(scale, MIN_ZOOM, MAX_ZOOM))
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        px, py = self.map_to_photo(anchor)
        self._scale = scale
        # Keep the photo point under the anchor where it was (zoom to cursor).
        self._offset = QPointF(anchor.x() - px * scale, anchor.y() - py * scale)
        self.zoomChanged.emit(self._scale)
        self.update()

    def _center(self) -> None:
        w, h = self._original.width() * self._scale, self._original.height() * self._scale
        self._offset = QPointF((self.width() - w) / 2, (self.height() - h) / 2)
        self.zoomChanged.emit(self._scale)
        self.update()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit_pending:
            self.fit()

    # -- painting ----------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(48, 48, 52))
        if self._original is None:
            p.setPen(QColor(190, 190, 190))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                       "Drop a face photo here, paste one (Ctrl+V) or open one (Ctrl+O)")
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._scale < 2.0)
        p.setTransform(self._transform())
        w, h = self._original.width(), self._original.height()
        if self.show_original or self._result is None:
            p.drawPixmap(0, 0, self._original)
        elif self.compare:
            cut = round(self.split * w)
            p.drawPixmap(QRect(0, 0, cut, h), self._original, QRect(0, 0, cut, h))
            p.drawPixmap(QRect(cut, 0, w - cut, h), self._result, QRect(cut, 0, w - cut, h))
        else:
            p.drawPixmap(0, 0, self._result)
        if self.mask_visible and not self.show_original and self._overlay_image is not None:
            p.save()
            if self.compare and self._result is not None:
                # The mask marks the damage: show it on the "before" side only.
                p.setClipRect(QRectF(0, 0, self.split * w, h))
            p.setOpacity(self.overlay_opacity)
            p.drawImage(0, 0, self._overlay_image)
            p.restore()
        self._paint_faces(p)
        p.resetTransform()
        if self.compare and self._result is not None and not self.show_original:
            x = self.map_from_photo(self.split * w, 0).x()
            top, bottom = self.map_from_photo(0, 0).y(), self.map_from_photo(0, h).y()
            p.setPen(QPen(QColor(255, 255, 255), 2))
            p.drawLine(QPointF(x, top), QPointF(x, bottom))
            mid = (top + bottom) / 2
            p.setBrush(QColor(255, 255, 255))
            p.drawEllipse(QPointF(x, mid), 7, 7)
            p.setPen(QColor(255, 255, 255))
            p.drawText(QPointF(x - 70, top + 18), "before")
            p.drawText(QPointF(x + 10, top + 18), "after")
        if self.show_original:
            p.setPen(QColor(255, 255, 255))
            p.drawText(QPointF(12, 22), "Original")
        self._paint_brush(p)

    def _paint_faces(self, p: QPainter) -> None:
        for i, face in enumerate(self.faces):
            x, y, bw, bh = face.box
            chosen = self.selected_face is None or self.selected_face == i
            pen = QPen(QColor(80, 220, 120) if chosen else QColor(160, 160, 160))
            pen.setCosmetic(True)
            pen.setWidthF(2.0 if self.selected_face == i else 1.2)
            pen.setStyle(Qt.PenStyle.SolidLine if chosen else Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(x, y, bw, bh))
            if face.landmarks:
                for lx, ly in face.landmarks:
                    p.drawPoint(QPointF(lx, ly))
            # Labels in screen pixels, whatever the zoom.
            p.save()
            anchor = self._transform().map(QPointF(x, y))
            p.resetTransform()
            p.drawText(anchor + QPointF(3, -4), f"face {i + 1}")
            p.restore()

    def _paint_brush(self, p: QPainter) -> None:
        if self._cursor_pos is None or not self._painting_allowed() or self._space_held:
            return
        r = self.brush_size / 2 * self._scale
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(0, 0, 0), 1))
        p.drawEllipse(self._cursor_pos, r + 1, r + 1)
        p.setPen(QPen(QColor(255, 255, 255) if not self.erasing else QColor(120, 200, 255), 1))
        p.drawEllipse(self._cursor_pos, r, r)

    # -- input ----------------------------------------------------------------------
    def _painting_allowed(self) -> bool:
        return self.painting_enabled and self._layer is not None and not self.compare and not self.show_original

    def set_brush_size(self, size: int) -> None:
        size = int(np.clip(size, 1, 500))
        if size != self.brush_size:
            self.brush_size = size
            self.brushSizeChanged.emit(size)
            self.update()

    def mousePressEvent(self, event) -> None:
        pos = event.position()
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space_held):
            self._pan_from = pos
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if self._original is None:
            return
        if button == Qt.MouseButton.LeftButton and self.compare and self._result is not None:
            self._dragging_split = True
            self._move_split(pos)
            return
        if button in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton) and self._painting_allowed():
            # Right button erases, as in most paint tools, without switching tools.
            paint = not self.erasing if button == Qt.MouseButton.LeftButton else False
            self._layer.begin_stroke(paint)
            pt = self.map_to_photo(pos)
            self._stroke_last = pt
            self._layer.stroke_to(pt, pt, self.brush_size / 2)

    def mouseMoveEvent(self, event) -> None:
        pos = event.position()
        self._cursor_pos = pos
        if self._pan_from is not None:
            delta = pos - self._pan_from
            self._pan_from = pos
            self._offset += delta
            self._fit_pending = False
            self.update()
            return
        if self._dragging_split:
            self._move_split(pos)
            return
        # Tracked ourselves: synthetic moves (tests, tablets) may not carry buttons().
        if self._stroke_last is not None and self._layer is not None:
            pt = self.map_to_photo(pos)
            self._layer.stroke_to(self._stroke_last, pt, self.brush_size / 2)
            self._stroke_last = pt
        self.update()

    def mouseReleaseEvent(self, event) -> None:
        if self._pan_from is not None:
            self._pan_from = None
            self.setCursor(Qt.CursorShape.OpenHandCursor if self._space_held else Qt.CursorShape.ArrowCursor)
            return
        if self._dragging_split:
            self._dragging_split = False
            return
        self._finish_stroke()

    def _finish_stroke(self) -> None:
        if self._stroke_last is None or self._layer is None:
            return
        self._stroke_last = None
        diff = self._layer.end_stroke()
        if diff is not None:
            self.strokeFinished.emit(diff)

    def _move_split(self, pos: QPointF) -> None:
        x, _ = self.map_to_photo(pos)
        self.set_split(x / max(1, self._original.width()))

    def set_split(self, fraction: float) -> None:
        fraction = float(np.clip(fraction, 0.0, 1.0))
        if fraction != self.split:
            self.split = fraction
            self.splitChanged.emit(fraction)
            self.update()

    def leaveEvent(self, event) -> None:
        self._cursor_pos = None
        self.update()

    def wheelEvent(self, event) -> None:
        if self._original is None:
            return
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(ZOOM_STEP ** steps, event.position())

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
            self.update()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = False
            self._pan_from = None
            self.setCursor(Qt.CursorShape.ArrowCursor)
            self.update()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event) -> None:
        # A stroke must not stay open if the window loses focus mid-drag.
        self._finish_stroke()
        self._space_held = False
        super().focusOutEvent(event)
