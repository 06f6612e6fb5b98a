"""The completion service, served for real by uvicorn on 127.0.0.1 and called
with the real client (or plain requests, for what the client would refuse to send)."""

import base64
import json
import logging
import threading

import numpy as np
import pytest
import requests

from cloud import schema
from cloud.client import RemoteCompleter
from cloud.service import BackgroundServer, ServiceConfig, create_app
from core.api import CompletionRequest, CompletionSettings
from core.errors import BackendUnavailableError, BadInputError

KEY = "test-key-" + "x" * 24
FAST = CompletionSettings(steps=3, restarts=1, seed=7)


def _face(face_model, seed=3):
    """A face the model itself drew, so the test input is in distribution."""
    from core.model_build import to_uint8

    z = np.random.default_rng(seed).standard_normal((1, face_model.z_dim)).astype(np.float32)
    return to_uint8(face_model.generator(z, training=False).numpy()[0])


@pytest.fixture(scope="module")
def crop(face_model):
    image = _face(face_model)
    mask = np.zeros(image.shape[:2], bool)
    mask[24:44, 18:46] = True  # nose and mouth
    image = image.copy()
    image[mask] = np.random.default_rng(0).integers(0, 256, (int(mask.sum()), 3), dtype=np.uint8)  # real damage
    return image, mask


@pytest.fixture(scope="module")
def service(face_model):
    app = create_app(ServiceConfig(api_key=KEY, concurrency=1, queue=2, timeout_s=30), model=face_model)
    with BackgroundServer(app) as server:
        yield server


def _body(crop, **overrides) -> dict:
    image, mask = crop
    wire = schema.request_to_wire(CompletionRequest(image, mask, FAST)).model_dump()
    wire.update(overrides)
    return wire


def _post(url, body, key=KEY, content_type="application/json", data=None):
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["x-api-key"] = key
    return requests.post(url + "/v1/complete", data=data if data is not None else json.dumps(body), headers=headers, timeout=60)


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# --- results --------------------------------------------------------------------------


def test_service_gives_the_same_result_as_in_process_for_the_same_seed(service, face_model, crop):
    from core.complete import LocalCompleter

    request = CompletionRequest(*crop, CompletionSettings(steps=4, restarts=2, candidates=2, seed=11))
    local = LocalCompleter(face_model).complete(request)
    remote = RemoteCompleter(service.url, KEY).complete(request)
    assert [c.image.shape for c in remote.candidates] == [c.image.shape for c in local.candidates]
    for lc, rc in zip(local.candidates, remote.candidates, strict=True):
        assert _psnr(lc.image, rc.image) >= 40
        assert rc.loss == pytest.approx(lc.loss, rel=1e-4)
    assert remote.model == local.model


def test_remote_candidates_keep_every_known_pixel(service, crop):
    image, mask = crop
    result = RemoteCompleter(service.url, KEY).complete(CompletionRequest(image, mask, FAST))
    out = result.candidates[0].image
    assert np.array_equal(out[~mask], image[~mask])
    assert not np.array_equal(out[mask], image[mask])  # the noise in the hole was replaced


def test_response_carries_the_protocol_fields(service, crop):
    r = _post(service.url, _body(crop))
    assert r.status_code == 200
    body = r.json()
    assert {"candidates", "ood_score", "model", "device", "seconds"} <= body.keys()
    assert set(body["candidates"][0]) >= {"image", "loss"}
    assert body["model"] == {"name": "facemend-faces64", "version": "1.0.0"}
    assert body["request_id"] == r.headers["x-request-id"]
    assert base64.b64decode(body["candidates"][0]["image"])[:8] == b"\x89PNG\r\n\x1a\n"


def test_caller_request_id_is_echoed(service, crop):
    r = requests.post(service.url + "/v1/complete", json=_body(crop), headers={"x-api-key": KEY, "x-request-id": "abc-123"}, timeout=60)
    assert r.headers["x-request-id"] == "abc-123" and r.json()["request_id"] == "abc-123"


# --- probes, models, schema ----------------------------------------------------------------


def test_health_and_ready_answer_without_a_key(service):
    assert requests.get(service.url + "/v1/health", timeout=5).json() == {"status": "ok"}
    ready = requests.get(service.url + "/v1/ready", timeout=5)
    assert ready.status_code == 200 and ready.json()["model"]["name"] == "facemend-faces64"


def test_models_lists_the_served_bundle(service):
    models = RemoteCompleter(service.url, KEY).check()
    assert models.default == "facemend-faces64@1.0.0"
    assert models.models[0].image_size == 64


def test_openapi_documents_the_fixed_request_and_response_fields(service):
    spec = requests.get(service.url + "/openapi.json", timeout=5).json()
    op = spec["paths"]["/v1/complete"]["post"]
    req_props = op["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"image", "mask", "steps", "restarts", "candidates", "seed", "model"} <= req_props.keys()
    resp = spec["components"]["schemas"]["CompleteResponse"]["properties"]
    assert {"candidates", "ood_score", "model", "device", "seconds"} <= resp.keys()
    assert {"/v1/health", "/v1/ready", "/v1/models"} <= spec["paths"].keys()


def test_ready_and_health_report_a_model_that_failed_to_load():
    app = create_app(ServiceConfig(api_key=KEY, model_uri="no-such-bundle@9"))
    with BackgroundServer(app) as server:
        import time

        for _ in range(100):
            r = requests.get(server.url + "/v1/ready", timeout=5)
            if r.json()["status"] != "loading":
                break
            time.sleep(0.05)
        assert r.status_code == 503 and r.json()["status"] == "failed"
        assert "no-such-bundle" in r.json()["detail"]
        assert requests.get(server.url + "/v1/health", timeout=5).status_code == 503


def test_service_refuses_to_start_without_an_api_key():
    from core.errors import UsageError

    with pytest.raises(UsageError, match="FACEMEND_API_KEY"):
        create_app(ServiceConfig(api_key=""))


# --- error paths -----------------------------------------------------------------------------


def _assert_error(r, status, code):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert err["request_id"] and err["request_id"] == r.headers["x-request-id"]
    return err


@pytest.mark.parametrize("key", [None, "wrong-key", KEY[:-1]])
def test_missing_or_wrong_key_is_401(service, crop, key):
    _assert_error(_post(service.url, _body(crop), key=key), 401, "unauthorized")


def test_client_reports_a_rejected_key_without_echoing_it(service, crop):
    with pytest.raises(BackendUnavailableError, match="API key was rejected") as info:
        RemoteCompleter(service.url, "not-the-key").complete(CompletionRequest(*crop, FAST))
    assert "not-the-key" not in str(info.value)


def test_client_without_a_key_says_which_variable_to_set(service, crop, monkeypatch):
    monkeypatch.delenv("FACEMEND_API_KEY", raising=False)
    with pytest.raises(BackendUnavailableError, match="set FACEMEND_API_KEY"):
        RemoteCompleter(service.url).check()


def test_oversized_body_is_413(service, crop):
    big = json.dumps(_body(crop)) + " " * schema.MAX_REQUEST_BYTES
    _assert_error(_post(service.url, None, data=big), 413, "too_large")


def test_oversized_body_without_content_length_is_413(service, crop):
    chunks = (b" " * 65536 for _ in range(schema.MAX_REQUEST_BYTES // 65536 + 2))
    r = requests.post(service.url + "/v1/complete", data=chunks, timeout=60,
                      headers={"x-api-key": KEY, "Content-Type": "application/json"})
    _assert_error(r, 413, "too_large")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_415(service, crop, ctype):
    _assert_error(_post(service.url, _body(crop), content_type=ctype), 415, "unsupported_media_type")


def test_garbage_base64_is_400_naming_the_field(service, crop):
    err = _assert_error(_post(service.url, _body(crop, mask="!!not base64!!")), 400, "bad_image")
    assert err["message"].startswith("mask")


def test_base64_that_is_not_a_png_is_400(service, crop):
    jpeg_ish = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 64).decode()
    err = _assert_error(_post(service.url, _body(crop, image=jpeg_ish)), 400, "bad_image")
    assert "not a PNG" in err["message"]


def test_crop_of_the_wrong_size_is_400(service, crop):
    image, mask = crop
    small = schema.b64_png(image[:32, :32])
    _assert_error(_post(service.url, _body(crop, image=small, mask=schema.b64_png(mask[:32, :32]))), 400, "bad_image")


def test_empty_mask_is_400(service, crop):
    image, mask = crop
    _assert_error(_post(service.url, _body(crop, mask=schema.b64_png(np.zeros_like(mask)))), 400, "bad_image")


def test_mask_of_another_size_than_the_image_is_400(service, crop):
    _, mask = crop
    err = _assert_error(_post(service.url, _body(crop, mask=schema.b64_png(mask[:60]))), 400, "bad_image")
    assert "does not match" in err["message"]


@pytest.mark.parametrize("override", [{"steps": 0}, {"restarts": 999}, {"seed": -1}, {"image": None}])
def test_malformed_request_is_422(service, crop, override):
    _assert_error(_post(service.url, _body(crop, **override)), 422, "invalid_request")


def test_not_json_is_422(service):
    _assert_error(_post(service.url, None, data=b"{not json"), 422, "invalid_request")


def test_more_candidates_than_restarts_is_422_invalid_settings(service, crop):
    _assert_error(_post(service.url, _body(crop, candidates=3, restarts=2)), 422, "invalid_settings")


@pytest.mark.parametrize("model", ["facemend-faces64@9.9.9", "someone-elses-model"])
def test_a_model_the_service_does_not_serve_is_422(service, crop, model):
    err = _assert_error(_post(service.url, _body(crop, model=model)), 422, "model_not_served")
    assert "facemend-faces64@1.0.0" in err["message"]


def test_the_served_model_by_name_or_ref_is_accepted(service, crop):
    assert _post(service.url, _body(crop, model="facemend-faces64")).status_code == 200
    assert _post(service.url, _body(crop, model="facemend-faces64@1.0.0")).status_code == 200


def test_client_checks_request_size_before_sending(service):
    noise = np.random.default_rng(1).integers(0, 256, (1100, 1100, 3), dtype=np.uint8)  # incompressible
    mask = np.ones((1100, 1100), bool)
    with pytest.raises(BadInputError, match="over the service limit"):
        RemoteCompleter(service.url, KEY).complete(CompletionRequest(noise, mask, FAST))


def test_beyond_capacity_requests_get_503_with_retry_after_not_a_pile_up(face_model, crop):
    app = create_app(ServiceConfig(api_key=KEY, concurrency=1, queue=0, timeout_s=60), model=face_model)
    with BackgroundServer(app) as server:
        body = _body(crop, steps=80)
        statuses, headers = [], []

        def fire():
            r = _post(server.url, body)
            statuses.append(r.status_code)
            headers.append(r)

        threads = [threading.Thread(target=fire) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(statuses) == [200, 503, 503, 503]
        for r in headers:
            if r.status_code == 503:
                _assert_error(r, 503, "overloaded")
                assert int(r.headers["Retry-After"]) >= 1


def test_a_search_past_the_timeout_is_stopped_with_504(face_model, crop):
    app = create_app(ServiceConfig(api_key=KEY, concurrency=1, queue=1, timeout_s=0.5), model=face_model)
    with BackgroundServer(app) as server:
        _assert_error(_post(server.url, _body(crop, steps=5000)), 504, "timeout")
        # The slot was freed: the search really stopped instead of running on.
        assert _post(server.url, _body(crop, steps=2)).status_code == 200


def test_unknown_route_is_a_json_404(service):
    r = requests.get(service.url + "/v2/complete", timeout=5)
    _assert_error(r, 404, "not_found")


def test_logs_carry_the_request_id_but_no_image_data(service, crop, caplog):
    caplog.set_level(logging.INFO, logger="facemend.service")
    r = _post(service.url, _body(crop))
    assert r.status_code == 200
    messages = [rec.getMessage() for rec in caplog.records if rec.name == "facemend.service"]
    events = [json.loads(m) for m in messages]
    assert any(e.get("event") == "complete" and e["request_id"] == r.headers["x-request-id"] for e in events)
    body = _body(crop)
    for m in messages:
        assert "iVBORw0KGgo" not in m  # base64 of the PNG signature
        assert body["image"][:40] not in m and KEY not in m


def test_an_unexpected_failure_is_a_json_500_with_the_request_id(face_model, crop, monkeypatch):
    app = create_app(ServiceConfig(api_key=KEY), model=face_model)
    completer = app.state.slot.completer

    def bug(*args, **kwargs):  # a defect in the engine, not a bad request
        raise ZeroDivisionError("simulated defect")

    monkeypatch.setattr(completer, "complete", bug)
    with BackgroundServer(app) as server:
        r = _post(server.url, _body(crop))
    assert r.status_code == 500
    err = r.json()["error"]
    assert err["code"] == "internal" and err["request_id"]
    assert "simulated defect" not in r.text  # internals stay in the log
