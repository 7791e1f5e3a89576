"""Request bodies for the detector and iqa_filter service tests: images as base64 and broken images."""

from __future__ import annotations

import base64
import struct
import zlib

from PIL import Image

from giqa.backends.images import encode_png


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64_image(image: Image.Image) -> str:
    return b64(encode_png(image))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` with almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def broken_images(good: Image.Image) -> dict[str, str]:
    """Base64 strings the services must refuse as images (name -> value)."""
    png = encode_png(good)
    return {
        "corrupt_base64": "not*base64!",
        "zero_bytes": "",
        "not_an_image": b64(b"hello, I am text"),
        "truncated_png": b64(png[: len(png) // 2]),
        "pixel_bomb": b64(png_claiming(20000, 20000)),
    }
