"""core.masks: preset masks in the aligned frame, mask files, validation."""

import numpy as np
import pytest
from PIL import Image

from core import bundle as bundles
from core.errors import BadInputError, UsageError
from core.masks import MASK_TYPES, dilate_mask, load_mask, preset_mask, save_mask, validate_mask

# The shipped bundle's own template and size: presets must fit the real model frame.
INFO = bundles.read_manifest(bundles.find_bundle())
SIZE = INFO.image_size
TEMPLATE = np.asarray(INFO.landmark_template)
LEFT_EYE, RIGHT_EYE, NOSE, MOUTH_LEFT, MOUTH_RIGHT = TEMPLATE


def _covers(mask, point):
    x, y = point
    return bool(mask[int(y), int(x)])


# --- presets -----------------------------------------------------------------


@pytest.mark.parametrize("kind", MASK_TYPES)
def test_each_preset_is_a_partial_bool_mask_of_the_frame(kind):
    m = preset_mask(kind, SIZE, TEMPLATE)
    assert m.shape == (SIZE, SIZE) and m.dtype == np.bool_
    assert m.any() and not m.all()


def test_center_is_the_central_half_size_square():
    m = preset_mask("center", 64, TEMPLATE)
    rows, cols = np.nonzero(m)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 47, 16, 47)
    assert m.sum() == 32 * 32


@pytest.mark.parametrize(
    "kind, region",
    [
        ("left", (slice(None), slice(0, SIZE // 2))),
        ("right", (slice(None), slice(SIZE // 2, None))),
        ("top", (slice(0, SIZE // 2), slice(None))),
        ("bottom", (slice(SIZE // 2, None), slice(None))),
    ],
)
def test_half_presets_cover_exactly_their_half(kind, region):
    expected = np.zeros((SIZE, SIZE), bool)
    expected[region] = True
    assert np.array_equal(preset_mask(kind, SIZE, TEMPLATE), expected)


def test_eyes_mask_covers_both_eyes_but_not_nose_or_mouth():
    m = preset_mask("eyes", SIZE, TEMPLATE)
    assert _covers(m, LEFT_EYE) and _covers(m, RIGHT_EYE)
    assert not any(_covers(m, p) for p in (NOSE, MOUTH_LEFT, MOUTH_RIGHT))


def test_eyes_mask_reaches_beyond_the_eye_centres():
    # An eye is wider than its centre point: the band must cover the corners too.
    m = preset_mask("eyes", SIZE, TEMPLATE)
    eye_distance = np.linalg.norm(RIGHT_EYE - LEFT_EYE)
    assert _covers(m, LEFT_EYE - (0.3 * eye_distance, 0)) and _covers(m, RIGHT_EYE + (0.3 * eye_distance, 0))


def test_mouth_mask_covers_both_mouth_corners_but_not_eyes_or_nose():
    m = preset_mask("mouth", SIZE, TEMPLATE)
    assert _covers(m, MOUTH_LEFT) and _covers(m, MOUTH_RIGHT)
    assert not any(_covers(m, p) for p in (LEFT_EYE, RIGHT_EYE, NOSE))


def test_feature_presets_follow_the_template():
    shifted = TEMPLATE + (0, 6)
    assert not np.array_equal(preset_mask("eyes", SIZE, shifted), preset_mask("eyes", SIZE, TEMPLATE))
    assert _covers(preset_mask("eyes", SIZE, shifted), shifted[0])


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.8])
def test_random_mask_covers_the_requested_fraction(fraction):
    m = preset_mask("random", SIZE, TEMPLATE, seed=3, fraction=fraction)
    assert abs(m.mean() - fraction) < 0.01


def test_random_mask_is_deterministic_per_seed():
    a = preset_mask("random", SIZE, TEMPLATE, seed=7)
    b = preset_mask("random", SIZE, TEMPLATE, seed=7)
    c = preset_mask("random", SIZE, TEMPLATE, seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_random_mask_is_spread_over_the_frame():
    m = preset_mask("random", SIZE, TEMPLATE, seed=0, fraction=0.25)
    quadrants = [m[: SIZE // 2, : SIZE // 2], m[: SIZE // 2, SIZE // 2 :], m[SIZE // 2 :, : SIZE // 2], m[SIZE // 2 :, SIZE // 2 :]]
    assert all(0.15 < q.mean() < 0.35 for q in quadrants)


def test_unknown_preset_is_a_usage_error_listing_valid_kinds():
    with pytest.raises(UsageError) as ei:
        preset_mask("nose", SIZE, TEMPLATE)
    assert all(k in str(ei.value) for k in MASK_TYPES)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 2.0])
def test_random_fraction_outside_0_1_is_a_usage_error(fraction):
    with pytest.raises(UsageError, match="fraction"):
        preset_mask("random", SIZE, TEMPLATE, fraction=fraction)


# --- mask files --------------------------------------------------------------


def _painted(h=10, w=14):
    m = np.zeros((h, w), bool)
    m[2:6, 3:9] = True
    return m


def _write(tmp_path, kind, m):
    """The mask `m` as white-on-black in each image layout an editor might export."""
    p = tmp_path / f"mask_{kind}.png"
    grey = m.astype(np.uint8) * 255
    if kind == "1":
        Image.fromarray(m).save(p)
    elif kind == "L":
        Image.fromarray(grey).save(p)
    elif kind == "LA":
        Image.merge("LA", [Image.fromarray(grey), Image.new("L", grey.shape[::-1], 255)]).save(p)
    elif kind == "RGB":
        Image.fromarray(np.dstack([grey] * 3)).save(p)
    elif kind == "RGBA":
        Image.fromarray(np.dstack([grey] * 3 + [np.full_like(grey, 255)])).save(p)
    elif kind == "P":
        Image.fromarray(np.dstack([grey] * 3)).quantize(2).save(p)
    elif kind == "I;16":
        Image.fromarray(m.astype(np.uint16) * 65535).save(p)
    elif kind == "red-on-black":
        Image.fromarray(np.dstack([grey, np.zeros_like(grey), np.zeros_like(grey)])).save(p)
    else:
        raise AssertionError(kind)
    return p


@pytest.mark.parametrize("kind", ["1", "L", "LA", "RGB", "RGBA", "P", "I;16", "red-on-black"])
def test_load_mask_reads_non_zero_as_fill_in_every_mode(tmp_path, kind):
    m = _painted()
    assert np.array_equal(load_mask(_write(tmp_path, kind, m), m.shape), m)


def test_load_mask_black_strokes_on_transparent_layer_use_alpha(tmp_path):
    m = _painted()
    a = np.zeros(m.shape + (4,), np.uint8)
    a[..., 3] = m * 255
    Image.fromarray(a).save(tmp_path / "strokes.png")
    assert np.array_equal(load_mask(tmp_path / "strokes.png", m.shape), m)


def test_load_mask_transparent_pixels_are_not_fill_whatever_their_colour(tmp_path):
    # Some editors keep transparent pixels white: they are still unpainted.
    m = _painted()
    a = np.full(m.shape + (4,), 255, np.uint8)
    a[..., 3] = m * 255
    Image.fromarray(a).save(tmp_path / "white_layer.png")
    assert np.array_equal(load_mask(tmp_path / "white_layer.png", m.shape), m)


def test_load_mask_jpeg_ignores_compression_noise(tmp_path):
    m = np.zeros((64, 64), bool)
    m[16:40, 20:50] = True
    Image.fromarray(m.astype(np.uint8) * 255).save(tmp_path / "m.jpg", quality=60)
    loaded = load_mask(tmp_path / "m.jpg", m.shape)
    assert (loaded != m).mean() < 0.01


def test_load_mask_honours_exif_orientation(tmp_path):
    m = np.zeros((10, 20), bool)
    m[0:3, 0:3] = True  # stored top-left
    ex = Image.Exif()
    ex[0x0112] = 6  # shown rotated 90 degrees clockwise: stored top-left -> top-right
    Image.fromarray(m.astype(np.uint8) * 255).save(tmp_path / "rot.png", exif=ex)
    loaded = load_mask(tmp_path / "rot.png", (20, 10))
    assert np.array_equal(loaded, np.rot90(m, -1))
    assert loaded[0, -1] and not loaded[0, 0]


def test_load_mask_size_mismatch_names_both_sizes(tmp_path):
    p = _write(tmp_path, "L", _painted(10, 14))
    with pytest.raises(BadInputError) as ei:
        load_mask(p, (20, 30))
    msg = str(ei.value)
    assert str(p) in msg and "14x10" in msg and "30x20" in msg


def test_load_mask_unreadable_file_is_named(tmp_path):
    p = tmp_path / "mask.png"
    p.write_text("not a mask")
    with pytest.raises(BadInputError, match="mask.png"):
        load_mask(p, (10, 10))


def test_load_mask_from_bytes(tmp_path):
    m = _painted()
    data = _write(tmp_path, "L", m).read_bytes()
    assert np.array_equal(load_mask(data, m.shape), m)


def test_save_mask_writes_8_bit_grey_png_white_is_fill(tmp_path):
    m = _painted()
    out = save_mask(m, tmp_path / "saved.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "L"
        a = np.asarray(im)
    assert set(np.unique(a)) == {0, 255}
    assert np.array_equal(a == 255, m)
    assert np.array_equal(load_mask(out, m.shape), m)


def test_save_mask_refuses_non_png_names(tmp_path):
    with pytest.raises(UsageError, match="PNG"):
        save_mask(_painted(), tmp_path / "mask.jpg")
    assert not (tmp_path / "mask.jpg").exists()


def test_save_mask_replaces_atomically_leaving_no_temp_file(tmp_path):
    out = tmp_path / "m.png"
    save_mask(_painted(), out)
    inverted = ~_painted()
    save_mask(inverted, out)
    assert np.array_equal(load_mask(out, inverted.shape), inverted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png"]


# --- validation --------------------------------------------------------------


def test_validate_mask_accepts_a_partial_mask():
    m = _painted()
    assert validate_mask(m, m.shape) is m


def test_validate_mask_rejects_empty_with_advice():
    with pytest.raises(BadInputError, match="empty: paint the damaged area white"):
        validate_mask(np.zeros((4, 4), bool), (4, 4))


def test_validate_mask_rejects_full():
    with pytest.raises(BadInputError, match="covers the whole image"):
        validate_mask(np.ones((4, 4), bool), (4, 4))


def test_validate_mask_rejects_wrong_shape_naming_both():
    with pytest.raises(BadInputError, match="5x4.*6x3"):
        validate_mask(np.zeros((4, 5), bool), (3, 6))


@pytest.mark.parametrize(
    "mask, words",
    [(np.zeros((4, 4), np.uint8), "boolean"), (np.zeros((4, 4, 1), bool), "2-D"), ([[True, False]], "array")],
)
def test_validate_mask_rejects_wrong_type(mask, words):
    with pytest.raises(BadInputError, match=words):
        validate_mask(mask, (4, 4), what="eye mask")


def test_validate_mask_names_what_it_checks():
    with pytest.raises(BadInputError, match="^aligned mask is empty"):
        validate_mask(np.zeros((4, 4), bool), (4, 4), what="aligned mask")


# --- dilation ----------------------------------------------------------------


def test_dilate_mask_grows_by_the_given_radius():
    m = np.zeros((21, 21), bool)
    m[10, 10] = True
    d = dilate_mask(m, 3)
    rows, cols = np.nonzero(d)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (7, 13, 7, 13)
    assert not d[7, 7]  # a disc, not a square
    assert d[m].all()


def test_dilate_mask_by_zero_is_an_equal_copy():
    m = _painted()
    d = dilate_mask(m, 0)
    assert np.array_equal(d, m) and d is not m


def test_dilate_mask_negative_is_a_usage_error():
    with pytest.raises(UsageError):
        dilate_mask(_painted(), -1)
