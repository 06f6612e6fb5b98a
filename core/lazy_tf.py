"""TensorFlow/Keras imported on first use.

`import tensorflow` costs 4-6 s here; the GUI, `--help` and `models verify`
must not pay it. Modules write `from core.lazy_tf import tf, keras` and the
import happens on first attribute access, off whatever thread touches it first.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_modules: dict[str, object] = {}


def _load(name: str):
    with _lock:
        if name not in _modules:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            import tensorflow

            _modules["tf"] = tensorflow
            import keras as _keras

            _modules["keras"] = _keras
        return _modules[name]


class _Lazy:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        return getattr(_load(self._name), attr)


tf = _Lazy("tf")
keras = _Lazy("keras")


def is_loaded() -> bool:
    return "tf" in _modules
