"""AWS Lambda entry point: `cloud.lambda_handler.handler`.

The same ASGI app as `facemend serve`, behind Mangum, which turns API Gateway
REST (payload v1) and HTTP API (payload v2) events, base64 bodies included,
into ASGI requests. The model is loaded here, at import, once per container:
Lambda runs the init phase before the first request (with the full CPU
allotment, and SnapStart/provisioned concurrency can snapshot or pre-warm
it), so later invocations only search.

Configuration (function environment): FACEMEND_API_KEY, FACEMEND_MODEL_URI
(empty = the bundle in the image, s3://… or https://…, see
cloud.model_store), FACEMEND_REQUEST_TIMEOUT (keep it under API Gateway's
29 s), FACEMEND_CONCURRENCY/FACEMEND_QUEUE (a Lambda container takes one
request at a time, so the defaults are 1 and 0).
"""

from __future__ import annotations

import logging
import os
import time

from mangum import Mangum

from cloud.service import ServiceConfig, configure_logging, create_app

log = logging.getLogger("facemend.service")


def make_handler(model=None, config: ServiceConfig | None = None) -> Mangum:
    """A Lambda handler around a loaded model (loaded from FACEMEND_MODEL_URI if None)."""
    config = config or ServiceConfig(
        api_key=os.environ.get("FACEMEND_API_KEY", ""),
        concurrency=int(os.environ.get("FACEMEND_CONCURRENCY", "1")),
        queue=int(os.environ.get("FACEMEND_QUEUE", "0")),
        timeout_s=float(os.environ.get("FACEMEND_REQUEST_TIMEOUT", "25")),
        model_uri=os.environ.get("FACEMEND_MODEL_URI", ""),
    )
    config.validated()
    if model is None:
        from cloud.model_store import resolve_bundle
        from core.model import load_model

        t0 = time.perf_counter()
        model = load_model(resolve_bundle(config.model_uri), verify=False)  # resolve_bundle verified it
        log.info('{"event": "model_loaded", "model": "%s", "seconds": %.3f}', model.ref, time.perf_counter() - t0)
    # Lifespan off: Mangum would run startup/shutdown around every invocation.
    return Mangum(create_app(config, model=model), lifespan="off")


configure_logging(os.environ.get("FACEMEND_LOG_LEVEL", "info"))
handler = make_handler()
