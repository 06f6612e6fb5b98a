"""`facemend serve`: run the completion service (the same app as on GKE and Lambda)."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the completion service other machines can offload to",
        description="Serve POST /v1/complete, GET /v1/health, /v1/ready, /v1/models and /openapi.json. "
        "The API key clients must send (header x-api-key) is read from FACEMEND_API_KEY.",
        epilog="Environment: FACEMEND_API_KEY (required), FACEMEND_MODEL_URI (bundle, s3://… or https://…; "
        "default the shipped bundle). Exit codes: 0 ok, 2 usage (e.g. no API key).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes, each with its own copy of the model (default 1)")
    p.add_argument("--model", default=None, help="bundle folder, name[@version], s3://… or https://… (default FACEMEND_MODEL_URI or the shipped bundle)")
    p.add_argument("--concurrency", type=int, default=None, help="searches at once per worker (default 1)")
    p.add_argument("--queue", type=int, default=None, help="requests that may wait per worker before 503 (default 2)")
    p.add_argument("--timeout", type=float, default=None, help="per-request timeout in seconds, queueing included (default 60)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def run(args) -> int:
    from core.errors import UsageError

    try:
        import uvicorn

        from cloud.service import ServiceConfig
    except ImportError as exc:
        raise UsageError(f"facemend serve needs the server extra ({exc.name} is missing): pip install 'facemend[server]'") from None

    if not 1 <= args.workers <= 32:
        raise UsageError(f"--workers must be 1..32, got {args.workers}")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be 1..65535, got {args.port}")
    # Worker processes build the app from the environment (uvicorn --factory),
    # so the flags travel as the same variables a container would set.
    for var, value in (("FACEMEND_MODEL_URI", args.model), ("FACEMEND_CONCURRENCY", args.concurrency),
                       ("FACEMEND_QUEUE", args.queue), ("FACEMEND_REQUEST_TIMEOUT", args.timeout),
                       ("FACEMEND_LOG_LEVEL", args.log_level)):
        if value is not None:
            os.environ[var] = str(value)
    # TensorFlow's C++ start-up chatter would break the one-JSON-object-per-line log.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ServiceConfig.from_env().validated()  # fail here, with exit code 2, not in every worker
    uvicorn.run(
        "cloud.service:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,  # the app logs each request as JSON, with its request id
        timeout_graceful_shutdown=10,
    )
    return 0
