"""The wire protocol of the completion service, version 1.

One set of pydantic models that the client (cloud/client.py), the ASGI service
(cloud/service.py) and the Lambda entry point share, so the three cannot drift
apart; FastAPI turns them into `/openapi.json`.

Only an aligned face crop and its mask travel (base64 PNG), never the photo:
paste-back stays on the user's machine. Field names are fixed by the protocol;
extra fields are ignored on both sides so either side can grow.

The size limits keep a request and its response well under Lambda's 6 MB
synchronous payload limit even after API Gateway base64-encodes the body.
"""

from __future__ import annotations

import base64
import binascii
import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.api import (
    MAX_CANDIDATES,
    Candidate,
    CompletionRequest,
    CompletionResult,
    CompletionSettings,
    ModelRef,
)
from core.errors import BadInputError

API_VERSION = "v1"
# A 64x64 crop is ~12 KB of PNG; 256x256 (the largest crop we accept) < 200 KB.
MAX_IMAGE_SIDE = 256
MAX_PNG_B64_CHARS = 1_000_000
# Body of POST /v1/complete. ×4/3 for API Gateway's base64 still leaves room under 6 MB.
MAX_REQUEST_BYTES = 3_000_000
MAX_RESPONSE_BYTES = 4_000_000
MAX_STEPS = 5000
MAX_RESTARTS = 64

_DEFAULTS = CompletionSettings()


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CompleteRequest(_Wire):
    """POST /v1/complete body."""

    image: str = Field(max_length=MAX_PNG_B64_CHARS, description="base64 PNG of the aligned RGB crop (bundle image_size square)")
    mask: str = Field(max_length=MAX_PNG_B64_CHARS, description="base64 PNG of the mask in the crop's frame, white (non-zero) = fill")
    steps: int = Field(_DEFAULTS.steps, ge=1, le=MAX_STEPS)
    restarts: int = Field(_DEFAULTS.restarts, ge=1, le=MAX_RESTARTS)
    candidates: int = Field(1, ge=1, le=MAX_CANDIDATES)
    seed: int = Field(0, ge=0, lt=2**31)
    model: str | None = Field(None, max_length=200, description="name@version (or name); the service's model if omitted")
    # Not in the fixed set, but needed for "same settings, same result" across backends.
    prior_weight: float = Field(_DEFAULTS.prior_weight, ge=0, le=10)
    use_critic: bool = _DEFAULTS.use_critic
    use_encoder: bool = _DEFAULTS.use_encoder
    poisson: bool = _DEFAULTS.poisson


class CandidateOut(_Wire):
    image: str = Field(description="base64 PNG of the completed crop")
    loss: float


class ModelOut(_Wire):
    name: str
    version: str


class CompleteResponse(_Wire):
    candidates: list[CandidateOut] = Field(description="best (lowest loss) first")
    ood_score: float | None = Field(description="drift score of the face against the training faces; null when the model has no OOD statistics")
    ood_warning: bool = False
    model: ModelOut
    device: str
    seconds: float = Field(description="search and blend time on the service, no queueing or transfer")
    steps_run: int = 0
    request_id: str = ""
    api_version: str = API_VERSION


class ErrorBody(_Wire):
    code: str = Field(description="stable machine-readable reason, e.g. bad_image, unauthorized, overloaded")
    message: str
    request_id: str


class ErrorResponse(_Wire):
    error: ErrorBody


class HealthResponse(_Wire):
    status: str


class ReadyResponse(_Wire):
    status: str  # "ready" | "loading" | "failed"
    model: ModelOut | None = None
    detail: str | None = None


class ModelInfoOut(_Wire):
    name: str
    version: str
    image_size: int
    z_dim: int
    has_critic: bool
    has_encoder: bool


class ModelsResponse(_Wire):
    models: list[ModelInfoOut]
    default: str
    device: str = ""  # what the searches run on, e.g. "CPU" or "GPU:0 (NVIDIA L4)"


# --- conversions between the wire and core.api ----------------------------------


def b64_png(pixels: np.ndarray) -> str:
    from core.imageio import encode_png

    return base64.b64encode(encode_png(pixels)).decode("ascii")


def png_from_b64(text: str, what: str) -> np.ndarray:
    """Decode one base64 PNG field; every failure is a BadInputError naming the field."""
    from core.imageio import decode_png

    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadInputError(f"{what}: not valid base64 ({exc})") from None
    if not data:
        raise BadInputError(f"{what}: empty")
    try:
        return decode_png(data, max_pixels=MAX_IMAGE_SIDE * MAX_IMAGE_SIDE)
    except BadInputError as exc:
        raise BadInputError(f"{what}: {exc}") from None


def request_to_wire(request: CompletionRequest, model: str | None = None) -> CompleteRequest:
    s = request.settings
    fields = {"image": b64_png(np.asarray(request.image, np.uint8)), "mask": b64_png(np.asarray(request.mask, bool))}
    for what, text in fields.items():
        if len(text) > MAX_PNG_B64_CHARS:
            raise BadInputError(f"{what}: {len(text)} base64 characters, over the service limit of {MAX_PNG_B64_CHARS}")
    return CompleteRequest(
        **fields,
        steps=s.steps,
        restarts=s.restarts,
        candidates=s.candidates,
        seed=s.seed,
        model=model,
        prior_weight=s.prior_weight,
        use_critic=s.use_critic,
        use_encoder=s.use_encoder,
        poisson=s.poisson,
    )


def request_from_wire(body: CompleteRequest) -> CompletionRequest:
    image = png_from_b64(body.image, "image")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]  # an alpha channel carries nothing the model uses
    if image.ndim != 3:
        raise BadInputError(f"image: expected an RGB PNG, got a {image.shape} grey image")
    mask = png_from_b64(body.mask, "mask")
    if mask.ndim == 3:
        # Colour masks: any non-zero channel means fill, as for mask files.
        mask = mask[:, :, :3].max(axis=2)
    if mask.shape != image.shape[:2]:
        raise BadInputError(f"mask: {mask.shape[1]}x{mask.shape[0]} does not match the image's {image.shape[1]}x{image.shape[0]}")
    settings = CompletionSettings(
        steps=body.steps,
        restarts=body.restarts,
        candidates=body.candidates,
        seed=body.seed,
        prior_weight=body.prior_weight,
        use_critic=body.use_critic,
        use_encoder=body.use_encoder,
        poisson=body.poisson,
    )
    return CompletionRequest(image, mask != 0, settings)


def result_to_wire(result: CompletionResult, request_id: str) -> CompleteResponse:
    ood = result.ood_score
    return CompleteResponse(
        candidates=[CandidateOut(image=b64_png(c.image), loss=float(c.loss)) for c in result.candidates],
        ood_score=None if ood is None or not math.isfinite(ood) else float(ood),
        ood_warning=bool(result.ood_warning),
        model=ModelOut(name=result.model.name, version=result.model.version),
        device=result.device,
        seconds=round(float(result.seconds), 4),
        steps_run=int(result.steps_run),
        request_id=request_id,
    )


def result_from_wire(body: CompleteResponse, expect_shape: tuple[int, ...]) -> CompletionResult:
    """`expect_shape` is the crop that was sent: a service with another model
    size would hand back crops that cannot be pasted into this alignment."""
    if not body.candidates:
        raise BadInputError("the service returned no candidates")
    candidates = []
    for k, c in enumerate(body.candidates):
        image = png_from_b64(c.image, f"response candidate {k}")
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[:, :, :3]
        if image.shape != tuple(expect_shape):
            raise BadInputError(f"response candidate {k} is {image.shape}, the request was {tuple(expect_shape)}")
        candidates.append(Candidate(image, float(c.loss)))
    return CompletionResult(
        candidates=candidates,
        ood_score=float("nan") if body.ood_score is None else float(body.ood_score),
        ood_warning=body.ood_warning,
        model=ModelRef(body.model.name, body.model.version),
        device=body.device,
        steps_run=body.steps_run,
        seconds=body.seconds,
    )
