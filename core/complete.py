"""Semantic inpainting by latent search (Yeh et al. 2017, "Semantic Image
Inpainting with Deep Generative Models").

    z* = argmin_z  L_context(z) + λ L_prior(z)
    L_context = Σ W ⊙ |G(z) - y|            (known pixels, weighted near the hole)
    L_prior   = -log C(M ⊙ y + (1-M) ⊙ G(z), hole)   (the bundle's critic)

then the hole is filled with G(z*) and Poisson-blended into y. All restarts
search together as one batch. Names follow the paper: y the damaged image,
M the known-pixel mask, W the weighted context mask, λ `prior_weight`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from core.api import (
    CancelToken,
    Candidate,
    CompletionRequest,
    CompletionResult,
    CompletionSettings,
    ProgressCallback,
)
from core.blend import poisson_blend
from core.errors import BadInputError, CancelledError
from core.lazy_tf import tf
from core.model import FaceModel
from core.model_build import to_float, to_uint8
from core.ood import projection_score


@dataclass(frozen=True)
class SearchTuning:
    """Internals of the search that users don't set; chosen by bench/completion.py."""

    learning_rate: float = 0.05
    jitter: float = 0.5  # std of the noise added to the encoder's z for restarts 1..n-1
    window: int = 7  # neighbourhood of the weighted context mask (paper: 7)
    context_floor: float = 0.2  # weight of known pixels far from the hole (paper: 0)
    z_prior_weight: float = 0.0  # |z|^2 penalty; used instead of a missing critic
    patience: int = 25  # early stop after this many steps without 0.1 % improvement
    preview_every: int = 10


def weighted_context_mask(known: np.ndarray, window: int, floor: float) -> np.ndarray:
    """W of the paper: a known pixel's weight is the fraction of unknown pixels in
    its window (so pixels at the hole's edge count most); `floor` keeps some
    weight on far context, which the paper's W drops entirely. Normalised to
    mean 1 over known pixels so λ does not depend on the hole's size."""
    unknown = (~known).astype(np.float32)
    frac = cv2.blur(unknown, (window, window), borderType=cv2.BORDER_REFLECT)
    w = known * (floor + (1 - floor) * frac)
    s = w.sum()
    return (w * (known.sum() / s) if s > 0 else w).astype(np.float32)


def device_name() -> str:
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        try:
            details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            return f"GPU:0 ({details.get('device_name', 'CUDA')})"
        except Exception:  # details are best effort; the device itself is what matters
            return "GPU:0"
    return "CPU"


class LocalCompleter:
    """Runs the search in-process: on the GPU when TensorFlow sees one, else CPU.

    One instance per loaded model; the traced search step is cached per
    (restarts, use_critic) so a batch of photos pays tracing once.
    """

    def __init__(self, model: FaceModel, tuning: SearchTuning | None = None):
        self.model = model
        self.tuning = tuning or SearchTuning()
        self.device = device_name()
        self.backend = "gpu" if self.device.startswith("GPU") else "cpu"
        self._steps = {}

    # -- the search step -------------------------------------------------
    def _step_fn(self, use_critic: bool, z_prior_weight: float):
        key = (use_critic, z_prior_weight)
        if key in self._steps:
            return self._steps[key]
        gen, critic = self.model.generator, self.model.critic
        dim = float(self.model.z_dim)

        @tf.function(reduce_retracing=True)
        def step(z, opt_vars, y, known, w, hole, lam, lr, t):
            m_adam, v_adam = opt_vars
            with tf.GradientTape() as tape:
                tape.watch(z)
                g = gen(z, training=False)
                context = tf.reduce_mean(w * tf.abs(g - y), axis=[1, 2, 3])
                loss = context
                prior = tf.zeros_like(context)
                if use_critic:
                    composite = known * y + (1.0 - known) * g
                    holes = tf.repeat(hole, tf.shape(g)[0], axis=0)  # one context, every restart
                    logits = critic([composite, holes], training=False)[:, 0]
                    prior = tf.nn.softplus(-logits)  # -log C(composite)
                    loss = loss + lam * prior
                if z_prior_weight > 0:
                    loss = loss + z_prior_weight * tf.reduce_sum(tf.square(z), axis=1) / dim
            grad = tape.gradient(loss, z)
            # Adam, written out so all restarts share one small graph and the
            # state lives in plain tensors (no Keras optimizer per request).
            m_adam = 0.9 * m_adam + 0.1 * grad
            v_adam = 0.999 * v_adam + 0.001 * tf.square(grad)
            m_hat = m_adam / (1.0 - tf.pow(0.9, t))
            v_hat = v_adam / (1.0 - tf.pow(0.999, t))
            z_new = z - lr * m_hat / (tf.sqrt(v_hat) + 1e-8)
            # Keep z out of the prior's far tail: norms of N(0, I) concentrate
            # at sqrt(d) ± 0.7 and beyond ~+3 sigma the generator draws garbage.
            # No lower bound: the encoder's estimate is a posterior mean with a
            # small norm (an "average" face), and pushing it outwards to the
            # shell threw away its fit (measured: hole PSNR fell on real photos).
            norm = tf.norm(z_new, axis=1, keepdims=True)
            hi = tf.sqrt(dim) + 2.1
            z_new = z_new * tf.minimum(norm, hi) / tf.maximum(norm, 1e-6)
            return z_new, (m_adam, v_adam), loss, context, prior, g

        self._steps[key] = step
        return step

    def _encode(self, y: np.ndarray, hole: np.ndarray) -> np.ndarray | None:
        """The encoder's estimate of z for the damaged face, or None without an encoder."""
        if self.model.encoder is None:
            return None
        z0, _ = self.model.encoder([y * (1 - hole), hole], training=False)
        return z0.numpy()[0]

    def _initial_z(self, z0: np.ndarray | None, restarts: int, use_encoder: bool, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        dim = self.model.z_dim
        if use_encoder and z0 is not None:
            noise = rng.standard_normal((restarts, dim)).astype(np.float32) * self.tuning.jitter
            noise[0] = 0.0  # restart 0 is the encoder's own estimate
            return (z0[None, :] + noise).astype(np.float32)
        return rng.standard_normal((restarts, dim)).astype(np.float32)

    def ood_score(self, y: np.ndarray, known: np.ndarray, z0: np.ndarray | None) -> tuple[float, bool]:
        """Input drift (core.ood) and whether it passes the bundle's threshold."""
        if z0 is None:
            return float("nan"), False
        g0 = self.model.generator(z0[None], training=False).numpy()[0]
        score = projection_score(y[0], g0, known)
        return score, self.model.ood is not None and score > self.model.ood.threshold

    # -- public API ------------------------------------------------------
    def complete(
        self,
        request: CompletionRequest,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> CompletionResult:
        s: CompletionSettings = request.settings.validated()
        size = self.model.image_size
        image, hole_mask = request.image, np.asarray(request.mask, bool)
        if image.shape != (size, size, 3) or image.dtype != np.uint8:
            raise BadInputError(f"aligned image must be {size}x{size}x3 uint8, got {image.shape} {image.dtype}")
        if hole_mask.shape != (size, size):
            raise BadInputError(f"aligned mask must be {size}x{size}, got {hole_mask.shape}")
        if not hole_mask.any():
            raise BadInputError("mask is empty: nothing to fill")
        if hole_mask.all():
            raise BadInputError("mask covers the whole face: nothing left to complete from")
        t0 = time.perf_counter()
        tune = self.tuning
        use_critic = bool(s.use_critic and self.model.critic is not None)
        z_prior = tune.z_prior_weight if not use_critic else 0.0
        if not use_critic and self.model.critic is None and s.use_critic:
            z_prior = max(z_prior, 0.01)  # the paper's prior is missing: fall back to a z-prior

        known = ~hole_mask
        y = to_float(image)[None]
        hole = hole_mask.astype(np.float32)[None, :, :, None]
        known_t = known.astype(np.float32)[None, :, :, None]
        w = weighted_context_mask(known, tune.window, tune.context_floor)[None, :, :, None]
        with self.model.lock:
            z0 = self._encode(y, hole)
            z = tf.constant(self._initial_z(z0, s.restarts, s.use_encoder, s.seed))
            ood, ood_warn = self.ood_score(y, known, z0)
            step = self._step_fn(use_critic, float(z_prior))
            opt = (tf.zeros_like(z), tf.zeros_like(z))
            args = [tf.constant(a) for a in (y, known_t, w, hole)]
            lam, lr = tf.constant(s.prior_weight, tf.float32), tf.constant(tune.learning_rate, tf.float32)
            best_loss = np.full(s.restarts, np.inf)
            best_z = z.numpy()
            best_g = None
            stale, global_best, steps_run = 0, np.inf, 0
            for i in range(s.steps):
                if cancel is not None and cancel.cancelled:
                    raise CancelledError("completion cancelled")
                z_prev = z
                z, opt, loss, context, prior, g = step(z, opt, *args, lam, lr, tf.constant(i + 1, tf.float32))
                loss = loss.numpy()
                # loss was measured at z_prev: keep the best z actually evaluated.
                better = loss < best_loss
                if better.any():
                    best_loss = np.where(better, loss, best_loss)
                    best_z[better] = z_prev.numpy()[better]
                    g_np = g.numpy()
                    best_g = g_np if best_g is None else np.where(better[:, None, None, None], g_np, best_g)
                steps_run = i + 1
                current = float(best_loss.min())
                if current < global_best * (1 - 1e-3):
                    global_best, stale = current, 0
                else:
                    stale += 1
                if progress is not None:
                    preview = None
                    if (i + 1) % tune.preview_every == 0 or i + 1 == s.steps:
                        k = int(np.argmin(best_loss))
                        preview = to_uint8(known[..., None] * y[0] + hole_mask[..., None] * best_g[k])
                    progress(i + 1, s.steps, current, preview)
                if stale >= tune.patience:
                    break
        order = np.argsort(best_loss, kind="stable")[: s.candidates]
        candidates = []
        for k in order:
            fill = best_g[k]
            if s.poisson:
                blended = poisson_blend(fill, y[0], hole_mask)
            else:
                blended = np.where(hole_mask[..., None], fill, y[0])
            out = to_uint8(blended)
            out[known] = image[known]  # known pixels exactly as given
            candidates.append(Candidate(out, float(best_loss[k])))
        return CompletionResult(
            candidates=candidates,
            ood_score=ood,
            ood_warning=ood_warn,
            model=self.model.ref,
            device=self.device,
            steps_run=steps_run,
            seconds=time.perf_counter() - t0,
        )
