"""Poisson blending of a generated fill into known pixels.

Solved here with conjugate gradients on the 5-point Laplacian, with numpy
only: the aligned crops are 64x64 (at most 4096 unknowns, ~1 ms), and
cv2.seamlessClone proved unreliable for masks that touch the image (see
../shared/README.md: it returned the destination unchanged).

For the full-resolution photo the same idea runs as a *membrane* correction
(Farbman et al. 2009): the fill is already blended in the model frame, so
only a smooth offset that makes it meet the photo's own pixels at the hole
border is needed, and a smooth field can be solved coarse and upsampled.
"""

from __future__ import annotations

import cv2
import numpy as np


def poisson_blend(source: np.ndarray, target: np.ndarray, mask: np.ndarray, iterations: int = 400, tol: float = 1e-4) -> np.ndarray:
    """Return target with the masked pixels replaced by the solution of
    Laplacian(f) = Laplacian(source) inside the mask, f = target on its border.

    source, target: HxWxC float; mask: HxW bool (True = solve here). Pixels
    outside the mask are returned unchanged (the same values as target).
    Pixels on the image edge inside the mask use a Neumann condition (the
    missing neighbour mirrors), so a hole touching the edge still solves.
    """
    src = source.astype(np.float64)
    tgt = target.astype(np.float64)
    inside = mask.astype(bool)
    if not inside.any():
        return target.copy()
    h, w = inside.shape
    fin = inside.astype(np.float64)
    # Guidance: sum over in-image neighbours of (src_p - src_q). Edge padding
    # makes a missing neighbour equal the pixel itself, so it adds 0.
    sp = np.pad(src, ((1, 1), (1, 1), (0, 0)), mode="edge")
    guidance = 4.0 * src - (sp[:-2, 1:-1] + sp[2:, 1:-1] + sp[1:-1, :-2] + sp[1:-1, 2:])
    # Known neighbours' values go to the right-hand side; edge-padded so that a
    # missing neighbour behaves like the pixel itself (Neumann).
    known = tgt * (1 - fin)[..., None]
    kp = np.pad(known, ((1, 1), (1, 1), (0, 0)))
    b = guidance + kp[:-2, 1:-1] + kp[2:, 1:-1] + kp[1:-1, :-2] + kp[1:-1, 2:]
    # Count of real neighbours per pixel; edge pixels have fewer.
    ones = np.pad(np.ones((h, w)), 1)
    degree = (ones[:-2, 1:-1] + ones[2:, 1:-1] + ones[1:-1, :-2] + ones[1:-1, 2:])[..., None]
    b *= fin[..., None]

    def apply(u):
        padded = np.pad(u * fin[..., None], ((1, 1), (1, 1), (0, 0)))
        nb = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
        return (degree * u - nb) * fin[..., None]

    x = np.where(inside[..., None], src, 0.0)
    r = b - apply(x)
    p = r.copy()
    rs = (r * r).sum(axis=(0, 1))
    b_norm = np.sqrt((b * b).sum(axis=(0, 1))) + 1e-12
    for _ in range(iterations):
        ap = apply(p)
        alpha = rs / ((p * ap).sum(axis=(0, 1)) + 1e-30)
        x += alpha * p
        r -= alpha * ap
        rs_new = (r * r).sum(axis=(0, 1))
        if np.all(np.sqrt(rs_new) / b_norm < tol):
            break
        p = r + (rs_new / (rs + 1e-30)) * p
        rs = rs_new
    out = tgt.copy()
    out[inside] = x[inside]
    return out


def membrane_blend(fill: np.ndarray, photo: np.ndarray, mask: np.ndarray, coarse_side: int = 96) -> np.ndarray:
    """Add to `fill` the smooth offset (harmonic inside the mask) that makes it
    equal `photo` on the mask's border. Returns values for the whole image;
    callers paste only the masked pixels. Works on float arrays HxWxC.

    Solved on a grid of at most `coarse_side` px for the mask's bounding box and
    upsampled: the membrane is smooth, so this loses nothing visible and keeps
    a 24 MP photo under a second.
    """
    mask = mask.astype(bool)
    if not mask.any():
        return fill.astype(np.float64)
    ys, xs = np.nonzero(mask)
    pad = 2
    y0, y1 = max(0, ys.min() - pad), min(mask.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(mask.shape[1], xs.max() + pad + 1)
    sub_mask = mask[y0:y1, x0:x1]
    diff = (photo[y0:y1, x0:x1].astype(np.float64) - fill[y0:y1, x0:x1].astype(np.float64))
    h, w = sub_mask.shape
    scale = min(1.0, coarse_side / max(h, w))
    ch, cw = max(3, round(h * scale)), max(3, round(w * scale))
    # Border values: the offset measured just outside the hole, averaged down.
    ring = cv2.dilate(sub_mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~sub_mask
    weight = ring.astype(np.float64)
    num = cv2.resize(diff * weight[..., None], (cw, ch), interpolation=cv2.INTER_AREA)
    den = cv2.resize(weight, (cw, ch), interpolation=cv2.INTER_AREA)[..., None]
    if num.ndim == 2:
        num = num[..., None]
    small_known = den[..., 0] > 1e-6
    border = np.where(small_known[..., None], num / np.maximum(den, 1e-6), 0.0)
    # Unknowns: everything that is not a measured border value, so the
    # membrane fills the hole from the ring inwards.
    unknown = ~small_known
    if not small_known.any():
        return fill.astype(np.float64)
    zeros = np.zeros_like(border)
    offset_small = poisson_blend(zeros, border, unknown, iterations=600, tol=1e-5)
    offset = cv2.resize(offset_small, (w, h), interpolation=cv2.INTER_LINEAR)
    if offset.ndim == 2:
        offset = offset[..., None]
    out = fill.astype(np.float64).copy()
    out[y0:y1, x0:x1] += offset
    return out
