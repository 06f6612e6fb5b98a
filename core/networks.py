"""Keras architectures of the face model, written to read like the DCGAN figure.

Four networks, one name each across the project:

* generator  G(z) -> 64x64x3 face in [-1, 1] (PyTorch-tutorial DCGAN layout, so
  the imported `gan-face-generate` weights load one-to-one).
* discriminator D(x) -> logit, the plain DCGAN discriminator used when
  training a new generator (`facemend train run`).
* critic  C(x, m) -> logit, "is the content under mask m coherent with the
  rest of x?"; it is the prior loss of the completion (see MODEL_CARD.md).
* encoder E(x * (1 - m), m) -> z, an estimate of the latent code of a partly
  hidden face; it starts the latent search near the answer.

Weights travel as `.npz` files keyed `<layer>/<index>` (see `save_weights`) so
that a bundle can be verified and inspected without Keras' own formats.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.files import atomic_write
from core.lazy_tf import keras

# PyTorch's BatchNorm default; the imported generator was trained with it.
BN_EPSILON = 1e-5
# Keras momentum is 1 - PyTorch momentum (0.1).
BN_MOMENTUM = 0.9


def build_generator(z_dim: int = 100, base_filters: int = 64, image_size: int = 64, name: str = "generator"):
    layers = keras.layers
    n_up = int(np.log2(image_size)) - 3  # 4x4 -> image_size in stride-2 steps
    z = keras.Input(shape=(z_dim,), name="z")
    x = layers.Reshape((1, 1, z_dim))(z)
    filters = base_filters * 2 ** (n_up)
    x = layers.Conv2DTranspose(filters, 4, strides=1, padding="valid", use_bias=False, name="up0")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="bn0")(x)
    x = layers.ReLU()(x)
    for i in range(1, n_up + 1):
        filters //= 2
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False, name=f"up{i}")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"bn{i}")(x)
        x = layers.ReLU()(x)
    x = layers.Conv2DTranspose(3, 4, strides=2, padding="same", use_bias=False, name=f"up{n_up + 1}")(x)
    out = layers.Activation("tanh", name="image")(x)
    return keras.Model(z, out, name=name)


def _conv_stack(x, base_filters: int, n_down: int, prefix: str, batchnorm: bool):
    layers = keras.layers
    filters = base_filters
    for i in range(n_down):
        x = layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=not (batchnorm and i > 0), name=f"{prefix}conv{i}")(x)
        if batchnorm and i > 0:
            x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}bn{i}")(x)
        x = layers.LeakyReLU(0.2)(x)
        filters *= 2
    return x


def build_discriminator(base_filters: int = 64, image_size: int = 64, name: str = "discriminator"):
    layers = keras.layers
    img = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = _conv_stack(img, base_filters, int(np.log2(image_size)) - 2, "d_", batchnorm=True)
    x = layers.Conv2D(1, 4, strides=1, padding="valid", name="d_logit")(x)
    out = layers.Flatten()(x)
    return keras.Model(img, out, name=name)


def build_critic(base_filters: int = 32, image_size: int = 64, name: str = "critic"):
    """Critic for completion. No batch norm: at completion time it scores a
    batch of restarts that all share one context, where batch statistics
    would leak between restarts and make results depend on the batch size."""
    layers = keras.layers
    img = keras.Input(shape=(image_size, image_size, 3), name="image")
    mask = keras.Input(shape=(image_size, image_size, 1), name="mask")
    x = layers.Concatenate()([img, mask])
    x = _conv_stack(x, base_filters, int(np.log2(image_size)) - 2, "c_", batchnorm=False)
    x = layers.Flatten()(x)
    out = layers.Dense(1, name="c_logit")(x)
    return keras.Model([img, mask], out, name=name)


def build_encoder(z_dim: int = 100, base_filters: int = 32, image_size: int = 64, name: str = "encoder"):
    """Two outputs: z and the 256-d embedding before the last layer, which the
    out-of-distribution score measures distances in."""
    layers = keras.layers
    img = keras.Input(shape=(image_size, image_size, 3), name="image")
    mask = keras.Input(shape=(image_size, image_size, 1), name="mask")
    x = layers.Concatenate()([img, mask])
    x = _conv_stack(x, base_filters, int(np.log2(image_size)) - 2, "e_", batchnorm=False)
    x = layers.Flatten()(x)
    emb = layers.Dense(256, name="e_embed")(x)
    h = layers.LeakyReLU(0.2)(emb)
    z = layers.Dense(z_dim, name="e_z")(h)
    return keras.Model([img, mask], [z, emb], name=name)


def save_weights(model, path: str | Path) -> None:
    """Write every variable (trainable or not, e.g. BN moving stats) as
    `<layer>/<index>` in an uncompressed npz, atomically."""
    path = Path(path)
    arrays = {}
    for layer in model.layers:
        for i, w in enumerate(layer.weights):
            arrays[f"{layer.name}/{i}"] = np.asarray(w.numpy())
    atomic_write(path, lambda fh: np.savez(fh, **arrays), overwrite=True)


def load_weights(model, path: str | Path) -> None:
    from core.errors import BundleError

    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile/ValueError/OSError: all mean "not a weight file"
        raise BundleError(f"{path}: cannot read weights ({exc})") from exc
    with data:
        expected = set()
        for layer in model.layers:
            values = []
            for i, w in enumerate(layer.weights):
                key = f"{layer.name}/{i}"
                expected.add(key)
                if key not in data.files:
                    raise BundleError(f"{path}: missing weight {key} for {model.name}")
                arr = data[key]
                if tuple(arr.shape) != tuple(w.shape):
                    raise BundleError(f"{path}: weight {key} has shape {arr.shape}, {model.name} needs {tuple(w.shape)}")
                values.append(arr)
            if values:
                layer.set_weights(values)
        extra = set(data.files) - expected
        if extra:
            raise BundleError(f"{path}: weights {sorted(extra)[:3]} do not belong to {model.name}")
