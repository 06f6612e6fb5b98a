"""`facemend --self-test`: can this installation repair a face, offline?

Used by the packaging smoke test on the source tree, the frozen one-dir
bundle and the unpacked .deb alike, so every check goes through the same code
a user's repair does (Qt platform plugin, image codecs, the model bundle as
found by core.bundle.search_dirs, MTCNN's packaged weights, the completion
search, paste-back) and nothing here needs a display, a network or a file
outside the installation.

The sample is built in, not shipped: a face drawn by the bundle's own
generator from a fixed z, upscaled to photo size (MTCNN misses 64 px faces)
and round-tripped through JPEG. Its nose-and-mouth region is then *damaged*
with noise before the repair, so a repair that changes nothing fails the test.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Callable, TextIO

import numpy as np

# A z whose face MTCNN finds with confidence 0.9996 (seeds 0..11 all gave one
# face at >= 0.98; any confident one would do).
SAMPLE_SEED = 3
UPSCALE = 4
# A few steps only: the test proves the search runs and moves the hole toward a
# face, not that the repair is good (bench/completion.py measures quality).
STEPS = 12
RESTARTS = 2
# The repaired hole must be this much closer to the undamaged face than the
# noise was (mean absolute error ratio); a no-op scores 1.0.
MAX_ERROR_RATIO = 0.7
IMAGE_FORMATS = ("jpeg", "png", "webp", "tiff")
EXIT_OK, EXIT_FAILED = 0, 1


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


class SelfTestFailure(Exception):
    """A check ran and its result was wrong (as opposed to crashing)."""


def _timed(name: str, fn: Callable[[], str], checks: list[Check]) -> bool:
    t = time.perf_counter()
    try:
        detail, ok = fn(), True
    except SelfTestFailure as exc:
        detail, ok = str(exc), False
    except Exception as exc:  # any crash is a failed installation; say what and where
        last = traceback.extract_tb(exc.__traceback__)[-1]
        detail = f"{type(exc).__name__}: {exc} ({os.path.basename(last.filename)}:{last.lineno})"
        ok = False
    checks.append(Check(name, ok, detail, time.perf_counter() - t))
    return ok


def _check_window() -> str:
    """Qt starts on the offscreen platform, reads every format we open, plays
    audio, and the main window builds and shows (no model loading: that is
    the next check)."""
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QImageReader

    # Never read or write the user's real settings from a test.
    settings_dir = tempfile.mkdtemp(prefix="facemend-selftest-")
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, settings_dir)
    from gui.app import make_app
    from gui.main_window import MainWindow

    app = make_app([sys.argv[0] if sys.argv else "facemend"])
    readable = {bytes(f).decode() for f in QImageReader.supportedImageFormats()}
    missing = [f for f in IMAGE_FORMATS if f not in readable]
    if missing:
        raise SelfTestFailure(f"Qt cannot read {', '.join(missing)} (imageformats plugins missing)")
    # Narration plays audio through QtMultimedia's FFmpeg plugin: with the
    # plugin missing, the list of decodable formats comes back empty.
    from PySide6.QtMultimedia import QMediaFormat

    decodable = QMediaFormat().supportedFileFormats(QMediaFormat.ConversionMode.Decode)
    if not decodable:
        raise SelfTestFailure("QtMultimedia decodes no audio format (multimedia plugin missing)")
    window = MainWindow(background=False)
    window.show()
    app.processEvents()
    if not window.isVisible():
        raise SelfTestFailure("the main window did not show")
    window.hide()
    window.deleteLater()
    app.processEvents()
    return (f"platform {app.platformName()}, reads {' '.join(IMAGE_FORMATS)}, "
            f"{len(decodable)} audio formats, main window shown")


def _make_sample(model) -> tuple[np.ndarray, "object"]:
    """The built-in photo: a generator face, upscaled, JPEG round-tripped."""
    import cv2
    from PIL import Image

    from core.imageio import load_image
    from core.model_build import to_uint8

    z = np.random.default_rng(SAMPLE_SEED).standard_normal((1, model.z_dim)).astype(np.float32)
    face = to_uint8(model.generator(z, training=False).numpy()[0])
    big = cv2.resize(face, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="JPEG", quality=95)
    photo = load_image(buf.getvalue())
    return photo.rgb, photo


def _damage_mask(landmarks, shape) -> np.ndarray:
    """Nose to chin between the mouth corners, widened: the damage to repair."""
    lm = np.asarray(landmarks, np.float64)
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = lm
    eye_dist = max(rx - lx, 1.0)
    x0, x1 = int(mlx - 0.15 * eye_dist), int(mrx + 0.15 * eye_dist)
    y0, y1 = int(ny - 0.1 * eye_dist), int(max(mly, mry) + 0.25 * eye_dist)
    mask = np.zeros(shape, bool)
    mask[max(y0, 0):min(y1, shape[0]), max(x0, 0):min(x1, shape[1])] = True
    return mask


def run_self_test(out: TextIO | None = None) -> int:
    """Run every check, print one line each and a verdict; 0 if all passed."""
    out = out or sys.stdout
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t_start = time.perf_counter()
    checks: list[Check] = []
    state: dict = {}

    def model_check() -> str:
        from core import bundle as bundles
        from core.model import load_model

        folder = bundles.find_bundle()
        state["model"] = model = load_model(folder, verify=True)
        return f"{model.ref} from {folder}"

    def sample_check() -> str:
        original, photo = _make_sample(state["model"])
        state["original"] = original
        return f"{original.shape[1]}x{original.shape[0]} generator face (seed {SAMPLE_SEED}), JPEG round trip"

    def detect_check() -> str:
        from core.faces import default_detector
        from core.repair import detect_faces

        faces = detect_faces(state["original"], default_detector())
        if not faces:
            raise SelfTestFailure("MTCNN found no face in the built-in sample")
        state["faces"] = faces
        return f"{len(faces)} face(s), confidence {faces[0].confidence:.3f} (mtcnn weights loaded)"

    def repair_check() -> str:
        from core.api import CompletionSettings, RepairRequest
        from core.complete import LocalCompleter
        from core.imageio import photo_from_array
        from core.repair import SEAM_DILATION_PX, dilate, repair

        model, original = state["model"], state["original"]
        mask = _damage_mask(state["faces"][0].landmarks, original.shape[:2])
        damaged = original.copy()
        rng = np.random.default_rng(0)
        damaged[mask] = rng.integers(0, 256, (int(mask.sum()), 3), dtype=np.uint8)
        request = RepairRequest(photo_from_array(damaged), mask=mask,
                                settings=CompletionSettings(steps=STEPS, restarts=RESTARTS, seed=0))
        completer = LocalCompleter(model)
        result = repair(request, completer, model.info, faces=state["faces"])
        repaired = result.image
        if repaired.shape != damaged.shape or repaired.dtype != np.uint8:
            raise SelfTestFailure(f"result is {repaired.shape} {repaired.dtype}, input {damaged.shape} uint8")
        if not all(np.isfinite(loss) for loss in result.losses):
            raise SelfTestFailure(f"non-finite loss {result.losses}")
        outside = ~dilate(mask, SEAM_DILATION_PX)
        changed_outside = int(np.any(repaired[outside] != damaged[outside], axis=-1).sum())
        if changed_outside:
            raise SelfTestFailure(f"{changed_outside} pixels outside the mask changed")
        changed_inside = float(np.any(repaired[mask] != damaged[mask], axis=-1).mean())
        if changed_inside < 0.9:
            raise SelfTestFailure(f"only {changed_inside:.0%} of the hole changed")
        err_before = float(np.abs(damaged[mask].astype(float) - original[mask]).mean())
        err_after = float(np.abs(repaired[mask].astype(float) - original[mask]).mean())
        if not err_after < MAX_ERROR_RATIO * err_before:
            raise SelfTestFailure(f"hole error {err_after:.1f} vs {err_before:.1f} for the noise: not repaired")
        return (f"{int(mask.sum())} px hole, {STEPS} steps on {result.device}: error {err_before:.1f} -> "
                f"{err_after:.1f}, outside the mask unchanged")

    stages = [("window", _check_window), ("model", model_check), ("sample", sample_check),
              ("detect", detect_check), ("repair", repair_check)]
    for name, fn in stages:
        if not _timed(name, fn, checks):
            break  # later checks need this one's result
    for c in checks:
        print(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<7} {c.detail} ({c.seconds:.1f} s)", file=out)
    ok = len(checks) == len(stages) and all(c.ok for c in checks)
    frozen = "frozen" if getattr(sys, "frozen", False) else "source"
    verdict = "passed" if ok else "FAILED"
    print(f"facemend self-test {verdict} ({frozen}, {time.perf_counter() - t_start:.1f} s)", file=out, flush=True)
    return EXIT_OK if ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(run_self_test())
