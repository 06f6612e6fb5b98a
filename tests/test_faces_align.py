"""Face detection and alignment on real photos (tests/data/photos, see LICENSES.md).

Face counts were checked by eye once on each photo. MTCNN runs on CPU at
~0.5 s per photo, so every detection is computed once per module.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest

from core import align
from core.bundle import find_bundle, read_manifest

PHOTOS = Path(__file__).parent / "data" / "photos"
# Counted by eye: every face in these photos is frontal enough to be found.
FACE_COUNTS = {"faceapi_sample1": 3, "faceapi_sample4": 4, "faceapi_sample6": 4}
# Heads in sample6 are tilted at most ~15 degrees, so +-25 more stays inside
# the roll range an upright-face detector is expected to handle.
ROTATION_PHOTO = "faceapi_sample6"
TEMPLATE = np.asarray(read_manifest(find_bundle()).landmark_template, np.float64)
SIZE = 64
# Template eye positions vary by ~1.5 px (median abs deviation) over the
# generator's own faces; 3 px is "the eyes are where the model draws them".
EYE_TOLERANCE_PX = 3.0
# A 40 px face is upsampled ~1.6x into the crop, so each photo pixel of
# landmark noise costs 1.6 aligned pixels (measured worst: 2.5 px).
SMALL_FACE_EYE_TOLERANCE_PX = 4.0


def _read_rgb(name: str) -> np.ndarray:
    bgr = cv2.imread(str(PHOTOS / f"{name}.jpg"), cv2.IMREAD_COLOR)
    assert bgr is not None, f"missing test photo {name}.jpg"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _rotation(shape, degrees: float) -> tuple[np.ndarray, tuple[int, int]]:
    """2x3 matrix rotating a photo about its centre onto a canvas that holds all of it."""
    h, w = shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = round(h * sin + w * cos), round(h * cos + w * sin)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return m, (nw, nh)


def _apply(m: np.ndarray, points) -> np.ndarray:
    p = np.asarray(points, np.float64)
    return p @ m[:, :2].T + m[:, 2]


def _rotate(rgb: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotated photo and the 2x3 matrix taking original pixels to rotated ones."""
    h, w = rgb.shape[:2]
    if degrees == 90:  # clockwise, lossless
        return np.ascontiguousarray(np.rot90(rgb, -1)), np.array([[0.0, -1.0, h - 1], [1.0, 0.0, 0.0]])
    if degrees == 180:
        return np.ascontiguousarray(rgb[::-1, ::-1]), np.array([[-1.0, 0.0, w - 1], [0.0, -1.0, h - 1]])
    m, (nw, nh) = _rotation(rgb.shape, degrees)
    return cv2.warpAffine(rgb, m, (nw, nh), flags=cv2.INTER_CUBIC, borderValue=(0, 0, 0)), m


class _Detections:
    """Detections computed on first use and kept for the whole module."""

    def __init__(self):
        from core.faces import default_detector

        self.detector = default_detector()
        self._cache = {}

    def photo(self, name):
        return self.get((name,), lambda: _read_rgb(name))

    def rotated(self, name, degrees):
        # Quarter turns are what the orientation search is for; ask for it.
        return self.get((name, "rot", degrees), lambda: _rotate(_read_rgb(name), degrees), any_orientation=degrees % 90 == 0)

    def scaled(self, name, factor):
        def make():
            rgb = _read_rgb(name)
            h, w = rgb.shape[:2]
            return cv2.resize(rgb, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)

        return self.get((name, "scale", factor), make)

    def get(self, key, make, any_orientation=False):
        """(image, faces) for key; image may be an (image, matrix) tuple."""
        if key not in self._cache:
            made = make()
            image = made[0] if isinstance(made, tuple) else made
            self._cache[key] = (made, self.detector.detect(image, any_orientation=any_orientation))
        return self._cache[key]


@pytest.fixture(scope="module")
def detections():
    return _Detections()


def _nearest(faces, points):
    """The face whose landmarks are closest to the given 5 points."""
    return min(faces, key=lambda f: np.linalg.norm(np.asarray(f.landmarks) - points, axis=1).mean())


def _eye_error_after_alignment(face, true_landmarks, shape) -> float:
    """Worst distance (aligned px) from the template eyes to where this face's
    alignment puts the true eyes."""
    a = align.compute_alignment(face.landmarks, TEMPLATE, SIZE, shape[:2])
    return float(np.linalg.norm(_apply(a.matrix, true_landmarks[:2]) - TEMPLATE[:2], axis=1).max())


# --- detection ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FACE_COUNTS))
def test_detector_finds_every_face_in_the_photo(detections, name):
    _, faces = detections.photo(name)
    assert len(faces) == FACE_COUNTS[name]


@pytest.mark.parametrize("name", sorted(FACE_COUNTS))
def test_each_face_has_five_landmarks_inside_its_box(detections, name):
    _, faces = detections.photo(name)
    for face in faces:
        x, y, w, h = face.box
        assert face.landmarks is not None and len(face.landmarks) == 5
        for px, py in face.landmarks:
            assert x <= px <= x + w and y <= py <= y + h
        left_eye, right_eye = face.landmarks[0], face.landmarks[1]
        assert left_eye[0] < right_eye[0], "left_eye is the viewer's left on an upright face"


def test_faces_in_a_group_photo_are_separate_and_sorted_by_confidence(detections):
    _, faces = detections.photo("faceapi_sample4")
    assert [f.confidence for f in faces] == sorted((f.confidence for f in faces), reverse=True)
    for i, a in enumerate(faces):
        for b in faces[i + 1 :]:
            ax, ay, aw, ah = a.box
            bx, by, bw, bh = b.box
            overlap_w = min(ax + aw, bx + bw) - max(ax, bx)
            overlap_h = min(ay + ah, by + bh) - max(ay, by)
            assert overlap_w <= 0 or overlap_h <= 0, "two detections of the same face"


def test_small_faces_of_about_40_px_are_found(detections):
    name = ROTATION_PHOTO
    _, upright = detections.photo(name)
    factor = 40.0 / np.median([f.box[2] for f in upright])
    small, faces = detections.scaled(name, factor)
    assert len(faces) == FACE_COUNTS[name]
    for face in faces:
        assert 25 <= face.box[2] <= 60
        true = _nearest(upright, np.asarray(face.landmarks) / factor)
        assert _eye_error_after_alignment(face, np.asarray(true.landmarks) * factor, small.shape) < SMALL_FACE_EYE_TOLERANCE_PX


# --- alignment of rotated photos -----------------------------------------------


def _assert_rotated_photo_aligns(detections, degrees):
    name = ROTATION_PHOTO
    _, upright = detections.photo(name)
    (rotated, m), faces = detections.rotated(name, degrees)
    assert len(faces) == len(upright)
    for true_face in upright:
        # Ground truth: the upright detection, carried into the rotated photo.
        true = _apply(m, true_face.landmarks)
        face = _nearest(faces, true)
        assert _eye_error_after_alignment(face, true, rotated.shape) < EYE_TOLERANCE_PX


@pytest.mark.parametrize("degrees", [25, -25])
def test_photo_rotated_by_25_degrees_still_aligns_eyes_to_template(detections, degrees):
    _assert_rotated_photo_aligns(detections, degrees)


@pytest.mark.parametrize("degrees", [90, 180])
def test_photo_rotated_by_quarter_turns_still_aligns_eyes_to_template(detections, degrees):
    _assert_rotated_photo_aligns(detections, degrees)


def test_aligned_crop_puts_the_eyes_on_the_template(detections):
    """Detecting again inside the (upscaled) aligned crop finds the eyes where
    the template says: the warp, not just the matrix, is right."""
    rgb, faces = detections.photo(ROTATION_PHOTO)
    for face in faces:
        a = align.compute_alignment(face.landmarks, TEMPLATE, SIZE, rgb.shape[:2])
        crop = align.warp_to_aligned(rgb, a)
        up = 4  # MTCNN misses 64 px faces; the bundle's template was measured the same way
        upscaled = cv2.resize(crop, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC)
        again = detections.detector.detect(upscaled)
        assert again, "no face found in the aligned crop"
        eyes = np.asarray(again[0].landmarks[:2]) / up
        assert np.linalg.norm(eyes - TEMPLATE[:2], axis=1).max() < EYE_TOLERANCE_PX


# --- geometry --------------------------------------------------------------------


def test_similarity_transform_recovers_a_known_similarity_exactly():
    rng = np.random.default_rng(7)
    src = rng.uniform(0, 500, size=(5, 2))
    angle, scale, t = np.radians(-37.0), 0.31, np.array([12.5, -40.25])
    r = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    known = np.hstack([scale * r, t[:, None]])
    m = align.similarity_transform(src, _apply(known, src))
    np.testing.assert_allclose(m, known, atol=1e-9)


def test_similarity_transform_never_reflects():
    """Mirror-image landmarks (eyes swapped) must not be fitted by a flip: a
    reflection would hand the model a mirrored face."""
    src = TEMPLATE.copy()
    mirrored = src * [-1, 1]
    m = align.similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_alignment_scale_is_aligned_pixels_per_photo_pixel(detections):
    rgb, faces = detections.photo("faceapi_sample1")
    face = faces[0]
    a = align.compute_alignment(face.landmarks, TEMPLATE, SIZE, rgb.shape[:2])
    eyes_photo = np.linalg.norm(np.subtract(face.landmarks[1], face.landmarks[0]))
    eyes_template = np.linalg.norm(TEMPLATE[1] - TEMPLATE[0])
    assert a.scale == pytest.approx(eyes_template / eyes_photo, rel=0.1)


def _psnr(a, b, region) -> float:
    err = ((a.astype(np.float64) - b.astype(np.float64)) ** 2)[region].mean()
    return float(10 * np.log10(255.0**2 / err))


def _face_region(a: align.Alignment) -> np.ndarray:
    # Erode so the edge of the crop (replicated border, half-covered pixels) is not scored.
    return cv2.erode(align.face_region_in_photo(a).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


# Measured on the 11 faces of the three photos (aligned scale 0.41-0.56, so a
# 64 px crop holds about half the photo's resolution): round trip 30.7-40.7 dB.
# The same round trip with the crop misregistered by one aligned pixel scores
# 20.6-26.9 dB, so 29 dB separates "pasted back in place" from "off by a pixel".
ROUND_TRIP_MIN_PSNR_DB = 29.0


@pytest.mark.parametrize("name", sorted(FACE_COUNTS))
def test_warp_to_aligned_then_back_to_photo_round_trips_the_face(detections, name):
    rgb, faces = detections.photo(name)
    for face in faces:
        a = align.compute_alignment(face.landmarks, TEMPLATE, SIZE, rgb.shape[:2])
        back = align.warp_to_photo(align.warp_to_aligned(rgb, a), a)
        assert back.shape == rgb.shape
        assert _psnr(rgb, back, _face_region(a)) > ROUND_TRIP_MIN_PSNR_DB


def test_round_trip_psnr_threshold_catches_a_one_pixel_misregistration(detections):
    rgb, faces = detections.photo(ROTATION_PHOTO)
    for face in faces:
        a = align.compute_alignment(face.landmarks, TEMPLATE, SIZE, rgb.shape[:2])
        shifted = np.roll(align.warp_to_aligned(rgb, a), 1, axis=1)
        assert _psnr(rgb, align.warp_to_photo(shifted, a), _face_region(a)) < ROUND_TRIP_MIN_PSNR_DB


def _a_face_alignment(detections):
    rgb, faces = detections.photo("faceapi_sample1")
    face = faces[0]
    return face, align.compute_alignment(face.landmarks, TEMPLATE, SIZE, rgb.shape[:2])


def test_photo_mask_keeps_its_area_in_the_aligned_frame(detections):
    face, a = _a_face_alignment(detections)
    h, w = a.photo_shape
    mask = np.zeros((h, w), np.uint8)
    x, y, bw, bh = face.box
    cv2.ellipse(mask, (int(x + bw / 2), int(y + bh / 2)), (int(bw / 4), int(bh / 6)), 0, 0, 360, 1, -1)
    aligned = align.warp_mask_to_aligned(mask > 0, a)
    ratio = aligned.sum() / (mask.sum() * a.scale**2)
    # A pixel is marked if any part of it is damaged, so the aligned mask may
    # only grow, and by its one-pixel rim (~15 % for this ~25x20 px blob).
    assert 1.0 <= ratio <= 1.3


def test_aligned_mask_keeps_its_area_in_the_photo(detections):
    _, a = _a_face_alignment(detections)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[36:50, 20:44] = True  # the mouth region
    photo = align.aligned_mask_to_photo(mask, a)
    assert photo.shape == a.photo_shape
    assert photo.sum() * a.scale**2 / mask.sum() == pytest.approx(1.0, abs=0.05)


def test_mask_round_trip_through_the_photo_frame_covers_the_same_pixels(detections):
    _, a = _a_face_alignment(detections)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[20:36, 14:50] = True
    again = align.warp_mask_to_aligned(align.aligned_mask_to_photo(mask, a), a)
    assert again[mask].all(), "a damaged pixel was lost on the way"
    assert (again & ~mask).sum() <= 0.25 * mask.sum()
