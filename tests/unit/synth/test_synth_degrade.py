"""Each degradation changes only its region, grows with severity, and moves the statistic it should."""

from __future__ import annotations

import numpy as np
import pytest

from giqa.synth import DEGRADATION_KINDS, measure
from giqa.synth.degrade import apply
from giqa.synth.draw import paste, shape_mask

pytestmark = pytest.mark.unit

REGION = (16, 16, 56, 56)


def _picture() -> np.ndarray:
    """A mid-grey 72x72 image with a red circle inside REGION: edges, flat areas and colour."""
    img = np.full((72, 72, 3), 0.5, dtype=np.float32)
    img[:, ::9] = 0.45  # a faint texture so contrast and blur have something outside the shape too
    paste(img, shape_mask("circle", 32), (220, 30, 30), 20, 20)
    return img


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.mark.parametrize("kind", DEGRADATION_KINDS)
def test_only_the_region_changes(kind: str) -> None:
    img = _picture()
    out = apply(img, kind, REGION, 0.8, _rng())
    x1, y1, x2, y2 = REGION
    outside = np.ones(img.shape[:2], dtype=bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(out[outside], img[outside])
    assert not np.allclose(out[y1:y2, x1:x2], img[y1:y2, x1:x2])
    assert out.dtype == img.dtype and out.shape == img.shape
    assert np.array_equal(img, _picture()), "the input must not be modified"


@pytest.mark.parametrize("kind", DEGRADATION_KINDS)
def test_visible_at_the_lowest_default_severity(kind: str) -> None:
    img = _picture()
    out = apply(img, kind, REGION, 0.35, _rng())
    x1, y1, x2, y2 = REGION
    assert measure.is_visible(kind, img[y1:y2, x1:x2], out[y1:y2, x1:x2]), measure.change(
        kind, img[y1:y2, x1:x2], out[y1:y2, x1:x2]
    )


@pytest.mark.parametrize("kind", ["blur", "noise", "low_light", "overexposure", "low_contrast", "jpeg"])
def test_stronger_severity_moves_the_statistic_further(kind: str) -> None:
    img = _picture()
    x1, y1, x2, y2 = REGION
    clean = img[y1:y2, x1:x2]
    values = []
    for severity in (0.4, 1.0):
        out = apply(img, kind, REGION, severity, _rng())
        _, _, after = measure.change(kind, clean, out[y1:y2, x1:x2])
        values.append(after)
    _, before, _ = measure.change(kind, clean, clean)
    # the stronger one is further from the clean value
    assert abs(values[1] - before) > abs(values[0] - before)


@pytest.mark.parametrize("kind", DEGRADATION_KINDS)
def test_zero_severity_changes_nothing_and_small_severity_little(kind: str) -> None:
    img = _picture()
    assert np.array_equal(apply(img, kind, REGION, 0.0, _rng()), img)
    if kind != "jpeg":  # quantization is coarse at any quality this generator uses
        assert np.abs(apply(img, kind, REGION, 0.02, _rng()) - img).mean() < 0.01


@pytest.mark.parametrize(
    ("region", "severity", "message"),
    [
        ((10, 10, 10, 20), 0.5, "empty"),
        ((0, 0, 80, 20), 0.5, "outside"),
        ((-1, 0, 10, 10), 0.5, "outside"),
        (REGION, 1.5, "severity"),
        (REGION, -0.1, "severity"),
    ],
)
def test_bad_arguments_are_refused(region: tuple, severity: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply(_picture(), "blur", region, severity, _rng())


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown degradation"):
        apply(_picture(), "sepia", REGION, 0.5, _rng())


def test_jpeg_blocks_are_aligned_to_the_region() -> None:
    img = _picture()
    out = apply(img, "jpeg", REGION, 1.0, _rng())
    x1, y1, x2, y2 = REGION
    patch = measure.luminance(out[y1:y2, x1:x2])
    # at the strongest setting most 8x8 blocks of the region are (nearly) flat: DC only
    blocks = patch.reshape(5, 8, 5, 8).transpose(0, 2, 1, 3).reshape(25, 64)
    assert np.median(blocks.std(axis=1)) < 0.02
