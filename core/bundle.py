"""Model bundles: a folder with `manifest.json`, weight files and `MODEL_CARD.md`.

The manifest is the single description of a model that the app, the CLI, the
Lambda and the container service share. It is plain JSON so it can be read
(and `verify`-ed) without importing TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import BundleError
from core.files import atomic_write

MANIFEST = "manifest.json"
# Versions of the manifest layout this code understands.
SUPPORTED_MANIFEST_VERSIONS = (1,)
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
DEFAULT_BUNDLE = "facemend-faces64-v1"


@dataclass(frozen=True)
class BundleFile:
    role: str  # generator | critic | encoder | ood | ...
    path: str  # relative to the bundle folder
    sha256: str
    bytes: int


@dataclass(frozen=True)
class BundleInfo:
    path: Path
    name: str
    version: str
    image_size: int
    z_dim: int
    landmark_template: tuple[tuple[float, float], ...]
    files: dict[str, BundleFile]
    manifest: dict = field(repr=False, compare=False)

    @property
    def ref(self) -> str:
        """`name@version`, the form the service protocol and `--model` use."""
        return f"{self.name}@{self.version}"

    def file(self, role: str) -> Path | None:
        f = self.files.get(role)
        return self.path / f.path if f else None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(path: str | Path) -> BundleInfo:
    path = Path(path)
    manifest_path = path / MANIFEST if path.is_dir() else path
    folder = manifest_path.parent
    if not manifest_path.exists():
        raise BundleError(f"{manifest_path}: no manifest (is {folder} a model bundle?)")
    try:
        m = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    version = m.get("manifest_version") if isinstance(m, dict) else None
    if version not in SUPPORTED_MANIFEST_VERSIONS:
        raise BundleError(
            f"{manifest_path}: manifest_version {version!r} is not one this FaceMend understands "
            f"({', '.join(map(str, SUPPORTED_MANIFEST_VERSIONS))}); upgrade FaceMend to use this bundle"
        )
    try:
        files = {
            role: BundleFile(role, f["path"], f["sha256"], int(f["bytes"]))
            for role, f in m["files"].items()
        }
        template = tuple((float(x), float(y)) for x, y in m["landmark_template"]["points"])
        if len(template) != len(LANDMARK_NAMES):
            raise ValueError(f"landmark template has {len(template)} points, expected {len(LANDMARK_NAMES)}")
        info = BundleInfo(
            path=folder,
            name=str(m["name"]),
            version=str(m["version"]),
            image_size=int(m["image_size"]),
            z_dim=int(m["z_dim"]),
            landmark_template=template,
            files=files,
            manifest=m,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{manifest_path}: malformed manifest ({exc!r})") from exc
    if "generator" not in files:
        raise BundleError(f"{manifest_path}: a bundle needs a generator file")
    for f in files.values():
        # Keep every file inside the bundle: a manifest must not point at /etc/passwd.
        resolved = (folder / f.path).resolve()
        if folder.resolve() not in resolved.parents:
            raise BundleError(f"{manifest_path}: file {f.path!r} lies outside the bundle")
    return info


def verify_bundle(path: str | Path) -> BundleInfo:
    """Check every file's size and sha256; raise BundleError naming the first bad file."""
    info = read_manifest(path)
    for f in info.files.values():
        p = info.path / f.path
        if not p.exists():
            raise BundleError(f"{p}: missing ({f.role} file of {info.ref})")
        size = p.stat().st_size
        if size != f.bytes:
            raise BundleError(f"{p}: {size} bytes, manifest says {f.bytes} (truncated or replaced)")
        digest = sha256_file(p)
        if digest != f.sha256:
            raise BundleError(f"{p}: sha256 {digest[:12]}… does not match the manifest ({f.sha256[:12]}…); file altered")
    return info


def search_dirs() -> list[Path]:
    """Where bundles are looked for, first match wins.

    FACEMEND_MODELS_DIR (os.pathsep-separated) lets a deployment or a user add
    their own; the shipped `models/` package comes last.
    """
    dirs = [Path(p) for p in os.environ.get("FACEMEND_MODELS_DIR", "").split(os.pathsep) if p]
    import models  # the shipped bundles; a data-only package

    dirs.append(Path(models.__file__).parent)
    return dirs


def list_bundles() -> list[Path]:
    found = []
    for d in search_dirs():
        if d.is_dir():
            found.extend(sorted(p.parent for p in d.glob(f"*/{MANIFEST}")))
    return found


def find_bundle(spec: str | Path | None = None) -> Path:
    """Resolve a bundle folder from a path, a folder name, `name` or `name@version`."""
    if spec is None or spec == "":
        spec = DEFAULT_BUNDLE
    p = Path(spec)
    if (p / MANIFEST).exists():
        return p
    spec = str(spec)
    name, _, version = spec.partition("@")
    for folder in list_bundles():
        if folder.name == spec:
            return folder
        try:
            info = read_manifest(folder)
        except BundleError:
            continue
        if info.name == name and (not version or info.version == version):
            return folder
    raise BundleError(f"no model bundle {spec!r} found (looked in {', '.join(map(str, search_dirs()))})")


def write_manifest(folder: Path, manifest: dict) -> None:
    """Fill in sizes and sha256 of every listed file, then write atomically."""
    for f in manifest["files"].values():
        p = folder / f["path"]
        f["bytes"] = p.stat().st_size
        f["sha256"] = sha256_file(p)
    text = (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode("utf-8")
    atomic_write(folder / MANIFEST, lambda fh: fh.write(text), overwrite=True)
