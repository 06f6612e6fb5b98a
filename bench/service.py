"""Benchmark of the completion service on loopback.

    python bench/service.py [--steps 20] [--restarts 2] [--runs 7] [--quick]

Prints three things:

1. overhead: the same completion in-process and through the service (real
   uvicorn on 127.0.0.1, real client: PNG + base64 + JSON + HTTP both ways),
   medians side by side;
2. load: throughput and p50/p99 latency with N concurrent clients against a
   service bounded to 1 search + a queue of 2 — beyond capacity the answer
   is a quick 503 + Retry-After, not a growing latency;
3. Lambda cold start: a fresh process imports cloud.lambda_handler (TensorFlow
   import + model load) and answers one HTTP API v2 event.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

KEY = "bench-key-" + "b" * 24


def _crop(model):
    import numpy as np

    from core.model_build import to_uint8

    z = np.random.default_rng(1).standard_normal((1, model.z_dim)).astype(np.float32)
    image = to_uint8(model.generator(z, training=False).numpy()[0]).copy()
    mask = np.zeros((model.image_size,) * 2, bool)
    mask[24:44, 16:48] = True
    image[mask] = 0
    return image, mask


def _pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:.1f}ms"


def overhead(model, settings, runs):
    from cloud.client import RemoteCompleter
    from cloud.service import BackgroundServer, ServiceConfig, create_app
    from core.api import CompletionRequest
    from core.complete import LocalCompleter

    req = CompletionRequest(*_crop(model), settings)
    local = LocalCompleter(model)
    with BackgroundServer(create_app(ServiceConfig(api_key=KEY, timeout_s=300), model=model)) as server:
        remote = RemoteCompleter(server.url, KEY, read_timeout=300)
        local.complete(req)  # trace the step once; both paths share the traced function afterwards
        remote.complete(req)
        t_local, t_remote, search_local, search_remote = [], [], [], []
        for _ in range(runs):  # interleaved, so background load hits both alike
            t = time.perf_counter()
            r = local.complete(req)
            t_local.append(time.perf_counter() - t)
            search_local.append(r.seconds)
            t = time.perf_counter()
            r = remote.complete(req)
            t_remote.append(time.perf_counter() - t)
            search_remote.append(r.seconds)  # measured by the service around its own search
    ml, mr = statistics.median(t_local), statistics.median(t_remote)
    # Wall time minus the search itself: what the wire adds, free of the search's own jitter.
    wire = statistics.median(t - s for t, s in zip(t_remote, search_remote, strict=True))
    wrap = statistics.median(t - s for t, s in zip(t_local, search_local, strict=True))
    print(f"\n== 1. Service overhead ({settings.steps} steps x {settings.restarts} restarts, 64 px, {runs} runs each, medians)")
    print(f"   {'':<12} {'wall':>9} {'search':>9} {'wall - search':>14}")
    print(f"   {'in-process':<12} {ml * 1000:7.1f}ms {statistics.median(search_local) * 1000:7.1f}ms {wrap * 1000:12.1f}ms")
    print(f"   {'via service':<12} {mr * 1000:7.1f}ms {statistics.median(search_remote) * 1000:7.1f}ms {wire * 1000:12.1f}ms"
          "   (loopback HTTP, PNG/base64/JSON both ways)")
    print(f"   wire overhead {1000 * (wire - wrap):.1f} ms = {100 * (wire - wrap) / ml:.1f} % of the in-process wall time; "
          f"wall medians differ by {100 * (mr - ml) / ml:+.1f} % (includes the search's jitter under machine load)")
    return {"in_process_ms": ml * 1000, "service_ms": mr * 1000, "wire_overhead_ms": 1000 * (wire - wrap)}


def load(model, settings, levels, per_client):
    import requests

    from cloud import schema
    from cloud.service import BackgroundServer, ServiceConfig, create_app
    from core.api import CompletionRequest

    body = schema.request_to_wire(CompletionRequest(*_crop(model), settings)).model_dump_json().encode()
    headers = {"x-api-key": KEY, "Content-Type": "application/json"}
    rows = []
    config = ServiceConfig(api_key=KEY, concurrency=1, queue=2, timeout_s=300)
    print(f"\n== 2. Load on loopback: service bounded to {config.concurrency} search + queue {config.queue}; "
          f"clients send back to back without retrying, {per_client} requests each")
    print(f"   {'clients':>7} {'ok/s':>7} {'ok':>4} {'503':>4} {'p50 ok':>9} {'p99 ok':>9} {'p50 503':>9} {'wall':>7}")
    with BackgroundServer(create_app(config, model=model)) as server:
        session = requests.Session()
        session.post(server.url + "/v1/complete", data=body, headers=headers, timeout=300)  # warm
        for clients in levels:
            ok, refused, lock = [], [], threading.Lock()

            def client(ok=ok, refused=refused, lock=lock):
                s = requests.Session()
                for _ in range(per_client):
                    t = time.perf_counter()
                    r = s.post(server.url + "/v1/complete", data=body, headers=headers, timeout=300)
                    dt = time.perf_counter() - t
                    with lock:
                        (ok if r.status_code == 200 else refused).append(dt)
                    if r.status_code == 503:
                        # A polite client waits a little (ours waits Retry-After); keep the
                        # offered load high but not a busy loop.
                        time.sleep(0.2)

            threads = [threading.Thread(target=client) for _ in range(clients)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            row = {"clients": clients, "ok_per_s": len(ok) / wall, "ok": len(ok), "refused": len(refused),
                   "p50_ok_ms": _pct(ok, 50) * 1000, "p99_ok_ms": _pct(ok, 99) * 1000,
                   "p50_503_ms": _pct(refused, 50) * 1000, "wall_s": wall}
            rows.append(row)
            print(f"   {clients:>7} {row['ok_per_s']:>7.2f} {len(ok):>4} {len(refused):>4} {row['p50_ok_ms']:>7.0f}ms "
                  f"{row['p99_ok_ms']:>7.0f}ms {_ms(row['p50_503_ms']):>9} {wall:>6.1f}s")
    return rows


_COLD = r"""
import json, sys, time
t0 = time.perf_counter()
import cloud.lambda_handler as lh
t1 = time.perf_counter()
out = lh.handler(json.load(open(sys.argv[1])), None)
t2 = time.perf_counter()
print(json.dumps({"import_and_load_s": t1 - t0, "first_response_s": t2 - t1, "status": out["statusCode"]}))
"""


def cold_start(model, settings, repeats):
    from cloud import schema
    from core.api import CompletionRequest

    body = schema.request_to_wire(CompletionRequest(*_crop(model), settings)).model_dump_json()
    event = {
        "version": "2.0", "routeKey": "$default", "rawPath": "/v1/complete", "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-api-key": KEY, "host": "bench.execute-api.eu-west-1.amazonaws.com"},
        "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": "bench.execute-api.eu-west-1.amazonaws.com",
                           "http": {"method": "POST", "path": "/v1/complete", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1",
                                    "userAgent": "bench"},
                           "requestId": "bench", "routeKey": "$default", "stage": "$default"},
        "body": body, "isBase64Encoded": False,
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "event.json"
        path.write_text(json.dumps(event))
        env = {**os.environ, "FACEMEND_API_KEY": KEY, "TF_CPP_MIN_LOG_LEVEL": "3", "FACEMEND_LOG_LEVEL": "warning",
               "PYTHONPATH": str(REPO)}
        for _ in range(repeats):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", _COLD, str(path)], env=env, capture_output=True, text=True, timeout=600)
            total = time.perf_counter() - t
            if r.returncode != 0:
                raise SystemExit(r.stderr[-2000:])
            d = json.loads(r.stdout.strip().splitlines()[-1])
            d["process_total_s"] = total
            results.append(d)
    print(f"\n== 3. Lambda handler cold start in a fresh process ({settings.steps} steps x {settings.restarts} restarts), "
          f"{repeats} runs, median")
    for k, label in (("import_and_load_s", "import + model load (init phase)"),
                     ("first_response_s", "first response (incl. tracing)"),
                     ("process_total_s", "process start to exit")):
        print(f"   {label:<34} {statistics.median(x[k] for x in results):6.2f} s   "
              f"(runs: {', '.join(f'{x[k]:.2f}' for x in results)})")
    print(f"   status {results[0]['status']}")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--restarts", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--clients", default="1,2,3,8")
    ap.add_argument("--per-client", type=int, default=4)
    ap.add_argument("--cold-runs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer runs (smoke test)")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.per_client, args.cold_runs, args.clients = 3, 2, 1, "1,4"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import logging

    logging.getLogger("facemend").setLevel(logging.WARNING)
    from core.api import CompletionSettings
    from core.model import load_model

    print(f"FaceMend service benchmark — {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f} at start")
    model = load_model()
    settings = CompletionSettings(steps=args.steps, restarts=args.restarts, seed=0)
    overhead(model, settings, args.runs)
    load(model, settings, [int(c) for c in args.clients.split(",")], args.per_client)
    cold_start(model, settings, args.cold_runs)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
