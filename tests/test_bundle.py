import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from core import bundle as bundles
from core.errors import BundleError

DEFAULT = bundles.find_bundle()


def _copy_bundle(tmp_path):
    dst = tmp_path / DEFAULT.name
    shutil.copytree(DEFAULT, dst)
    return dst


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "facemend", *args], capture_output=True, text=True, timeout=120)


def test_shipped_bundle_verifies():
    info = bundles.verify_bundle(DEFAULT)
    assert info.name == "facemend-faces64"
    assert info.image_size == 64 and info.z_dim == 100
    assert "generator" in info.files


def test_models_verify_cli_reports_ok_per_bundle():
    r = _cli("models", "verify")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK facemend-faces64@")


@pytest.mark.parametrize("damage", ["missing", "truncated", "altered"])
def test_models_verify_names_the_bad_file_and_exits_3(tmp_path, damage):
    b = _copy_bundle(tmp_path)
    weights = b / "generator.npz"
    if damage == "missing":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    r = _cli("models", "verify", str(b))
    assert r.returncode == 3
    assert "generator.npz" in r.stderr
    assert {"missing": "missing", "truncated": "truncated", "altered": "altered"}[damage] in r.stderr


def test_loader_refuses_unknown_manifest_version(tmp_path):
    b = _copy_bundle(tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    m["manifest_version"] = 99
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="manifest_version 99 is not one this FaceMend understands"):
        bundles.read_manifest(b)


def test_manifest_cannot_point_outside_the_bundle(tmp_path):
    b = _copy_bundle(tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    m["files"]["generator"]["path"] = "../../etc/passwd"
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="outside the bundle"):
        bundles.read_manifest(b)


def test_landmark_template_is_a_plausible_face_layout():
    t = np.asarray(bundles.read_manifest(DEFAULT).landmark_template)
    left_eye, right_eye, nose, mouth_l, mouth_r = t
    assert left_eye[0] < nose[0] < right_eye[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    assert 12 < right_eye[0] - left_eye[0] < 30  # eye distance in a 64 px crop
