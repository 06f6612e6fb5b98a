"""Masks: which pixels to fill. True / white (non-zero) = damaged, to fill.

Presets are drawn in the aligned face frame (the bundle's size x size crop),
placed from the bundle's landmark template, so "eyes" means the eyes of
whatever face is aligned into that frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core import imageio
from core.api import MASK_TYPES
from core.errors import BadInputError, UsageError

__all__ = ["MASK_TYPES", "preset_mask", "load_mask", "validate_mask", "save_mask", "dilate_mask"]

# Feature bands, in units of the template's eye distance (scale-free, so they
# fit any bundle size). Half-heights stop short of the nose, which sits about
# 0.6 eye distances below the eyes and above the mouth.
EYE_BAND_HALF_HEIGHT = 0.35
EYE_BAND_SIDE_MARGIN = 0.5
MOUTH_BAND_HALF_HEIGHT = 0.3
MOUTH_BAND_SIDE_MARGIN = 0.3
# Formats whose compression leaves near-black noise: there, fill means bright
# (>= 128) rather than non-zero.
_LOSSY_FORMATS = {"JPEG", "MPO", "WEBP", "AVIF", "JPEG2000"}


def preset_mask(kind: str, size: int, template: np.ndarray | None, *, seed: int = 0, fraction: float = 0.25) -> np.ndarray:
    """size x size bool mask of a preset, True = fill, in the aligned frame.

    center: the central size/2 square (Yeh et al.'s 32x32 hole in 64x64).
    left/right/top/bottom: that half of the crop (left as the viewer sees it).
    eyes: a band over both template eye points; mouth: a band over both mouth
    corners. random: exactly round(fraction * size**2) pixels, chosen by a
    numpy Generator seeded with `seed` (Yeh et al.'s random-pixel mask).
    `template` (5x2: left_eye, right_eye, nose, mouth_left, mouth_right, crop
    pixels) is needed only by eyes and mouth.
    """
    k = str(kind).strip().lower()
    if k not in MASK_TYPES:
        raise UsageError(f"unknown mask type {kind!r}; choose one of: {', '.join(MASK_TYPES)}")
    size = int(size)
    if size < 4:
        raise UsageError(f"mask size must be at least 4, got {size}")
    m = np.zeros((size, size), bool)
    half = size // 2
    if k == "center":
        q = size // 4
        m[q : q + half, q : q + half] = True
    elif k == "left":
        m[:, :half] = True
    elif k == "right":
        m[:, half:] = True
    elif k == "top":
        m[:half, :] = True
    elif k == "bottom":
        m[half:, :] = True
    elif k == "random":
        if not 0.0 < fraction < 1.0:
            raise UsageError(f"random mask fraction must be between 0 and 1 (exclusive), got {fraction}")
        n = min(size * size - 1, max(1, round(fraction * size * size)))
        rng = np.random.default_rng(seed)
        m.flat[rng.choice(size * size, size=n, replace=False)] = True
    else:
        pts = _template_points(template)
        eye_distance = float(np.linalg.norm(pts[1] - pts[0]))
        if k == "eyes":
            band = pts[:2]
            dy, dx = EYE_BAND_HALF_HEIGHT * eye_distance, EYE_BAND_SIDE_MARGIN * eye_distance
        else:
            band = pts[3:5]
            dy, dx = MOUTH_BAND_HALF_HEIGHT * eye_distance, MOUTH_BAND_SIDE_MARGIN * eye_distance
        x0, y0 = band.min(axis=0) - (dx, dy)
        x1, y1 = band.max(axis=0) + (dx, dy)
        # Pixel (c, r) covers [c, c+1) x [r, r+1); keep those whose centre is in the band.
        cols = np.arange(size) + 0.5
        rows = np.arange(size) + 0.5
        m[np.ix_((rows >= y0) & (rows <= y1), (cols >= x0) & (cols <= x1))] = True
        if not m.any() or m.all():
            raise BadInputError(f"the landmark template puts the {k} band outside the {size}x{size} frame")
    return m


def _template_points(template) -> np.ndarray:
    if template is None:
        raise UsageError("the eyes and mouth presets need the bundle's landmark template")
    pts = np.asarray(template, np.float64)
    if pts.shape != (5, 2) or not np.all(np.isfinite(pts)):
        raise BadInputError(f"landmark template must be 5x2 finite points, got shape {pts.shape}")
    if np.linalg.norm(pts[1] - pts[0]) < 1e-6:
        raise BadInputError("landmark template has both eyes at the same point")
    return pts


def load_mask(source: str | Path | bytes, shape: tuple[int, int]) -> np.ndarray:
    """Read a mask image -> HxW bool, True = fill. Read like photos (same
    checks, EXIF orientation honoured), then:

    * without alpha: fill where any channel is non-zero (1-bit, grey, 16-bit,
      RGB, palette);
    * with alpha: fully transparent pixels are unpainted (keep); elsewhere the
      colour decides as above — except when every colour is black, the usual
      export of strokes on a transparent layer, where alpha alone decides;
    * JPEG/WebP/AVIF: compression leaves near-black noise, so fill means
      bright (>= 128 of 255).

    `shape` is the photo's (height, width); any other size is a BadInputError
    stating both.
    """
    photo = imageio.load_image(source)
    label = str(photo.path) if photo.path is not None else "mask data"
    native = photo.native
    if photo.has_alpha:
        colour, alpha = native[:, :, :-1], native[:, :, -1]
    elif photo.mode == "CMYK":
        colour, alpha = photo.rgb, None
    else:
        colour, alpha = native, None
    threshold = 0
    if photo.format in _LOSSY_FORMATS:
        threshold = 32895 if colour.dtype == np.uint16 else 127  # 128 * 257 - 1 for 16-bit
    painted = (colour > threshold).any(axis=2)
    if alpha is not None:
        if not painted.any():
            painted = alpha > threshold
        else:
            painted &= alpha > 0
    h, w = int(shape[0]), int(shape[1])
    if painted.shape != (h, w):
        raise BadInputError(
            f"{label}: mask is {painted.shape[1]}x{painted.shape[0]} pixels but the photo is {w}x{h}; "
            "a mask must have the photo's size"
        )
    return painted


def validate_mask(mask: np.ndarray, shape: tuple[int, int], *, what: str = "mask") -> np.ndarray:
    """The mask as an HxW bool array, or a BadInputError saying what is wrong:
    not an array, not 2-D bool, a size other than `shape` (height, width),
    empty, or covering everything."""
    if not isinstance(mask, np.ndarray):
        raise BadInputError(f"{what} must be an array, got {type(mask).__name__}")
    if mask.ndim != 2:
        raise BadInputError(f"{what} must be 2-D (height x width), got {mask.ndim}-D shape {mask.shape}")
    if mask.dtype != np.bool_:
        raise BadInputError(f"{what} must be boolean (True = fill), got {mask.dtype}")
    h, w = int(shape[0]), int(shape[1])
    if mask.shape != (h, w):
        raise BadInputError(f"{what} is {mask.shape[1]}x{mask.shape[0]} pixels but the image is {w}x{h}")
    if not mask.any():
        raise BadInputError(f"{what} is empty: paint the damaged area white")
    if mask.all():
        raise BadInputError(f"{what} covers the whole image: nothing left to complete from")
    return mask


def save_mask(mask: np.ndarray, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write an 8-bit grey PNG, 255 = fill, 0 = keep; atomically. Replaces an
    existing file unless overwrite=False (GUIs ask before, scripts may not)."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise UsageError(f"{target}: masks are saved as PNG; use a .png name")
    m = np.asarray(mask)
    if m.ndim != 2 or m.dtype != np.bool_:
        raise BadInputError(f"mask to save must be a 2-D bool array, got {m.shape} {m.dtype}")
    data = imageio.encode_png(m)
    return imageio.atomic_write(target, lambda fh: fh.write(data), overwrite=overwrite)


def dilate_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow the fill area by `pixels` in every direction (a disc), e.g. to
    cover the soft edge of a scratch. 0 returns a copy."""
    m = np.asarray(mask)
    if m.ndim != 2 or m.dtype != np.bool_:
        raise BadInputError(f"mask must be a 2-D bool array, got {m.shape} {m.dtype}")
    pixels = int(pixels)
    if pixels < 0:
        raise UsageError(f"dilation must be 0 or more pixels, got {pixels}")
    if pixels == 0 or not m.any():
        return m.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(m.astype(np.uint8), kernel).astype(bool)
