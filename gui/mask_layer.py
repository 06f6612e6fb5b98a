"""The mask being painted (True = damaged, to fill) and its undo history.

Undo stores diffs, as napari does for label painting: each command keeps only
the dirty rectangle's values before and after, so a stroke on a 24 MP photo
costs the few kilobytes it touched, not two copies of the mask. One brush drag
(press .. release) is one command; clear, invert, presets and imported masks
are diffs too, cropped to the pixels that actually changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand


@dataclass(frozen=True)
class MaskDiff:
    """Values of mask[y0:y1, x0:x1] before and after one edit."""

    x0: int
    y0: int
    x1: int
    y1: int
    before: np.ndarray
    after: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.before.nbytes + self.after.nbytes)


class MaskLayer(QObject):
    """An HxW bool mask with brush strokes; emits the dirty rectangle on every change."""

    changed = Signal(int, int, int, int)  # x0, y0, x1, y1 in photo pixels (x1, y1 exclusive)

    def __init__(self, height: int, width: int, parent: QObject | None = None):
        super().__init__(parent)
        self._mask = np.zeros((int(height), int(width)), bool)
        self._before: np.ndarray | None = None  # mask at the start of the open stroke
        self._stroke_rect: list[int] | None = None
        self._stroke_value = True

    @property
    def mask(self) -> np.ndarray:
        """The live mask; copy it before handing it to another thread."""
        return self._mask

    @property
    def shape(self) -> tuple[int, int]:
        return self._mask.shape

    # -- strokes -----------------------------------------------------------
    def begin_stroke(self, paint: bool) -> None:
        """paint=True: brush (mark damaged); False: eraser."""
        self._before = self._mask.copy()
        self._stroke_rect = None
        self._stroke_value = bool(paint)

    @property
    def stroking(self) -> bool:
        return self._before is not None

    def stroke_to(self, p0: tuple[float, float], p1: tuple[float, float], radius: float) -> None:
        """Paint a round-capped segment p0->p1 (photo pixel coordinates, x, y)."""
        if self._before is None:
            self.begin_stroke(True)
        rect = self._paint_segment(p0, p1, radius, self._stroke_value)
        if rect is None:
            return
        if self._stroke_rect is None:
            self._stroke_rect = list(rect)
        else:
            r = self._stroke_rect
            self._stroke_rect = [min(r[0], rect[0]), min(r[1], rect[1]), max(r[2], rect[2]), max(r[3], rect[3])]
        self.changed.emit(*rect)

    def end_stroke(self) -> MaskDiff | None:
        """Close the stroke; its diff, or None if it changed nothing."""
        before, rect = self._before, self._stroke_rect
        self._before = self._stroke_rect = None
        if before is None or rect is None:
            return None
        x0, y0, x1, y1 = rect
        old, new = before[y0:y1, x0:x1], self._mask[y0:y1, x0:x1]
        return _cropped_diff(old, new, x0, y0)

    def _paint_segment(self, p0, p1, radius: float, value: bool):
        h, w = self._mask.shape
        r = max(0.5, float(radius))
        (ax, ay), (bx, by) = (float(p0[0]), float(p0[1])), (float(p1[0]), float(p1[1]))
        x0, x1 = max(0, int(np.floor(min(ax, bx) - r))), min(w, int(np.ceil(max(ax, bx) + r)) + 1)
        y0, y1 = max(0, int(np.floor(min(ay, by) - r))), min(h, int(np.ceil(max(ay, by) + r)) + 1)
        if x0 >= x1 or y0 >= y1:
            return None
        # Distance from each pixel centre to the segment: a capsule, i.e. a
        # brush dab dragged from p0 to p1 with no gaps however fast the mouse.
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = np.zeros_like(xs) if length2 == 0 else np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0.0, 1.0)
        hit = (xs - (ax + t * dx)) ** 2 + (ys - (ay + t * dy)) ** 2 <= r * r
        if not hit.any():
            return None
        self._mask[y0:y1, x0:x1][hit] = value
        return x0, y0, x1, y1

    # -- whole-mask edits -----------------------------------------------------
    def diff_to(self, new_mask: np.ndarray) -> MaskDiff | None:
        """The diff that would turn the current mask into `new_mask` (not applied)."""
        new_mask = np.asarray(new_mask, bool)
        if new_mask.shape != self._mask.shape:
            raise ValueError(f"mask shape {new_mask.shape} != {self._mask.shape}")
        return _cropped_diff(self._mask, new_mask, 0, 0)

    def apply(self, x0: int, y0: int, values: np.ndarray) -> None:
        y1, x1 = y0 + values.shape[0], x0 + values.shape[1]
        self._mask[y0:y1, x0:x1] = values
        self.changed.emit(x0, y0, x1, y1)


def _cropped_diff(old: np.ndarray, new: np.ndarray, ox: int, oy: int) -> MaskDiff | None:
    changed = old != new
    if not changed.any():
        return None
    ys, xs = np.nonzero(changed)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    return MaskDiff(ox + x0, oy + y0, ox + x1, oy + y1, old[y0:y1, x0:x1].copy(), new[y0:y1, x0:x1].copy())


class MaskEditCommand(QUndoCommand):
    """One undo step. Pushed after the edit is already on the mask (a finished
    stroke), so the first redo() that QUndoStack.push() calls does nothing."""

    def __init__(self, layer: MaskLayer, diff: MaskDiff, text: str, applied: bool = True):
        super().__init__(text)
        self.layer = layer
        self.diff = diff
        self._skip_redo = applied

    def redo(self) -> None:
        if self._skip_redo:
            self._skip_redo = False
            return
        self.layer.apply(self.diff.x0, self.diff.y0, self.diff.after)

    def undo(self) -> None:
        self.layer.apply(self.diff.x0, self.diff.y0, self.diff.before)
