"""Photo-level repair: detect, align, complete each face, paste back.

Only pixels inside the (slightly dilated) mask change; everything else is
bit-identical to the input, at its native depth (core.imageio.merge_repair).
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from core import align
from core.api import (
    CancelToken,
    CompletionRequest,
    Completer,
    FaceRepair,
    ProgressCallback,
    RepairRequest,
    RepairResult,
)
from core.blend import membrane_blend
from core.bundle import BundleInfo
from core.errors import BadInputError, UsageError
from core.faces import Face, FaceDetector
from core.imageio import merge_repair
from core.masks import preset_mask, validate_mask

# The seam falls this many photo pixels outside the painted mask, on sound
# pixels, where the blend can match the surroundings.
SEAM_DILATION_PX = 2


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    if px <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def detect_faces(photo_rgb: np.ndarray, detector: FaceDetector) -> list[Face]:
    return [f for f in detector.detect(photo_rgb) if f.landmarks is not None]


def plan_faces(request: RepairRequest, mask: np.ndarray | None, faces: list[Face], bundle: BundleInfo, shape):
    """Which faces to complete, each as (index, face, alignment, photo-frame
    mask); and, for a painted `mask`, the photo pixels the planned faces' crops
    cover (None for presets), so masked pixels outside them can be found
    without warping each face region a second time."""
    if not faces:
        raise BadInputError("no face found in the photo")
    template = np.asarray(bundle.landmark_template)
    size = bundle.image_size
    indices = range(len(faces))
    if request.face_index is not None:
        if not 0 <= request.face_index < len(faces):
            raise UsageError(f"--face {request.face_index}: the photo has {len(faces)} face(s), indices 0..{len(faces) - 1}")
        indices = [request.face_index]
    plan = []
    covered = None if mask is None else np.zeros(shape, bool)
    for i in indices:
        al = align.compute_alignment(faces[i].landmarks, template, size, shape)
        if mask is None:
            amask = preset_mask(request.mask_type, size, template, seed=request.settings.seed)
            pmask = align.aligned_mask_to_photo(amask, al)
        else:
            region = align.face_region_in_photo(al)
            pmask = mask & region
            if pmask.any():
                covered |= region
        if pmask.any():
            plan.append((i, faces[i], al, pmask))
    if not plan:
        which = f"face {request.face_index}" if request.face_index is not None else "every detected face"
        raise BadInputError(f"the mask lies outside {which}; paint over the damaged part of a face")
    return plan, covered


def repair(
    request: RepairRequest,
    completer: Completer,
    bundle: BundleInfo,
    detector: FaceDetector | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    faces: list[Face] | None = None,
) -> RepairResult:
    """Repair one photo. `faces` skips detection (e.g. the GUI already has them)."""
    t_start = time.perf_counter()
    photo = request.photo
    rgb = photo.rgb
    h, w = rgb.shape[:2]
    seconds = {"load": 0.0, "detect": 0.0, "complete": 0.0, "blend": 0.0}
    if (request.mask is None) == (request.mask_type is None):
        raise UsageError("give exactly one of a mask and a mask type")
    mask = None
    if request.mask is not None:
        mask = np.asarray(request.mask)
        # Any non-zero value is "fill", whatever the dtype a caller painted with.
        mask = validate_mask(mask if mask.dtype == np.bool_ else mask != 0, (h, w))
    size = bundle.image_size
    notes: list[str] = []

    if request.aligned:
        if (h, w) != (size, size):
            raise BadInputError(f"--aligned needs a {size}x{size} crop aligned to {bundle.ref}; this image is {w}x{h}")
        amask = mask if mask is not None else preset_mask(
            request.mask_type, size, np.asarray(bundle.landmark_template), seed=request.settings.seed)
        identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        al = align.Alignment(identity, identity, size, (h, w))
        plan = [(0, Face((0.0, 0.0, float(w), float(h)), 1.0, tuple(map(tuple, bundle.landmark_template))), al, amask)]
        covered = None
    else:
        if faces is None:
            if detector is None:
                from core.faces import default_detector

                detector = default_detector()
            t = time.perf_counter()
            faces = detect_faces(rgb, detector)
            seconds["detect"] = time.perf_counter() - t
        plan, covered = plan_faces(request, mask, faces, bundle, (h, w))

    repairs: list[FaceRepair] = []
    total_steps = request.settings.steps * len(plan)
    for n, (index, face, al, pmask) in enumerate(plan):
        if request.aligned:
            crop, amask = rgb.copy(), pmask
        else:
            crop = align.warp_to_aligned(rgb, al)
            amask = align.warp_mask_to_aligned(pmask, al)
        if not amask.any():
            continue
        if amask.all():
            raise BadInputError(f"the mask covers all of face {index}: nothing left to complete from")

        def face_progress(step, total, loss, preview, _offset=n * request.settings.steps):
            if progress is not None:
                progress(_offset + step, total_steps, loss, preview)

        t = time.perf_counter()
        result = completer.complete(CompletionRequest(crop, amask, request.settings), face_progress, cancel)
        seconds["complete"] += time.perf_counter() - t
        notes.extend(n for n in result.notes if n not in notes)  # e.g. a backend fallback
        if result.ood_warning:
            notes.append(
                f"face {index} looks unlike the faces {result.model} was trained on "
                f"(drift score {result.ood_score:.2f}); the repair may be poor (not a face, extreme pose or lighting?)"
            )
        repairs.append(FaceRepair(index, face, crop, amask, result))
    if not repairs:
        raise BadInputError("the mask is too thin to reach any face pixel at the model's resolution")

    t = time.perf_counter()
    n_candidates = min(len(r.completion.candidates) for r in repairs)
    plan_by_index = {p[0]: p for p in plan}
    # Where each face's fill is pasted: its mask, plus the seam ring outside it.
    # Computed once; the candidates loop below reuses them.
    pastes = {}
    for r in repairs:
        pmask = plan_by_index[r.index][3]
        pastes[r.index] = pmask if request.aligned else dilate(pmask, SEAM_DILATION_PX)
    union = np.zeros((h, w), bool)
    for paste in pastes.values():
        union |= paste
    outside = None
    if covered is not None:
        outside = mask & ~covered
        if outside.any():
            notes.append(f"{int(outside.sum())} masked pixels lie outside every face; filled with classical inpainting (Telea)")
            union |= outside
    candidates, losses = [], []
    for k in range(n_candidates):
        out = rgb.astype(np.float64)
        for r in repairs:
            al = plan_by_index[r.index][2]
            paste = pastes[r.index]
            cand = r.completion.candidates[k].image
            if request.aligned:
                out[paste] = cand[paste]
                continue
            x0, y0, x1, y1 = align.mask_bbox(paste, pad=4)
            window = out[y0:y1, x0:x1]
            win_paste = paste[y0:y1, x0:x1]
            fill = align.warp_to_photo(cand.astype(np.float64), al, roi=(x0, y0, x1, y1))
            fill = membrane_blend(fill, window, win_paste)
            window[win_paste] = fill[win_paste]
        out8 = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        if outside is not None and outside.any():
            out8 = cv2.inpaint(out8, outside.astype(np.uint8), 5, cv2.INPAINT_TELEA)
        candidates.append(merge_repair(photo, out8, union))
        losses.append(float(sum(r.completion.candidates[k].loss for r in repairs)))
    seconds["blend"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_start
    first = repairs[0].completion
    return RepairResult(
        candidates=candidates,
        losses=losses,
        faces=repairs,
        backend=getattr(completer, "backend", "unknown"),
        device=first.device,
        model=first.model,
        seconds=seconds,
        notes=notes,
    )
