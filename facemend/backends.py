"""Choosing what runs the completion: local GPU, local CPU (and, with cloud/,
remote endpoints). Lives outside core/ because remote backends speak HTTP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from core.errors import BackendUnavailableError, UsageError

LOCAL_BACKENDS = ("auto", "gpu", "cpu")


@dataclass
class BackendChoice:
    completer: object  # core.api.Completer
    notes: list[str] = field(default_factory=list)  # every fallback, said to the user


def hide_gpus() -> None:
    """Make TensorFlow ignore GPUs (must run before it initialises devices)."""
    from core.lazy_tf import tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass  # already initialised; the caller's device check reports what runs


def local_gpu_available() -> bool:
    from core.lazy_tf import tf

    return bool(tf.config.list_physical_devices("GPU"))


def choose_backend(name: str, load_model) -> BackendChoice:
    """`load_model()` returns the FaceModel; it is called only for local backends."""
    from core.complete import LocalCompleter

    name = (name or "auto").lower()
    if name not in LOCAL_BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(LOCAL_BACKENDS)}")
    if name == "cpu":
        hide_gpus()
        return BackendChoice(LocalCompleter(load_model()))
    if name == "gpu":
        if not local_gpu_available():
            raise BackendUnavailableError("--backend gpu: TensorFlow sees no CUDA GPU on this machine")
        return BackendChoice(LocalCompleter(load_model()))
    notes = []
    if local_gpu_available():
        return BackendChoice(LocalCompleter(load_model()))
    if os.environ.get("FACEMEND_ENDPOINTS"):
        notes.append("FACEMEND_ENDPOINTS is set but this build has no remote backends; using the local CPU")
    return BackendChoice(LocalCompleter(load_model()), notes)
