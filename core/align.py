"""Align a face to the model's landmark template and paste results back.

A similarity transform (rotation, uniform scale, translation) maps the five
detected landmarks onto the bundle's template, measured on the generator's
own outputs, so the model sees faces framed the way it draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.errors import BadInputError


@dataclass(frozen=True)
class Alignment:
    """`matrix` maps photo pixels -> aligned-crop pixels (2x3); `inverse` the other way."""

    matrix: np.ndarray
    inverse: np.ndarray
    size: int
    photo_shape: tuple[int, int]  # (height, width)

    @property
    def scale(self) -> float:
        """Aligned pixels per photo pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) mapping src -> dst points; 2x3."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError("need matching Nx2 point sets, N >= 2")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s < 1e-12:
        raise BadInputError("landmarks are degenerate (all in one point)")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    r = u @ np.diag(sign) @ vt
    scale = (sig * sign).sum() / var_s
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, np.float64))


def compute_alignment(landmarks, template, size: int, photo_shape: tuple[int, int]) -> Alignment:
    if landmarks is None:
        raise BadInputError("this face has no landmarks; cannot align it")
    m = similarity_transform(np.asarray(landmarks), np.asarray(template))
    return Alignment(m, invert_affine(m), size, (int(photo_shape[0]), int(photo_shape[1])))


def warp_to_aligned(image: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Crop the face into the model frame. Areas outside the photo repeat the
    border pixels so the model never sees an artificial black frame.

    Downscaling with plain bilinear sampling aliases badly (a 400 px face to
    64 px skips most pixels), so large faces are first pre-blurred by the scale.
    """
    src = image
    scale = alignment.scale
    if scale < 0.5:
        sigma = 0.5 / scale * 0.6
        src = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return cv2.warpAffine(src, alignment.matrix, (alignment.size, alignment.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warp_mask_to_aligned(mask: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Photo-frame bool mask -> aligned-frame bool mask (a pixel is to fill if
    any part of it is to fill: area-average > 0)."""
    m = mask.astype(np.float32)
    scale = alignment.scale
    if scale < 1.0:
        # Max-pool before shrinking so thin scratches survive the downscale.
        k = int(np.ceil(1.0 / scale))
        m = cv2.dilate(m, np.ones((k, k), np.uint8))
    out = cv2.warpAffine(m, alignment.matrix, (alignment.size, alignment.size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return out > 0.05


def warp_to_photo(aligned: np.ndarray, alignment: Alignment, roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Aligned-frame image (float or uint8, HxWxC) -> photo frame, bicubic.

    `roi` (x0, y0, x1, y1) renders only that window of the photo: pasting a
    64 px face into a 24 MP photo should not warp 24 MP per candidate."""
    h, w = alignment.photo_shape
    x0, y0, x1, y1 = roi if roi is not None else (0, 0, w, h)
    m = alignment.inverse.copy()
    m[:, 2] -= (x0, y0)
    return cv2.warpAffine(aligned, m, (x1 - x0, y1 - y0), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def mask_bbox(mask: np.ndarray, pad: int = 0) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the True pixels, padded and clipped to the image."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return (max(0, int(xs.min()) - pad), max(0, int(ys.min()) - pad), min(w, int(xs.max()) + pad + 1), min(h, int(ys.max()) + pad + 1))


def aligned_mask_to_photo(mask: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Aligned-frame bool mask -> photo-frame bool mask."""
    h, w = alignment.photo_shape
    out = cv2.warpAffine(mask.astype(np.float32), alignment.inverse, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return out > 0.5


def face_region_in_photo(alignment: Alignment) -> np.ndarray:
    """Bool mask of the photo pixels covered by the aligned crop."""
    ones = np.ones((alignment.size, alignment.size), np.float32)
    return aligned_mask_to_photo(ones, alignment)
