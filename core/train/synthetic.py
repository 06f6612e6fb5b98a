"""Training batches made from the generator itself, for the encoder and the critic.

There is no large real face set offline, so both networks learn on the
generator's own faces, with masks shaped like real damage. Every batch is a
pure function of (seed, step): a killed run resumes to the same weights.
"""

from __future__ import annotations

import cv2
import numpy as np


def hole_masks(rng: np.random.Generator, n: int, size: int = 64, empty_fraction: float = 0.0) -> np.ndarray:
    """n masks (n, size, size) float32 1 = hole, shaped like the damage users paint:
    rectangles (incl. the 32x32 center), horizontal bands (eyes/mouth), halves,
    and free-form brush strokes."""
    out = np.zeros((n, size, size), np.float32)
    for i in range(n):
        if rng.random() < empty_fraction:
            continue
        kind = rng.integers(0, 5)
        m = out[i]
        if kind == 0:  # rectangle
            h, w = rng.integers(size // 8, size * 5 // 8, size=2)
            y, x = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
            m[y : y + h, x : x + w] = 1
        elif kind == 1:  # center square with jitter
            s = int(rng.integers(size * 3 // 8, size * 5 // 8))
            c = size // 2 + rng.integers(-3, 4, size=2)
            m[max(0, c[0] - s // 2) : c[0] + s // 2, max(0, c[1] - s // 2) : c[1] + s // 2] = 1
        elif kind == 2:  # band
            h = int(rng.integers(size // 8, size // 3))
            y = int(rng.integers(size // 4, size * 7 // 8 - h))
            m[y : y + h, size // 8 : size * 7 // 8] = 1
        elif kind == 3:  # half
            side = rng.integers(0, 4)
            half = size // 2
            [lambda: m.__setitem__((slice(None), slice(0, half)), 1),
             lambda: m.__setitem__((slice(None), slice(half, None)), 1),
             lambda: m.__setitem__((slice(0, half), slice(None)), 1),
             lambda: m.__setitem__((slice(half, None), slice(None)), 1)][side]()
        else:  # brush strokes
            for _ in range(int(rng.integers(1, 5))):
                pts = rng.integers(4, size - 4, size=(int(rng.integers(2, 5)), 2))
                width = int(rng.integers(3, 10))
                cv2.polylines(m, [pts.reshape(-1, 1, 2).astype(np.int32)], False, 1.0, thickness=width)
    return out


def colour_shift(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Per-image gain and offset per channel: the seam a pasted patch of the
    right content but the wrong exposure leaves."""
    n = x.shape[0]
    gain = rng.uniform(0.7, 1.3, size=(n, 1, 1, 3)).astype(np.float32)
    offset = rng.uniform(-0.25, 0.25, size=(n, 1, 1, 3)).astype(np.float32)
    return np.clip(x * gain + offset, -1, 1)


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(img, (0, 0), sigma) for img in x])


def degrade(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """What a real photo looks like after alignment to 64 px: a little blur,
    noise, JPEG-ish blockiness, exposure. Only encoder *inputs* get this, so it
    learns to read real crops, while its targets stay the clean generator codes."""
    out = x.copy()
    n = x.shape[0]
    for i in range(n):
        r = rng.random()
        if r < 0.3:
            out[i] = cv2.GaussianBlur(out[i], (0, 0), float(rng.uniform(0.4, 1.2)))
        elif r < 0.5:
            img = np.clip((out[i] + 1) * 127.5, 0, 255).astype(np.uint8)
            ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
            out[i] = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED).astype(np.float32) / 127.5 - 1
    out += rng.normal(0, rng.uniform(0, 0.03), size=out.shape).astype(np.float32)
    gain = rng.uniform(0.85, 1.15, size=(n, 1, 1, 1)).astype(np.float32)
    return np.clip(out * gain, -1, 1)
