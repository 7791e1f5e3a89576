"""Box-Merge (Alg. 1 line 13): one table row per clause of the rule, then properties over random boxes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giqa.boxes import Box, BoxError, coverage
from giqa.pipeline import merge_boxes
from giqa.pipeline.merge import merge_boxes_traced, merge_rule
from strategies import boxes

pytestmark = pytest.mark.unit

# (name, boxes, expected merged boxes) — Ta = 0.256, To = 0.95 unless the row says otherwise.
CASES = [
    ("empty", [], []),
    ("single box is left alone", [(0.1, 0.1, 0.2, 0.2)], [(0.1, 0.1, 0.2, 0.2)]),
    (
        "small + sharing an edge merges",
        [(0.1, 0.1, 0.2, 0.2), (0.2, 0.1, 0.3, 0.2)],
        [(0.1, 0.1, 0.3, 0.2)],
    ),
    (
        "small + overlapping merges",
        [(0.1, 0.1, 0.3, 0.3), (0.2, 0.2, 0.4, 0.4)],
        [(0.1, 0.1, 0.4, 0.4)],
    ),
    (
        "small + touching at a corner merges (touch includes a shared point)",
        [(0.1, 0.1, 0.2, 0.2), (0.2, 0.2, 0.3, 0.3)],
        [(0.1, 0.1, 0.3, 0.3)],
    ),
    (
        "small but apart does not merge",
        [(0.1, 0.1, 0.2, 0.2), (0.25, 0.1, 0.35, 0.2)],
        [(0.1, 0.1, 0.2, 0.2), (0.25, 0.1, 0.35, 0.2)],
    ),
    (
        "two large touching boxes do not merge (area 0.3 and 0.3, overlap small)",
        [(0.0, 0.0, 0.5, 0.6), (0.45, 0.0, 0.95, 0.6)],
        [(0.0, 0.0, 0.5, 0.6), (0.45, 0.0, 0.95, 0.6)],
    ),
    (
        "small touching a large one merges: the rule is checked in both orders",
        [(0.0, 0.0, 0.6, 0.6), (0.6, 0.0, 0.7, 0.1)],
        [(0.0, 0.0, 0.7, 0.6)],
    ),
    (
        "same, listed the other way round",
        [(0.6, 0.0, 0.7, 0.1), (0.0, 0.0, 0.6, 0.6)],
        [(0.0, 0.0, 0.7, 0.6)],
    ),
    (
        "large boxes, coverage > 0.95 merges",
        [(0.0, 0.0, 0.8, 0.8), (0.02, 0.0, 0.82, 0.8)],  # coverage 0.975 both ways
        [(0.0, 0.0, 0.82, 0.8)],
    ),
    (
        "large box inside a larger one merges (coverage 1)",
        [(0.0, 0.0, 1.0, 1.0), (0.1, 0.1, 0.7, 0.7)],
        [(0.0, 0.0, 1.0, 1.0)],
    ),
    (
        "large boxes, coverage exactly 0.95 does not merge",
        [(0.0, 0.0, 0.5, 1.0), (0.025, 0.0, 0.525, 1.0)],  # overlap 0.475 / area 0.5 = 0.95
        [(0.0, 0.0, 0.5, 1.0), (0.025, 0.0, 0.525, 1.0)],
    ),
    (
        "identical boxes merge into one",
        [(0.1, 0.1, 0.9, 0.9), (0.1, 0.1, 0.9, 0.9)],
        [(0.1, 0.1, 0.9, 0.9)],
    ),
    (
        "chain of small touching boxes merges transitively",
        [(0.0, 0.0, 0.1, 0.1), (0.1, 0.0, 0.2, 0.1), (0.2, 0.0, 0.3, 0.1), (0.3, 0.0, 0.4, 0.1)],
        [(0.0, 0.0, 0.4, 0.1)],
    ),
    (
        # a and b touch at a corner; their union reaches c, which neither of them touches
        "repeat until stable: a union touches a box neither part touched",
        [(0.0, 0.0, 0.1, 0.1), (0.1, 0.1, 0.2, 0.2), (0.2, 0.02, 0.3, 0.08)],
        [(0.0, 0.0, 0.3, 0.2)],
    ),
]


@pytest.mark.parametrize(("name", "boxes", "expected"), CASES, ids=[c[0] for c in CASES])
def test_merge_table(name: str, boxes: list, expected: list) -> None:
    got = merge_boxes(boxes)
    assert len(got) == len(expected), name
    for box, want in zip(got, expected, strict=True):
        assert box.as_tuple() == pytest.approx(want), name


def test_repeat_row_really_needs_a_second_round() -> None:
    # Guard the table row above: the first and third box alone do not merge, a single pass could stop early.
    a, b, c = (0.0, 0.0, 0.1, 0.1), (0.1, 0.1, 0.2, 0.2), (0.2, 0.02, 0.3, 0.08)
    for x, y in ((a, c), (c, a), (b, c), (c, b)):
        assert merge_rule(x, y) is None
    boxes, steps = merge_boxes_traced([a, b, c])
    assert len(steps) == 2 and len(boxes) == 1


def test_coverage_just_above_threshold_merges() -> None:
    a, b = (0.0, 0.0, 0.5, 1.0), (0.024, 0.0, 0.524, 1.0)
    assert coverage(a, b) == pytest.approx(0.952)
    assert len(merge_boxes([a, b])) == 1


def test_area_exactly_ta_is_not_small() -> None:
    # area 0.64 * 0.4 = 0.256 = Ta; touching but not small, coverage low -> no merge
    big, other = (0.0, 0.0, 0.64, 0.4), (0.64, 0.0, 1.0, 0.9)
    assert len(merge_boxes([big, other])) == 2
    assert len(merge_boxes([big, other], area_threshold=0.2561)) == 1


def test_thresholds_are_parameters() -> None:
    apart_small = [(0.1, 0.1, 0.2, 0.2), (0.2, 0.1, 0.3, 0.2)]
    assert len(merge_boxes(apart_small, area_threshold=0.0)) == 2
    overlapping_large = [(0.0, 0.0, 0.5, 1.0), (0.1, 0.0, 0.6, 1.0)]  # coverage 0.8
    assert len(merge_boxes(overlapping_large, overlap_threshold=0.79)) == 1
    assert len(merge_boxes(overlapping_large)) == 2


def test_trace_names_the_clause_and_the_covered_box() -> None:
    _, steps = merge_boxes_traced([(0.0, 0.0, 0.6, 0.6), (0.6, 0.0, 0.7, 0.1)])
    (step,) = steps
    assert step.reason == "small_touch"
    assert step.covered == "second" and step.second == Box(0.6, 0.0, 0.7, 0.1)
    assert step.to_dict()["result"] == [0.0, 0.0, 0.7, 0.6]
    _, steps = merge_boxes_traced([(0.0, 0.0, 1.0, 1.0), (0.1, 0.1, 0.7, 0.7)])
    assert steps[0].reason == "coverage" and steps[0].value == pytest.approx(1.0)


def test_accepts_box_objects_and_rejects_bad_input() -> None:
    assert merge_boxes([Box(0.1, 0.1, 0.2, 0.2)]) == [Box(0.1, 0.1, 0.2, 0.2)]
    with pytest.raises(BoxError):
        merge_boxes([(0.5, 0.5, 0.2, 0.2)])
    with pytest.raises(BoxError):
        merge_boxes([(0.1, 0.1, 0.2)])
    with pytest.raises(ValueError, match="area_threshold"):
        merge_boxes([], area_threshold=1.5)


# ------------------------------------------------------------------------------------------- properties

# tuples, as outside callers pass them
box_lists = st.lists(boxes().map(Box.as_tuple), max_size=8)


def _inside(inner: Box, outer: Box) -> bool:
    return outer.x1 <= inner.x1 and outer.y1 <= inner.y1 and inner.x2 <= outer.x2 and inner.y2 <= outer.y2


@settings(max_examples=150, deadline=None)
@given(box_lists)
def test_outputs_cover_every_input(items: list) -> None:
    out = merge_boxes(items)
    for raw in items:
        assert any(_inside(Box(*raw), o) for o in out)


@settings(max_examples=150, deadline=None)
@given(box_lists)
def test_count_never_grows_and_steps_account_for_it(items: list) -> None:
    out, steps = merge_boxes_traced(items)
    assert len(out) <= len(items)
    assert len(out) == len(items) - len(steps)


@settings(max_examples=150, deadline=None)
@given(box_lists)
def test_idempotent(items: list) -> None:
    once = merge_boxes(items)
    assert merge_boxes(once) == once


@settings(max_examples=100, deadline=None)
@given(box_lists, st.randoms(use_true_random=False))
def test_input_order_does_not_matter(items: list, rnd: random.Random) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert merge_boxes(shuffled) == merge_boxes(items)


@settings(max_examples=100, deadline=None)
@given(box_lists)
def test_no_pair_left_that_the_rule_would_merge(items: list) -> None:
    out = merge_boxes(items)
    for i, a in enumerate(out):
        for j, b in enumerate(out):
            if i != j:
                assert merge_rule(a, b) is None
