"""Read a PyTorch zip checkpoint into numpy arrays without torch and without
unpickling arbitrary objects.

A `torch.save` file is a zip holding `<root>/data.pkl` (a pickle of the state
dict whose tensors point, via persistent ids, at raw storages in
`<root>/data/<key>`). Only the handful of globals that such a pickle needs are
accepted; any other global (the way a malicious checkpoint runs code) raises.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

from core.errors import BadInputError

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    itemsize = storage.dtype.itemsize
    if not size:
        return storage[storage_offset].copy()
    return np.lib.stride_tricks.as_strided(
        storage[storage_offset:],
        shape=tuple(size),
        strides=tuple(s * itemsize for s in stride),
    ).copy()


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, root: str, byteorder: str):
        super().__init__(file)
        self._archive = archive
        self._root = root
        self._byteorder = "<" if byteorder == "little" else ">"

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise BadInputError(f"checkpoint refers to {module}.{name}, which a plain state dict never needs; refusing to load it")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise BadInputError(f"unexpected persistent id in checkpoint: {pid!r}")
        storage_type, key = pid[1], pid[2]
        raw = self._archive.read(f"{self._root}/data/{key}")
        return np.frombuffer(raw, dtype=storage_type.dtype.newbyteorder(self._byteorder))


def _label(source) -> str:
    return str(source) if isinstance(source, (str, Path)) else "checkpoint"


def read_state_dict(path, entry: str | None = None) -> dict[str, np.ndarray]:
    """Return `{name: array}` from a torch zip checkpoint.

    `entry` picks one item of a checkpoint that is a dict of state dicts
    (e.g. `netG_state_dict`).
    """
    # `path` may also be a binary file object (e.g. a checkpoint read out of a wheel).
    if isinstance(path, (str, Path)):
        path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadInputError(f"{_label(path)}: not a PyTorch zip checkpoint ({exc})") from exc
    with archive:
        pkl_names = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pkl_names) != 1:
            raise BadInputError(f"{_label(path)}: expected one data.pkl in the checkpoint, found {len(pkl_names)}")
        root = pkl_names[0][: -len("/data.pkl")]
        try:
            byteorder = archive.read(f"{root}/byteorder").decode().strip()
        except KeyError:
            byteorder = "little"
        with archive.open(pkl_names[0]) as fh:
            obj = _RestrictedUnpickler(fh, archive, root, byteorder).load()
    if entry is not None:
        if not isinstance(obj, dict) or entry not in obj:
            raise BadInputError(f"{_label(path)}: checkpoint has no entry {entry!r}")
        obj = obj[entry]
    if not isinstance(obj, dict):
        raise BadInputError(f"{_label(path)}: checkpoint is not a state dict")
    return {str(k): np.asarray(v) for k, v in obj.items()}
