"""Client of the completion service: a core.api.Completer that runs remotely.

`RemoteCompleter(endpoint, api_key).complete(request)` sends the aligned crop
and mask (never the photo) and returns a CompletionResult, so
core.repair.repair() uses it exactly like the local engine.

Failure policy, chosen so that facemend.backends can fall back cleanly:

* connection errors (refused, DNS, connect timeout) and 502/503 are retried
  with exponential backoff, honouring Retry-After (capped);
* a read timeout is not retried — the service may still be working, and a
  second copy would only add load — it fails at once;
* anything that another backend might do better (down, busy, timeout, 5xx,
  key rejected, a different model) raises BackendUnavailableError (exit 4);
* input the service rejects as bad (400/413) raises BadInputError (exit 3):
  no other backend would accept it either.

TLS certificates are always verified (a custom CA bundle can be given; there
is deliberately no switch to turn verification off). Messages never contain
the API key.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import math
import os
import re
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import requests

from cloud import schema
from core.api import CancelToken, CompletionRequest, CompletionResult, ProgressCallback
from core.errors import BackendUnavailableError, BadInputError, CancelledError, UsageError

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
USER_AGENT = "facemend-client/1"


@dataclass(frozen=True)
class Endpoint:
    name: str  # "lambda", "gke", … or the URL itself when unnamed
    url: str  # base URL without a trailing slash

    @property
    def label(self) -> str:
        return self.url if self.name == self.url else f"{self.name} ({self.url})"

    @property
    def is_loopback(self) -> bool:
        host = urlparse(self.url).hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def encrypted(self) -> bool:
        return self.url.startswith("https://")


def parse_endpoint(item: str) -> Endpoint:
    """`name=https://host/base` or a bare URL."""
    item = item.strip()
    name, sep, url = item.partition("=")
    if not sep or "://" in name:
        name, url = "", item
    name, url = name.strip().lower(), url.strip().rstrip("/")
    p = urlparse(url)
    if p.scheme not in ("http", "https") or not p.hostname:
        raise UsageError(f"endpoint {item!r}: expected an http(s) URL, optionally as name=URL")
    if p.query or p.fragment:
        raise UsageError(f"endpoint {item!r}: give the service's base URL, without ?query or #fragment")
    if name and not _NAME.match(name):
        raise UsageError(f"endpoint name {name!r}: use lower-case letters, digits, - and _")
    return Endpoint(name or url, url)


def parse_endpoints(text: str | None) -> list[Endpoint]:
    """FACEMEND_ENDPOINTS: comma-separated, in the order to try them."""
    out = [parse_endpoint(item) for item in (text or "").split(",") if item.strip()]
    names = [e.name for e in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"FACEMEND_ENDPOINTS names {', '.join(dupes)} more than once")
    return out


def _retry_after(response: requests.Response, fallback: float, cap: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return fallback  # HTTP-dates are legal but our services never send them
    return min(max(seconds, 0.0), cap) if math.isfinite(seconds) else fallback


def _error_of(response: requests.Response) -> tuple[str, str, str]:
    try:
        err = schema.ErrorResponse.model_validate_json(response.content).error
        return err.code, err.message, err.request_id
    except Exception:  # an API Gateway or load-balancer page, not our JSON
        text = response.text[:200].strip().replace("\n", " ")
        return "", text or response.reason or "", response.headers.get("x-request-id", "") or response.headers.get("x-amzn-requestid", "")


class RemoteCompleter:
    """Completes aligned crops on a FaceMend service (Lambda, GKE, `facemend serve`)."""

    def __init__(
        self,
        endpoint: Endpoint | str,
        api_key: str | None = None,
        *,
        model: str | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 20.0,
        verify: bool | str = True,
        session: requests.Session | None = None,
    ):
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint)
        self.backend = self.endpoint.name
        self.api_key = api_key if api_key is not None else os.environ.get("FACEMEND_API_KEY", "")
        self.model = model  # name@version to ask for; None = the service's own
        self.device = "remote"  # replaced by the service's own report on check() and complete()
        self.timeout = (connect_timeout, read_timeout)
        self.retries, self.backoff, self.max_retry_after = retries, backoff, max_retry_after
        if verify is False:
            raise UsageError("TLS verification cannot be turned off; pass a CA bundle path instead")
        self.verify = verify
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="facemend-remote")

    def __repr__(self) -> str:
        return f"RemoteCompleter({self.endpoint.label})"

    # -- HTTP with retries ---------------------------------------------------
    def _headers(self) -> dict:
        h = {"Accept": "application/json"}
        if self.api_key:
            h["x-api-key"] = self.api_key
        return h

    def _send(self, method: str, path: str, *, body: bytes | None = None, timeout=None, retries=None,
              cancel: CancelToken | None = None) -> requests.Response:
        url = self.endpoint.url + path
        headers = self._headers()
        if body is not None:
            headers["Content-Type"] = "application/json"
        retries = self.retries if retries is None else retries
        reason = ""
        for attempt in range(retries + 1):
            if cancel is not None and cancel.cancelled:
                raise CancelledError("completion cancelled")
            wait = self.backoff * (2 ** attempt)
            try:
                r = self.session.request(method, url, data=body, headers=headers, timeout=timeout or self.timeout,
                                         verify=self.verify, allow_redirects=False)
            except requests.exceptions.SSLError as exc:
                raise BackendUnavailableError(f"{self.endpoint.label}: TLS certificate check failed ({exc.__class__.__name__}); "
                                              "fix the certificate or pass its CA bundle") from None
            except requests.exceptions.ReadTimeout:
                raise BackendUnavailableError(f"{self.endpoint.label}: no answer within {(timeout or self.timeout)[1]:g} s") from None
            except requests.exceptions.ConnectionError as exc:
                reason = "cannot connect" + (" (timed out)" if isinstance(exc, requests.exceptions.ConnectTimeout) else "")
            except requests.exceptions.RequestException as exc:
                raise BackendUnavailableError(f"{self.endpoint.label}: request failed ({exc.__class__.__name__})") from None
            else:
                if r.status_code not in (502, 503):
                    return r
                if attempt == retries:
                    return r
                code, message, _ = _error_of(r)
                reason = f"HTTP {r.status_code} {message}".strip()
                wait = _retry_after(r, wait, self.max_retry_after)
            if attempt < retries:
                self._sleep(wait, cancel)
        raise BackendUnavailableError(f"{self.endpoint.label}: {reason} after {retries + 1} attempt(s)")

    @staticmethod
    def _sleep(seconds: float, cancel: CancelToken | None) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if cancel is not None and cancel.cancelled:
                raise CancelledError("completion cancelled")
            time.sleep(min(left, 0.1))

    def _raise_for(self, r: requests.Response) -> None:
        code, message, request_id = _error_of(r)
        where = f"{self.endpoint.label}: HTTP {r.status_code}"
        tail = f" (request id {request_id})" if request_id else ""
        if r.status_code in (401, 403):
            if not self.api_key:
                raise BackendUnavailableError(f"{where}: an API key is required; set FACEMEND_API_KEY") from None
            raise BackendUnavailableError(f"{where}: the API key was rejected{tail}") from None
        if r.status_code in (400, 413):
            raise BadInputError(f"{where}: {message}{tail}") from None
        if r.status_code == 422 and code == "invalid_settings":
            raise UsageError(f"{where}: {message}{tail}") from None
        if r.status_code in (415, 422):
            # A service of another protocol version or with another model.
            raise BackendUnavailableError(f"{where}: {message}{tail}") from None
        if r.status_code == 503:
            raise BackendUnavailableError(f"{where}: busy or not ready ({message}){tail}") from None
        if r.status_code == 504:
            raise BackendUnavailableError(f"{where}: timed out on the service ({message}){tail}") from None
        raise BackendUnavailableError(f"{where}: {message or r.reason}{tail}") from None

    # -- public ---------------------------------------------------------------
    def check(self, timeout: float = 5.0) -> schema.ModelsResponse:
        """Health check: reachable, key accepted, model loaded (GET /v1/models, no retries)."""
        r = self._send("GET", "/v1/models", timeout=(min(self.timeout[0], timeout), timeout), retries=0)
        if r.status_code != 200:
            self._raise_for(r)
        try:
            models = schema.ModelsResponse.model_validate_json(r.content)
        except Exception:
            raise BackendUnavailableError(f"{self.endpoint.label}: /v1/models did not answer like a FaceMend service") from None
        if self.model:
            name, _, version = self.model.partition("@")
            if not any(m.name == name and (not version or m.version == version) for m in models.models):
                raise BackendUnavailableError(f"{self.endpoint.label}: serves {models.default}, not {self.model}")
        self.device = models.device or self.device
        return models

    def complete(
        self,
        request: CompletionRequest,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> CompletionResult:
        settings = request.settings.validated()
        body = schema.request_to_wire(request, self.model).model_dump_json().encode()
        if len(body) > schema.MAX_REQUEST_BYTES:
            raise BadInputError(f"the request is {len(body)} bytes, over the service limit of {schema.MAX_REQUEST_BYTES}")
        if progress is not None:
            progress(0, settings.steps, float("nan"), None)
        if cancel is None:
            r = self._send("POST", "/v1/complete", body=body)
        else:
            # Keep the caller's thread free to notice a cancel while the request is out.
            future = self._pool.submit(self._send, "POST", "/v1/complete", body=body, cancel=cancel)
            while True:
                try:
                    r = future.result(timeout=0.1)
                    break
                except concurrent.futures.TimeoutError:
                    if cancel.cancelled:
                        raise CancelledError("completion cancelled") from None
        if r.status_code != 200:
            self._raise_for(r)
        if len(r.content) > schema.MAX_RESPONSE_BYTES:
            raise BackendUnavailableError(f"{self.endpoint.label}: an answer of {len(r.content)} bytes is over the protocol's "
                                          f"{schema.MAX_RESPONSE_BYTES}-byte limit")
        try:
            wire = schema.CompleteResponse.model_validate_json(r.content)
        except Exception:
            raise BackendUnavailableError(f"{self.endpoint.label}: the answer is not a FaceMend completion") from None
        try:
            result = schema.result_from_wire(wire, tuple(request.image.shape))
        except BadInputError as exc:
            raise BackendUnavailableError(f"{self.endpoint.label}: unusable answer ({exc})") from None
        self.device = result.device
        if progress is not None:
            progress(settings.steps, settings.steps, result.candidates[0].loss, result.candidates[0].image)
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.session.close()
