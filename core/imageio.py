"""Reading photos, writing repaired copies, and PNG bytes for the wire.

A `Photo` holds two views of the same pixels:

* `rgb` — 8-bit RGB, upright (EXIF orientation applied): what detection, the
  canvas and the model see;
* `native` — the file's own depth and channel layout, upright: what a repaired
  copy is built from, so that every pixel outside a repair is written back
  exactly as it was read.

Layouts of `native` (HxWxC): C=1 grey, C=2 grey+alpha, C=3 RGB, C=4 RGBA, or
C=4 CMYK when `mode == "CMYK"`; dtype uint8, or uint16 for 16-bit files.

Multi-frame files (animated GIF/WebP/PNG, multi-page TIFF): only the first
frame is read; `Photo.frames` says how many there were so the caller can tell
the user, and a saved repair is a single still image.

Only formats in `READ_FORMATS` are opened: Pillow also parses formats (EPS,
and others) whose decoders run external programs or see little use, and a photo
repair tool has no reason to expose them.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import BadInputError, UsageError
from core.files import OutputExistsError, atomic_write  # noqa: F401  (part of this module's API)

DEFAULT_MAX_PIXELS = 80_000_000
READ_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "DIB", "GIF", "AVIF", "JPEG2000", "PPM", "QOI", "TGA")
# Output extension -> Pillow format. GIF is left out on purpose: its 256-colour
# palette would quantise the repaired area away.
WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ORIENTATION_TAG = 0x0112
# Formats whose EXIF is a block of its own; in TIFF the "EXIF" is the file's
# own tag directory (strip offsets and all), which must not be copied.
_EXIF_FORMATS = {"JPEG", "MPO", "PNG", "WEBP"}


@dataclass
class Photo:
    rgb: np.ndarray  # HxWx3 uint8, upright
    native: np.ndarray  # HxWxC uint8/uint16, upright, the file's own layout (see module doc)
    mode: str  # Pillow mode of the file as read ('RGB', 'P', 'I;16', 'CMYK', ...)
    format: str | None  # 'JPEG', 'PNG', ... ; None for arrays (clipboard)
    path: Path | None
    icc_profile: bytes | None
    has_alpha: bool
    # EXIF block with the orientation tag removed (pixels are already upright);
    # written back into JPEG/PNG/WebP copies so dates and camera data survive.
    exif: bytes | None = None
    frames: int = 1  # frames in the file; only the first was read

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


# --- reading -----------------------------------------------------------------


def load_image(source: str | Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Read a photo from a path or from encoded bytes.

    Raises BadInputError naming the file for: missing files, folders, empty
    files, content that is not an image (whatever the extension says),
    truncated or corrupt data, formats outside READ_FORMATS, and images of
    more than `max_pixels` pixels (decompression bombs included).
    """
    path, label = _describe(source)
    if path is not None:
        _check_readable_file(path)
    opener = io.BytesIO(source) if path is None else path
    with _open_image(opener, label, max_pixels) as im:
        try:
            frames = int(getattr(im, "n_frames", 1) or 1)
            fmt = im.format
            mode = im.mode
            icc = im.info.get("icc_profile") or None
            if _is_deep_colour(im):
                orientation = _orientation(im)
                data = source if path is None else path.read_bytes()
                native = _decode_deep_colour(data)
                if native is None:  # OpenCV could not: fall back to Pillow's 8 bits
                    native = _native_from_pil(_upright(im), label)
                else:
                    native = _apply_orientation(native, orientation)
                exif = None
            else:
                upright = _upright(im)
                native = _native_from_pil(upright, label)
                exif = _exif_without_orientation(upright) if fmt in _EXIF_FORMATS else None
        except BadInputError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise BadInputError(f"{label}: image data is damaged or truncated ({exc})") from exc
    native = np.ascontiguousarray(native)
    return Photo(
        rgb=_rgb_from_native(native, mode),
        native=native,
        mode=mode,
        format=fmt,
        path=path,
        icc_profile=icc,
        has_alpha=_has_alpha(native, mode),
        exif=exif,
        frames=frames,
    )


def photo_from_array(rgb: np.ndarray) -> Photo:
    """A Photo from pixels already in memory (e.g. the clipboard): HxWx3 RGB,
    HxWx4 RGBA or HxW grey, uint8."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        raise BadInputError(f"image array must be uint8, got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise BadInputError(f"image array must be HxW, HxWx3 or HxWx4, got shape {a.shape}")
    native = np.ascontiguousarray(a).copy()
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[native.shape[2]]
    return Photo(
        rgb=_rgb_from_native(native, mode),
        native=native,
        mode=mode,
        format=None,
        path=None,
        icc_profile=None,
        has_alpha=native.shape[2] == 4,
    )


def _describe(source) -> tuple[Path | None, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return None, f"image data ({len(source)} bytes)"
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        return p, str(p)
    raise UsageError(f"expected a path or bytes, got {type(source).__name__}")


def _check_readable_file(path: Path) -> None:
    try:
        if path.is_dir():
            raise BadInputError(f"{path}: is a folder, not an image file")
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file") from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if size == 0:
        raise BadInputError(f"{path}: file is empty (0 bytes)")


def _open_image(fp, label: str, max_pixels: int, formats=READ_FORMATS) -> Image.Image:
    """Image.open with every failure turned into a BadInputError naming `label`,
    and the pixel limit checked before any pixel is decoded."""
    Image.init()
    allowed = [f for f in formats if f in Image.OPEN]
    try:
        # Pillow only warns between its limit and twice its limit; make that an error too.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(fp, formats=allowed)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadInputError(f"{label}: image too large to open safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise BadInputError(f"{label}: not an image FaceMend can read{_extension_hint(label)}") from exc
    except PermissionError as exc:
        raise BadInputError(f"{label}: cannot read ({exc.strerror or exc})") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadInputError(f"{label}: image header is damaged ({exc})") from exc
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise BadInputError(
            f"{label}: image is {w}x{h} = {w * h:,} pixels, more than the limit of {max_pixels:,} "
            "(a decompression bomb, or a photo too large to repair)"
        )
    if w < 1 or h < 1:
        im.close()
        raise BadInputError(f"{label}: image has no pixels ({w}x{h})")
    return im


def _extension_hint(label: str) -> str:
    ext = Path(label).suffix.lower()
    if ext in WRITE_FORMATS or ext == ".gif":
        return f" (its name ends in {ext} but its content is not an image of a supported format)"
    return f" (supported: {', '.join(READ_FORMATS)})"


def _upright(im: Image.Image) -> Image.Image:
    im.load()
    ImageOps.exif_transpose(im, in_place=True)  # in place: no second copy of a large photo
    return im


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 — unreadable EXIF: treat as upright, as viewers do
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation on an HxW(xC) array, matching ImageOps.exif_transpose."""
    ops = {
        1: lambda x: x,
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: x.swapaxes(0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: np.rot90(x, 2).swapaxes(0, 1),
        8: lambda x: np.rot90(x, 1),
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(a))


def _exif_without_orientation(im: Image.Image) -> bytes | None:
    try:
        exif = im.getexif()
        exif.pop(_ORIENTATION_TAG, None)
        # tobytes() writes IFD0 and its Exif/GPS sub-directories, never the
        # thumbnail IFD, whose picture would show the unrepaired photo.
        return exif.tobytes() if len(exif) else None
    except Exception:  # noqa: BLE001 — metadata we cannot re-encode is dropped, not fatal
        return None


def _is_deep_colour(im: Image.Image) -> bool:
    """16 bits per channel colour (48/64-bit PNG or TIFF), which Pillow reads as 8-bit."""
    if im.format not in ("PNG", "TIFF") or im.mode not in ("RGB", "RGBA") or not im.tile:
        return False
    args = im.tile[0].args if hasattr(im.tile[0], "args") else im.tile[0][3]
    rawmode = args if isinstance(args, str) else (args[0] if args else "")
    return isinstance(rawmode, str) and ";16" in rawmode


def _decode_deep_colour(data: bytes) -> np.ndarray | None:
    import cv2

    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None or a.ndim != 3 or a.dtype != np.uint16 or a.shape[2] not in (3, 4):
        return None
    return cv2.cvtColor(a, cv2.COLOR_BGR2RGB if a.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)


def _native_from_pil(im: Image.Image, label: str) -> np.ndarray:
    mode = im.mode
    transparent = "transparency" in im.info
    if mode == "1":
        im = im.convert("L")
    elif mode == "L" and transparent:
        im = im.convert("LA")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if transparent or mode == "PA" else "RGB")
    elif mode == "RGB" and transparent:
        im = im.convert("RGBA")
    elif mode in ("La",):
        im = im.convert("LA")
    elif mode in ("RGBa",):
        im = im.convert("RGBA")
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(im).astype(np.uint16)[:, :, None]
    elif mode == "I":
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise BadInputError(f"{label}: 32-bit integer images are not supported")
        return a.astype(np.uint16)[:, :, None]
    elif mode == "F":
        raise BadInputError(f"{label}: floating-point images are not supported")
    elif mode not in ("L", "LA", "RGB", "RGBA", "CMYK"):
        im = im.convert("RGBA" if "A" in mode or transparent else "RGB")
    a = np.asarray(im)
    return a[:, :, None] if a.ndim == 2 else a


def _is_cmyk(native: np.ndarray, mode: str) -> bool:
    return mode == "CMYK" and native.shape[2] == 4


def _layout(native: np.ndarray, mode: str) -> str:
    if _is_cmyk(native, mode):
        return "CMYK"
    return {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[native.shape[2]]


def _has_alpha(native: np.ndarray, mode: str) -> bool:
    return native.shape[2] in (2, 4) and not _is_cmyk(native, mode)


def _to_8bit(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    # Inverse of the x*257 used to widen 8-bit repairs, rounding to nearest.
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


def display_rgb(photo: "Photo", native: np.ndarray | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB of `native` (default photo.native) in photo's layout:
    what a viewer shows for a repair candidate."""
    return _rgb_from_native(photo.native if native is None else native, photo.mode)


def _rgb_from_native(native: np.ndarray, mode: str) -> np.ndarray:
    if _is_cmyk(native, mode):
        h, w = native.shape[:2]
        return np.asarray(Image.frombytes("CMYK", (w, h), native.tobytes()).convert("RGB"))
    a = _to_8bit(native)
    c = a.shape[2]
    if c in (1, 2):
        return np.ascontiguousarray(np.repeat(a[:, :, :1], 3, axis=2))
    return np.ascontiguousarray(a[:, :, :3])


# --- repair ------------------------------------------------------------------


def merge_repair(photo: Photo, repaired_rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """photo.native with only the pixels where `mask` is True taken from
    `repaired_rgb` (HxWx3 uint8, upright), converted to the native layout:
    grey by ITU-R 601 luminance (as Pillow's convert), 16-bit by x*257, CMYK by
    Pillow's conversion. Alpha is never repaired. Every other pixel is
    bit-identical to photo.native."""
    native = photo.native
    h, w = native.shape[:2]
    rep = np.asarray(repaired_rgb)
    m = np.asarray(mask)
    if rep.shape != (h, w, 3) or rep.dtype != np.uint8:
        raise BadInputError(f"repaired image is {rep.shape} {rep.dtype}, expected ({h}, {w}, 3) uint8")
    if m.shape != (h, w) or m.dtype != np.bool_:
        raise BadInputError(f"mask is {m.shape} {m.dtype}, expected ({h}, {w}) bool")
    out = native.copy()
    if not m.any():
        return out
    px = rep[m]  # N x 3
    if _is_cmyk(native, photo.mode):
        out[m] = np.asarray(Image.frombytes("RGB", (len(px), 1), px.tobytes()).convert("CMYK"))[0]
        return out
    c = native.shape[2]
    if c in (1, 2):
        grey = _luminance(px)
        out[m, 0] = grey.astype(np.uint16) * 257 if native.dtype == np.uint16 else grey
    else:
        out[m, :3] = px.astype(np.uint16) * 257 if native.dtype == np.uint16 else px
    return out


def _luminance(px: np.ndarray) -> np.ndarray:
    """uint8 grey of N x 3 uint8 RGB, the same integer formula Pillow's convert('L') uses."""
    p = px.astype(np.uint32)
    return ((p[:, 0] * 19595 + p[:, 1] * 38470 + p[:, 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


# --- writing -----------------------------------------------------------------


def default_output_path(path: str | Path) -> Path:
    """`<stem>.repaired.<ext>` beside the input; PNG where the input's format
    cannot be written (GIF, unknown or no extension)."""
    p = Path(path)
    ext = p.suffix if p.suffix.lower() in WRITE_FORMATS else ".png"
    return p.with_name(f"{p.stem}.repaired{ext}")


def save_image(
    photo: Photo, native: np.ndarray, path: str | Path, *, overwrite: bool = False, quality: int = 95
) -> Path:
    """Write `native` (photo.native's layout, e.g. from merge_repair) to `path`.

    The format follows the extension (WRITE_FORMATS). Depth, alpha, ICC profile
    and EXIF (minus orientation: pixels are already upright) are kept where the
    format can hold them; 16-bit becomes 8-bit for JPEG/WebP/BMP, alpha is
    composited on white for JPEG/BMP, CMYK becomes RGB for PNG/WebP/BMP, grey
    becomes RGB for WebP/BMP. Lossless
    formats keep the pixels outside a repair bit-identical; JPEG/WebP re-encode.

    Atomic: written to a temporary file in the same folder, then moved into
    place. Refuses an existing `path` unless `overwrite`, and always refuses
    the photo's own file.
    """
    target = Path(path)
    fmt = WRITE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"{target}: cannot save as '{target.suffix or '(no extension)'}'; "
            f"use one of {', '.join(sorted(WRITE_FORMATS))}"
        )
    if not 1 <= int(quality) <= 100:
        raise UsageError(f"quality must be 1..100, got {quality}")
    if photo.path is not None and _same_file(photo.path, target):
        raise OutputExistsError(f"{target}: refusing to overwrite the original photo; choose another file name")
    arr = _check_native(photo, native)
    image_or_bytes, params = _encode_for_format(photo, arr, fmt, int(quality))

    def write(fh):
        if isinstance(image_or_bytes, bytes):
            fh.write(image_or_bytes)
        else:
            image_or_bytes.save(fh, format=fmt, **params)

    return atomic_write(target, write, overwrite=overwrite)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return a.absolute() == b.absolute()


def _check_native(photo: Photo, native: np.ndarray) -> np.ndarray:
    a = np.asarray(native)
    want = photo.native
    if a.ndim != 3 or a.shape[2] != want.shape[2] or a.dtype != want.dtype:
        raise BadInputError(
            f"pixels to save are {a.shape} {a.dtype}, expected HxWx{want.shape[2]} {want.dtype} like the photo"
        )
    return np.ascontiguousarray(a)


def _encode_for_format(photo: Photo, a: np.ndarray, fmt: str, quality: int):
    """(PIL image, save params) or (encoded bytes, {}) for `fmt`, adapting the
    layout only as far as the format requires."""
    original_layout = layout = _layout(a, photo.mode)

    if a.dtype == np.uint16 and fmt not in ("PNG", "TIFF"):
        a = _to_8bit(a)
    if layout == "CMYK" and fmt not in ("JPEG", "TIFF"):
        a, layout = _rgb_from_native(a, "CMYK"), "RGB"
    # Most BMP readers ignore a fourth channel; flatten as for JPEG so the file looks the same everywhere.
    if fmt in ("JPEG", "BMP") and layout in ("LA", "RGBA"):
        a, layout = _flatten_on_white(a), layout[:-1]
    if fmt in ("WEBP", "BMP") and layout in ("L", "LA"):
        a = np.concatenate([np.repeat(a[:, :, :1], 3, axis=2), a[:, :, 1:]], axis=2)
        layout = "RGB" if layout == "L" else "RGBA"

    # An ICC profile describes one colour space; after grey->RGB or CMYK->RGB it would lie.
    icc = photo.icc_profile if layout.rstrip("A") == original_layout.rstrip("A") else None

    if a.dtype == np.uint16 and layout in ("RGB", "RGBA"):
        # Pillow cannot write 48/64-bit colour; OpenCV can (without ICC/EXIF).
        import cv2

        bgr = cv2.cvtColor(a, cv2.COLOR_RGB2BGR if layout == "RGB" else cv2.COLOR_RGBA2BGRA)
        ok, buf = cv2.imencode(".png" if fmt == "PNG" else ".tiff", bgr)
        if not ok:
            raise BadInputError(f"could not encode a 16-bit {fmt}")
        return buf.tobytes(), {}

    h, w = a.shape[:2]
    if a.dtype == np.uint16:  # 16-bit grey
        im = Image.frombytes("I;16", (w, h), a[:, :, 0].astype("<u2").tobytes())
    else:
        im = Image.frombytes(layout, (w, h), np.ascontiguousarray(a).tobytes())

    params: dict = {}
    if icc and fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        params["icc_profile"] = icc
    if photo.exif and fmt in ("JPEG", "PNG", "WEBP"):
        params["exif"] = photo.exif
    if fmt == "JPEG":
        params["quality"] = quality
        # Chroma subsampling would blur the colour of a small repaired face.
        if quality >= 90:
            params["subsampling"] = 0
    elif fmt == "WEBP":
        params["quality"] = quality
        params["exact"] = True  # keep colour under transparent pixels
    elif fmt == "TIFF":
        params["compression"] = "tiff_lzw"
    return im, params


def _flatten_on_white(a: np.ndarray) -> np.ndarray:
    colour, alpha = a[:, :, :-1].astype(np.float32), a[:, :, -1:].astype(np.float32) / 255.0
    return np.clip(colour * alpha + 255.0 * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8)


# --- PNG bytes (cloud protocol) ---------------------------------------------


def encode_png(rgb_or_mask: np.ndarray) -> bytes:
    """PNG bytes of an HxW bool mask (0/255), HxW uint8 grey, HxWx3 RGB or HxWx4 RGBA uint8."""
    a = np.asarray(rgb_or_mask)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8:
        raise BadInputError(f"encode_png needs uint8 or bool pixels, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or 0 in a.shape[:2]:
        raise BadInputError(f"encode_png needs HxW, HxWx3 or HxWx4 pixels, got shape {a.shape}")
    mode = "L" if a.ndim == 2 else ("RGB" if a.shape[2] == 3 else "RGBA")
    buf = io.BytesIO()
    Image.frombytes(mode, (a.shape[1], a.shape[0]), np.ascontiguousarray(a).tobytes()).save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Pixels of PNG bytes as a raw grid (EXIF ignored): HxW uint8 for grey
    (1-bit, 8 or 16-bit: 16-bit is rounded to 8), HxWx3 for RGB, HxWx4 when
    the PNG has alpha (palette transparency included). Anything that is not a
    complete PNG within `max_pixels` is a BadInputError."""
    label = f"PNG data ({len(data) if data is not None else 0} bytes)"
    if not isinstance(data, (bytes, bytearray, memoryview)) or not bytes(data[:8]) == _PNG_SIGNATURE:
        raise BadInputError(f"{label}: not a PNG image")
    with _open_image(io.BytesIO(bytes(data)), label, max_pixels, formats=("PNG",)) as im:
        try:
            im.load()
            a = _native_from_pil(im, label)
        except BadInputError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise BadInputError(f"{label}: damaged or truncated PNG ({exc})") from exc
    a = _to_8bit(a)
    if a.shape[2] == 1:
        return np.ascontiguousarray(a[:, :, 0])
    if a.shape[2] == 2:  # grey + alpha -> RGBA
        return np.ascontiguousarray(np.concatenate([np.repeat(a[:, :, :1], 3, axis=2), a[:, :, 1:]], axis=2))
    return np.ascontiguousarray(a)
