"""Building a bundle: import the generator, measure the landmark template."""

from __future__ import annotations

import datetime as _dt
import shutil
from pathlib import Path

import numpy as np

from core import bundle as bundles
from core.errors import BadInputError
from core.files import publish, temp_folder_beside


def sample_faces(generator, n: int, seed: int, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """n generator samples as uint8 RGB, and their z (standard normal prior)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, generator.input_shape[-1])).astype(np.float32)
    out = []
    for i in range(0, n, batch):
        out.append(generator(z[i : i + batch], training=False).numpy())
    img = np.concatenate(out)
    return to_uint8(img), z


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[-1, 1] float -> uint8, rounding (not truncating) so round trips are exact."""
    return np.clip(np.rint((img + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / 127.5 - 1.0


def measure_landmark_template(generator, detector, n: int = 400, seed: int = 0, upscale: int = 4) -> dict:
    """Detect the 5 landmarks on n generator samples (upscaled, as MTCNN
    misses 64 px faces) and return their per-point median in 64-px coordinates."""
    import cv2

    images, _ = sample_faces(generator, n, seed)
    points = []
    for img in images:
        big = cv2.resize(img, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        faces = detector.detect(big)
        if faces and faces[0].landmarks:
            points.append(np.asarray(faces[0].landmarks) / upscale)
    if len(points) < max(10, n // 4):
        raise BadInputError(f"landmarks found on only {len(points)} of {n} generator samples; is this a face generator?")
    pts = np.stack(points)
    median = np.median(pts, axis=0)
    spread = np.median(np.linalg.norm(pts - median, axis=2), axis=0)
    return {
        "names": list(bundles.LANDMARK_NAMES),
        "points": [[round(float(x), 3), round(float(y), 3)] for x, y in median],
        "median_abs_deviation_px": [round(float(s), 3) for s in spread],
        "measured_on": f"{len(points)} of {n} generator samples (seed {seed}), {detector.name} on x{upscale} bicubic upscales, per-point median",
    }


def create_bundle_from_gan_face_generate(source, out: Path, *, verify_sha256=True, template_samples=400, seed=0):
    from core.faces import default_detector
    from core.gan_import import import_generator
    from core.networks import build_generator, load_weights

    out = Path(out)
    # Build in a temp folder beside the target and rename at the end, so a
    # failed import never leaves a folder that looks like a bundle.
    work = temp_folder_beside(out)
    try:
        provenance = import_generator(source, work / "generator.npz", verify_sha256=verify_sha256)
        gen = build_generator()
        load_weights(gen, work / "generator.npz")
        template = measure_landmark_template(gen, default_detector(), n=template_samples, seed=seed)
        manifest = {
            "manifest_version": 1,
            "name": "facemend-faces64",
            "version": "1.0.0",
            "created": _dt.date.today().isoformat(),
            "image_size": 64,
            "channels": 3,
            "pixel_range": [-1.0, 1.0],
            "z_dim": 100,
            "z_prior": {"distribution": "normal", "mean": 0.0, "std": 1.0},
            "landmark_template": template,
            "files": {
                "generator": {
                    "path": "generator.npz",
                    "architecture": {"base_filters": 64},
                    "source": provenance,
                    "training_data": "DigiFace-1M (synthetic rendered faces, Microsoft); see MODEL_CARD.md for its licence",
                    "licence": "MIT (gan-face-generate 1.1.1, (c) 2023 Chien Liu)",
                },
            },
        }
        bundles.write_manifest(work, manifest)
        publish(work, out)  # the caller checked `out` is absent or empty
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return bundles.read_manifest(out)
