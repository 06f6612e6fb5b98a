"""A loaded model bundle: the Keras networks plus what the manifest says."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import bundle as bundles
from core.api import ModelRef


@dataclass(frozen=True)
class OodThreshold:
    """Warning threshold of core.ood.projection_score, calibrated per bundle."""

    threshold: float
    method: str = "projection"


class FaceModel:
    def __init__(self, info: bundles.BundleInfo, generator, critic=None, encoder=None, ood: OodThreshold | None = None):
        self.info = info
        self.generator = generator
        self.critic = critic
        self.encoder = encoder
        self.ood = ood
        # Keras models are not safe to *build/trace* from several threads at once.
        self.lock = threading.Lock()

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.info.name, self.info.version)

    @property
    def image_size(self) -> int:
        return self.info.image_size

    @property
    def z_dim(self) -> int:
        return self.info.z_dim

    @property
    def template(self) -> np.ndarray:
        return np.asarray(self.info.landmark_template, np.float64)


def _architecture(info: bundles.BundleInfo, role: str) -> dict:
    return dict(info.manifest["files"][role].get("architecture", {}))


def load_model(spec: str | Path | None = None, *, verify: bool = True) -> FaceModel:
    """Load a bundle by path or name (default bundle if None).

    `verify` checks sha256 of every file first (~50 ms for the default bundle):
    a model that silently differs from its manifest would break the promise
    that the same model version gives the same result on every backend.
    """
    from core.networks import build_critic, build_encoder, build_generator, load_weights

    folder = bundles.find_bundle(spec)
    info = bundles.verify_bundle(folder) if verify else bundles.read_manifest(folder)
    gen = build_generator(z_dim=info.z_dim, image_size=info.image_size, **_architecture(info, "generator"))
    load_weights(gen, info.file("generator"))
    critic = encoder = None
    if "critic" in info.files:
        critic = build_critic(image_size=info.image_size, **_architecture(info, "critic"))
        load_weights(critic, info.file("critic"))
    if "encoder" in info.files:
        encoder = build_encoder(z_dim=info.z_dim, image_size=info.image_size, **_architecture(info, "encoder"))
        load_weights(encoder, info.file("encoder"))
    ood = None
    if isinstance(info.manifest.get("ood"), dict) and "threshold" in info.manifest["ood"]:
        ood = OodThreshold(float(info.manifest["ood"]["threshold"]), str(info.manifest["ood"].get("method", "projection")))
    return FaceModel(info, gen, critic, encoder, ood)
