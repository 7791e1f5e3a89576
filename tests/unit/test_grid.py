import pytest
from hypothesis import given
from hypothesis import strategies as st

from giqa import grid
from giqa.boxes import Box, BoxError
from giqa.grid import GridError, decode_box, encode_box

pytestmark = pytest.mark.unit


def test_design_check_value():
    # DESIGN §3.1: <35, 319> decodes to (0.775, 0.075, 0.975, 0.775)
    assert decode_box(35, 319).as_tuple() == pytest.approx((0.775, 0.075, 0.975, 0.775))
    assert encode_box((0.775, 0.075, 0.975, 0.775)) == (35, 319)


@pytest.mark.parametrize(
    ("box", "cells"),
    [
        ((0, 0, 1, 1), (0, 399)),  # 1.0 falls into the last cell, not past it
        ((0, 0, 0, 0), (0, 0)),  # zero-area box at the origin
        ((1, 1, 1, 1), (399, 399)),  # zero-area box at the far corner
        ((0.05, 0.05, 0.05, 0.05), (21, 21)),  # exactly on a cell boundary: floor puts it in the next cell
        ((0.049999, 0, 0.95, 0.05), (0, 39)),
        ((0.5, 0.5, 0.999, 0.999), (210, 399)),
    ],
)
def test_encode_edges(box, cells):
    assert encode_box(box) == cells


def test_encode_accepts_box_type_and_other_grids():
    assert encode_box(Box(0.5, 0.5, 1, 1), n=4, m=2) == (6, 7)
    assert decode_box(6, 7, n=4, m=2) == Box(0.625, 0.75, 0.875, 0.75)


@pytest.mark.parametrize(("left", "right"), [(-1, 5), (0, 400), (400, 400), (1.5, 3), (True, 3)])
def test_decode_refuses_indices_outside_the_grid(left, right):
    with pytest.raises(GridError):
        decode_box(left, right)


def test_decode_crossed_corners_gives_the_spanned_box():
    assert decode_box(319, 35) == decode_box(35, 319)
    assert decode_box(19, 20) == Box(0.025, 0.025, 0.975, 0.075)


def test_encode_refuses_invalid_boxes_and_grids():
    with pytest.raises(BoxError):
        encode_box((0.5, 0.5, 0.1, 0.1))
    with pytest.raises(GridError):
        encode_box((0, 0, 1, 1), n=0)


def test_normalized_form_has_two_decimals():
    assert grid.format_norm((0.123, 0.3, 0.555, 0.9)) == "<0.12, 0.30, 0.56, 0.90>"
    assert grid.round_norm((0.123, 0.3, 0.555, 0.9)) == Box(0.12, 0.3, 0.56, 0.9)
    assert grid.format_grid(35, 319) == "<35, 319>"


unit = st.floats(0, 1, allow_nan=False)
sizes = st.integers(1, 64)


@given(unit, unit, unit, unit, sizes, sizes)
def test_round_trip_is_within_half_a_cell(a, b, c, d, n, m):
    box = Box(min(a, c), min(b, d), max(a, c), max(b, d))
    back = decode_box(*encode_box(box, n, m), n=n, m=m)
    ex, ey = grid.max_error(n, m)
    for got, want, err in zip(back.as_tuple(), box.as_tuple(), (ex, ey, ex, ey), strict=True):
        assert abs(got - want) <= err + 1e-12
    # a decoded box is a fixed point of the codec
    assert encode_box(back, n, m) == encode_box(box, n, m)


@given(st.integers(0, 399), st.integers(0, 399))
def test_decode_then_encode_is_identity_for_ordered_corners(left, right):
    lc, lr, rc, rr = left % 20, left // 20, right % 20, right // 20
    if lc <= rc and lr <= rr:
        assert encode_box(decode_box(left, right)) == (left, right)
