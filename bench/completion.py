"""Completion benchmark: quality against classical inpainting, ablations,
speed against the naive reference, peak memory. Prints figures; asserts nothing.

    python bench/completion.py [--evalset DIR] [--faces N] [--reference-faces N]

Every variant runs on the same damaged inputs in one process, one after the
other, so medians and ratios are side by side. Inputs are really damaged:
the hole is filled with noise before the run, so a method that returns its
input unchanged scores as badly as the noise.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from core.api import CompletionRequest, CompletionSettings  # noqa: E402
from core.complete import LocalCompleter, SearchTuning  # noqa: E402
from core.masks import preset_mask  # noqa: E402
from core.model import load_model  # noqa: E402


def psnr(a, b, mask):
    d = a[mask].astype(np.float64) - b[mask].astype(np.float64)
    return float(10 * np.log10(255.0**2 / max(np.mean(d**2), 1e-12)))


def hole_ssim(a, b, mask):
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(a, b, channel_axis=2, full=True, data_range=255)
    return float(full[mask].mean())


def damage(img, hole, seed):
    y = img.copy()
    y[hole] = np.random.default_rng(seed).integers(0, 256, size=(int(hole.sum()), 3), dtype=np.uint8)
    return y


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_variant(completer, settings, cases):
    scores, times = [], []
    for original, y, hole in cases:
        t = time.perf_counter()
        r = completer.complete(CompletionRequest(y, hole, settings))
        times.append(time.perf_counter() - t)
        out = r.candidates[0].image
        scores.append((psnr(out, original, hole), hole_ssim(out, original, hole)))
    return scores, times


def classical(cases, flag):
    scores, times = [], []
    for original, y, hole in cases:
        t = time.perf_counter()
        out = cv2.inpaint(y, hole.astype(np.uint8), 5, flag)
        times.append(time.perf_counter() - t)
        scores.append((psnr(out, original, hole), hole_ssim(out, original, hole)))
    return scores, times


def summary(scores, times):
    p = [s[0] for s in scores]
    s = [s[1] for s in scores]
    return {"psnr": round(statistics.mean(p), 2), "ssim": round(statistics.mean(s), 4),
            "median_s": round(statistics.median(times), 3)}


def full_photo_timing(model, completer, settings, photos, repeats):
    """Median seconds for `facemend repair`'s work on a whole photo: detect,
    align, complete every face the eyes preset touches, paste back."""
    from core.api import RepairRequest
    from core.faces import default_detector
    from core.imageio import load_image
    from core.repair import repair

    det = default_detector()
    times, per_face = [], []
    for path in photos:
        photo = load_image(path)
        for _ in range(repeats):
            t = time.perf_counter()
            r = repair(RepairRequest(photo, mask_type="eyes", face_index=0, settings=settings), completer, model.info, detector=det)
            times.append(time.perf_counter() - t)
            per_face.append(r.seconds)
    return times, per_face


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evalset", type=Path, default=Path(os.path.expanduser("~/.cache/facemend/evalset-built")))
    ap.add_argument("--faces", type=int, default=12, help="faces per group (real, generated) and mask")
    ap.add_argument("--reference-faces", type=int, default=3, help="faces per group for the slow naive reference")
    ap.add_argument("--masks", default="center,eyes")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args(argv)

    from evalset import build_evalset, load_evalset

    if not (args.evalset / "index.json").exists():
        build_evalset(args.evalset, fetch=True, cache=None, n_generated=64, seed_start=10_000_000, model_spec=None)
    data = load_evalset(args.evalset)
    model = load_model()
    completer = LocalCompleter(model)
    template = np.asarray(model.info.landmark_template)
    default = CompletionSettings()
    results = {"model": str(model.ref), "device": completer.device, "defaults": default.__dict__,
               "tuning": SearchTuning().__dict__, "groups": {}}
    print(f"model {model.ref} on {completer.device}; defaults steps={default.steps} restarts={default.restarts} "
          f"prior_weight={default.prior_weight}", flush=True)

    variants = {
        "facemend (default)": (completer, default),
        "critic prior λ=0.003": (completer, replace(default, use_critic=True, prior_weight=0.003)),
        "critic prior λ=0.03": (completer, replace(default, use_critic=True, prior_weight=0.03)),
        "z-prior (no critic)": (LocalCompleter(model, replace(SearchTuning(), z_prior_weight=0.01)), replace(default, use_critic=False)),
        "no encoder (random z)": (completer, replace(default, use_encoder=False)),
        "no Poisson": (completer, replace(default, poisson=False)),
    }
    reference = (completer, CompletionSettings(steps=300, restarts=8, use_encoder=False))

    for group in ("real", "generated"):
        faces = data[group][: args.faces]
        for mask_name in args.masks.split(","):
            hole = preset_mask(mask_name, 64, template)
            cases = [(f, damage(f, hole, i), hole) for i, f in enumerate(faces)]
            key = f"{group}/{mask_name}"
            rows = {}
            rows["OpenCV Telea"] = summary(*classical(cases, cv2.INPAINT_TELEA))
            rows["OpenCV Navier-Stokes"] = summary(*classical(cases, cv2.INPAINT_NS))
            for name, (c, s) in variants.items():
                rows[name] = summary(*run_variant(c, s, cases))
                print(f"  {key:16s} {name:28s} {rows[name]}", flush=True)
            if not args.skip_reference:
                ref_cases = cases[: args.reference_faces]
                ref = summary(*run_variant(*reference, ref_cases))
                ours = summary(*run_variant(completer, default, ref_cases))
                rows["naive reference (8x300, random z)"] = ref
                rows["facemend on the same faces"] = ours
                rows["speed-up vs naive"] = round(ref["median_s"] / ours["median_s"], 1)
            results["groups"][key] = {"faces": len(cases), "rows": rows}
            print(f"{key} ({len(cases)} faces):", flush=True)
            for name, row in rows.items():
                print(f"    {name:36s} {row}", flush=True)

    photos = sorted((REPO / "tests/data/photos").glob("*.jpg"))
    times, parts = full_photo_timing(model, completer, default, photos, repeats=2)
    results["full_photo"] = {"median_s": round(statistics.median(times), 3), "photos": [p.name for p in photos],
                             "median_complete_s": round(statistics.median(p["complete"] for p in parts), 3),
                             "median_detect_s": round(statistics.median(p["detect"] for p in parts), 3),
                             "median_blend_s": round(statistics.median(p["blend"] for p in parts), 3)}
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print("full photo (detect + one face, eyes preset + paste-back):", results["full_photo"])
    print("peak RSS MB:", results["peak_rss_mb"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
