"""Draw FaceMend's icon once and write every size and format the installers use.

    python packaging/make_icons.py OUT_DIR

writes OUT_DIR/hicolor/<N>x<N>/apps/facemend.png (freedesktop sizes),
OUT_DIR/facemend.png (512 px, the source), OUT_DIR/facemend.ico (Windows) and
OUT_DIR/facemend.icns (macOS). Generated at build time, so no binary icon is
committed and every size comes from the same drawing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

SOURCE_SIZE = 1024
HICOLOR_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICON_NAME = "facemend"


def draw_icon(size: int = SOURCE_SIZE) -> Image.Image:
    """A face in a rounded tile, with a mended patch over the mouth: the app's
    one idea (paint over damage, get a face back) at a glance."""
    s = size / 100.0
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((4 * s, 4 * s, 96 * s, 96 * s), radius=20 * s, fill=(38, 70, 120, 255))
    d.ellipse((22 * s, 14 * s, 78 * s, 86 * s), fill=(244, 205, 170, 255))  # face
    for cx in (39, 61):  # eyes
        d.ellipse(((cx - 5) * s, 38 * s, (cx + 5) * s, 46 * s), fill=(40, 40, 50, 255))
    d.line((50 * s, 48 * s, 47 * s, 60 * s, 52 * s, 61 * s), fill=(190, 140, 115, 255), width=max(1, round(2 * s)))
    # The mended patch: the overlay colour the editor paints damage with, half see-through.
    patch = Image.new("RGBA", img.size, (0, 0, 0, 0))
    pd = ImageDraw.Draw(patch)
    pd.rounded_rectangle((32 * s, 62 * s, 68 * s, 80 * s), radius=5 * s, fill=(255, 48, 96, 150))
    img = Image.alpha_composite(img, patch)
    d = ImageDraw.Draw(img)
    d.arc((38 * s, 60 * s, 62 * s, 74 * s), 20, 160, fill=(150, 40, 60, 255), width=max(1, round(2.5 * s)))
    return img


def write_icons(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    source = draw_icon()
    written = []
    for n in HICOLOR_SIZES:
        p = out / "hicolor" / f"{n}x{n}" / "apps" / f"{ICON_NAME}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        source.resize((n, n), Image.Resampling.LANCZOS).save(p)
        written.append(p)
    png = out / f"{ICON_NAME}.png"
    source.resize((512, 512), Image.Resampling.LANCZOS).save(png)
    ico = out / f"{ICON_NAME}.ico"
    source.save(ico, sizes=[(n, n) for n in ICO_SIZES])
    icns = out / f"{ICON_NAME}.icns"
    source.save(icns)
    return written + [png, ico, icns]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_icons.py OUT_DIR")
    for path in write_icons(Path(sys.argv[1])):
        print(path)
