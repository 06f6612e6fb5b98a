"""The typed API that gui/, cloud/ and the CLI use to talk to core.

Two levels:

* completion — one aligned face crop (bundle.image_size square, uint8 RGB) and
  its mask in the same frame -> ranked candidates. This is what travels to a
  remote backend (cloud/), so it holds no photo and no alignment.
* repair — a whole photo plus a photo-frame mask (or a mask preset) -> the
  repaired photo, built from completions of every face the mask touches.

Mask convention everywhere: True / white (non-zero) = damaged, to fill.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from core.faces import Face

MAX_CANDIDATES = 8


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class CompletionSettings:
    """Knobs of the latent search. Defaults are the measured ones (README, Benchmarks)."""

    # 40 x 2 from the encoder's estimate: on real faces 40 steps gain +0.9 dB
    # (center) over the encoder alone and 80 steps only 0.1 dB more; restarts
    # beyond 2 never won (bench/completion.py, README).
    steps: int = 40
    restarts: int = 2
    candidates: int = 1
    seed: int = 0
    # λ of Yeh et al.: weight of the critic's prior loss against the context loss.
    prior_weight: float = 0.003
    # Off by default *by measurement*: with this bundle's critic every λ tried
    # (0.003-0.1) lowered hole PSNR on real and generated faces (0.003: -0.1 dB,
    # 0.1: -0.6 to -3 dB) and cost ~30 % more time. bench/completion.py keeps
    # measuring it; turn it on per request when realism matters more than fidelity.
    use_critic: bool = False
    use_encoder: bool = True
    poisson: bool = True

    def validated(self) -> "CompletionSettings":
        from core.errors import UsageError

        if not 1 <= self.steps <= 5000:
            raise UsageError(f"steps must be 1..5000, got {self.steps}")
        if not 1 <= self.restarts <= 64:
            raise UsageError(f"restarts must be 1..64, got {self.restarts}")
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise UsageError(f"candidates must be 1..{MAX_CANDIDATES}, got {self.candidates}")
        if self.candidates > self.restarts:
            raise UsageError(f"candidates ({self.candidates}) cannot exceed restarts ({self.restarts})")
        if not 0 <= self.seed < 2**31:
            raise UsageError(f"seed must be 0..2**31-1, got {self.seed}")
        return self


@dataclass
class CompletionRequest:
    image: np.ndarray  # S x S x 3 uint8, aligned to the bundle's template
    mask: np.ndarray  # S x S bool, True = fill
    settings: CompletionSettings = field(default_factory=CompletionSettings)


@dataclass
class Candidate:
    image: np.ndarray  # S x S x 3 uint8: known pixels kept, hole filled and blended
    loss: float


@dataclass
class CompletionResult:
    candidates: list[Candidate]  # best (lowest loss) first
    ood_score: float
    ood_warning: bool
    model: ModelRef
    device: str  # e.g. "CPU", "GPU:0 (NVIDIA H100)", or the remote's own report
    steps_run: int
    seconds: float  # the search and blend only, no model loading
    # Said to the user: e.g. "endpoint X failed; using the local CPU instead".
    notes: list[str] = field(default_factory=list)


class CancelToken:
    """Set from any thread; the search checks it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


# progress(step, total_steps, loss, preview) — preview is an S x S x 3 uint8
# of the current best candidate, given every few steps (None otherwise).
ProgressCallback = Callable[[int, int, float, "np.ndarray | None"], None]


class Completer(Protocol):
    """Anything that completes aligned crops: the local engine or a remote backend."""

    backend: str  # "cpu", "gpu", or a remote's name/URL

    def complete(
        self,
        request: CompletionRequest,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> CompletionResult: ...


# --- photo level ------------------------------------------------------------

MASK_TYPES = ("center", "random", "left", "right", "top", "bottom", "eyes", "mouth")


@dataclass
class RepairRequest:
    """Repair one photo. Exactly one of `mask` (photo frame, HxW bool, True =
    fill) and `mask_type` (a preset drawn in each face's aligned frame)."""

    photo: "object"  # core.imageio.Photo
    mask: np.ndarray | None = None
    mask_type: str | None = None
    face_index: int | None = None  # None: every face the mask touches
    aligned: bool = False  # the photo *is* an aligned crop; no detection
    settings: CompletionSettings = field(default_factory=CompletionSettings)


@dataclass
class FaceRepair:
    index: int  # index in the detector's list (best confidence first)
    face: Face
    aligned_image: np.ndarray  # S x S x 3 uint8, what the model saw
    aligned_mask: np.ndarray  # S x S bool
    completion: CompletionResult


@dataclass
class RepairResult:
    candidates: list[np.ndarray]  # full photos in the photo's native layout, best first
    losses: list[float]  # per candidate, summed over faces
    faces: list[FaceRepair]
    backend: str  # what actually ran: "cpu", "gpu", an endpoint
    device: str
    model: ModelRef
    seconds: dict[str, float]  # load, detect, complete, blend, total
    notes: list[str] = field(default_factory=list)  # fallbacks, OOD warnings: shown to the user

    @property
    def image(self) -> np.ndarray:
        return self.candidates[0]
