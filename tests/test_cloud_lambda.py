"""The Lambda entry point with real API Gateway event shapes, and the model
store loading bundles from S3 (a moto server process) and HTTP(S)."""

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from cloud import schema
from cloud.model_store import resolve_bundle
from core import bundle as bundles
from core.api import CompletionRequest, CompletionSettings
from core.errors import BackendUnavailableError, BundleError

KEY = "lambda-key-" + "z" * 20
DEFAULT = bundles.find_bundle()


# --- API Gateway events, shaped as in the AWS docs ("Working with AWS Lambda proxy
# integrations" for REST payload 1.0, "HTTP API payload format 2.0") -------------------------


def rest_v1_event(method, path, body=None, headers=None, base64_body=True):
    headers = {"Accept": "*/*", "Host": "abc123.execute-api.eu-west-1.amazonaws.com", "User-Agent": "facemend-client/1",
               "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https", **(headers or {})}
    raw = body.encode() if isinstance(body, str) else body
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "2gxmpl",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": "JJbxmHc1IAMFi-A=",
            "requestTime": "10/Mar/2026:00:03:59 +0000",
            "path": "/prod" + path,
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": "abc123",
            "requestTimeEpoch": 1773100000000,
            "requestId": "e0b3xmpl-3a32-4d1b-9d2d-7b6e5f0a1c2d",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "facemend-client/1", "apiKey": "", "apiKeyId": "",
                         "accountId": None, "caller": None, "user": None, "userArn": None, "cognitoIdentityId": None},
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "apiId": "abc123",
        },
        "body": None if raw is None else (base64.b64encode(raw).decode() if base64_body else raw.decode()),
        "isBase64Encoded": bool(raw is not None and base64_body),
    }


def http_v2_event(method, path, body=None, headers=None, base64_body=True):
    headers = {"accept": "*/*", "content-length": str(len(body or "")), "host": "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
               "user-agent": "facemend-client/1", "x-amzn-trace-id": "Root=1-5e6722a7-cc56xmpl46db7ae02d4da47e",
               "x-forwarded-for": "205.255.255.176", "x-forwarded-port": "443", "x-forwarded-proto": "https", **(headers or {})}
    raw = body.encode() if isinstance(body, str) else body
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "r3pmxmplak",
            "domainName": "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
            "domainPrefix": "r3pmxmplak",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "205.255.255.176",
                     "userAgent": "facemend-client/1"},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "10/Mar/2026:05:16:23 +0000",
            "timeEpoch": 1773119783000,
        },
        "isBase64Encoded": bool(raw is not None and base64_body),
    }
    if raw is not None:
        event["body"] = base64.b64encode(raw).decode() if base64_body else raw.decode()
    return event


class LambdaContext:
    """What the Lambda runtime passes as `context` (Mangum only stores it in the scope)."""

    function_name = "facemend-complete"
    memory_limit_in_mb = 3008
    aws_request_id = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:facemend-complete"

    @staticmethod
    def get_remaining_time_in_millis():
        return 28_000


@pytest.fixture(scope="module")
def handler(face_model):
    os.environ["FACEMEND_API_KEY"] = KEY
    try:
        import cloud.lambda_handler as lh

        yield lh.handler
    finally:
        os.environ.pop("FACEMEND_API_KEY", None)


@pytest.fixture(scope="module")
def complete_body(face_model):
    from core.model_build import to_uint8

    z = np.random.default_rng(4).standard_normal((1, face_model.z_dim)).astype(np.float32)
    image = to_uint8(face_model.generator(z, training=False).numpy()[0]).copy()
    mask = np.zeros((64, 64), bool)
    mask[20:34, 14:50] = True  # eyes
    image[mask] = 255
    req = CompletionRequest(image, mask, CompletionSettings(steps=3, restarts=1, seed=2))
    return schema.request_to_wire(req).model_dump_json()


JSON_KEY = {"content-type": "application/json", "x-api-key": KEY}


@pytest.mark.parametrize("shape", [rest_v1_event, http_v2_event])
@pytest.mark.parametrize("base64_body", [True, False])
def test_handler_completes_from_api_gateway_events(handler, complete_body, shape, base64_body):
    out = handler(shape("POST", "/v1/complete", complete_body, JSON_KEY, base64_body), LambdaContext())
    assert out["statusCode"] == 200, out["body"]
    body = schema.CompleteResponse.model_validate_json(out["body"])
    assert body.model.name == "facemend-faces64"
    assert schema.png_from_b64(body.candidates[0].image, "candidate").shape == (64, 64, 3)


@pytest.mark.parametrize("shape", [rest_v1_event, http_v2_event])
def test_handler_errors_are_json_with_the_api_gateway_request_id(handler, complete_body, shape):
    event = shape("POST", "/v1/complete", complete_body, {"content-type": "application/json", "x-api-key": "nope"})
    out = handler(event, LambdaContext())
    assert out["statusCode"] == 401
    err = json.loads(out["body"])["error"]
    assert err["code"] == "unauthorized"
    assert err["request_id"] == event["requestContext"]["requestId"]


def test_handler_rejects_garbage_base64_in_the_payload_with_400(handler, complete_body):
    body = json.loads(complete_body)
    body["image"] = "%%%"
    out = handler(http_v2_event("POST", "/v1/complete", json.dumps(body), JSON_KEY), LambdaContext())
    assert out["statusCode"] == 400 and json.loads(out["body"])["error"]["code"] == "bad_image"


@pytest.mark.parametrize("shape", [rest_v1_event, http_v2_event])
def test_handler_answers_health_and_ready_probes(handler, shape):
    assert handler(shape("GET", "/v1/health"), LambdaContext())["statusCode"] == 200
    ready = handler(shape("GET", "/v1/ready"), LambdaContext())
    assert ready["statusCode"] == 200 and json.loads(ready["body"])["status"] == "ready"


# --- the model store ----------------------------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_s3():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_s3, monkeypatch):
    import boto3

    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": moto_s3}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    bucket = f"models-{_free_port()}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def _archive(fmt: str, folder=DEFAULT, extra: dict | None = None) -> bytes:
    buf = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for p in sorted(folder.iterdir()):
                z.write(p, f"{folder.name}/{p.name}")
            for name, data in (extra or {}).items():
                z.writestr(name, data)
    else:
        with tarfile.open(fileobj=buf, mode="w") as t:
            t.add(folder, arcname=folder.name)
            for name, data in (extra or {}).items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("fmt,key", [("tar", "bundles/faces64.tar"), ("zip", "bundles/faces64.zip")])
def test_bundle_archive_loads_from_s3_and_verifies(s3, tmp_path, fmt, key):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key=key, Body=_archive(fmt))
    path = resolve_bundle(f"s3://{bucket}/{key}", cache_dir=tmp_path)
    info = bundles.verify_bundle(path)
    assert info.ref == "facemend-faces64@1.0.0"
    assert tmp_path in path.parents


def test_s3_bundle_is_cached_until_the_object_changes(s3, tmp_path):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="b.tar", Body=_archive("tar"))
    first = resolve_bundle(f"s3://{bucket}/b.tar", cache_dir=tmp_path)
    marker = first / "cached-marker"
    marker.write_text("x")
    assert resolve_bundle(f"s3://{bucket}/b.tar", cache_dir=tmp_path) == first and marker.exists()
    client.put_object(Bucket=bucket, Key="b.tar", Body=_archive("tar", extra={"README": b"new"}))
    assert resolve_bundle(f"s3://{bucket}/b.tar", cache_dir=tmp_path) != first


def test_bundle_under_an_s3_prefix_loads(s3, tmp_path):
    client, bucket = s3
    for p in DEFAULT.iterdir():
        client.upload_file(str(p), bucket, f"prefix/faces64/{p.name}")
    path = resolve_bundle(f"s3://{bucket}/prefix/faces64/", cache_dir=tmp_path)
    assert bundles.verify_bundle(path).name == "facemend-faces64"


def test_an_altered_weight_file_from_s3_is_refused(s3, tmp_path):
    client, bucket = s3
    altered = tmp_path / "src" / DEFAULT.name
    shutil.copytree(DEFAULT, altered)
    data = bytearray((altered / "generator.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (altered / "generator.npz").write_bytes(bytes(data))
    client.put_object(Bucket=bucket, Key="altered.tar", Body=_archive("tar", altered))
    with pytest.raises(BundleError, match="generator.npz.*altered"):
        resolve_bundle(f"s3://{bucket}/altered.tar", cache_dir=tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("*/manifest.json"))  # nothing half-installed is left to reuse


def test_an_archive_not_matching_the_pinned_sha256_is_refused(s3, tmp_path):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="p.tar", Body=_archive("tar"))
    with pytest.raises(BundleError, match="FACEMEND_MODEL_SHA256"):
        resolve_bundle(f"s3://{bucket}/p.tar", cache_dir=tmp_path, expected_sha256="0" * 64)


def test_an_archive_that_escapes_its_folder_is_refused(s3, tmp_path):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="evil.tar", Body=_archive("tar", extra={"../../escape.txt": b"x"}))
    with pytest.raises(BundleError):
        resolve_bundle(f"s3://{bucket}/evil.tar", cache_dir=tmp_path / "c")
    assert not (tmp_path / "escape.txt").exists()


def test_a_missing_s3_object_is_reported_with_the_permission_to_check(s3, tmp_path):
    client, bucket = s3
    with pytest.raises(BackendUnavailableError, match="s3:GetObject"):
        resolve_bundle(f"s3://{bucket}/nope.tar", cache_dir=tmp_path)


def test_bundle_archive_loads_over_http_on_loopback(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "faces64.tar").write_bytes(_archive("tar"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "site")))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/faces64.tar"
        path = resolve_bundle(url, cache_dir=tmp_path / "cache")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert bundles.verify_bundle(path).ref == "facemend-faces64@1.0.0"


def test_plain_http_model_urls_are_refused_off_loopback(tmp_path):
    from core.errors import UsageError

    with pytest.raises(UsageError, match="https"):
        resolve_bundle("http://models.example.org/faces64.tar", cache_dir=tmp_path)


def test_a_fresh_lambda_container_loads_its_model_from_s3_and_answers(s3, tmp_path, complete_body):
    """Cold start as on Lambda: a new process imports the handler module, which
    fetches the bundle from S3 into its /tmp cache, then serves an HTTP API event."""
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="cold/faces64.tar", Body=_archive("tar"))
    event = http_v2_event("POST", "/v1/complete", complete_body, JSON_KEY)
    (tmp_path / "event.json").write_text(json.dumps(event))
    script = (
        "import json, sys, time; t = time.perf_counter()\n"
        "import cloud.lambda_handler as lh\n"
        "out = lh.handler(json.load(open(sys.argv[1])), None)\n"
        "print(json.dumps({'status': out['statusCode'], 'model': json.loads(out['body']).get('model')}))\n"
    )
    env = {**os.environ, "FACEMEND_API_KEY": KEY, "FACEMEND_MODEL_URI": f"s3://{bucket}/cold/faces64.tar",
           "FACEMEND_CACHE_DIR": str(tmp_path / "tmp-cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "event.json")], env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout.strip().splitlines()[-1])
    assert answer == {"status": 200, "model": {"name": "facemend-faces64", "version": "1.0.0"}}
    assert '"event": "model_loaded"' in r.stderr
    assert any((tmp_path / "tmp-cache").glob("*/manifest.json"))
