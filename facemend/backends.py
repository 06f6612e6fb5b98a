"""Choosing what runs the completion: local GPU, remote endpoints, local CPU.

Lives outside core/ because remote backends speak HTTP (cloud/client.py).

`--backend` takes

* `auto` — local GPU if TensorFlow sees one; else the configured endpoints in
  the user's order (each health-checked; one that failed is skipped for
  DOWN_FOR_S); else the local CPU;
* `gpu`, `cpu` — only that local device;
* an endpoint name from FACEMEND_ENDPOINTS (`lambda`, `gke`, …) or a URL —
  only that endpoint (exit code 4 if it is down);
* a comma-separated list of the above, e.g. `gke,lambda,cpu` — tried in that order.

Endpoints come from FACEMEND_ENDPOINTS (`lambda=https://…,gke=https://…` or
plain URLs, comma-separated, in order) or the caller's settings; the API key
from FACEMEND_API_KEY or the caller. Every fallback becomes a note: those
decided up front are in `BackendChoice.notes` when choose_backend returns;
a fallback during a completion is appended to the same list and passed to
`on_note` (or logged as a warning, which reaches stderr, when there is none).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from core.errors import BackendUnavailableError, UsageError

LOCAL_BACKENDS = ("auto", "gpu", "cpu")
DOWN_FOR_S = 120.0  # how long an endpoint that failed is skipped

log = logging.getLogger("facemend.backends")


@dataclass
class BackendChoice:
    completer: object  # core.api.Completer
    notes: list[str] = field(default_factory=list)  # every fallback, said to the user


def hide_gpus() -> None:
    """Make TensorFlow ignore GPUs (must run before it initialises devices)."""
    from core.lazy_tf import tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass  # already initialised; the caller's device check reports what runs


def local_gpu_available() -> bool:
    from core.lazy_tf import tf

    return bool(tf.config.list_physical_devices("GPU"))


class EndpointHealth:
    """Endpoints that failed recently, so a batch or the GUI does not wait on a
    dead one for every photo. In memory: a new process checks afresh."""

    def __init__(self, down_for: float = DOWN_FOR_S, clock: Callable[[], float] = time.monotonic):
        self.down_for, self.clock = down_for, clock
        self._down: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def mark_down(self, url: str, reason: str) -> None:
        with self._lock:
            self._down[url] = (self.clock(), reason)

    def mark_up(self, url: str) -> None:
        with self._lock:
            self._down.pop(url, None)

    def down_reason(self, url: str) -> str | None:
        """Why `url` is being skipped, or None if it may be tried."""
        with self._lock:
            entry = self._down.get(url)
            if entry is None:
                return None
            since, reason = entry
            age = self.clock() - since
            if age >= self.down_for:
                del self._down[url]
                return None
            return f"it failed {age:.0f} s ago ({reason}); retried after {self.down_for:.0f} s"


endpoint_health = EndpointHealth()


class _Link:
    """One backend in a fallback chain, made on first use (a local model loads
    only if a local backend is actually reached)."""

    def __init__(self, kind: str, label: str, make: Callable[[], object], url: str | None = None, name: str | None = None):
        self.kind, self.label, self.make, self.url = kind, label, make, url
        self.name = name or kind  # what `backend` reports: "cpu", "gpu" or the endpoint's name
        self.checked = False
        self._completer = None

    @property
    def completer(self):
        if self._completer is None:
            self._completer = self.make()
        return self._completer


class FallbackCompleter:
    """A core.api.Completer that tries its backends in order, within one
    completion too: if an endpoint fails mid-request the same request goes to
    the next backend, and a note says so. Bad input and cancellation are not
    fallbacks: they propagate at once."""

    def __init__(self, links: list[_Link], notes: list[str], on_note: Callable[[str], None] | None = None,
                 health: EndpointHealth | None = None):
        if not links:
            raise BackendUnavailableError("no backend left to try")
        self.links, self.notes, self.on_note = links, notes, on_note
        self.health = health or endpoint_health
        self._current = links[0]

    @property
    def backend(self) -> str:
        """What ran (or will run) the last completion: "cpu", "gpu" or an endpoint name."""
        return self._current.name

    @property
    def device(self) -> str:
        """The device of that backend, as it reports itself (a remote's comes from its health check)."""
        c = self._current._completer
        return str(getattr(c, "device", "")) if c is not None else ("CPU" if self._current.kind == "cpu" else "")

    def _note(self, text: str) -> None:
        self.notes.append(text)
        if self.on_note is not None:
            self.on_note(text)
        else:
            log.warning("facemend: %s", text)

    def complete(self, request, progress=None, cancel=None):
        """The first backend that answers; the fallbacks this call took travel
        in the result's notes, so every caller (CLI, GUI) reports them."""
        start = len(self.notes)
        result = self._complete(request, progress, cancel)
        result.notes = self.notes[start:] + list(result.notes)
        return result

    def _complete(self, request, progress, cancel):
        for i, link in enumerate(self.links):
            nxt = self.links[i + 1].label if i + 1 < len(self.links) else None
            if link.kind == "remote":
                reason = self.health.down_reason(link.url)
                if reason is not None and nxt is not None:
                    continue  # already noted when it went down
                try:
                    if not link.checked:
                        link.completer.check()
                        link.checked = True
                    self._current = link
                    result = link.completer.complete(request, progress, cancel)
                    self.health.mark_up(link.url)
                    return result
                except BackendUnavailableError as exc:
                    self.health.mark_down(link.url, str(exc))
                    link.checked = False
                    if nxt is None:
                        raise
                    self._note(f"{link.label} failed ({exc}); using {nxt} instead")
                    continue
            self._current = link
            return link.completer.complete(request, progress, cancel)
        raise BackendUnavailableError("no backend left to try")


def _insecure_note(ep) -> str | None:
    if ep.encrypted or ep.is_loopback:
        return None
    return (f"{ep.label} is plain http: face crops and the API key travel unencrypted; "
            "use an https endpoint for anything but a test")


def _local_choice(items: list[str], load_model) -> BackendChoice:
    from core.complete import LocalCompleter

    if len(items) > 1:
        if "auto" in (i.lower() for i in items):
            raise UsageError("'auto' cannot be part of a backend list; list the backends to try instead")
        # Only gpu and cpu listed: the first one this machine has.
        if items[0].lower() == "gpu" and not local_gpu_available():
            note = "no local GPU (TensorFlow sees no CUDA device); skipping gpu"
            items = ["cpu"]
            choice = _local_choice(items, load_model)
            choice.notes.append(note)
            return choice
        items = items[:1]
    which = items[0].lower()
    if which == "cpu":
        hide_gpus()
    elif which == "gpu" and not local_gpu_available():
        raise BackendUnavailableError("--backend gpu: TensorFlow sees no CUDA GPU on this machine")
    return BackendChoice(LocalCompleter(load_model()))


def choose_backend(
    name: str,
    load_model,
    *,
    endpoints: list | str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    on_note: Callable[[str], None] | None = None,
    health: EndpointHealth | None = None,
    read_timeout: float | None = None,
) -> BackendChoice:
    """`load_model()` returns the FaceModel; it is called only when a local backend is used.

    `endpoints`: cloud.client.Endpoint list or a FACEMEND_ENDPOINTS-style string
    (default: that variable). `model`: the bundle's `name@version`, so an
    endpoint serving another model is skipped rather than trusted.
    `read_timeout`: seconds to wait for a remote answer (default
    FACEMEND_REMOTE_TIMEOUT or 60; API Gateway itself gives up at 29).
    """
    health = health or endpoint_health
    name = (name or "auto").strip()
    items = [i.strip() for i in name.split(",") if i.strip()] or ["auto"]
    if endpoints is None:
        endpoints = os.environ.get("FACEMEND_ENDPOINTS", "")
    if len(items) == 1 and items[0].lower() in ("cpu", "gpu"):
        endpoints = []  # a purely local choice must not fail on endpoint settings it never uses
    if not endpoints and all(i.lower() in LOCAL_BACKENDS for i in items):
        # Local only: don't even import the HTTP client (and pydantic) for it.
        return _local_choice(items, load_model)

    from cloud.client import Endpoint, RemoteCompleter, parse_endpoint, parse_endpoints

    configured: list[Endpoint] = parse_endpoints(endpoints) if isinstance(endpoints, str) else list(endpoints)
    by_name = {e.name: e for e in configured}
    key = api_key if api_key is not None else os.environ.get("FACEMEND_API_KEY", "")
    if read_timeout is None:
        read_timeout = float(os.environ.get("FACEMEND_REMOTE_TIMEOUT", "60"))

    loaded = {}

    def local():
        from core.complete import LocalCompleter

        if "model" not in loaded:
            loaded["model"] = load_model()
        return LocalCompleter(loaded["model"])

    def remote_link(ep: Endpoint) -> _Link:
        return _Link("remote", ep.label, lambda: RemoteCompleter(ep, key, model=model, read_timeout=read_timeout), ep.url, ep.name)

    def resolve(item: str) -> Endpoint:
        low = item.lower()
        if low in by_name:
            return by_name[low]
        if "://" in item:
            return parse_endpoint(item)
        known = ", ".join([*LOCAL_BACKENDS, *by_name]) or "auto, gpu, cpu"
        hint = "" if by_name else " (no endpoints configured: set FACEMEND_ENDPOINTS, e.g. lambda=https://…)"
        raise UsageError(f"unknown backend {item!r}; choose one of {known}, a URL, or a comma-separated list{hint}")

    notes: list[str] = []

    if len(items) == 1 and items[0].lower() == "auto":
        if local_gpu_available() or not configured:
            return BackendChoice(local(), notes)
        links = [remote_link(ep) for ep in configured] + [_Link("cpu", "the local CPU", local)]
    else:
        if "auto" in (i.lower() for i in items):
            raise UsageError("'auto' cannot be part of a backend list; list the backends to try instead")
        links = []
        for item in items:
            low = item.lower()
            if low == "cpu":
                links.append(_Link("cpu", "the local CPU", local))
            elif low == "gpu":
                if local_gpu_available():
                    links.append(_Link("gpu", "the local GPU", local))
                else:
                    notes.append("no local GPU (TensorFlow sees no CUDA device); skipping gpu")
            else:
                links.append(remote_link(resolve(item)))
        if not links:
            raise BackendUnavailableError("none of the chosen backends is available here")

    for link in links:
        if link.kind == "remote" and (n := _insecure_note(parse_endpoint(link.url))):
            notes.append(n)

    # Health-check remotes up front, in order, until one answers: fallbacks
    # decided here are reported before any work starts.
    usable = []
    for i, link in enumerate(links):
        if link.kind != "remote":
            usable.extend(links[i:])
            break
        last = i == len(links) - 1
        reason = health.down_reason(link.url)
        if reason is None:
            try:
                link.completer.check()
                link.checked = True
                health.mark_up(link.url)
                usable.extend(links[i:])
                break
            except BackendUnavailableError as exc:
                health.mark_down(link.url, str(exc))
                reason = str(exc)
        if last:
            raise BackendUnavailableError(f"{link.label} is unavailable: {reason}")
        notes.append(f"skipping {link.label}: {reason}; trying {links[i + 1].label}")
    return BackendChoice(FallbackCompleter(usable, notes, on_note, health), notes)
