"""core.imageio: photos in, repaired copies out, PNG bytes for the wire.

Every fixture is written to tmp_path by Pillow or OpenCV, the same libraries
real files come from.
"""

import io
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from core import imageio
from core.errors import BadInputError, UsageError
from core.imageio import (
    OutputExistsError,
    decode_png,
    default_output_path,
    encode_png,
    load_image,
    merge_repair,
    photo_from_array,
    save_image,
)

RED, GREEN = (255, 0, 0), (0, 255, 0)
H, W = 24, 40  # stored (pre-orientation) size of the orientation fixtures; blocks of 8


# --- helpers -----------------------------------------------------------------


def _rng(seed=0):
    return np.random.default_rng(seed)


def _exif(orientation=None, make=None):
    ex = Image.Exif()
    if orientation is not None:
        ex[0x0112] = orientation
    if make is not None:
        ex[0x010F] = make
    return ex


def _marker_image():
    """Grey W x H with a red block at the stored top-left and a green block at the stored top-right."""
    a = np.full((H, W, 3), 128, np.uint8)
    a[:8, :8] = RED
    a[:8, -8:] = GREEN
    return a


def _corner_colours(rgb):
    """Colour at the centre of each 8x8 corner block: tl, tr, bl, br."""
    h, w = rgb.shape[:2]
    return {
        "tl": rgb[4, 4],
        "tr": rgb[4, w - 5],
        "bl": rgb[h - 5, 4],
        "br": rgb[h - 5, w - 5],
    }


# Where the stored top-left (red) and top-right (green) corners must be shown,
# read from the EXIF 2.3 definition of each orientation value ("0th row is the
# visual ..., 0th column is the visual ..."), and whether width/height swap.
EXPECTED_CORNERS = {
    1: ("tl", "tr", False),
    2: ("tr", "tl", False),
    3: ("br", "bl", False),
    4: ("bl", "br", False),
    5: ("tl", "bl", True),
    6: ("tr", "br", True),
    7: ("br", "tr", True),
    8: ("bl", "tl", True),
}


def _assert_upright(rgb, orientation, tol=0):
    red_at, green_at, swapped = EXPECTED_CORNERS[orientation]
    assert rgb.shape[:2] == ((W, H) if swapped else (H, W))
    corners = _corner_colours(rgb)
    assert np.abs(corners[red_at].astype(int) - RED).max() <= tol
    assert np.abs(corners[green_at].astype(int) - GREEN).max() <= tol


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _with_png_exif(png: bytes, exif: Image.Exif) -> bytes:
    """Insert an eXIf chunk before IEND (OpenCV cannot write one)."""
    body = exif.tobytes()[6:]  # eXIf holds the TIFF header on, without "Exif\0\0"
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + _png_chunk(b"eXIf", body) + png[iend:]


def _forged_png(width, height):
    """A PNG whose header claims width x height but holds no pixel data: a cheap bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b"")


def _write_mode(tmp_path, kind):
    """A small photo of each layout the loader must handle; returns its path."""
    rng = _rng(1)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    p = tmp_path / f"{kind}.png"
    if kind == "RGB":
        Image.fromarray(rgb).save(p)
    elif kind == "RGBA":
        a = np.dstack([rgb, rng.integers(0, 256, (12, 16), dtype=np.uint8)])
        Image.fromarray(a).save(p)
    elif kind == "L":
        Image.fromarray(rgb[:, :, 0]).save(p)
    elif kind == "LA":
        Image.merge("LA", [Image.fromarray(rgb[:, :, 0]), Image.fromarray(rgb[:, :, 1])]).save(p)
    elif kind == "P":
        Image.fromarray(rgb).quantize(16).save(p)
    elif kind == "P+transparency":
        im = Image.fromarray(rgb).quantize(16)
        im.save(p, transparency=3)
    elif kind == "1":
        Image.fromarray(rgb[:, :, 0] > 127).save(p)
    elif kind == "I;16":
        Image.fromarray(rng.integers(0, 65536, (12, 16), dtype=np.uint16)).save(p)
    elif kind == "RGB48":
        cv2.imwrite(str(p), rng.integers(0, 65536, (12, 16, 3), dtype=np.uint16))
    elif kind == "RGBA64":
        cv2.imwrite(str(p), rng.integers(0, 65536, (12, 16, 4), dtype=np.uint16))
    elif kind == "CMYK":
        p = tmp_path / "cmyk.tif"
        Image.frombytes("CMYK", (16, 12), rng.integers(0, 256, (12, 16, 4), dtype=np.uint8).tobytes()).save(p)
    else:
        raise AssertionError(kind)
    return p


MODES = ["RGB", "RGBA", "L", "LA", "P", "P+transparency", "1", "I;16", "RGB48", "RGBA64", "CMYK"]
# native layout expected for each: (channels, dtype)
NATIVE_LAYOUT = {
    "RGB": (3, np.uint8),
    "RGBA": (4, np.uint8),
    "L": (1, np.uint8),
    "LA": (2, np.uint8),
    "P": (3, np.uint8),
    "P+transparency": (4, np.uint8),
    "1": (1, np.uint8),
    "I;16": (1, np.uint16),
    "RGB48": (3, np.uint16),
    "RGBA64": (4, np.uint16),
    "CMYK": (4, np.uint8),
}


def _repair_inputs(photo, seed=2):
    rng = _rng(seed)
    repaired = rng.integers(0, 256, photo.rgb.shape, dtype=np.uint8)
    mask = rng.random(photo.rgb.shape[:2]) < 0.3
    return repaired, mask


# --- loading -----------------------------------------------------------------


@pytest.mark.parametrize("kind", MODES)
def test_load_gives_upright_rgb_and_native_layout_for_each_mode(tmp_path, kind):
    photo = load_image(_write_mode(tmp_path, kind))
    channels, dtype = NATIVE_LAYOUT[kind]
    assert photo.rgb.shape == (12, 16, 3) and photo.rgb.dtype == np.uint8
    assert photo.native.shape == (12, 16, channels) and photo.native.dtype == dtype
    assert photo.has_alpha == (channels in (2, 4) and kind != "CMYK")


def test_rgb_png_native_and_rgb_are_the_file_pixels(tmp_path):
    rgb = _rng(3).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    photo = load_image(tmp_path / "a.png")
    assert np.array_equal(photo.rgb, rgb) and np.array_equal(photo.native, rgb)
    assert (photo.mode, photo.format, photo.path) == ("RGB", "PNG", tmp_path / "a.png")


def test_sixteen_bit_grey_keeps_all_sixteen_bits(tmp_path):
    values = _rng(4).integers(0, 65536, (5, 7), dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    photo = load_image(tmp_path / "g16.png")
    assert np.array_equal(photo.native[:, :, 0], values)
    assert np.array_equal(photo.rgb[:, :, 0], np.round(values / 257).astype(np.uint8))


def test_48_bit_png_keeps_all_sixteen_bits_per_channel(tmp_path):
    rgb16 = _rng(5).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c48.png"), rgb16[:, :, ::-1])
    photo = load_image(tmp_path / "c48.png")
    assert photo.native.dtype == np.uint16
    assert np.array_equal(photo.native, rgb16)


def test_palette_with_transparency_gets_alpha(tmp_path):
    photo = load_image(_write_mode(tmp_path, "P+transparency"))
    with Image.open(tmp_path / "P+transparency.png") as im:
        expected_alpha = np.asarray(im.convert("RGBA"))[:, :, 3]
    assert photo.has_alpha and photo.mode == "P"
    assert np.array_equal(photo.native[:, :, 3], expected_alpha)
    assert (expected_alpha == 0).any()


def test_cmyk_jpeg_loads_as_cmyk_native_with_rgb_view(tmp_path):
    cmyk = Image.frombytes("CMYK", (16, 8), np.full((8, 16, 4), (0, 200, 200, 0), np.uint8).tobytes())
    cmyk.save(tmp_path / "c.jpg", quality=95)
    photo = load_image(tmp_path / "c.jpg")
    assert photo.mode == "CMYK" and photo.native.shape == (8, 16, 4)
    # Cyan-free, full magenta + yellow is red.
    assert photo.rgb[4, 8, 0] > 200 and photo.rgb[4, 8, 1] < 90 and photo.rgb[4, 8, 2] < 90


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_to_jpeg(tmp_path, orientation):
    p = tmp_path / "o.jpg"
    Image.fromarray(_marker_image()).save(p, quality=95, exif=_exif(orientation))
    photo = load_image(p)
    _assert_upright(photo.rgb, orientation, tol=40)
    assert np.array_equal(photo.rgb, photo.native)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_to_png(tmp_path, orientation):
    p = tmp_path / "o.png"
    Image.fromarray(_marker_image()).save(p, exif=_exif(orientation))
    _assert_upright(load_image(p).rgb, orientation)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_to_48_bit_png(tmp_path, orientation):
    marker16 = _marker_image().astype(np.uint16) * 257
    ok, buf = cv2.imencode(".png", marker16[:, :, ::-1])
    p = tmp_path / "o48.png"
    p.write_bytes(_with_png_exif(buf.tobytes(), _exif(orientation)))
    photo = load_image(p)
    assert photo.native.dtype == np.uint16
    _assert_upright(photo.rgb, orientation)


def test_animated_gif_gives_first_frame_and_frame_count(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in (RED, GREEN, (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100)
    photo = load_image(tmp_path / "a.gif")
    assert photo.frames == 3
    assert tuple(photo.rgb[4, 4]) == RED


def test_load_from_bytes(tmp_path):
    rgb = _rng(6).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    photo = load_image(buf.getvalue())
    assert photo.path is None and np.array_equal(photo.rgb, rgb)


def test_photo_from_array_copies_clipboard_pixels():
    rgb = _rng(7).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    photo = photo_from_array(rgb)
    rgb[:] = 0
    assert photo.format is None and photo.path is None and photo.rgb.any()
    assert np.array_equal(photo.rgb, photo.native)


# --- bad input ---------------------------------------------------------------


def _error(source, **kw):
    with pytest.raises(BadInputError) as ei:
        load_image(source, **kw)
    return str(ei.value)


def test_text_file_named_jpg_is_refused_naming_the_file(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a photo\n")
    msg = _error(p)
    assert str(p) in msg and "not an image" in msg


def test_truncated_jpeg_is_refused(tmp_path):
    p = tmp_path / "cut.jpg"
    buf = io.BytesIO()
    Image.fromarray(_rng(8).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    msg = _error(p)
    assert str(p) in msg and "truncated" in msg


def test_zero_byte_file_is_refused(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    msg = _error(p)
    assert str(p) in msg and "empty" in msg


def test_directory_is_refused(tmp_path):
    d = tmp_path / "folder.jpg"
    d.mkdir()
    msg = _error(d)
    assert str(d) in msg and "folder" in msg


def test_missing_file_is_refused(tmp_path):
    msg = _error(tmp_path / "nope.jpg")
    assert "nope.jpg" in msg and "no such file" in msg


def test_image_over_max_pixels_is_refused_with_its_pixel_count(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (200, 100)).save(p)
    msg = _error(p, max_pixels=10_000)
    assert str(p) in msg and "20,000 pixels" in msg and "10,000" in msg


def test_forged_header_bomb_is_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_forged_png(100_000, 100_000))
    msg = _error(p)
    assert str(p) in msg and "10000000000" in msg.replace(",", "")


def test_bomb_between_pillow_warning_and_error_limits_is_refused(tmp_path):
    # Pillow only warns here; a raised limit must not let it through silently.
    side = int(np.sqrt(Image.MAX_IMAGE_PIXELS * 1.5))
    p = tmp_path / "bomb2.png"
    p.write_bytes(_forged_png(side, side))
    msg = _error(p, max_pixels=10**12)
    assert str(p) in msg and "too large" in msg


# --- merging a repair --------------------------------------------------------


@pytest.mark.parametrize("kind", MODES)
def test_merge_repair_leaves_pixels_outside_mask_bit_identical(tmp_path, kind):
    photo = load_image(_write_mode(tmp_path, kind))
    repaired, mask = _repair_inputs(photo)
    merged = merge_repair(photo, repaired, mask)
    assert merged.shape == photo.native.shape and merged.dtype == photo.native.dtype
    assert np.array_equal(merged[~mask], photo.native[~mask])
    assert not np.array_equal(merged[mask], photo.native[mask])


@pytest.mark.parametrize("kind", ["RGBA", "LA", "P+transparency", "RGBA64"])
def test_merge_repair_never_changes_alpha(tmp_path, kind):
    photo = load_image(_write_mode(tmp_path, kind))
    assert photo.has_alpha
    repaired, mask = _repair_inputs(photo)
    merged = merge_repair(photo, repaired, mask)
    assert np.array_equal(merged[:, :, -1], photo.native[:, :, -1])


def test_merge_repair_rgb_takes_repaired_pixels_inside_mask(tmp_path):
    photo = load_image(_write_mode(tmp_path, "RGB"))
    repaired, mask = _repair_inputs(photo)
    assert np.array_equal(merge_repair(photo, repaired, mask)[mask], repaired[mask])


def test_merge_repair_grey_uses_pillow_luminance(tmp_path):
    photo = load_image(_write_mode(tmp_path, "L"))
    repaired, mask = _repair_inputs(photo)
    grey = np.asarray(Image.fromarray(repaired).convert("L"))
    assert np.array_equal(merge_repair(photo, repaired, mask)[mask, 0], grey[mask])


@pytest.mark.parametrize("kind", ["I;16", "RGB48"])
def test_merge_repair_widens_to_sixteen_bits(tmp_path, kind):
    photo = load_image(_write_mode(tmp_path, kind))
    repaired, mask = _repair_inputs(photo)
    merged = merge_repair(photo, repaired, mask)
    expected = repaired.astype(np.uint16) * 257
    if kind == "I;16":
        expected = np.asarray(Image.fromarray(repaired).convert("L")).astype(np.uint16)[:, :, None] * 257
    assert np.array_equal(merged[mask], expected[mask])


def test_merge_repair_cmyk_uses_pillow_conversion(tmp_path):
    photo = load_image(_write_mode(tmp_path, "CMYK"))
    repaired, mask = _repair_inputs(photo)
    cmyk = np.asarray(Image.fromarray(repaired).convert("CMYK"))
    assert np.array_equal(merge_repair(photo, repaired, mask)[mask], cmyk[mask])


def test_merge_repair_refuses_wrong_sizes(tmp_path):
    photo = load_image(_write_mode(tmp_path, "RGB"))
    with pytest.raises(BadInputError, match="expected"):
        merge_repair(photo, np.zeros((3, 3, 3), np.uint8), np.zeros(photo.rgb.shape[:2], bool))


# --- saving ------------------------------------------------------------------

# Lossless output for each layout, and the Pillow mode a re-read must show.
LOSSLESS_OUT = {
    "RGB": ("out.png", "RGB"),
    "RGBA": ("out.png", "RGBA"),
    "L": ("out.png", "L"),
    "LA": ("out.png", "LA"),
    "P": ("out.png", "RGB"),
    "P+transparency": ("out.png", "RGBA"),
    "1": ("out.png", "L"),
    "I;16": ("out.png", "I;16"),
    "RGB48": ("out.png", "RGB"),
    "RGBA64": ("out.png", "RGBA"),
    "CMYK": ("out.tif", "CMYK"),
}


@pytest.mark.parametrize("kind", MODES)
def test_saved_repair_rereads_bit_identical_in_lossless_formats(tmp_path, kind):
    photo = load_image(_write_mode(tmp_path, kind))
    merged = merge_repair(photo, *_repair_inputs(photo))
    name, mode = LOSSLESS_OUT[kind]
    out = save_image(photo, merged, tmp_path / name)
    again = load_image(out)
    assert again.mode == mode
    assert again.native.dtype == merged.dtype and np.array_equal(again.native, merged)


def test_save_never_overwrites_the_original_even_when_allowed(tmp_path):
    src = _write_mode(tmp_path, "RGB")
    before = src.read_bytes()
    photo = load_image(src)
    merged = merge_repair(photo, *_repair_inputs(photo))
    with pytest.raises(OutputExistsError, match="original"):
        save_image(photo, merged, src, overwrite=True)
    assert src.read_bytes() == before


def test_save_never_overwrites_the_original_through_another_name(tmp_path):
    src = _write_mode(tmp_path, "RGB")
    before = src.read_bytes()
    alias = tmp_path / "alias.png"
    os.link(src, alias)
    photo = load_image(src)
    merged = merge_repair(photo, *_repair_inputs(photo))
    with pytest.raises(OutputExistsError, match="original"):
        save_image(photo, merged, alias, overwrite=True)
    assert src.read_bytes() == before


def test_save_refuses_an_existing_file_unless_overwrite(tmp_path):
    photo = load_image(_write_mode(tmp_path, "RGB"))
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="exists"):
        save_image(photo, photo.native, out)
    assert out.read_bytes() == b"keep me"
    save_image(photo, photo.native, out, overwrite=True)
    assert np.array_equal(load_image(out).native, photo.native)


def test_failed_save_leaves_no_temp_file_and_target_untouched(tmp_path, monkeypatch):
    photo = load_image(_write_mode(tmp_path, "RGB"))
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    listing = sorted(os.listdir(tmp_path))

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(imageio.os, "replace", failing_replace)
    with pytest.raises(BadInputError, match="No space left"):
        save_image(photo, photo.native, out, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == listing
    assert out.read_bytes() == b"old"


def test_failed_encode_leaves_no_temp_file(tmp_path):
    photo = load_image(_write_mode(tmp_path, "RGB"))
    listing = sorted(os.listdir(tmp_path))
    with pytest.raises(BadInputError):
        save_image(photo, photo.native[:, :, :1], tmp_path / "out.png")
    assert sorted(os.listdir(tmp_path)) == listing


def test_jpeg_save_keeps_icc_and_exif_and_resets_orientation(tmp_path):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "rot.jpg"
    Image.fromarray(_marker_image()).save(src, quality=95, exif=_exif(6, make="FaceMendTestCam"), icc_profile=icc)
    photo = load_image(src)
    out = save_image(photo, photo.native, tmp_path / "rot.repaired.jpg")
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == icc
        exif = im.getexif()
        assert exif.get(0x0112, 1) == 1
        assert exif.get(0x010F) == "FaceMendTestCam"
    again = load_image(out)
    assert again.rgb.shape == photo.rgb.shape  # upright stays upright
    _assert_upright(again.rgb, 6, tol=40)


def test_sixteen_bit_saved_as_jpeg_becomes_eight_bit(tmp_path):
    photo = load_image(_write_mode(tmp_path, "RGB48"))
    again = load_image(save_image(photo, photo.native, tmp_path / "o.jpg", quality=100))
    assert again.native.dtype == np.uint8
    assert np.abs(again.rgb.astype(int) - photo.rgb).mean() < 4


def test_alpha_saved_as_jpeg_is_composited_on_white(tmp_path):
    a = np.zeros((16, 16, 4), np.uint8)  # fully transparent black
    photo = photo_from_array(a)
    again = load_image(save_image(photo, photo.native, tmp_path / "t.jpg"))
    assert again.rgb.min() > 245


@pytest.mark.parametrize("name", ["x.gif", "x.xyz", "noext"])
def test_save_refuses_formats_it_cannot_write_faithfully(tmp_path, name):
    photo = load_image(_write_mode(tmp_path, "RGB"))
    with pytest.raises(UsageError, match=r"\.png"):
        save_image(photo, photo.native, tmp_path / name)
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize(
    "given, expected",
    [("a/photo.jpg", "a/photo.repaired.jpg"), ("b/scan.TIFF", "b/scan.repaired.TIFF"), ("c/anim.gif", "c/anim.repaired.png")],
)
def test_default_output_path_sits_beside_the_input(given, expected):
    from pathlib import Path

    assert default_output_path(Path(given)) == Path(expected)


# --- PNG bytes for the wire --------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 3), (7, 9, 4)])
def test_png_round_trip_preserves_pixels(shape):
    a = _rng(9).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(a)), a)


def test_png_round_trip_of_bool_mask_is_0_and_255():
    m = _rng(10).random((6, 6)) < 0.5
    assert np.array_equal(decode_png(encode_png(m)), m.astype(np.uint8) * 255)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage that is not a png", b"\xff\xd8\xff\xe0 jpeg-ish", None],
    ids=["empty", "garbage", "jpeg", "none"],
)
def test_decode_png_refuses_non_png(data):
    with pytest.raises(BadInputError, match="not a PNG"):
        decode_png(data)


def test_decode_png_refuses_truncated_png():
    png = encode_png(_rng(11).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    with pytest.raises(BadInputError):
        decode_png(png[: len(png) // 2])


def test_decode_png_refuses_bombs():
    with pytest.raises(BadInputError, match="pixels"):
        decode_png(_forged_png(20_000, 20_000), max_pixels=1_000_000)


def test_decode_png_refuses_png_disguised_jpeg_payload():
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="JPEG")
    with pytest.raises(BadInputError):
        decode_png(b"\x89PNG\r\n\x1a\n" + buf.getvalue())
