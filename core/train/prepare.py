"""`facemend train prepare`: photos -> aligned 64x64 faces in sharded TFRecords.

Faces are found and aligned exactly as at repair time (same detector, same
similarity transform onto the bundle's landmark template), so a generator
trained on this data draws faces framed the way inference will crop them.

Sources: LFW's `lfw-funneled.tgz` as distributed, read as a stream (13,000
JPEGs never touch the disk), or any folder of photos, searched recursively.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from core import bundle as bundles
from core.errors import BadInputError, UsageError
from core.files import atomic_write, publish, temp_folder_beside

SUMMARY = "summary.json"
DATA_FORMAT = "facemend-aligned-faces"
DATA_FORMAT_VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# lfw_funneled/<Person_Name>/<Person_Name>_0001.jpg
LFW_MEMBER = re.compile(r"^(?:\./)?[^/]+/([^/]+)/\1_\d{4}\.jpg$")
SAMPLES_PER_REASON = 10

# Why an image or a face did not make it into the data set.
SKIP_REASONS = {
    "unreadable": "not a decodable image (corrupt, truncated or not an image format)",
    "no_face": "no face found by the detector",
    "face_too_small": "face box smaller than --min-face-size",
    "no_landmarks": "the detector gave no landmarks to align with",
    "unalignable": "landmarks too degenerate to align to the template",
    "beyond_max_faces": "more faces than --max-faces-per-image; the least confident were left out",
}

# TFRecord layout, shared with core.train.dcgan (the reader).
FEATURE_IMAGE = "image"  # PNG bytes, image_size x image_size x 3 RGB
FEATURE_SOURCE = "source"  # utf-8 name of the photo inside the source
FEATURE_FACE_INDEX = "face_index"  # 0 = most confident face of that photo
FEATURE_CONFIDENCE = "confidence"


@dataclass(frozen=True)
class PrepareOptions:
    bundle: str | Path | None = None  # whose landmark template and image size to align to
    max_faces_per_image: int = 1
    min_face_size: int = 40  # pixels, shorter side of the detector's box
    shard_size: int = 2000  # faces per TFRecord shard (~25 MB at 64 px)

    def validated(self) -> "PrepareOptions":
        if self.max_faces_per_image < 1:
            raise UsageError(f"--max-faces-per-image must be >= 1, got {self.max_faces_per_image}")
        if self.min_face_size < 1:
            raise UsageError(f"--min-face-size must be >= 1, got {self.min_face_size}")
        if self.shard_size < 1:
            raise UsageError(f"--shard-size must be >= 1, got {self.shard_size}")
        return self


@dataclass
class PrepareSummary:
    source: str
    source_kind: str  # "tgz" | "folder"
    layout: str  # "lfw" | "photos"
    images_read: int = 0
    faces_kept: int = 0
    skipped: dict[str, dict] = field(default_factory=dict)  # reason -> {"count", "samples"}
    shards: list[dict] = field(default_factory=list)  # {"path", "faces"}
    seconds: float = 0.0

    def skip(self, reason: str, name: str, count: int = 1) -> None:
        entry = self.skipped.setdefault(reason, {"count": 0, "samples": []})
        entry["count"] += count
        if len(entry["samples"]) < SAMPLES_PER_REASON and name not in entry["samples"]:
            entry["samples"].append(name)


# progress(images_read, faces_kept, fraction_done or None, note or None); a note
# is a line worth showing the user (a file that could not be read).
PrepareProgress = Callable[[int, int, "float | None", "str | None"], None]


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _is_tar(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith((".tgz", ".tar.gz", ".tar", ".tar.bz2", ".tar.xz"))


def iter_tgz(path: Path) -> Iterator[tuple[str, bytes, float]]:
    """(member name, bytes, fraction of the archive read) for each image member,
    streaming: tarfile's `r|*` mode never seeks, so nothing is extracted."""
    fh = open(path, "rb")
    size = max(1, path.stat().st_size)
    name = None
    try:
        try:
            tar = tarfile.open(fileobj=fh, mode="r|*")
        except tarfile.TarError as exc:
            raise BadInputError(f"{path}: not a tar archive ({exc}); expected LFW's lfw-funneled.tgz or a folder of photos") from exc
        with tar:
            for member in tar:
                name = member.name
                if not member.isfile() or not _is_image_name(name):
                    continue
                data = tar.extractfile(member).read()
                yield name, data, min(1.0, fh.tell() / size)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        where = f" after {name}" if name else ""
        raise BadInputError(f"{path}: archive is truncated or corrupt{where} ({exc})") from exc
    finally:
        fh.close()


def list_folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and _is_image_name(p.name) and not p.name.startswith("."))


def iter_folder(folder: Path, files: list[Path]) -> Iterator[tuple[str, bytes | None, float]]:
    for i, p in enumerate(files):
        try:
            data = p.read_bytes()
        except OSError:
            data = None  # counted as unreadable, like a corrupt file
        yield p.relative_to(folder).as_posix(), data, (i + 1) / len(files)


def decode_rgb(data: bytes) -> np.ndarray:
    """HxWx3 uint8 RGB as displayed, decoded exactly as repairs decode photos.
    Raises ValueError with the reader's reason."""
    from core.imageio import load_image

    try:
        rgb = load_image(data).rgb
    except BadInputError as exc:
        raise ValueError(str(exc)) from exc
    if min(rgb.shape[:2]) < 8:
        raise ValueError(f"image of {rgb.shape[1]}x{rgb.shape[0]} pixels is too small")
    return rgb


def encode_png(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _example(png: bytes, source: str, face_index: int, confidence: float) -> bytes:
    from core.lazy_tf import tf

    f = tf.train.Feature
    feature = {
        FEATURE_IMAGE: f(bytes_list=tf.train.BytesList(value=[png])),
        FEATURE_SOURCE: f(bytes_list=tf.train.BytesList(value=[source.encode("utf-8")])),
        FEATURE_FACE_INDEX: f(int64_list=tf.train.Int64List(value=[face_index])),
        FEATURE_CONFIDENCE: f(float_list=tf.train.FloatList(value=[confidence])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


class _ShardWriter:
    """Writes shard-NNNNN.tfrecord; `finish` renames them to the final
    shard-NNNNN-of-MMMMM form once the total is known."""

    def __init__(self, folder: Path, shard_size: int):
        self.folder = folder
        self.shard_size = shard_size
        self.counts: list[int] = []
        self._writer = None

    def write(self, record: bytes) -> None:
        from core.lazy_tf import tf

        if self._writer is None or self.counts[-1] >= self.shard_size:
            self._close()
            self._writer = tf.io.TFRecordWriter(str(self.folder / f"shard-{len(self.counts):05d}.tfrecord"))
            self.counts.append(0)
        self._writer.write(record)
        self.counts[-1] += 1

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def finish(self) -> list[dict]:
        self._close()
        shards = []
        for i, n in enumerate(self.counts):
            final = f"shard-{i:05d}-of-{len(self.counts):05d}.tfrecord"
            (self.folder / f"shard-{i:05d}.tfrecord").rename(self.folder / final)
            shards.append({"path": final, "faces": n})
        return shards


def prepare_dataset(
    source: str | Path,
    out: str | Path,
    options: PrepareOptions = PrepareOptions(),
    *,
    detector=None,
    progress: PrepareProgress | None = None,
) -> PrepareSummary:
    """Detect, align and store every usable face of `source` into the new folder `out`.

    Raises BadInputError (exit 3) naming the source when nothing usable came
    out of it; `out` then does not exist. Single bad images are skipped and
    counted in the summary, not fatal.
    """
    from core.align import compute_alignment, warp_to_aligned

    options = options.validated()
    source, out = Path(source), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not empty; choose a new folder for the data set")
    if _is_tar(source):
        summary = PrepareSummary(str(source), "tgz", "photos")
        items = iter_tgz(source)
    elif source.is_dir():
        files = list_folder_images(source)
        if not files:
            raise BadInputError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder or its subfolders")
        summary = PrepareSummary(str(source), "folder", "photos")
        items = iter_folder(source, files)
    elif source.exists():
        raise BadInputError(f"{source}: not a .tgz/.tar.gz archive or a folder of photos")
    else:
        raise BadInputError(f"{source}: no such file or folder")

    info = bundles.read_manifest(bundles.find_bundle(options.bundle))
    template = np.asarray(info.landmark_template, np.float64)
    size = info.image_size
    if detector is None:
        from core.faces import default_detector

        detector = default_detector()

    started = time.monotonic()
    # Everything goes to a temp folder beside `out`, renamed at the very end,
    # so an interrupted or failed run never leaves a folder that looks like data.
    work = temp_folder_beside(out)
    try:
        shards = _ShardWriter(work, options.shard_size)
        lfw_members = 0
        for name, data, fraction in items:
            summary.images_read += 1
            if LFW_MEMBER.match(name):
                lfw_members += 1
            note = None
            try:
                if data is None:
                    raise ValueError("cannot read the file")
                rgb = decode_rgb(data)
            except ValueError as exc:
                summary.skip("unreadable", name)
                note = f"skipped {name}: unreadable image ({exc})"
            else:
                faces = detector.detect(rgb)
                if not faces:
                    summary.skip("no_face", name)
                kept_here = 0
                for face in faces:  # best confidence first
                    if kept_here >= options.max_faces_per_image:
                        summary.skip("beyond_max_faces", name)
                        continue
                    if min(face.box[2], face.box[3]) < options.min_face_size:
                        summary.skip("face_too_small", name)
                        continue
                    if face.landmarks is None:
                        summary.skip("no_landmarks", name)
                        continue
                    try:
                        alignment = compute_alignment(face.landmarks, template, size, rgb.shape[:2])
                    except BadInputError:
                        summary.skip("unalignable", name)
                        continue
                    aligned = warp_to_aligned(rgb, alignment)
                    shards.write(_example(encode_png(aligned), name, kept_here, face.confidence))
                    kept_here += 1
                    summary.faces_kept += 1
            if progress:
                progress(summary.images_read, summary.faces_kept, fraction, note)
        if summary.images_read == 0:
            raise BadInputError(
                f"{source}: no images (.jpg/.png) in this archive; expected LFW's lfw-funneled.tgz "
                "(lfw_funneled/<Person_Name>/<Person_Name>_0001.jpg) or a folder of photos"
            )
        if summary.faces_kept == 0:
            reasons = ", ".join(f"{r}: {e['count']}" for r, e in summary.skipped.items())
            examples = "; ".join(f"{r} e.g. {e['samples'][0]}" for r, e in summary.skipped.items())
            raise BadInputError(
                f"{source}: no usable faces in {summary.images_read} image(s) ({reasons}; {examples})"
            )
        summary.layout = "lfw" if lfw_members == summary.images_read else "photos"
        summary.shards = shards.finish()
        summary.seconds = round(time.monotonic() - started, 2)
        _write_summary(work, summary, options, info, detector)
        publish(work, out)
    except BaseException:
        shards._close()
        shutil.rmtree(work, ignore_errors=True)
        raise
    return summary


def _write_summary(folder: Path, summary: PrepareSummary, options: PrepareOptions, info, detector) -> None:
    doc = {
        "format": DATA_FORMAT,
        "format_version": DATA_FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": summary.source,
        "source_kind": summary.source_kind,
        "layout": summary.layout,
        "images_read": summary.images_read,
        "faces_kept": summary.faces_kept,
        "skipped": {r: {**e, "meaning": SKIP_REASONS[r]} for r, e in sorted(summary.skipped.items())},
        "image_size": info.image_size,
        "channels": 3,
        "encoding": "png",
        "landmark_template": info.manifest["landmark_template"],
        "bundle": info.ref,
        "bundle_path": str(info.path),
        "detector": getattr(detector, "name", type(detector).__name__),
        "options": {
            "max_faces_per_image": options.max_faces_per_image,
            "min_face_size": options.min_face_size,
            "shard_size": options.shard_size,
        },
        "shards": summary.shards,
        "seconds": summary.seconds,
    }
    text = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    atomic_write(folder / SUMMARY, lambda fh: fh.write(text), overwrite=True)


def read_summary(data: str | Path) -> dict:
    """The summary of a prepared data folder; BadInputError if it is not one."""
    data = Path(data)
    path = data / SUMMARY
    if not path.exists():
        raise BadInputError(f"{data}: not a prepared data set (no {SUMMARY}); make one with `facemend train prepare`")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != DATA_FORMAT or doc.get("format_version") != DATA_FORMAT_VERSION:
        raise BadInputError(f"{path}: not a {DATA_FORMAT} v{DATA_FORMAT_VERSION} summary")
    for shard in doc.get("shards", []):
        if not (data / shard["path"]).exists():
            raise BadInputError(f"{data / shard['path']}: missing shard listed in {SUMMARY}")
    return doc
