"""`facemend train run`: DCGAN training (Radford et al. 2016) on a prepared data set.

Generator and discriminator are core.networks' DCGAN pair, Adam with the
paper's lr 2e-4 and beta1 0.5, non-saturating GAN loss on logits. The
generator starts from scratch or from a bundle's generator (fine-tuning); the
discriminator always starts from scratch (bundles ship none).

Resuming is exact: every batch and every noise vector is a pure function of
(seed, step), TensorFlow runs with op determinism, and a checkpoint holds the
models, both optimizers and the step. A run killed at any moment and resumed
ends with the same weights as a run that was never interrupted.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np

from core.api import CancelToken
from core.errors import BadInputError, CancelledError, UsageError
from core.files import atomic_write
from core.train.prepare import FEATURE_IMAGE, read_summary

CONFIG = "config.json"
STATE = "state.json"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
LOGS = "logs"
SAMPLE_GRID = 8  # 8 x 8 faces per sample image
DISCRIMINATOR_FILTERS = 64
NEW_GENERATOR_FILTERS = 64
Z_DIM = 100
# Options that may change between a run and its resumption; the rest define
# the run and must stay the same for the resumed result to mean anything.
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "sample_every")


@dataclass(frozen=True)
class TrainConfig:
    data: str
    steps: int = 5000
    batch_size: int = 64
    checkpoint_every: int = 500
    sample_every: int = 500
    seed: int = 0
    from_bundle: str | None = None  # name, name@version or folder; None = new generator
    learning_rate: float = 2e-4  # DCGAN paper
    beta1: float = 0.5  # DCGAN paper

    def validated(self) -> "TrainConfig":
        for name in ("steps", "batch_size", "checkpoint_every", "sample_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**31:
            raise UsageError(f"--seed must be 0..2**31-1, got {self.seed}")
        if not (0 < self.learning_rate < 1 and 0 <= self.beta1 < 1):
            raise UsageError("learning rate must be in (0, 1) and beta1 in [0, 1)")
        return self


@dataclass(frozen=True)
class TrainProgress:
    step: int
    steps: int
    d_loss: float
    g_loss: float
    seconds_per_step: float  # recent average, tracing excluded
    eta_seconds: float
    event: str | None = None  # "checkpoint", "sample", "resumed", "start": worth a line of its own


TrainProgressCallback = Callable[[TrainProgress], None]


@dataclass
class TrainResult:
    run: Path
    step: int
    d_loss: float | None
    g_loss: float | None
    device: str
    resumed_from: int
    seconds: float
    samples: list[Path] = field(default_factory=list)


# --- pure functions of (seed, step) -------------------------------------------


def batch_indices(seed: int, step: int, batch_size: int, n: int) -> np.ndarray:
    """Indices into the data set for the batch of `step` (0-based).

    The data is walked in a fresh permutation per epoch, so every face is seen
    once per epoch; the permutation of epoch e depends only on (seed, e).
    """
    pos = step * batch_size + np.arange(batch_size)
    epochs = pos // n
    out = np.empty(batch_size, np.int64)
    for e in np.unique(epochs):
        sel = epochs == e
        out[sel] = _permutation(seed, int(e), n)[pos[sel] % n]
    return out


_perm_cache: dict[tuple[int, int, int], np.ndarray] = {}


def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    key = (seed, epoch, n)
    if key not in _perm_cache:
        if len(_perm_cache) > 4:
            _perm_cache.clear()
        _perm_cache[key] = np.random.default_rng([seed, 0, epoch]).permutation(n)
    return _perm_cache[key]


def batch_noise(seed: int, step: int, batch_size: int, z_dim: int) -> np.ndarray:
    return np.random.default_rng([seed, 1, step]).standard_normal((batch_size, z_dim)).astype(np.float32)


def sample_noise(seed: int, count: int, z_dim: int) -> np.ndarray:
    """The fixed z of the sample grids: the same faces at every step show progress."""
    return np.random.default_rng([seed, 2]).standard_normal((count, z_dim)).astype(np.float32)


# --- data -----------------------------------------------------------------------


def load_faces(data: Path, summary: dict) -> np.ndarray:
    """All faces of a prepared data set as N x S x S x 3 uint8, in record order.

    Held in memory (12 KB a face: LFW's 13,000 faces take 160 MB) so any batch
    can be drawn by index, which exact resumption needs.
    """
    from core.lazy_tf import tf

    files = [str(data / s["path"]) for s in summary["shards"]]
    spec = {FEATURE_IMAGE: tf.io.FixedLenFeature([], tf.string)}

    def decode(record):
        return tf.io.decode_png(tf.io.parse_single_example(record, spec)[FEATURE_IMAGE], channels=3)

    size = int(summary["image_size"])
    try:
        ds = tf.data.TFRecordDataset(files).map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(1024)
        faces = np.concatenate([b.numpy() for b in ds]) if files else np.zeros((0, size, size, 3), np.uint8)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
        raise BadInputError(f"{data}: a shard is corrupt ({exc.message.splitlines()[0]})") from exc
    if faces.shape[1:] != (size, size, 3):
        raise BadInputError(f"{data}: faces are {faces.shape[1:]}, summary says {size}x{size}x3")
    if len(faces) == 0:
        raise BadInputError(f"{data}: the data set holds no faces")
    return faces


# --- run folder -------------------------------------------------------------------


def data_record(summary: dict) -> dict:
    """What a run (and the bundle it becomes) records about its data: counts,
    not file names; a bundle may be shared, its training photos not."""
    keep = ("source", "source_kind", "layout", "images_read", "faces_kept", "image_size", "bundle", "detector", "options", "landmark_template")
    record = {k: summary.get(k) for k in keep}
    record["skipped"] = {reason: {"count": e["count"]} for reason, e in (summary.get("skipped") or {}).items()}
    return record


def describe_device() -> str:
    from core.lazy_tf import tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    except Exception:  # details are best-effort; the device itself is what matters
        name = "GPU"
    return f"GPU:0 ({name})"


def write_scalar(tag: str, value: float) -> None:
    """A TensorBoard scalar, in the default summary writer at its default step.

    tf.summary.scalar lives in the `tensorboard` package, which TensorFlow no
    longer installs; this writes the same event (the "scalars" plugin's format)
    with TensorFlow alone. Viewing still takes `pip install tensorboard`.
    """
    from core.lazy_tf import tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(tag, tf.constant(value, tf.float32), metadata=metadata)


def _write_json(path: Path, doc: dict) -> None:
    text = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    atomic_write(path, lambda fh: fh.write(text), overwrite=True)


def read_run(run: str | Path) -> tuple[dict, dict]:
    """(config.json, state.json) of a run folder; BadInputError if it is not one."""
    run = Path(run)
    try:
        config = json.loads((run / CONFIG).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{run}: not a training run (no {CONFIG}); start one with `facemend train run`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{run / CONFIG}: unreadable ({exc})") from exc
    try:
        state = json.loads((run / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        state = {"step": 0}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{run / STATE}: unreadable ({exc})") from exc
    return config, state


def resolve_config(run: str | Path, requested: dict) -> TrainConfig:
    """The config to train `run` with: `requested` (CLI options, None = not
    given) on a new run; on an existing run the saved config, with only the
    options that may change taken from `requested`."""
    run = Path(run)
    given = {k: v for k, v in requested.items() if v is not None}
    if (run / CONFIG).exists():
        saved, _ = read_run(run)
        cfg = dict(saved["config"])
        for key, value in given.items():
            if key in RESUMABLE_CHANGES:
                cfg[key] = value
            elif key == "data":
                if Path(value).resolve() != Path(cfg["data"]).resolve():
                    raise UsageError(f"{run} was trained on {cfg['data']}, not {value}; use a new --out to train on other data")
            elif cfg.get(key) != value:
                raise UsageError(f"{run} was started with {key}={cfg.get(key)!r}; it cannot resume with {value!r} (use a new --out)")
        known = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in cfg.items() if k in known}).validated()
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise UsageError(f"{run} exists and is not a training run; choose a new folder")
    if "data" not in given:
        raise UsageError("--data is required to start a new run")
    given["data"] = str(Path(given["data"]).resolve())
    return TrainConfig(**given).validated()


def save_grid(images: np.ndarray, path: Path, columns: int = SAMPLE_GRID) -> None:
    """N x S x S x 3 uint8 -> one PNG with a 2-px gap, written atomically."""
    import cv2

    n, s = images.shape[0], images.shape[1]
    rows = -(-n // columns)
    gap = 2
    grid = np.full((rows * (s + gap) + gap, columns * (s + gap) + gap, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[gap + r * (s + gap) : gap + r * (s + gap) + s, gap + c * (s + gap) : gap + c * (s + gap) + s] = img
    ok, buf = cv2.imencode(".png", grid[:, :, ::-1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    atomic_write(path, lambda fh: fh.write(buf.tobytes()), overwrite=True)


# --- training -----------------------------------------------------------------------


class _Trainer:
    """The models, optimizers, step counter and their checkpoint."""

    def __init__(self, config: TrainConfig, run: Path, architecture: dict, bundle_generator: Path | None):
        from core.lazy_tf import keras, tf
        from core.networks import build_discriminator, build_generator, load_weights

        self.tf = tf
        self.config = config
        # Same seed, same initial weights, in every process that starts this run.
        keras.utils.set_random_seed(config.seed)
        g_arch, d_arch = architecture["generator"], architecture["discriminator"]
        self.generator = build_generator(z_dim=architecture["z_dim"], image_size=architecture["image_size"], **g_arch)
        if bundle_generator is not None:
            load_weights(self.generator, bundle_generator)
        self.discriminator = build_discriminator(image_size=architecture["image_size"], **d_arch)
        self.g_optimizer = keras.optimizers.Adam(config.learning_rate, beta_1=config.beta1)
        self.d_optimizer = keras.optimizers.Adam(config.learning_rate, beta_1=config.beta1)
        # Create the slots now, so a restore fills real variables instead of
        # deferring (Keras 3 optimizers make them lazily on the first step).
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint = tf.train.Checkpoint(
            generator=self.generator,
            discriminator=self.discriminator,
            generator_optimizer=self.g_optimizer,
            discriminator_optimizer=self.d_optimizer,
            step=self.step,
        )
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(run / CHECKPOINTS), max_to_keep=3)
        self.train_step = tf.function(self._train_step, reduce_retracing=True)

    def restore(self) -> int:
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_consumed()
        return int(self.step.numpy())

    def save(self) -> str:
        return self.manager.save(checkpoint_number=int(self.step.numpy()))

    def _train_step(self, real, z):
        tf = self.tf

        def bce(logits, label):
            return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), label), logits=logits))

        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.generator(z, training=True)
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_loss = bce(real_logits, 1.0) + bce(fake_logits, 0.0)
            # Non-saturating: G maximises log D(G(z)) rather than minimising log(1 - D(G(z))).
            g_loss = bce(fake_logits, 1.0)
        g_vars, d_vars = self.generator.trainable_variables, self.discriminator.trainable_variables
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars))
        self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars))
        self.step.assign_add(1)
        return d_loss, g_loss

    def samples(self, z: np.ndarray) -> np.ndarray:
        from core.model_build import to_uint8

        return to_uint8(self.generator(z, training=False).numpy())


def train(
    config: TrainConfig,
    run: str | Path,
    *,
    progress: TrainProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> TrainResult:
    """Train (or resume training) into the folder `run` up to `config.steps`.

    Raises CancelledError after saving a checkpoint when `cancel` is set or
    on KeyboardInterrupt; running again with the same folder resumes.
    """
    from core import bundle as bundles
    from core.lazy_tf import tf
    from core.model_build import to_float

    config = config.validated()
    run = Path(run)
    data = Path(config.data)
    summary = read_summary(data)
    # Bitwise-reproducible kernels; costs a little speed, buys exact resumption.
    tf.config.experimental.enable_op_determinism()
    device = describe_device()
    started = time.monotonic()

    bundle_generator = None
    if (run / CONFIG).exists():
        saved, state = read_run(run)
        architecture = saved["architecture"]
        base = saved.get("from_bundle")
        if base and tf.train.latest_checkpoint(str(run / CHECKPOINTS)) is None:
            # Stopped before its first checkpoint: start again from the very same generator.
            info = bundles.verify_bundle(bundles.find_bundle(base["path"] if Path(base["path"]).is_dir() else base["ref"]))
            if info.files["generator"].sha256 != base["generator_sha256"]:
                raise BadInputError(f"{info.path}: its generator is no longer the one {run} started from; use a new --out")
            bundle_generator = info.file("generator")
    else:
        image_size = int(summary["image_size"])
        g_arch, z_dim, base = {"base_filters": NEW_GENERATOR_FILTERS}, Z_DIM, None
        if config.from_bundle:
            info = bundles.verify_bundle(bundles.find_bundle(config.from_bundle))
            if info.image_size != image_size:
                raise UsageError(f"{info.ref} draws {info.image_size}px faces but {data} holds {image_size}px faces")
            g_arch = dict(info.manifest["files"]["generator"].get("architecture", {}))
            z_dim = info.z_dim
            bundle_generator = info.file("generator")
            base = {"ref": info.ref, "path": str(info.path), "generator_sha256": info.files["generator"].sha256}
        architecture = {
            "image_size": image_size,
            "z_dim": z_dim,
            "generator": g_arch,
            "discriminator": {"base_filters": DISCRIMINATOR_FILTERS},
        }
        run.mkdir(parents=True, exist_ok=True)
        state = {"step": 0}
    doc = {
        "config": asdict(config),
        "architecture": architecture,
        "from_bundle": base,
        "optimizer": {"name": "adam", "learning_rate": config.learning_rate, "beta1": config.beta1, "beta2": 0.999},
        "loss": "non-saturating GAN loss, sigmoid cross-entropy on logits",
        "data_summary": data_record(summary),
        "device": device,
        "tensorflow": tf.__version__,
        "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_json(run / CONFIG, doc)

    faces = load_faces(data, summary)
    trainer = _Trainer(config, run, architecture, bundle_generator)
    start_step = trainer.restore()
    z_dim = architecture["z_dim"]
    fixed_z = sample_noise(config.seed, SAMPLE_GRID * SAMPLE_GRID, z_dim)
    (run / SAMPLES).mkdir(exist_ok=True)
    writer = tf.summary.create_file_writer(str(run / LOGS))
    result = TrainResult(run, start_step, state.get("d_loss"), state.get("g_loss"), device, start_step, 0.0)

    def report(step, event=None):
        if progress:
            eta = recent * max(0, config.steps - step) if recent else float("nan")
            d_loss, g_loss = (float("nan") if v is None else v for v in (result.d_loss, result.g_loss))
            progress(TrainProgress(step, config.steps, d_loss, g_loss, recent, eta, event))

    def checkpoint(step):
        trainer.save()
        writer.flush()
        _write_json(run / STATE, {
            "step": step,
            "d_loss": result.d_loss,
            "g_loss": result.g_loss,
            "checkpoint": Path(trainer.manager.latest_checkpoint).name,
            "finished": step >= config.steps,
            "device": device,
        })
        report(step, "checkpoint")

    recent = 0.0
    step = start_step
    report(step, "resumed" if start_step else "start")
    try:
        while step < config.steps:
            if cancel is not None and cancel.cancelled:
                raise KeyboardInterrupt
            idx = batch_indices(config.seed, step, config.batch_size, len(faces))
            real = to_float(faces[idx])
            z = batch_noise(config.seed, step, config.batch_size, z_dim)
            t0 = time.monotonic()
            d_loss, g_loss = trainer.train_step(tf.constant(real), tf.constant(z))
            result.d_loss, result.g_loss = float(d_loss), float(g_loss)  # waits for the step
            took = time.monotonic() - t0
            step = int(trainer.step.numpy())
            if step > start_step + 1:  # the first step traces the graph; keep it out of the ETA
                recent = took if recent == 0.0 else 0.9 * recent + 0.1 * took
            with writer.as_default(step=step):
                for tag, value in (("d_loss", result.d_loss), ("g_loss", result.g_loss), ("seconds_per_step", took)):
                    write_scalar(tag, value)
            if step % config.sample_every == 0 or step == config.steps:
                path = run / SAMPLES / f"step-{step:07d}.png"
                save_grid(trainer.samples(fixed_z), path)
                result.samples.append(path)
                report(step, "sample")
            if step % config.checkpoint_every == 0 or step == config.steps:
                checkpoint(step)
            else:
                report(step)
    except KeyboardInterrupt:
        step = int(trainer.step.numpy())
        if trainer.manager.latest_checkpoint is None or not trainer.manager.latest_checkpoint.endswith(f"-{step}"):
            checkpoint(step)
        writer.close()
        raise CancelledError(f"training stopped at step {step}; checkpoint saved in {run / CHECKPOINTS}. "
                             "Run the same command again to resume.") from None
    if trainer.manager.latest_checkpoint is None:
        checkpoint(step)  # a run asked for no more steps than it had: still leave a state
    writer.close()
    result.step = step
    result.seconds = time.monotonic() - started
    return result
