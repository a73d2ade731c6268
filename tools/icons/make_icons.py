"""Draw the app's icons (static/icons/*.png) once: a speech bubble on the brand's gradient.

Run from the repository's root with the project's Python (Pillow is a dependency already):
    .venv/bin/python tools/icons/make_icons.py
The PNGs are committed; run this again only to change the drawing.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[2] / "static" / "icons"
SCALE = 4  # drawn this much larger, then reduced: smooth edges
START, END = (0x4F, 0x5B, 0xD5), (0x8B, 0x5C, 0xF6)  # chat.css .brand-mark


def gradient(size: int) -> Image.Image:
    """A square filled with the brand's diagonal gradient."""
    image = Image.new("RGB", (size, size))
    pixels = image.load()
    for y in range(size):
        for x in range(size):
            t = (x + y) / (2 * (size - 1))
            pixels[x, y] = tuple(round(a + (b - a) * t) for a, b in zip(START, END, strict=True))
    return image


def bubble(draw: ImageDraw.ImageDraw, size: int, box: float) -> None:
    """A white speech bubble with three dots, `box` of the side wide, centred."""
    side = size * box
    left, top = (size - side) / 2, (size - side * 0.86) / 2
    right, bottom = left + side, top + side * 0.68
    draw.rounded_rectangle((left, top, right, bottom), radius=side * 0.2, fill="white")
    tail_x = left + side * 0.24
    draw.polygon(
        [
            (tail_x, bottom - 2),
            (tail_x + side * 0.2, bottom - 2),
            (tail_x - side * 0.04, bottom + side * 0.2),
        ],
        fill="white",
    )
    radius = side * 0.07
    middle = (top + bottom) / 2
    for k in (-1, 0, 1):
        cx = size / 2 + k * side * 0.24
        draw.ellipse((cx - radius, middle - radius, cx + radius, middle + radius), fill=START)


def icon(pixels: int, *, maskable: bool) -> Image.Image:
    """One icon: rounded corners for "any", full bleed (the safe zone inside) for "maskable"."""
    size = pixels * SCALE
    image = gradient(size).convert("RGBA")
    draw = ImageDraw.Draw(image)
    # A maskable icon may be cut to a circle of 80% of its side: the drawing stays inside.
    bubble(draw, size, 0.5 if maskable else 0.6)
    if not maskable:
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).rounded_rectangle(
            (0, 0, size - 1, size - 1), radius=size * 0.22, fill=255
        )
        image.putalpha(mask)
    return image.resize((pixels, pixels), Image.Resampling.LANCZOS)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    icon(192, maskable=False).save(OUT / "icon-192.png", optimize=True)
    icon(512, maskable=False).save(OUT / "icon-512.png", optimize=True)
    icon(512, maskable=True).save(OUT / "icon-maskable-512.png", optimize=True)
    # iOS rounds the corners itself and shows no transparency.
    icon(180, maskable=True).convert("RGB").save(OUT / "apple-touch-icon.png", optimize=True)


if __name__ == "__main__":
    main()
