"""The completion engine on the real model, small inputs, few steps."""

import numpy as np
import pytest

from core.api import CancelToken, CompletionRequest, CompletionSettings
from core.blend import membrane_blend, poisson_blend
from core.complete import LocalCompleter, weighted_context_mask
from core.errors import BadInputError, CancelledError, UsageError
from core.model_build import sample_faces


def psnr(a, b, mask):
    d = a[mask].astype(np.float64) - b[mask].astype(np.float64)
    return 10 * np.log10(255.0**2 / max(np.mean(d**2), 1e-12))


@pytest.fixture(scope="module")
def completer(face_model):
    return LocalCompleter(face_model)


@pytest.fixture(scope="module")
def damaged(face_model):
    """A held-out generator face whose center hole really is damaged (noise)."""
    faces, _ = sample_faces(face_model.generator, 1, seed=10_000_077)
    original = faces[0]
    hole = np.zeros((64, 64), bool)
    hole[16:48, 16:48] = True
    y = original.copy()
    y[hole] = np.random.default_rng(5).integers(0, 256, size=(int(hole.sum()), 3), dtype=np.uint8)
    return original, y, hole


def _run(completer, y, hole, **kw):
    return completer.complete(CompletionRequest(y, hole, CompletionSettings(**kw)))


def test_known_pixels_are_returned_exactly(completer, damaged):
    _, y, hole = damaged
    r = _run(completer, y, hole, steps=5, restarts=2)
    assert np.array_equal(r.candidates[0].image[~hole], y[~hole])


def test_fill_is_much_closer_to_the_original_than_the_damage(completer, damaged):
    original, y, hole = damaged
    r = _run(completer, y, hole, steps=40, restarts=2)
    damaged_psnr = psnr(y, original, hole)
    repaired_psnr = psnr(r.candidates[0].image, original, hole)
    assert repaired_psnr > damaged_psnr + 10, (repaired_psnr, damaged_psnr)


def test_same_seed_gives_identical_result(completer, damaged):
    _, y, hole = damaged
    a = _run(completer, y, hole, steps=6, restarts=3, seed=11)
    b = _run(completer, y, hole, steps=6, restarts=3, seed=11)
    assert np.array_equal(a.candidates[0].image, b.candidates[0].image)
    assert a.candidates[0].loss == b.candidates[0].loss


def test_candidates_are_ranked_best_first(completer, damaged):
    _, y, hole = damaged
    r = _run(completer, y, hole, steps=6, restarts=4, candidates=3)
    losses = [c.loss for c in r.candidates]
    assert len(losses) == 3 and losses == sorted(losses)


def test_result_reports_model_device_and_steps(completer, damaged, face_model):
    _, y, hole = damaged
    r = _run(completer, y, hole, steps=4, restarts=1)
    assert r.model == face_model.ref
    assert r.device in ("CPU",) or r.device.startswith("GPU")
    assert 1 <= r.steps_run <= 4 and r.seconds > 0


def test_progress_reports_every_step_and_previews(completer, damaged):
    _, y, hole = damaged
    seen = []
    completer.complete(CompletionRequest(y, hole, CompletionSettings(steps=10, restarts=1)),
                       progress=lambda s, t, loss, p: seen.append((s, t, loss, p)))
    assert [s for s, *_ in seen] == list(range(1, 11))
    previews = [p for *_, p in seen if p is not None]
    assert previews and previews[-1].shape == (64, 64, 3) and previews[-1].dtype == np.uint8


def test_cancel_stops_the_search(completer, damaged):
    _, y, hole = damaged
    token = CancelToken()
    steps = []

    def progress(step, total, loss, preview):
        steps.append(step)
        if step == 2:
            token.cancel()

    with pytest.raises(CancelledError):
        completer.complete(CompletionRequest(y, hole, CompletionSettings(steps=500, restarts=1)), progress, token)
    assert steps[-1] == 2


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.zeros((64, 64), bool), "empty"),
        (np.ones((64, 64), bool), "whole face"),
        (np.ones((32, 32), bool), "64x64"),
    ],
)
def test_bad_masks_are_refused_clearly(completer, damaged, mask, message):
    _, y, _ = damaged
    with pytest.raises(BadInputError, match=message):
        completer.complete(CompletionRequest(y, mask))


def test_settings_out_of_range_are_usage_errors():
    with pytest.raises(UsageError, match="candidates"):
        CompletionSettings(candidates=9, restarts=9).validated()
    with pytest.raises(UsageError, match="cannot exceed restarts"):
        CompletionSettings(candidates=3, restarts=2).validated()


def test_weighted_context_mask_favours_pixels_next_to_the_hole():
    known = np.ones((64, 64), bool)
    known[16:48, 16:48] = False
    w = weighted_context_mask(known, window=7, floor=0.2)
    assert w[~known].max() == 0
    assert w[15, 32] > w[2, 32] > 0  # edge of the hole > far context > 0
    assert abs(w[known].mean() - 1) < 1e-5


def test_poisson_blend_reproduces_a_smooth_target_from_shifted_gradients():
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    target = np.stack([xx * 2, yy * 3, xx + yy], -1)
    source = target + 40.0  # right gradients, wrong level: the blend must fix the level
    hole = np.zeros((64, 64), bool)
    hole[10:50, 0:30] = True  # touches the image edge
    out = poisson_blend(source, target, hole)
    assert np.array_equal(out[~hole], target[~hole])
    assert np.abs(out[hole] - target[hole]).max() < 0.05


def test_membrane_blend_meets_the_photo_at_the_border_of_a_large_hole():
    photo = np.full((600, 800, 3), 100.0)
    fill = np.full((600, 800, 3), 160.0)
    hole = np.zeros((600, 800), bool)
    hole[100:500, 200:700] = True
    out = membrane_blend(fill, photo, hole)
    assert abs(out[100, 450, 0] - 100) < 3  # at the border: the photo's level
    assert abs(out[300, 450, 0] - 100) < 3  # constant offset: the membrane is flat


def test_drift_score_warns_on_a_non_face_but_not_on_a_face(completer, damaged):
    import cv2
    import skimage.data

    original, _, hole = damaged
    texture = cv2.resize(skimage.data.coffee()[:300, :300], (64, 64), interpolation=cv2.INTER_AREA)
    face = _run(completer, original, hole, steps=1, restarts=1)
    other = _run(completer, texture, hole, steps=1, restarts=1)
    assert not face.ood_warning and other.ood_warning
    assert other.ood_score > face.ood_score


def test_critic_prior_scores_every_restart_and_keeps_the_context(completer, damaged, face_model):
    assert face_model.critic is not None
    _, y, hole = damaged
    plain = _run(completer, y, hole, steps=3, restarts=3, candidates=3, use_critic=False)
    prior = _run(completer, y, hole, steps=3, restarts=3, candidates=3, use_critic=True, prior_weight=0.05)
    assert all(np.array_equal(c.image[~hole], y[~hole]) for c in prior.candidates)
    # -log C(composite) > 0 is added to every restart's loss.
    assert min(c.loss for c in prior.candidates) > min(c.loss for c in plain.candidates)
