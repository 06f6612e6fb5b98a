"""Convert the MIT-licensed generator of PyPI `gan-face-generate` 1.1.1 into our
Keras generator.

Source: `gan_face_generate/weights.tar` inside the wheel, a torch zip
checkpoint `{"netG_state_dict": ...}` of the PyTorch-tutorial DCGAN generator
(z 100 -> ConvTranspose 512-256-128-64-3, BatchNorm eps 1e-5, tanh).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from core.errors import BadInputError
from core.torch_checkpoint import read_state_dict

PACKAGE = "gan-face-generate"
PACKAGE_VERSION = "1.1.1"
CHECKPOINT_IN_WHEEL = "gan_face_generate/weights.tar"
CHECKPOINT_ENTRY = "netG_state_dict"
# sha256 of weights.tar in gan-face-generate 1.1.1; pins the exact source.
CHECKPOINT_SHA256 = "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f"

# torch Sequential index -> our Keras layer name
_CONV = {"main.0": "up0", "main.3": "up1", "main.6": "up2", "main.9": "up3", "main.12": "up4"}
_BN = {"main.1": "bn0", "main.4": "bn1", "main.7": "bn2", "main.10": "bn3"}


def checkpoint_bytes(source: str | Path) -> bytes:
    """Accept the wheel, the installed package folder, or weights.tar itself."""
    source = Path(source)
    if source.is_dir():
        candidate = source / "weights.tar"
        if not candidate.exists():
            candidate = source / "gan_face_generate" / "weights.tar"
        if not candidate.exists():
            raise BadInputError(f"{source}: no weights.tar inside")
        return candidate.read_bytes()
    if source.suffix == ".whl":
        try:
            with zipfile.ZipFile(source) as wheel:
                return wheel.read(CHECKPOINT_IN_WHEEL)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise BadInputError(f"{source}: not a {PACKAGE} wheel ({exc})") from exc
    if not source.exists():
        raise BadInputError(f"{source}: no such file")
    return source.read_bytes()


def torch_to_keras_arrays(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Return `{keras_layer_name: [weights in Keras order]}`."""
    out: dict[str, list[np.ndarray]] = {}
    for key, name in _CONV.items():
        w = state.get(f"{key}.weight")
        if w is None:
            raise BadInputError(f"checkpoint lacks {key}.weight; not the DCGAN generator this importer knows")
        # ConvTranspose2d (in, out, kh, kw) -> Conv2DTranspose (kh, kw, out, in); no flip:
        # both frameworks implement the transpose of the same cross-correlation.
        out[name] = [np.ascontiguousarray(w.transpose(2, 3, 1, 0)).astype(np.float32)]
    for key, name in _BN.items():
        try:
            out[name] = [state[f"{key}.{p}"].astype(np.float32) for p in ("weight", "bias", "running_mean", "running_var")]
        except KeyError as exc:
            raise BadInputError(f"checkpoint lacks {exc.args[0]}") from exc
    return out


def import_generator(source: str | Path, out_path: str | Path, *, verify_sha256: bool = True) -> dict:
    """Convert and write generator weights; returns provenance for the manifest."""
    from core.networks import build_generator, save_weights

    raw = checkpoint_bytes(source)
    digest = hashlib.sha256(raw).hexdigest()
    if verify_sha256 and digest != CHECKPOINT_SHA256:
        raise BadInputError(
            f"{source}: weights.tar sha256 {digest} is not the one of {PACKAGE} {PACKAGE_VERSION}; "
            "pass --no-verify to convert another build on purpose"
        )
    tmp = io.BytesIO(raw)
    state = read_state_dict(tmp, CHECKPOINT_ENTRY)
    arrays = torch_to_keras_arrays(state)
    z_dim = arrays["up0"][0].shape[3]
    model = build_generator(z_dim=z_dim)
    for name, values in arrays.items():
        model.get_layer(name).set_weights(values)
    save_weights(model, out_path)
    return {
        "package": PACKAGE,
        "package_version": PACKAGE_VERSION,
        "file": CHECKPOINT_IN_WHEEL,
        "entry": CHECKPOINT_ENTRY,
        "sha256": digest,
        "parameters": int(sum(int(np.prod(v.shape)) for vals in arrays.values() for v in vals)),
    }
