"""Backend choice and fallback: real services on 127.0.0.1 that are up, down,
slow, busy or broken, and the real client and local engine behind them."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests

from cloud.client import RemoteCompleter, parse_endpoints
from cloud.service import BackgroundServer, ServiceConfig, create_app
from core.api import CompletionRequest, CompletionSettings
from core.errors import BackendUnavailableError, UsageError
from facemend.backends import EndpointHealth, choose_backend

KEY = "fallback-key-" + "y" * 20
FAST = CompletionSettings(steps=3, restarts=1, seed=5)


@pytest.fixture(scope="module")
def crop(face_model):
    from core.model_build import to_uint8

    z = np.random.default_rng(9).standard_normal((1, face_model.z_dim)).astype(np.float32)
    image = to_uint8(face_model.generator(z, training=False).numpy()[0]).copy()
    mask = np.zeros((64, 64), bool)
    mask[36:52, 20:44] = True
    image[mask] = 0  # damaged: black hole
    return image, mask


@pytest.fixture(scope="module")
def service(face_model):
    with BackgroundServer(create_app(ServiceConfig(api_key=KEY, timeout_s=30), model=face_model)) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def down_url():
    """An address where nothing listens: connection refused."""
    return f"http://127.0.0.1:{_free_port()}"


class _Broken:
    """A server on loopback that passes the health check and then fails the
    completion the way gateways and overloaded hosts do (5xx, or silence)."""

    def __init__(self, mode: str, face_model):
        models = {"models": [{"name": face_model.ref.name, "version": face_model.ref.version, "image_size": 64,
                              "z_dim": 100, "has_critic": False, "has_encoder": False}], "default": str(face_model.ref)}
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, body: bytes, ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, json.dumps(models).encode())

            def do_POST(self):
                outer.hits += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if mode == "slow":
                    time.sleep(3)
                    return self._send(200, b"{}")
                if mode == "502":
                    return self._send(502, b"<html>Bad Gateway</html>", "text/html")
                self._send(500, b'{"error": {"code": "internal", "message": "boom", "request_id": "r-1"}}')

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def broken(face_model):
    made = []

    def make(mode):
        made.append(_Broken(mode, face_model))
        return made[-1]

    yield make
    for b in made:
        b.close()


def _choose(name, face_model, endpoints, **kw):
    kw.setdefault("api_key", KEY)
    kw.setdefault("health", EndpointHealth())
    return choose_backend(name, lambda: face_model, endpoints=endpoints, **kw)


# --- configuration ------------------------------------------------------------------------


def test_endpoints_parse_named_and_plain_in_order():
    eps = parse_endpoints("lambda=https://abc.execute-api.eu-west-1.amazonaws.com/prod, gke=https://fm.example.org ,https://x.example.org/")
    assert [e.name for e in eps] == ["lambda", "gke", "https://x.example.org"]
    assert eps[0].url == "https://abc.execute-api.eu-west-1.amazonaws.com/prod"


@pytest.mark.parametrize("bad", ["lambda=ftp://x", "gke=", "not a url", "a=https://x,a=https://y", "https://x/?k=1"])
def test_bad_endpoint_configuration_is_a_usage_error(bad):
    with pytest.raises(UsageError):
        parse_endpoints(bad)


def test_an_unknown_backend_name_is_a_usage_error_listing_the_choices(face_model):
    with pytest.raises(UsageError, match="lambda"):
        _choose("gke", face_model, "lambda=https://a.example.org")


def test_tls_verification_cannot_be_switched_off():
    with pytest.raises(UsageError):
        RemoteCompleter("https://a.example.org", KEY, verify=False)


def test_plain_http_to_a_remote_host_is_noted(face_model, down_url):
    choice = _choose("auto", face_model, "lan=http://192.0.2.1:9")
    assert any("unencrypted" in n for n in choice.notes)


# --- auto: endpoints in order, then the CPU -----------------------------------------------------


def test_auto_uses_the_first_healthy_endpoint(face_model, service, crop):
    choice = _choose("auto", face_model, f"gke={service.url}")
    result = choice.completer.complete(CompletionRequest(*crop, FAST))
    assert choice.completer.backend == "gke"
    assert choice.notes == []
    assert result.candidates[0].image.shape == (64, 64, 3)


def test_auto_skips_a_down_endpoint_with_a_note_and_uses_the_next(face_model, service, down_url, crop):
    choice = _choose("auto", face_model, f"lambda={down_url},gke={service.url}")
    choice.completer.complete(CompletionRequest(*crop, FAST))
    assert choice.completer.backend == "gke"
    assert any(n.startswith(f"skipping lambda ({down_url})") and "cannot connect" in n for n in choice.notes)


def test_auto_falls_back_to_the_local_cpu_when_no_endpoint_answers(face_model, down_url, crop):
    choice = _choose("auto", face_model, f"lambda={down_url}")
    result = choice.completer.complete(CompletionRequest(*crop, FAST))
    assert choice.completer.backend == "cpu" and result.device == "CPU"
    assert any("lambda" in n and "the local CPU" in n for n in choice.notes)


def test_a_5xx_during_the_completion_falls_back_to_the_cpu_with_a_note(face_model, broken, crop):
    bad = broken("500")
    heard = []
    choice = _choose("auto", face_model, f"gke={bad.url}", on_note=heard.append)
    assert choice.notes == []  # it passed the health check
    result = choice.completer.complete(CompletionRequest(*crop, FAST))
    assert choice.completer.backend == "cpu" and result.candidates
    assert bad.hits == 1  # a 500 is not retried
    assert len(heard) == 1 and "HTTP 500" in heard[0] and "using the local CPU" in heard[0]
    assert heard == choice.notes  # the same note, in the choice for the CLI's --json


def test_a_gateway_502_is_retried_then_falls_back(face_model, broken, crop):
    bad = broken("502")
    choice = _choose("auto", face_model, f"lambda={bad.url}")
    for link in choice.completer.links:  # keep the backoff short for the test
        if link.kind == "remote":
            link.completer.backoff = 0.05
    choice.completer.complete(CompletionRequest(*crop, FAST))
    assert bad.hits == 4  # 1 + 3 retries
    assert choice.completer.backend == "cpu"
    assert any("HTTP 502" in n for n in choice.notes)


def test_a_fallback_during_a_repair_is_reported_in_the_repair_result(face_model, broken, crop):
    """The CLI's --json and the app's status bar both read RepairResult.notes."""
    from core.api import RepairRequest
    from core.imageio import photo_from_array
    from core.repair import repair

    bad = broken("502")
    choice = _choose("auto", face_model, f"lambda={bad.url}")
    for link in choice.completer.links:
        if link.kind == "remote":
            link.completer.backoff = 0.05
    image, mask = crop
    result = repair(RepairRequest(photo_from_array(image), mask=mask, aligned=True, settings=FAST),
                    choice.completer, face_model.info)
    assert result.backend == "cpu"
    assert any("HTTP 502" in n and "instead" in n for n in result.notes)


def test_an_endpoint_that_does_not_answer_in_time_falls_back(face_model, broken, crop):
    slow = broken("slow")
    choice = _choose("auto", face_model, f"gke={slow.url}", read_timeout=0.5)
    t0 = time.monotonic()
    choice.completer.complete(CompletionRequest(*crop, FAST))
    assert choice.completer.backend == "cpu"
    assert slow.hits == 1  # a read timeout is not retried: the service may still be busy with it
    assert any("no answer within 0.5 s" in n for n in choice.notes)
    assert time.monotonic() - t0 < 30


def test_a_service_side_timeout_504_falls_back(face_model, crop):
    from core.api import CancelToken
    from core.errors import CancelledError

    app = create_app(ServiceConfig(api_key=KEY, timeout_s=0.3), model=face_model)
    with BackgroundServer(app) as server:
        choice = _choose("auto", face_model, f"gke={server.url}")
        token = CancelToken()

        def progress(step, total, loss, preview):
            # 5000 steps would take minutes on the CPU too: the hand-over is the point, so stop there.
            if choice.completer.backend == "cpu":
                token.cancel()

        with pytest.raises(CancelledError):
            choice.completer.complete(CompletionRequest(*crop, CompletionSettings(steps=5000, restarts=1)), progress, token)
    assert choice.completer.backend == "cpu"
    assert any("HTTP 504" in n and "using the local CPU" in n for n in choice.notes)


def test_an_endpoint_that_dies_mid_batch_hands_the_request_to_the_cpu(face_model, crop):
    server = BackgroundServer(create_app(ServiceConfig(api_key=KEY), model=face_model)).start()
    choice = _choose("auto", face_model, f"gke={server.url}")
    first = choice.completer.complete(CompletionRequest(*crop, FAST))
    assert choice.completer.backend == "gke"
    server.stop()
    second = choice.completer.complete(CompletionRequest(*crop, FAST))
    assert choice.completer.backend == "cpu"
    assert any("gke" in n and "cannot connect" in n for n in choice.notes)
    # Same seed, same model: the CPU gives what the service gave.
    assert np.array_equal(first.candidates[0].image, second.candidates[0].image)


def test_a_failed_endpoint_is_remembered_as_down_for_a_while(face_model, down_url):
    now = [1000.0]
    health = EndpointHealth(down_for=60, clock=lambda: now[0])
    _choose("auto", face_model, f"lambda={down_url}", health=health)
    assert health.down_reason(down_url) is not None
    second = _choose("auto", face_model, f"lambda={down_url}", health=health)
    assert any("failed 0 s ago" in n for n in second.notes)  # skipped without another try
    now[0] += 61
    assert health.down_reason(down_url) is None


def test_an_endpoint_serving_another_model_is_skipped(face_model, service):
    choice = _choose("auto", face_model, f"gke={service.url}", model="facemend-faces64@2.0.0")
    assert any("serves facemend-faces64@1.0.0, not facemend-faces64@2.0.0" in n for n in choice.notes)


def test_a_wrong_key_falls_back_with_a_clear_note_that_does_not_echo_it(face_model, service):
    choice = _choose("auto", face_model, f"gke={service.url}", api_key="k-wrong-4711")
    assert any("API key was rejected" in n for n in choice.notes)
    assert not any("k-wrong-4711" in n for n in choice.notes)


# --- explicit choices ---------------------------------------------------------------------------


def test_an_explicit_endpoint_that_is_down_fails_with_exit_code_4(face_model, down_url):
    with pytest.raises(BackendUnavailableError) as info:
        _choose("lambda", face_model, f"lambda={down_url}")
    assert info.value.exit_code == 4 and "lambda" in str(info.value)


def test_an_explicit_url_is_used_without_configuration(face_model, service):
    choice = _choose(service.url, face_model, "")
    assert choice.completer.backend == service.url


def test_a_backend_list_is_tried_in_the_given_order(face_model, service, down_url, crop):
    choice = _choose(f"{down_url},{service.url},cpu", face_model, "")
    choice.completer.complete(CompletionRequest(*crop, FAST))
    assert choice.completer.backend == service.url
    assert [link.kind for link in choice.completer.links] == ["remote", "cpu"]


def test_the_client_waits_out_a_503_as_retry_after_says(face_model, crop, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="facemend.service")
    app = create_app(ServiceConfig(api_key=KEY, concurrency=1, queue=0), model=face_model)
    with BackgroundServer(app) as server:
        busy = threading.Thread(target=lambda: RemoteCompleter(server.url, KEY, retries=0).complete(
            CompletionRequest(*crop, CompletionSettings(steps=60, restarts=1))))
        busy.start()
        time.sleep(0.4)
        t0 = time.monotonic()
        result = RemoteCompleter(server.url, KEY, retries=6).complete(CompletionRequest(*crop, FAST))
        waited = time.monotonic() - t0
        busy.join()
    statuses = [json.loads(r.getMessage()).get("status") for r in caplog.records if r.name == "facemend.service"]
    assert result.candidates
    assert statuses.count(503) >= 1  # it was refused at least once ...
    assert waited >= 1.0  # ... and waited the Retry-After (at least a second) before trying again


# --- the CLI against a real `facemend serve` ---------------------------------------------------------


@pytest.fixture(scope="module")
def served_by_cli(tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "FACEMEND_API_KEY": KEY, "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "facemend", "serve", "--port", str(port)], env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # TensorFlow import + model load, on a busy 2-core machine
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/v1/ready", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None:
                raise RuntimeError(log.read_text())
            time.sleep(0.1)
        else:
            raise RuntimeError("facemend serve never became ready: " + log.read_text())
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _aligned_files(tmp_path, crop):
    from core.imageio import encode_png

    image, mask = crop
    (tmp_path / "face.png").write_bytes(encode_png(image))
    (tmp_path / "mask.png").write_bytes(encode_png(mask))
    return tmp_path / "face.png", tmp_path / "mask.png"


def test_facemend_repair_runs_on_facemend_serve(served_by_cli, tmp_path, crop, capsys, monkeypatch):
    from facemend.cli import main

    url, log = served_by_cli
    monkeypatch.setenv("FACEMEND_API_KEY", KEY)
    face, mask = _aligned_files(tmp_path, crop)
    code = main(["repair", str(face), "--mask", str(mask), "--aligned", "--backend", url,
                 "--steps", "3", "--restarts", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["backend"] == url and report["notes"] == []
    assert (tmp_path / "face.repaired.png").exists()
    assert '"event": "complete"' in log.read_text()


def test_facemend_repair_auto_reports_the_fallback_in_json(tmp_path, crop, capsys, monkeypatch, down_url):
    from facemend.cli import main

    monkeypatch.setenv("FACEMEND_ENDPOINTS", f"lambda={down_url}")
    monkeypatch.setenv("FACEMEND_API_KEY", KEY)
    face, mask = _aligned_files(tmp_path, crop)
    code = main(["repair", str(face), "--mask", str(mask), "--aligned", "--steps", "2", "--restarts", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["backend"] == "cpu"
    assert any("lambda" in n and "the local CPU" in n for n in report["notes"])


def test_facemend_serve_without_a_key_exits_2():
    env = {k: v for k, v in os.environ.items() if k != "FACEMEND_API_KEY"}
    r = subprocess.run([sys.executable, "-m", "facemend", "serve", "--port", str(_free_port())], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "FACEMEND_API_KEY" in r.stderr


def test_auto_without_endpoints_or_gpu_is_the_plain_local_engine(face_model):
    from core.complete import LocalCompleter

    choice = _choose("auto", face_model, "")
    assert isinstance(choice.completer, LocalCompleter) and choice.notes == []


def test_cpu_ignores_endpoint_settings_it_does_not_use(face_model):
    choice = _choose("cpu", face_model, "this is not a url")
    assert choice.completer.backend == "cpu"


def test_the_chosen_endpoint_reports_its_name_and_device_before_any_completion(face_model, service):
    choice = _choose("auto", face_model, f"gke={service.url}")
    assert choice.completer.backend == "gke"
    assert choice.completer.device == "CPU"  # the service's own report, from the health check
