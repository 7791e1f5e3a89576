"""Each degradation changes only its region (or only its object's feathered shape), grows with severity,
and moves the statistic it should."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giqa.synth import DEGRADATION_KINDS, measure
from giqa.synth.degrade import apply, feather_weight
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


def _circle_weight(feather: int = 2) -> np.ndarray:
    """The blend weight of _picture's circle over REGION."""
    x1, y1, x2, y2 = REGION
    coverage = np.zeros((y2 - y1, x2 - x1), dtype=np.uint8)
    coverage[20 - y1 : 52 - y1, 20 - x1 : 52 - x1] = shape_mask("circle", 32)
    return feather_weight(coverage, feather)


@pytest.mark.parametrize("kind", DEGRADATION_KINDS)
def test_weighted_degradation_changes_only_the_feathered_shape(kind: str) -> None:
    img = _picture()
    weight = _circle_weight()
    out = apply(img, kind, REGION, 0.5, _rng(), weight)
    x1, y1, x2, y2 = REGION
    touched = np.zeros(img.shape[:2], dtype=bool)
    touched[y1:y2, x1:x2] = weight > 0
    assert np.array_equal(out[~touched], img[~touched]), "pixels off the feathered mask must not change"
    on = weight >= 0.5
    clean, degraded = img[y1:y2, x1:x2], out[y1:y2, x1:x2]
    assert measure.is_visible(kind, clean, degraded, on), measure.change(kind, clean, degraded, on)
    # the circle's box corners lie well off the shape: no rectangle left behind
    for cy, cx in ((20, 20), (20, 51), (51, 20), (51, 51)):
        assert np.array_equal(out[cy, cx], img[cy, cx]), (cy, cx)
    assert np.array_equal(img, _picture()), "the input must not be modified"


def test_weight_zero_keeps_the_image_and_weight_one_is_the_plain_degradation() -> None:
    img = _picture()
    x1, y1, x2, y2 = REGION
    shape = (y2 - y1, x2 - x1)
    assert np.array_equal(apply(img, "noise", REGION, 0.8, _rng(), np.zeros(shape, np.float32)), img)
    plain = apply(img, "blur", REGION, 0.8, _rng())
    full = apply(img, "blur", REGION, 0.8, _rng(), np.ones(shape, np.float32))
    assert np.allclose(plain, full, atol=1e-6)


@pytest.mark.parametrize(
    ("weight", "message"),
    [(np.ones((3, 3), np.float32), "shape"), (np.full((40, 40), 1.5, np.float32), r"\[0, 1\]")],
)
def test_bad_weight_is_refused(weight: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply(_picture(), "blur", REGION, 0.5, _rng(), weight)


def test_feather_weight_edges() -> None:
    cov = shape_mask("square", 20)
    assert np.array_equal(feather_weight(cov, 0), cov.astype(np.float32) / 255.0)
    with pytest.raises(ValueError, match="feather"):
        feather_weight(cov, -1)
    assert not feather_weight(np.zeros((9, 9), np.uint8), 2).any()


@settings(max_examples=60, deadline=None)
@given(
    cells=st.lists(st.tuples(st.integers(0, 23), st.integers(0, 23), st.integers(1, 255)), max_size=40),
    feather=st.integers(1, 4),
)
def test_feather_weight_stays_near_the_shape(cells: list[tuple[int, int, int]], feather: int) -> None:
    """In [0, 1]; exactly 0 beyond ``feather`` pixels of any covered pixel; 1 wherever the shape covers
    the whole neighbourhood the feather reaches."""
    cov = np.zeros((24, 24), dtype=np.uint8)
    for y, x, v in cells:
        cov[y, x] = v
    cov[8:16, 8:16] = 255
    weight = feather_weight(cov, feather)
    assert weight.dtype == np.float32 and weight.shape == cov.shape
    assert weight.min() >= 0.0 and weight.max() <= 1.0
    covered = cov > 0
    near = np.zeros_like(covered)
    for dy in range(-feather, feather + 1):
        for dx in range(-feather, feather + 1):
            near |= np.roll(np.roll(np.pad(covered, feather), dy, axis=0), dx, axis=1)[
                feather:-feather, feather:-feather
            ]
    assert not weight[~near].any()
    full = np.zeros_like(covered)
    full[8 + feather : 16 - feather, 8 + feather : 16 - feather] = True
    assert np.all(weight[full] == 1.0)
