"""decode_image: bytes in (uploads, object-store bodies) with the checks load_image makes on files."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from giqa.backends.images import ImageError, decode_image, load_image

pytestmark = pytest.mark.unit


def png(size: tuple[int, int] = (40, 20), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decodes_to_rgb_of_the_right_size() -> None:
    image = decode_image(png(mode="L"))
    assert image.mode == "RGB" and image.size == (40, 20)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", r"empty \(0 bytes\)"),
        (b"GIF89a not really", "cannot read"),
        (b"%PDF-1.4 hello", "cannot read"),
        (png()[:60], "cannot read"),
    ],
)
def test_bad_bytes_say_what_is_wrong(data: bytes, fragment: str) -> None:
    with pytest.raises(ImageError, match=fragment) as info:
        decode_image(data, where="upload 'x.png'")
    assert "upload 'x.png'" in str(info.value)


def test_pixel_limit_is_checked_before_decoding() -> None:
    with pytest.raises(ImageError, match="over the limit of 100"):
        decode_image(png((20, 20)), max_pixels=100)


def test_exif_orientation_is_applied(tmp_path) -> None:
    # stored 40 wide × 20 high, EXIF says "rotate 90": displayed 20 × 40, which is what boxes refer to
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 20)).save(buffer, format="JPEG", exif=exif)
    assert decode_image(buffer.getvalue()).size == (20, 40)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(buffer.getvalue())
    assert load_image(path).size == (20, 40)
