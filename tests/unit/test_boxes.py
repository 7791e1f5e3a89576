import math

import numpy as np
import pytest
from hypothesis import given

from giqa import boxes as B
from giqa.boxes import Box, BoxError
from strategies import boxes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("coords", "message"),
    [
        ((math.nan, 0, 1, 1), "not finite"),
        ((0, 0, math.inf, 1), "not finite"),
        ((0.5, 0, 0.4, 1), "inverted"),
        ((0, 0.6, 1, 0.5), "inverted"),
        ((-0.1, 0, 0.5, 0.5), "outside"),
        ((0, 0, 1.01, 1), "outside"),
        ((0, 0, "1", 1), "number"),
        ((0, 0, True, 1), "number"),
    ],
)
def test_invalid_boxes_are_refused_with_a_reason(coords, message):
    with pytest.raises(BoxError, match=message):
        Box(*coords)


@pytest.mark.parametrize(
    "value", [(0, 0, 1), (0, 0, 1, 1, 1), "0,0,1,1", None, 3.0, {"x1": 0, "y1": 0, "x2": 1}]
)
def test_as_box_refuses_wrong_shapes(value):
    with pytest.raises(BoxError):
        B.as_box(value)


def test_as_box_accepts_every_documented_form():
    want = Box(0.1, 0.2, 0.3, 0.4)
    assert B.as_box(want) is want
    assert B.as_box((0.1, 0.2, 0.3, 0.4)) == want
    assert B.as_box([0.1, 0.2, 0.3, 0.4]) == want
    assert B.as_box(np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)) == Box(
        *np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32).tolist()
    )
    assert B.as_box({"x1": 0.1, "y1": 0.2, "x2": 0.3, "y2": 0.4}) == want


def test_edges_and_zero_area_are_valid():
    point = Box(1.0, 1.0, 1.0, 1.0)
    assert point.area == 0
    assert Box(0, 0, 1, 1).area == 1
    assert B.iou(point, point) == 1.0
    assert B.iou(point, Box(0, 0, 0, 0)) == 0.0


def test_tiny_float_overshoot_is_clamped_not_refused():
    b = Box(-1e-12, 0, 1 + 1e-12, 1)
    assert b.as_tuple() == (0.0, 0.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ("a", "b", "iou"),
    [
        ((0, 0, 0.5, 0.5), (0, 0, 0.5, 0.5), 1.0),
        ((0, 0, 0.5, 0.5), (0.5, 0.5, 1, 1), 0.0),  # corners touch: no area shared
        ((0, 0, 0.5, 1), (0.25, 0, 0.75, 1), 1 / 3),
        ((0, 0, 1, 1), (0.25, 0.25, 0.75, 0.75), 0.25),
    ],
)
def test_iou_table(a, b, iou):
    assert B.iou(a, b) == pytest.approx(iou)
    assert B.iou(b, a) == pytest.approx(iou)


@pytest.mark.parametrize(
    ("a", "b", "coverage"),
    [
        ((0.25, 0.25, 0.75, 0.75), (0, 0, 1, 1), 1.0),  # a inside b
        ((0, 0, 1, 1), (0.25, 0.25, 0.75, 0.75), 0.25),  # asymmetric
        ((0, 0, 0.2, 0.2), (0.5, 0.5, 1, 1), 0.0),
        ((0.3, 0.3, 0.3, 0.3), (0, 0, 1, 1), 1.0),  # a zero-area box inside b
        ((0.3, 0.3, 0.3, 0.3), (0.5, 0.5, 1, 1), 0.0),
    ],
)
def test_coverage_is_area_of_a_inside_b_over_area_of_a(a, b, coverage):
    assert B.coverage(a, b) == pytest.approx(coverage)


@pytest.mark.parametrize(
    ("a", "b", "touch"),
    [
        ((0, 0, 0.5, 0.5), (0.5, 0, 1, 0.5), True),  # shared edge
        ((0, 0, 0.5, 0.5), (0.5, 0.5, 1, 1), True),  # shared corner
        ((0, 0, 0.5, 0.5), (0.25, 0.25, 1, 1), True),  # overlap
        ((0, 0, 0.5, 0.5), (0.51, 0, 1, 0.5), False),
        ((0, 0, 0.5, 0.5), (0, 0.6, 0.5, 1), False),
    ],
)
def test_touches_means_intersecting_or_sharing_an_edge(a, b, touch):
    assert B.touches(a, b) is touch
    assert B.touches(b, a) is touch


def test_union_and_intersection():
    a, b = (0.1, 0.2, 0.3, 0.4), (0.2, 0.1, 0.5, 0.3)
    assert B.union(a, b) == Box(0.1, 0.1, 0.5, 0.4)
    assert B.intersection(a, b) == Box(0.2, 0.2, 0.3, 0.3)
    assert B.intersection((0, 0, 0.1, 0.1), (0.2, 0.2, 0.3, 0.3)) is None
    assert B.union_all([a, b, (0, 0.9, 0.05, 1)]) == Box(0, 0.1, 0.5, 1)
    with pytest.raises(BoxError, match="no boxes"):
        B.union_all([])


def test_pixel_round_trip_and_clipping():
    b = Box.from_pixels(10, 20, 110, 220, 200, 400)
    assert b == Box(0.05, 0.05, 0.55, 0.55)
    assert b.to_pixels(200, 400) == (10, 20, 110, 220)
    assert B.from_pixels((-5, -5, 250, 50), 200, 100) == Box(0, 0, 1, 0.5)
    with pytest.raises(BoxError, match="outside"):
        B.from_pixels((-5, 0, 10, 10), 200, 100, clip_to_image=False)
    with pytest.raises(BoxError, match="positive"):
        B.to_pixels(b, 0, 10)


def test_clip_refuses_non_finite_and_inverted():
    with pytest.raises(BoxError):
        B.clip((math.nan, 0, 1, 1))
    with pytest.raises(BoxError, match="inverted"):
        B.clip((0.9, 0, 0.1, 1))


def test_iou_matrix_matches_pairwise_iou_and_handles_empty():
    a = [(0, 0, 0.5, 0.5), (0.2, 0.2, 0.9, 0.9), (0.3, 0.3, 0.3, 0.3)]
    b = [(0, 0, 0.5, 0.5), (0.3, 0.3, 0.3, 0.3)]
    m = B.iou_matrix(a, b)
    assert m.shape == (3, 2)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            assert m[i, j] == pytest.approx(B.iou(x, y))
    assert B.iou_matrix([], b).shape == (0, 2)
    assert B.iou_matrix(a, np.zeros((0, 4))).shape == (3, 0)


@given(boxes(), boxes())
def test_iou_properties(a, b):
    value = B.iou(a, b)
    assert 0.0 <= value <= 1.0 + 1e-12
    assert value == pytest.approx(B.iou(b, a))
    u = B.union(a, b)
    assert B.coverage(a, u) == pytest.approx(1.0) or a.area == 0
    assert B.touches(a, u)
