"""Background work: model loading, face detection, repair.

Every job runs a plain function on a worker thread and reports back through
signals delivered on the GUI thread (orange-canvas-core's pattern): progress,
succeeded(result) or failed(error), then finished(state). Errors arrive as
signals, never as tracebacks on stderr; the traceback rides along on the
exception for the error dialog's details.

TensorFlow-touching jobs share one long-lived thread (`EngineThread`), so
they run in submission order: the model loads first, a detection or repair
submitted meanwhile simply waits for it, and two TF jobs never race.

Nothing here imports TensorFlow at module level: `load_engine` does it inside
the worker, which keeps the window on screen in well under a second.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal

from core.api import CancelToken
from core.errors import CancelledError, FaceMendError

log = logging.getLogger(__name__)

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "pending", "running", "succeeded", "failed", "cancelled"


@dataclass
class Engine:
    """What a repair needs, loaded once: the completer chosen for the user's
    backend preference, the bundle it serves, and the face detector."""

    completer: object  # core.api.Completer
    bundle: object  # core.bundle.BundleInfo
    detector: object  # core.faces.FaceDetector
    backend: str
    device: str
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def load_engine(backend: str = "auto", progress: Callable[[str], None] | None = None) -> Engine:
    """Import TensorFlow, load the default bundle and pick the backend. Slow
    (seconds): call it from a worker, never from the GUI thread."""
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    say("Loading TensorFlow…")
    from core import bundle as bundles
    from core.lazy_tf import tf

    tf.constant(0)  # the import itself happens here
    say("Loading the model…")
    from core.faces import default_detector
    from core.model import load_model
    from facemend.backends import choose_backend

    info = bundles.read_manifest(bundles.find_bundle())
    # model=: an endpoint serving another model version is skipped, not trusted.
    choice = choose_backend(backend, lambda: load_model(info.path), model=info.ref)
    completer = choice.completer
    return Engine(
        completer=completer,
        bundle=info,
        detector=default_detector(),
        backend=str(getattr(completer, "backend", backend)),
        device=str(getattr(completer, "device", "")),
        notes=list(choice.notes),  # decided at load; later fallbacks come in each RepairResult
        seconds=time.perf_counter() - t0,
    )


class JobSignals(QObject):
    progress = Signal(object)  # whatever the job reports (a tuple, a message)
    succeeded = Signal(object)
    failed = Signal(object)  # the exception, with .__traceback__
    cancelled = Signal()
    finished = Signal(str)  # final state


class Job:
    """Runs fn(report, cancel) -> result. `report(x)` emits progress(x);
    `cancel` is a core.api.CancelToken the function must honour."""

    def __init__(self, fn: Callable[[Callable[[object], None], CancelToken], object], name: str = "job"):
        self.fn = fn
        self.name = name
        self.signals = JobSignals()
        self.cancel_token = CancelToken()
        self.state = PENDING

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def run(self) -> None:
        if self.cancel_token.cancelled:
            self._finish(CANCELLED)
            return
        self.state = RUNNING
        try:
            result = self.fn(self.signals.progress.emit, self.cancel_token)
        except CancelledError:
            self._finish(CANCELLED)
        except BaseException as exc:  # noqa: BLE001 - every failure must become a signal
            if not isinstance(exc, FaceMendError):
                log.debug("%s failed:\n%s", self.name, "".join(traceback.format_exception(exc)))
            self.state = FAILED
            self.signals.failed.emit(exc)
            self.signals.finished.emit(FAILED)
        else:
            if self.cancel_token.cancelled:
                # Cancelled after the last check: the user asked to drop it.
                self._finish(CANCELLED)
                return
            self.state = SUCCEEDED
            self.signals.succeeded.emit(result)
            self.signals.finished.emit(SUCCEEDED)

    def _finish(self, state: str) -> None:
        self.state = state
        if state == CANCELLED:
            self.signals.cancelled.emit()
        self.signals.finished.emit(state)


class EngineThread:
    """One long-lived thread that runs every TensorFlow job, in submission order.

    TensorFlow keeps per-thread state; initialising it on a pool thread that
    later expires, then tracing on another, crashed (SIGSEGV) under X11 here.
    So the thread that imports TensorFlow is the one that runs every later
    job, and it lives as long as the app. Same interface as the QThreadPool
    subset the window uses: start, clear, waitForDone.
    """

    def __init__(self, name: str = "facemend-engine"):
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._idle = threading.Condition()
        self._busy = 0
        # Daemon: a model still importing must not keep a closed app alive.
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def start(self, job: Job) -> None:
        with self._idle:
            self._busy += 1
        self._queue.put(job)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            try:
                job.run()
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def clear(self) -> None:
        """Drop queued jobs that have not started (each reports cancelled)."""
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            job.cancel()
            job.run()  # returns at once, emitting cancelled + finished
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def waitForDone(self, msecs: int = -1) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, None if msecs < 0 else msecs / 1000)


_engine_thread: EngineThread | None = None
_engine_thread_lock = threading.Lock()


def engine_pool() -> EngineThread:
    """The process's one TensorFlow thread (see EngineThread); TensorFlow's
    state is per process, so every window shares it."""
    global _engine_thread
    with _engine_thread_lock:
        if _engine_thread is None:
            _engine_thread = EngineThread()
        return _engine_thread


def error_text(exc: BaseException) -> str:
    """What the user reads: our own errors say it all; others get their type."""
    if isinstance(exc, FaceMendError):
        return str(exc)
    return f"Unexpected error ({type(exc).__name__}): {exc}"


def error_details(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
