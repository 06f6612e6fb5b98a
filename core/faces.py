"""Faces found in a photo, and the offline detector that finds them.

`Face` is the one shape every detector fills (MTCNN here, Rekognition in
cloud/), in photo pixel coordinates of the image *as displayed* (after EXIF
orientation).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from core.bundle import LANDMARK_NAMES


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x, y, w, h
    confidence: float
    # left_eye, right_eye, nose, mouth_left, mouth_right (subject's left is the
    # image's left here, i.e. as seen by the viewer); None if the engine gives none.
    landmarks: tuple[tuple[float, float], ...] | None = None
    attributes: dict = field(default_factory=dict, compare=False)

    def as_json(self) -> dict:
        d = {
            "box": [round(float(v), 2) for v in self.box],
            "confidence": round(float(self.confidence), 4),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks] if self.landmarks else None,
        }
        if self.attributes:
            d["attributes"] = self.attributes
        return d


class FaceDetector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """rgb: HxWx3 uint8. Faces sorted by confidence, best first."""


class MtcnnDetector:
    """MTCNN (PyPI `mtcnn`, MIT, weights in the wheel): boxes + 5 landmarks, offline."""

    name = "mtcnn"

    def __init__(self, min_face_size: int = 20, min_confidence: float = 0.9, max_side: int = 1600):
        self.min_face_size = min_face_size
        self.min_confidence = min_confidence
        # Detection cost grows with pixels; faces stay findable on a downscaled copy.
        self.max_side = max_side
        self._mtcnn = None
        self._lock = threading.Lock()

    def _model(self):
        with self._lock:
            if self._mtcnn is None:
                from core.lazy_tf import tf  # noqa: F401  (TF must be importable first)
                from mtcnn import MTCNN

                self._mtcnn = MTCNN(device="CPU:0")
            return self._mtcnn

    def detect(self, rgb: np.ndarray, *, any_orientation: bool = False) -> list[Face]:
        """MTCNN only finds upright faces. A photo turned by quarter turns (a
        camera without an EXIF orientation tag) is searched in all four turns
        when asked, or when the upright pass finds no face at all; the whole
        photo takes one orientation, since per-face choice lets a confident
        upside-down false face win (measured on the test photos)."""
        upright = self._detect_upright(rgb)
        if not any_orientation and upright:
            return upright
        best, best_key = upright, _orientation_score(upright)
        h, w = rgb.shape[:2]
        for k in (1, 2, 3):
            turned = np.ascontiguousarray(np.rot90(rgb, -k))  # k quarter turns clockwise
            faces = [_unturn(f, k, h, w) for f in self._detect_upright(turned)]
            key = _orientation_score(faces)
            if key > best_key:
                best, best_key = faces, key
        return best

    def _detect_upright(self, rgb: np.ndarray) -> list[Face]:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError("detector needs an HxWx3 RGB image")
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        img = rgb
        if scale < 1.0:
            import cv2

            img = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        min_size = max(12, int(self.min_face_size * scale))
        results = self._model().detect_faces(img, min_face_size=min_size, box_format="xywh", output_type="json")
        faces = []
        for r in results:
            if r["confidence"] < self.min_confidence:
                continue
            kp = r["keypoints"]
            lm = tuple((float(kp[k][0]) / scale, float(kp[k][1]) / scale) for k in LANDMARK_NAMES)
            x, y, bw, bh = (float(v) / scale for v in r["box"])
            faces.append(Face((x, y, bw, bh), float(r["confidence"]), lm))
        faces.sort(key=lambda f: -f.confidence)
        return faces


def _orientation_score(faces: list[Face]) -> tuple[int, float]:
    return (sum(f.confidence >= 0.99 for f in faces), sum(f.confidence for f in faces))


def _unturn(face: Face, k: int, h: int, w: int) -> Face:
    """Map a face found in the photo turned k quarter turns clockwise back to
    the original photo (h x w). Landmark labels stay as found, so `left_eye`
    is still the person's left and alignment undoes the turn."""

    def point(x, y):
        if k == 1:
            return (y, h - 1 - x)
        if k == 2:
            return (w - 1 - x, h - 1 - y)
        return (w - 1 - y, x)

    x, y, bw, bh = face.box
    corners = [point(x, y), point(x + bw, y + bh)]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    lm = tuple(point(px, py) for px, py in face.landmarks) if face.landmarks else None
    return Face(box, face.confidence, lm, face.attributes)


_default: MtcnnDetector | None = None


def default_detector() -> MtcnnDetector:
    global _default
    if _default is None:
        _default = MtcnnDetector()
    return _default
