"""Train the bundle's encoder and critic on the bundle's own generator.

Both train on synthetic batches (core.train.synthetic) with a frozen
generator, checkpoint every N steps and resume after a kill. `export_*`
writes the weights into the bundle and records how they were made in the
manifest.

Encoder E(x*(1-m), m) -> (z, embedding): learns to read a partly hidden face.
  loss = |E - z|^2 + 4 * |G(E) - x|_1. The pixel term matters more than the
  code term: many z give nearly the same face, and the search only needs a
  start whose *image* is close.
Critic C(composite, m) -> logit "coherent": the completion's prior loss.
  Positives: intact generator faces with a random mask (the mask only says
  where to look). Negatives: the same face with the masked region taken from
  another face, from a nearby code (a hard negative close to the manifold),
  colour-shifted, blurred or flat-filled. So C scores exactly what a
  completion can get wrong: a fill that does not belong to its context.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core import bundle as bundles
from core.lazy_tf import keras, tf
from core.train import synthetic


@dataclass
class PriorTrainConfig:
    steps: int = 3000
    batch_size: int = 32
    learning_rate: float = 2e-4
    seed: int = 1
    checkpoint_every: int = 100
    base_filters: int = 32


def _generator(bundle_dir: Path):
    from core.networks import build_generator, load_weights

    info = bundles.verify_bundle(bundle_dir)
    gen = build_generator(z_dim=info.z_dim, image_size=info.image_size)
    load_weights(gen, info.file("generator"))
    gen.trainable = False
    return info, gen


def _rng(seed: int, step: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, step, stream])


def _loop(name, run_dir: Path, cfg: PriorTrainConfig, model, optimizer, step_fn, batch_fn, log_every=25):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    step_var = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var)
    manager = tf.train.CheckpointManager(ckpt, str(run_dir / "checkpoints"), max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        print(f"{name}: resumed at step {int(step_var.numpy())}", file=sys.stderr)
    log = open(run_dir / "log.jsonl", "a")
    t0 = time.time()
    start = int(step_var.numpy())
    history = []
    while int(step_var.numpy()) < cfg.steps:
        step = int(step_var.numpy())
        metrics = {k: float(v) for k, v in step_fn(*batch_fn(step)).items()}
        step_var.assign_add(1)
        history.append(metrics)
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            avg = {k: float(np.mean([h[k] for h in history[-log_every:]])) for k in metrics}
            rate = (time.time() - t0) / (step + 1 - start)
            eta = rate * (cfg.steps - step - 1)
            print(f"{name} {step + 1}/{cfg.steps} " + " ".join(f"{k}={v:.4f}" for k, v in avg.items())
                  + f" {rate:.2f}s/step eta {eta / 60:.1f} min", file=sys.stderr, flush=True)
            log.write(json.dumps({"step": step + 1, "seconds": time.time() - t0, **avg}) + "\n")
            log.flush()
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            manager.save(checkpoint_number=step + 1)
    log.close()
    return {"seconds_this_session": round(time.time() - t0, 1), "final_step": int(step_var.numpy())}


def train_encoder(bundle_dir: Path, run_dir: Path, cfg: PriorTrainConfig) -> dict:
    from core.networks import build_encoder

    info, gen = _generator(bundle_dir)
    size, z_dim = info.image_size, info.z_dim
    enc = build_encoder(z_dim=z_dim, base_filters=cfg.base_filters, image_size=size)
    opt = keras.optimizers.Adam(cfg.learning_rate, beta_1=0.5)

    def batch(step):
        rng = _rng(cfg.seed, step, 0)
        z = rng.standard_normal((cfg.batch_size, z_dim)).astype(np.float32)
        x = gen(z, training=False).numpy()
        m = synthetic.hole_masks(rng, cfg.batch_size, size, empty_fraction=0.2)[..., None]
        x_in = synthetic.degrade(rng, x) * (1 - m)
        return tf.constant(x_in), tf.constant(m), tf.constant(x), tf.constant(z)

    @tf.function
    def step_fn(x_in, m, x, z):
        with tf.GradientTape() as tape:
            z_hat, _ = enc([x_in, m], training=True)
            x_hat = gen(z_hat, training=False)
            z_loss = tf.reduce_mean(tf.square(z_hat - z))
            pix_loss = tf.reduce_mean(tf.abs(x_hat - x))
            loss = z_loss + 4.0 * pix_loss
        grads = tape.gradient(loss, enc.trainable_variables)
        opt.apply_gradients(zip(grads, enc.trainable_variables))
        return {"loss": loss, "z_mse": z_loss, "pixel_l1": pix_loss}

    summary = _loop("encoder", run_dir, cfg, enc, opt, step_fn, batch)
    return {"model": enc, "summary": summary}


def critic_batch(gen, rng: np.random.Generator, n: int, z_dim: int, size: int):
    """Half positives, half negatives of five kinds; returns (x, m, label, kind)."""
    half = n // 2
    z = rng.standard_normal((n, z_dim)).astype(np.float32)
    x = gen(z, training=False).numpy()
    m = synthetic.hole_masks(rng, n, size)[..., None]
    kinds = rng.integers(0, 5, size=n - half)
    other = np.empty_like(x[half:])
    ctx = x[half:]
    z_other = rng.standard_normal((n - half, z_dim)).astype(np.float32)
    near = z[half:] + rng.normal(0, 0.8, size=z_other.shape).astype(np.float32)
    g_other = gen(z_other, training=False).numpy()
    g_near = gen(near, training=False).numpy()
    shifted = synthetic.colour_shift(rng, ctx)
    blurred = synthetic.blur(ctx, float(rng.uniform(1.5, 3.0)))
    flat = np.broadcast_to(ctx.mean(axis=(1, 2), keepdims=True), ctx.shape)
    for i, k in enumerate(kinds):
        other[i] = (g_other, g_near, shifted, blurred, flat)[k][i]
    fake = ctx * (1 - m[half:]) + other * m[half:]
    images = np.concatenate([x[:half], fake]).astype(np.float32)
    labels = np.concatenate([np.ones(half), np.zeros(n - half)]).astype(np.float32)[:, None]
    return images, m.astype(np.float32), labels, np.concatenate([np.full(half, -1), kinds])


CRITIC_NEGATIVE_KINDS = ("other face", "nearby code", "colour shift", "blur", "flat fill")


def train_critic(bundle_dir: Path, run_dir: Path, cfg: PriorTrainConfig) -> dict:
    from core.networks import build_critic

    info, gen = _generator(bundle_dir)
    size, z_dim = info.image_size, info.z_dim
    critic = build_critic(base_filters=cfg.base_filters, image_size=size)
    opt = keras.optimizers.Adam(cfg.learning_rate, beta_1=0.5)

    def batch(step):
        x, m, y, _ = critic_batch(gen, _rng(cfg.seed, step, 1), cfg.batch_size, z_dim, size)
        return tf.constant(x), tf.constant(m), tf.constant(y)

    @tf.function
    def step_fn(x, m, y):
        with tf.GradientTape() as tape:
            logits = critic([x, m], training=True)
            bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
            # Small logit penalty keeps the prior loss smooth for the latent
            # search instead of saturating at confident extremes.
            loss = bce + 1e-3 * tf.reduce_mean(tf.square(logits))
        grads = tape.gradient(loss, critic.trainable_variables)
        opt.apply_gradients(zip(grads, critic.trainable_variables))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.cast(logits > 0, tf.float32), y), tf.float32))
        return {"bce": bce, "accuracy": acc}

    summary = _loop("critic", run_dir, cfg, critic, opt, step_fn, batch)
    return {"model": critic, "summary": summary}


def evaluate_critic(critic, gen, z_dim: int, size: int, n: int = 512, seed: int = 9_000_001) -> dict:
    """Held-out accuracy per negative kind and ROC AUC (seeds never used in training)."""
    rng = np.random.default_rng(seed)
    xs, ms, ys, ks = [], [], [], []
    for _ in range(n // 64):
        x, m, y, k = critic_batch(gen, rng, 64, z_dim, size)
        xs.append(x), ms.append(m), ys.append(y), ks.append(k)
    x, m, y, k = map(np.concatenate, (xs, ms, ys, ks))
    logits = critic.predict([x, m], batch_size=64, verbose=0)[:, 0]
    y = y[:, 0]
    pos, neg = logits[y == 1], logits[y == 0]
    auc = float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())
    per_kind = {name: float((logits[k == i] < 0).mean()) for i, name in enumerate(CRITIC_NEGATIVE_KINDS)}
    return {"auc": round(auc, 4), "positives_accepted": round(float((pos > 0).mean()), 4),
            "negatives_rejected_by_kind": {k: round(v, 4) for k, v in per_kind.items()}, "samples": int(len(y))}


def evaluate_encoder(enc, gen, z_dim: int, size: int, n: int = 256, seed: int = 9_000_002) -> dict:
    """Held-out pixel L1 of G(E(x)) against x, unmasked and with 32x32 center holes."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, z_dim)).astype(np.float32)
    x = gen.predict(z, batch_size=64, verbose=0)
    out = {}
    for label, m in (("no_hole", np.zeros((n, size, size, 1), np.float32)), ("center_hole", None)):
        if m is None:
            m = np.zeros((n, size, size, 1), np.float32)
            m[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
        z_hat, _ = enc.predict([x * (1 - m), m], batch_size=64, verbose=0)
        x_hat = gen.predict(z_hat, batch_size=64, verbose=0)
        out[f"pixel_l1_{label}"] = round(float(np.abs(x_hat - x).mean()), 4)
        out[f"z_mse_{label}"] = round(float(((z_hat - z) ** 2).mean()), 4)
    # Baseline: the mean face G(0) for everyone.
    out["pixel_l1_mean_face_baseline"] = round(float(np.abs(gen.predict(np.zeros((1, z_dim), np.float32), verbose=0) - x).mean()), 4)
    return out


def export_to_bundle(bundle_dir: Path, role: str, model, record: dict) -> None:
    """Write `<role>.npz` into the bundle and record its training in the manifest."""
    from core.networks import save_weights

    bundle_dir = Path(bundle_dir)
    manifest = json.loads((bundle_dir / bundles.MANIFEST).read_text())
    save_weights(model, bundle_dir / f"{role}.npz")
    manifest["files"][role] = {"path": f"{role}.npz", **record}
    bundles.write_manifest(bundle_dir, manifest)


def _record(cfg: PriorTrainConfig, run_dir: Path, summary: dict, evaluation: dict, how: str) -> dict:
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    return {
        "architecture": {"base_filters": cfg.base_filters},
        "training": {
            "how": how,
            "data": "samples of this bundle's generator (seeds [seed, step]), masks shaped like user damage; no real photos",
            "config": asdict(cfg),
            "wall_seconds_total": round(log[-1]["seconds"], 1) if log else None,
            "final_metrics": {k: round(v, 4) for k, v in log[-1].items() if k not in ("step", "seconds")} if log else {},
            "hardware": "2-core x86_64 CPU, no GPU",
        },
        "evaluation": evaluation,
    }


def build_encoder_into_bundle(bundle_dir: Path, run_dir: Path, cfg: PriorTrainConfig) -> None:
    out = train_encoder(bundle_dir, run_dir, cfg)
    info, gen = _generator(bundle_dir)
    enc = out["model"]
    evaluation = evaluate_encoder(enc, gen, info.z_dim, info.image_size)
    record = _record(cfg, run_dir, out["summary"], evaluation,
                     "Adam, loss |E(x*(1-m), m) - z|^2 + 4 |G(E) - x|_1 through the frozen generator; inputs degraded (blur, JPEG, noise, exposure)")
    export_to_bundle(bundle_dir, "encoder", enc, record)


def build_critic_into_bundle(bundle_dir: Path, run_dir: Path, cfg: PriorTrainConfig) -> None:
    out = train_critic(bundle_dir, run_dir, cfg)
    info, gen = _generator(bundle_dir)
    evaluation = evaluate_critic(out["model"], gen, info.z_dim, info.image_size)
    record = _record(cfg, run_dir, out["summary"], evaluation,
                     "Adam, BCE with logits (+1e-3 logit^2); positives intact generator faces with a random mask; negatives: "
                     "the masked region replaced by another face, a nearby code (z + N(0, 0.8)), a colour shift, a blur or a flat fill")
    export_to_bundle(bundle_dir, "critic", out["model"], record)
