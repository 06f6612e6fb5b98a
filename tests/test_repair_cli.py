"""`facemend repair` end to end on real photos: paste-back, outputs, exit codes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from core.faces import default_detector
from core.repair import SEAM_DILATION_PX, dilate
from facemend.cli import main

PHOTO = Path("tests/data/photos/faceapi_sample1.jpg")
FAST = ["--steps", "3", "--restarts", "1"]


@pytest.fixture(scope="module")
def photo_png(tmp_path_factory):
    """A real 3-face photo, halved and stored losslessly so bit-identity is testable."""
    d = tmp_path_factory.mktemp("photo")
    im = Image.open(PHOTO).convert("RGB")
    im = im.resize((im.width // 2, im.height // 2), Image.LANCZOS)
    p = d / "group.png"
    im.save(p)
    return p


@pytest.fixture(scope="module")
def eye_mask(photo_png, tmp_path_factory):
    """A painted mask over the eyes of the most confident face, as a PNG."""
    rgb = np.asarray(Image.open(photo_png).convert("RGB"))
    face = default_detector().detect(rgb)[0]
    (lx, ly), (rx, ry) = face.landmarks[0], face.landmarks[1]
    mask = np.zeros(rgb.shape[:2], np.uint8)
    pad = 0.25 * (rx - lx)
    cv2.rectangle(mask, (int(lx - pad), int(min(ly, ry) - pad)), (int(rx + pad), int(max(ly, ry) + pad)), 255, -1)
    p = tmp_path_factory.mktemp("mask") / "group.png"
    Image.fromarray(mask).save(p)
    return p, mask > 0


def _run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_paste_back_leaves_pixels_outside_mask_unchanged(photo_png, eye_mask, tmp_path, capsys):
    mask_path, mask = eye_mask
    out = tmp_path / "out.png"
    code, _, err = _run(["repair", photo_png, "--mask", mask_path, "-o", out, *FAST, "--quiet"], capsys)
    assert code == 0, err
    before = np.asarray(Image.open(photo_png).convert("RGB"))
    after = np.asarray(Image.open(out).convert("RGB"))
    allowed = dilate(mask, SEAM_DILATION_PX)
    assert np.array_equal(before[~allowed], after[~allowed])
    changed = np.any(before != after, axis=2)
    assert changed[mask].mean() > 0.5  # the damage really was replaced


def test_json_output_follows_the_contract(photo_png, tmp_path, capsys):
    out = tmp_path / "x.png"
    code, stdout, _ = _run(["repair", photo_png, "--mask-type", "mouth", "--face", "0", "-o", out, *FAST, "--json"], capsys)
    assert code == 0
    report = json.loads(stdout)
    assert report["outputs"] == [str(out)] and out.exists()
    face = report["faces"][0]
    assert len(face["box"]) == 4 and len(face["landmarks"]) == 5 and "ood_score" in face
    assert report["backend"] == "cpu" and report["device"] == "CPU"
    assert report["model"]["name"] == "facemend-faces64"
    assert report["seed"] == 0 and report["steps"] == 3 and isinstance(report["loss"], float)
    assert set(report["seconds"]) == {"load", "detect", "complete", "blend", "total"}
    assert report["seconds"]["complete"] <= report["seconds"]["total"]


def test_default_output_is_beside_the_input_and_never_overwritten(photo_png, tmp_path, capsys):
    src = tmp_path / "me.png"
    src.write_bytes(photo_png.read_bytes())
    code, stdout, _ = _run(["repair", src, "--mask-type", "center", "--face", "0", *FAST, "--quiet"], capsys)
    assert code == 0 and stdout.strip() == str(tmp_path / "me.repaired.png")
    first = (tmp_path / "me.repaired.png").read_bytes()
    code, _, err = _run(["repair", src, "--mask-type", "center", "--face", "0", *FAST, "--seed", "4", "--quiet"], capsys)
    assert code == 3 and "exists" in err
    assert (tmp_path / "me.repaired.png").read_bytes() == first
    code, _, _ = _run(["repair", src, "--mask-type", "center", "--face", "0", *FAST, "--seed", "4", "--overwrite", "--quiet"], capsys)
    assert code == 0 and src.read_bytes() == photo_png.read_bytes()


def test_batch_folder_writes_every_photo_to_the_output_folder(photo_png, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.png"):
        (src / name).write_bytes(photo_png.read_bytes())
    out = tmp_path / "out"
    code, _, err = _run(["repair", src, "--mask-type", "eyes", "--face", "0", "-o", out, *FAST, "--quiet"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a.repaired.png", "b.repaired.png"]


def test_aligned_crop_repairs_in_place(face_model, tmp_path, capsys):
    from core.model_build import sample_faces

    crop = sample_faces(face_model.generator, 1, seed=10_000_500)[0][0]
    src = tmp_path / "crop.png"
    Image.fromarray(crop).save(src)
    out = tmp_path / "crop_out.png"
    code, _, err = _run(["repair", src, "--aligned", "--mask-type", "center", "-o", out, *FAST, "--quiet"], capsys)
    assert code == 0, err
    result = np.asarray(Image.open(out))
    keep = np.ones((64, 64), bool)
    keep[16:48, 16:48] = False
    assert result.shape == (64, 64, 3) and np.array_equal(result[keep], crop[keep])


def test_photo_without_a_face_exits_3(tmp_path, capsys):
    p = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(p)
    code, _, err = _run(["repair", p, "--mask-type", "center", *FAST], capsys)
    assert code == 3 and "no face" in err


def test_mask_away_from_every_face_exits_3(photo_png, tmp_path, capsys):
    w, h = Image.open(photo_png).size
    m = np.zeros((h, w), np.uint8)
    m[:8, :8] = 255  # top-left corner: background
    mp = tmp_path / "corner.png"
    Image.fromarray(m).save(mp)
    code, _, err = _run(["repair", photo_png, "--mask", mp, *FAST], capsys)
    assert code == 3 and "outside" in err


def test_mask_of_the_wrong_size_exits_3(photo_png, tmp_path, capsys):
    mp = tmp_path / "small.png"
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(mp)
    code, _, err = _run(["repair", photo_png, "--mask", mp, *FAST], capsys)
    assert code == 3 and "10x10" in err


def test_corrupt_photo_exits_3_naming_the_file(tmp_path, capsys):
    p = tmp_path / "broken.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    code, _, err = _run(["repair", p, "--mask-type", "center"], capsys)
    assert code == 3 and "broken.jpg" in err


def test_missing_mask_option_is_a_usage_error(photo_png, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["repair", str(photo_png)])
    assert exc.value.code == 2


def test_gpu_backend_without_a_gpu_exits_4(photo_png, capsys):
    code, _, err = _run(["repair", photo_png, "--mask-type", "center", "--backend", "gpu", *FAST], capsys)
    assert code == 4 and "GPU" in err


def test_interrupt_during_repair_exits_5(photo_png, tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "facemend", "repair", str(photo_png), "--mask-type", "center",
         "--steps", "5000", "--restarts", "1", "-o", str(tmp_path / "never.png")],
        stderr=subprocess.PIPE, text=True, env=env,
    )
    deadline = time.time() + 240
    for line in proc.stderr:  # wait until the search is really running
        if "loss" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=60)
    assert rc == 5
    assert not (tmp_path / "never.png").exists()
