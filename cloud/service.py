"""The completion service: one ASGI app for `facemend serve`, GKE and Lambda.

    POST /v1/complete   aligned crop + mask -> ranked candidates (API key)
    GET  /v1/models     the model served (API key)
    GET  /v1/health     liveness: the process answers
    GET  /v1/ready      readiness: the model is loaded
    GET  /openapi.json

Requests are admitted up to `concurrency + queue`; beyond that the answer is
503 with Retry-After at once, so a burst degrades into quick refusals instead
of a pile of requests that all time out. Admitted requests run in threads
(TensorFlow releases the GIL) with at most `concurrency` searching at a time,
and each is cancelled at its deadline (504). Bodies are read into memory only,
never spooled to disk, and logs carry sizes and timings, never pixels.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud import schema
from core.api import CancelToken
from core.errors import BackendUnavailableError, BadInputError, CancelledError, UsageError

log = logging.getLogger("facemend.service")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._=+/\-]{1,64}$")  # API Gateway v2 ids end in =


@dataclass
class ServiceConfig:
    api_key: str = field(repr=False, default="")
    concurrency: int = 1  # searches at once; the model lock serialises one model anyway
    queue: int = 2  # admitted requests waiting for a search slot
    timeout_s: float = 60.0  # per request, queueing included
    model_uri: str = ""  # see cloud.model_store

    @classmethod
    def from_env(cls) -> "ServiceConfig":
        env = os.environ
        return cls(
            api_key=env.get("FACEMEND_API_KEY", ""),
            concurrency=int(env.get("FACEMEND_CONCURRENCY", "1")),
            queue=int(env.get("FACEMEND_QUEUE", "2")),
            timeout_s=float(env.get("FACEMEND_REQUEST_TIMEOUT", "60")),
            model_uri=env.get("FACEMEND_MODEL_URI", ""),
        )

    def validated(self) -> "ServiceConfig":
        if not self.api_key:
            raise UsageError("the service needs an API key: set FACEMEND_API_KEY (e.g. from a Kubernetes Secret)")
        if not 1 <= self.concurrency <= 16 or not 0 <= self.queue <= 16:
            raise UsageError(f"concurrency must be 1..16 and queue 0..16, got {self.concurrency} and {self.queue}")
        if not self.timeout_s > 0:
            raise UsageError(f"request timeout must be positive, got {self.timeout_s}")
        return self


class ServiceError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class Deadline(CancelToken):
    """A cancel token that also fires at a point in time: the search checks it
    every step, so a request past its timeout stops using the CPU."""

    def __init__(self, at: float):
        super().__init__()
        self.at = at

    @property
    def cancelled(self) -> bool:
        return super().cancelled or time.monotonic() >= self.at

    def remaining(self) -> float:
        return self.at - time.monotonic()


class ModelSlot:
    """The one model this process serves, loaded once (in the background for
    `facemend serve`, so liveness answers while the weights load)."""

    def __init__(self, model=None):
        self.model = model
        self.completer = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if model is not None:
            self._attach(model)

    def _attach(self, model) -> None:
        from core.complete import LocalCompleter

        self.completer = LocalCompleter(model)
        self.model = model

    def load(self, uri: str) -> None:
        from cloud.model_store import resolve_bundle
        from core.model import load_model

        t0 = time.perf_counter()
        try:
            path = resolve_bundle(uri)
            self._attach(load_model(path, verify=False))  # resolve_bundle has verified it
            log.info(json.dumps({"event": "model_loaded", "model": str(self.model.ref), "seconds": round(time.perf_counter() - t0, 3)}))
        except Exception as exc:  # reported by /v1/ready and /v1/health; the process stays up to say so
            self.error = f"{exc.__class__.__name__}: {exc}"
            log.error(json.dumps({"event": "model_load_failed", "error": self.error}))

    def load_in_background(self, uri: str) -> None:
        with self._lock:
            if self.model is not None or self._thread is not None:
                return
            self._thread = threading.Thread(target=self.load, args=(uri,), name="model-loader", daemon=True)
            self._thread.start()

    @property
    def ready(self) -> bool:
        return self.completer is not None


class Admission:
    """Counts admitted requests (thread-safe, independent of any event loop:
    Mangum may run each invocation on a fresh loop)."""

    def __init__(self, concurrency: int, queue: int):
        self.capacity = concurrency + queue
        self.concurrency = concurrency
        self.slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self.admitted = 0
        self._mean_s = 1.0  # running estimate of one search, for Retry-After

    def try_admit(self) -> bool:
        with self._lock:
            if self.admitted >= self.capacity:
                return False
            self.admitted += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.admitted -= 1

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._mean_s = 0.8 * self._mean_s + 0.2 * seconds

    def retry_after(self) -> int:
        # Time for the queue ahead to drain, at least a second.
        return max(1, math.ceil(self._mean_s * self.capacity / self.concurrency))


def _error(status: int, code: str, message: str, request_id: str, headers: dict | None = None) -> JSONResponse:
    body = schema.ErrorResponse(error=schema.ErrorBody(code=code, message=message, request_id=request_id))
    return JSONResponse(body.model_dump(), status_code=status, headers={"x-request-id": request_id, **(headers or {})})


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    if _REQUEST_ID.match(given):
        return given
    # Behind API Gateway, its own id lets one search CloudWatch and the access log together.
    event = request.scope.get("aws.event") or {}
    aws_id = (event.get("requestContext") or {}).get("requestId", "")
    if isinstance(aws_id, str) and _REQUEST_ID.match(aws_id):
        return aws_id
    return uuid.uuid4().hex


def _check_key(request: Request, api_key: str) -> None:
    given = request.headers.get("x-api-key", "")
    if not hmac.compare_digest(given.encode("utf-8"), api_key.encode("utf-8")):
        raise ServiceError(401, "unauthorized", "missing or wrong API key (header x-api-key)")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ServiceError(413, "too_large", f"request body of {declared} bytes exceeds the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServiceError(413, "too_large", f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _served(slot: ModelSlot, wanted: str | None) -> None:
    if not wanted:
        return
    ref = slot.model.ref
    name, _, version = wanted.partition("@")
    if name != ref.name or (version and version != ref.version):
        raise ServiceError(422, "model_not_served", f"this service serves {ref}, not {wanted}")


def create_app(config: ServiceConfig | None = None, model=None) -> FastAPI:
    """The ASGI app. With `model` (a core.model.FaceModel) nothing is loaded;
    otherwise the model at `config.model_uri` loads in the background on startup."""
    config = (config or ServiceConfig.from_env()).validated()
    slot = ModelSlot(model)
    admission = Admission(config.concurrency, config.queue)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        slot.load_in_background(config.model_uri)
        yield

    app = FastAPI(
        title="FaceMend completion service",
        version=schema.API_VERSION,
        description="Semantic inpainting of aligned face crops. Only the crop and its mask travel; "
        "send the API key in the x-api-key header.",
        docs_url=None,  # the Swagger page loads scripts from a CDN; the schema is enough
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.config, app.state.slot, app.state.admission = config, slot, admission

    @app.middleware("http")
    async def request_context(request: Request, call_next):
        request_id = _request_id(request)
        request.state.request_id = request_id
        t0 = time.perf_counter()
        response = await call_next(request)
        response.headers["x-request-id"] = request_id
        log.info(json.dumps({
            "event": "request",
            "request_id": request_id,
            "method": request.method,
            "path": request.url.path,
            "status": response.status_code,
            "seconds": round(time.perf_counter() - t0, 4),
            "bytes_in": int(request.headers.get("content-length") or 0),
        }))
        return response

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        return _error(exc.status, exc.code, exc.message, request.state.request_id, exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        request_id = getattr(request.state, "request_id", "")
        log.error(json.dumps({"event": "internal_error", "request_id": request_id, "error": exc.__class__.__name__}), exc_info=exc)
        return _error(500, "internal", "internal error; quote the request id when reporting it", request_id)

    @app.exception_handler(404)
    async def not_found(request: Request, exc):
        return _error(404, "not_found", f"no route {request.method} {request.url.path}", getattr(request.state, "request_id", ""))

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc):
        return _error(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}", getattr(request.state, "request_id", ""))

    error_responses = {
        status: {"model": schema.ErrorResponse, "description": text}
        for status, text in {
            400: "bad image or mask (not base64, not PNG, wrong size, empty mask)",
            401: "missing or wrong API key",
            413: "body over the size limit",
            415: "body is not application/json",
            422: "malformed request, settings out of range, or a model this service does not serve",
            503: "over capacity or model not loaded yet (see Retry-After)",
            504: "the search ran past the per-request timeout",
        }.items()
    }

    @app.get("/v1/health", response_model=schema.HealthResponse, tags=["probes"])
    async def health():
        if slot.error:
            return JSONResponse({"status": "failed", "detail": slot.error}, status_code=503)
        return schema.HealthResponse(status="ok")

    @app.get("/v1/ready", response_model=schema.ReadyResponse, tags=["probes"],
             responses={503: {"model": schema.ReadyResponse}})
    async def ready():
        if slot.ready:
            ref = slot.model.ref
            return schema.ReadyResponse(status="ready", model=schema.ModelOut(name=ref.name, version=ref.version))
        status = "failed" if slot.error else "loading"
        return JSONResponse(schema.ReadyResponse(status=status, detail=slot.error).model_dump(), status_code=503)

    @app.get("/v1/models", response_model=schema.ModelsResponse, responses={k: error_responses[k] for k in (401, 503)})
    async def models(request: Request):
        _check_key(request, config.api_key)
        if not slot.ready:
            raise ServiceError(503, "loading", "the model is still loading", {"Retry-After": "5"})
        m = slot.model
        info = schema.ModelInfoOut(name=m.ref.name, version=m.ref.version, image_size=m.image_size, z_dim=m.z_dim,
                                   has_critic=m.critic is not None, has_encoder=m.encoder is not None)
        return schema.ModelsResponse(models=[info], default=str(m.ref), device=slot.completer.device)

    @app.post(
        "/v1/complete",
        response_model=schema.CompleteResponse,
        responses=error_responses,
        # The body is read by hand (to enforce the size limit before parsing), so
        # its schema is declared here for /openapi.json.
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": schema.CompleteRequest.model_json_schema()}}}},
    )
    async def complete(request: Request):
        request_id = request.state.request_id
        _check_key(request, config.api_key)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ServiceError(415, "unsupported_media_type", f"send application/json, not {ctype or 'no content type'}")
        raw = await _read_body(request, schema.MAX_REQUEST_BYTES)
        try:
            body = schema.CompleteRequest.model_validate_json(raw)
        except Exception as exc:
            errors = getattr(exc, "errors", lambda: [])()
            detail = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in errors[:5]) or str(exc)
            raise ServiceError(422, "invalid_request", detail) from None
        if not slot.ready:
            raise ServiceError(503, "loading", slot.error or "the model is still loading", {"Retry-After": "5"})
        _served(slot, body.model)
        try:
            creq = schema.request_from_wire(body)
        except BadInputError as exc:
            raise ServiceError(400, "bad_image", str(exc)) from None
        if not admission.try_admit():
            raise ServiceError(503, "overloaded", "the service is at capacity; retry later",
                               {"Retry-After": str(admission.retry_after())})
        deadline = Deadline(time.monotonic() + config.timeout_s)
        try:
            result = await run_in_threadpool(_run, slot, admission, creq, deadline)
        except CancelledError:
            raise ServiceError(504, "timeout", f"the search did not finish within {config.timeout_s:g} s; "
                               "ask for fewer steps or restarts") from None
        except BadInputError as exc:
            raise ServiceError(400, "bad_image", str(exc)) from None
        except UsageError as exc:
            raise ServiceError(422, "invalid_settings", str(exc)) from None
        except BackendUnavailableError as exc:
            raise ServiceError(503, "unavailable", str(exc), {"Retry-After": "5"}) from None
        finally:
            admission.release()
        admission.observe(result.seconds)
        response = schema.result_to_wire(result, request_id)
        payload = response.model_dump_json().encode()
        if len(payload) > schema.MAX_RESPONSE_BYTES:
            raise ServiceError(413, "response_too_large", "the answer would exceed the response limit; ask for fewer candidates")
        log.info(json.dumps({"event": "complete", "request_id": request_id, "model": str(result.model),
                             "steps": body.steps, "steps_run": result.steps_run, "restarts": body.restarts,
                             "candidates": body.candidates, "seconds": round(result.seconds, 4)}))
        return Response(payload, media_type="application/json")

    return app


def _run(slot: ModelSlot, admission: Admission, creq, deadline: Deadline):
    """In a worker thread: wait for a search slot until the deadline, then search."""
    remaining = deadline.remaining()
    if remaining <= 0 or not admission.slots.acquire(timeout=remaining):
        raise CancelledError("timed out waiting for a search slot")
    try:
        return slot.completer.complete(creq, None, deadline)
    finally:
        admission.slots.release()


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line; messages that already are JSON are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        base = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name}
        msg = record.getMessage()
        try:
            extra = json.loads(msg)
            if not isinstance(extra, dict):
                raise ValueError
        except ValueError:
            extra = {"message": msg}
        if record.exc_info:
            extra["exception"] = self.formatException(record.exc_info)
        return json.dumps({**base, **extra})


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger("facemend")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory cloud.service:app_from_env` (one per worker process)."""
    configure_logging(os.environ.get("FACEMEND_LOG_LEVEL", "info"))
    return create_app(ServiceConfig.from_env())


class BackgroundServer:
    """The app served by uvicorn on 127.0.0.1 in a daemon thread, on a free
    port picked by the OS: for tests, the benchmark, or sharing this machine.

        with BackgroundServer(create_app(config, model)) as server:
            RemoteCompleter(server.url, key).complete(...)
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                                    timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                        name=f"uvicorn:{self.port}")

    def start(self, timeout: float = 20.0) -> "BackgroundServer":
        self._thread.start()
        end = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > end or not self._thread.is_alive():
                raise RuntimeError(f"the service did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
