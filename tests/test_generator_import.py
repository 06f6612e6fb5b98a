"""The converted generator must reproduce the original PyTorch model.

tests/data/generator_reference.npz was made by tools/make_generator_reference.py
with torch itself (not a FaceMend dependency) from the gan-face-generate wheel.
"""

import zipfile

import numpy as np
import pytest

from core.errors import BadInputError
from core.torch_checkpoint import read_state_dict

REFERENCE = "tests/data/generator_reference.npz"


def test_shipped_generator_matches_torch_reference_outputs(face_model):
    ref = np.load(REFERENCE)
    out = face_model.generator(ref["z"], training=False).numpy()
    assert out.shape == ref["image_nhwc"].shape == (6, 64, 64, 3)
    np.testing.assert_allclose(out, ref["image_nhwc"], atol=1e-5)


def _write_checkpoint(path, pickle_bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/byteorder", "little")


def test_checkpoint_reader_refuses_arbitrary_globals(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    ckpt = tmp_path / "evil.pt"
    _write_checkpoint(ckpt, pickle.dumps({"w": Evil()}, protocol=4))
    with pytest.raises(BadInputError, match="builtins.print"):
        read_state_dict(ckpt)


def test_checkpoint_reader_rejects_non_zip(tmp_path):
    p = tmp_path / "x.tar"
    p.write_bytes(b"not a zip at all")
    with pytest.raises(BadInputError, match="not a PyTorch zip checkpoint"):
        read_state_dict(p)
