"""Loading images and cutting box crops for the model backends, with the checks every entry point shares.

Bad input fails here with a message that says what is wrong: a missing file, bytes that are not an image,
an image over the pixel limit (decompression bombs included), a box that is not a normalized box.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from giqa.boxes import Box, BoxLike, as_box

DEFAULT_MAX_PIXELS = 40_000_000  # ~ a 7,300 × 5,500 photo; larger inputs are refused, not decoded


class ImageError(ValueError):
    """An image that cannot be used: missing, unreadable, or too large."""


class ImageTooLarge(ImageError):
    """An image over the pixel limit (a decompression bomb included): refused before its pixels decode."""


def check_size(image: Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}"
        )
    return image


def _open_rgb(source: str | Path | IO[bytes], max_pixels: int, where: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                check_size(img, max_pixels)  # the header is read, the pixels are not decoded yet
                img.load()
                # EXIF orientation: boxes follow the image as it is displayed, not as it is stored
                return _to_rgb(ImageOps.exif_transpose(img))
    except ImageError:
        raise
    except UnidentifiedImageError as exc:  # PIL's text names a BytesIO object for bytes: say it plainly
        raise ImageError(f"cannot read {where} as an image: not an image format PIL knows") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"cannot read {where} as an image: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise ImageError(f"cannot read {where} as an image (corrupt or truncated): {exc}") from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, 8 bits per channel. A 16-bit grayscale image (PNG ``I;16``, or ``I`` from older Pillow) is
    scaled to 8 bits first: Pillow's own conversion clips every value over 255, which turns all but the
    darkest pixels white. (16-bit RGB PNGs are read as 8-bit RGB by Pillow already.)"""
    if image.mode.startswith("I;16") or image.mode == "I":
        import numpy as np

        values = np.asarray(image, dtype=np.int64)
        image = Image.fromarray(np.clip(values >> 8, 0, 255).astype(np.uint8))
    return image.convert("RGB")


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an RGB image after checking its size from the header (before decoding)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    return _open_rgb(path, max_pixels, str(path))


def decode_image(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, *, where: str = "the upload"
) -> Image.Image:
    """Bytes (an upload, an object-store body, a task payload's image) as an RGB image, with the same
    checks as :func:`load_image`: empty bytes, bytes that are not an image, corrupt or truncated data and
    images over the pixel limit raise :class:`ImageError` naming ``where``."""
    if not data:
        raise ImageError(f"{where} is empty (0 bytes)")
    return _open_rgb(io.BytesIO(data), max_pixels, where)


def image_format(data: bytes) -> str:
    """The file format PIL reads ``data`` as (``PNG``, ``JPEG``, ...); call after :func:`decode_image`
    checked the bytes (only the header is read here)."""
    with Image.open(io.BytesIO(data)) as img:
        return str(img.format or "unknown")


def crop(image: Image.Image, box: BoxLike, min_side: int = 1) -> Image.Image:
    """The pixels under a normalized box, at least ``min_side`` pixels each way (grown around its centre)."""
    b: Box = as_box(box)
    width, height = image.size
    x1, y1, x2, y2 = b.to_pixels(width, height)
    min_w, min_h = min(min_side, width), min(min_side, height)
    if x2 - x1 < min_w:
        x1 = max(0, min(width - min_w, (x1 + x2 - min_w) // 2))
        x2 = x1 + min_w
    if y2 - y1 < min_h:
        y1 = max(0, min(height - min_h, (y1 + y2 - min_h) // 2))
        y2 = y1 + min_h
    return image.crop((x1, y1, x2, y2))


def encode_png(image: Image.Image) -> bytes:
    """``image`` as PNG bytes (lossless, so the receiver decodes the very pixels sent; fast compression,
    since these bytes cross a network once and are not stored)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
