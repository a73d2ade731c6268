"""Pictures people upload: recognised from their bytes, decoded, and encoded again clean.

Only a picture this module has decoded and written itself is ever shown in a page: what
reaches the browser is then pixels and nothing else the sender put in the file (EXIF with
GPS positions, XMP, comments, trailing bytes, a polyglot's second format). Anything else is
a download.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import IO

from django.utils.formats import number_format
from django.utils.translation import gettext as _
from PIL import Image, ImageOps

# The formats shown inline: what browsers display everywhere, by Pillow's names.
CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp"}
THUMBNAIL_BOX = (400, 400)
THUMBNAIL_CONTENT_TYPE = "image/webp"

# The modes each format is written in; others are converted first.
_MODES = {
    "JPEG": {"L", "RGB"},
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"},
    "GIF": {"L", "P"},
    "WEBP": {"RGB", "RGBA"},
}
_SAVE_OPTIONS = {
    "JPEG": {"quality": 85},
    "PNG": {},
    "GIF": {},
    "WEBP": {"quality": 85},
}
# What Pillow raises on bytes that break a decoder halfway (a truncated or corrupt file).
_DECODING_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


class PictureRefused(Exception):
    """A file that claims to be a picture and cannot be taken as one."""

    def __init__(self, detail: str, *, too_large: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.too_large = too_large


@dataclass(frozen=True)
class Picture:
    """A picture encoded again: its bytes, a thumbnail, and what it is."""

    data: bytes
    thumbnail: bytes
    content_type: str
    extension: str
    width: int
    height: int


def claims_to_be_picture(head: bytes) -> bool:
    """Tell whether a file's first bytes are those of a format shown inline."""
    return head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    )


def picture_from(file: IO[bytes], *, max_pixels: int) -> Picture | None:
    """Decode a picture and encode it again; None when the bytes are no shown format.

    Raise PictureRefused when they claim to be one but are truncated or corrupt, or when
    the picture has more than `max_pixels` pixels (checked from its header, before any
    pixel is decoded: a few kilobytes of PNG can describe gigabytes of them).
    """
    file.seek(0)
    head = file.read(16)
    file.seek(0)
    if not claims_to_be_picture(head):
        return None
    try:
        with Image.open(file, formats=list(CONTENT_TYPES)) as image:
            _check_pixels(image.width, image.height, max_pixels)
            image_format = image.format
            # The first frame only: an animation is shown as its first picture.
            image.load()
            upright = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError:
        raise PictureRefused(
            _("the picture has too many pixels (at most %(most)s)") % {"most": _count(max_pixels)},
            too_large=True,
        ) from None
    except _DECODING_ERRORS:
        raise PictureRefused(
            _("the picture is damaged or incomplete and cannot be shown")
        ) from None
    if image_format not in CONTENT_TYPES:
        return None
    return Picture(
        data=_encode(upright, image_format),
        thumbnail=_thumbnail(upright),
        content_type=CONTENT_TYPES[image_format],
        extension=EXTENSIONS[image_format],
        width=upright.width,
        height=upright.height,
    )


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise PictureRefused(
            _("the picture is %(width)s by %(height)s pixels; at most %(most)s pixels in all")
            % {"width": _count(width), "height": _count(height), "most": _count(max_pixels)},
            too_large=True,
        )


def _count(number: int) -> str:
    """A whole number as the active language groups its digits (50,000,000; 50.000.000)."""
    return number_format(number, force_grouping=True)


def _clean(image: Image.Image, image_format: str) -> Image.Image:
    """Return the image in a mode its format writes, with no metadata but transparency."""
    if image.mode not in _MODES[image_format]:
        target = "RGBA" if _has_alpha(image) else "RGB"
        if image_format == "GIF":
            target = "P"
        image = image.convert(target)
    # Everything Pillow would write back (EXIF, XMP, comments, ...) lives in `info`.
    kept = {key: image.info[key] for key in ("transparency",) if key in image.info}
    image.info = kept
    return image


def _encode(image: Image.Image, image_format: str) -> bytes:
    icc_profile = image.info.get("icc_profile") if image.mode != "CMYK" else None
    clean = _clean(image, image_format)
    options = dict(_SAVE_OPTIONS[image_format])
    # The colour profile stays: without it a wide-gamut phone photo shows washed out.
    if icc_profile and image_format != "GIF":
        options["icc_profile"] = icc_profile
    out = io.BytesIO()
    clean.save(out, format=image_format, exif=b"", **options)
    return out.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    small = image.convert("RGBA" if _has_alpha(image) else "RGB")
    small.info = {}
    small.thumbnail(THUMBNAIL_BOX)
    out = io.BytesIO()
    small.save(out, format="WEBP", quality=80)
    return out.getvalue()


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
