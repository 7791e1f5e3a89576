"""mIoU and Tag-Recall: one-to-one Hungarian matching, thresholds, null rules (hand-computed values)."""

from __future__ import annotations

import numpy as np
import pytest

from giqa.boxes import Box
from giqa.metrics.grounding import BoxMatch, TagMatch, match_boxes, match_tags, split_grounding

pytestmark = pytest.mark.unit

A = Box(0.0, 0.0, 0.5, 0.5)
B = Box(0.25, 0.0, 0.75, 0.5)  # IoU(A, B) = 0.125 / 0.375 = 1/3
FAR = Box(0.9, 0.9, 1.0, 1.0)


def strip(x1: float, x2: float) -> Box:
    """A full-height box: IoUs reduce to interval overlaps, easy to compute by hand."""
    return Box(x1, 0.0, x2, 1.0)


# ------------------------------------------------------------------------------------------------ mIoU


def test_no_ground_truth_gives_an_empty_match() -> None:
    assert match_boxes([], [A]) == BoxMatch((), ())


def test_no_prediction_scores_zero_per_true_box() -> None:
    assert match_boxes([A, B], []).ious == (0.0, 0.0)


def test_identical_boxes_score_one() -> None:
    assert match_boxes([A], [A]).ious == (1.0,)


def test_more_predicted_than_true_boxes_cost_nothing() -> None:
    m = match_boxes([A], [FAR, B, A])
    assert m.ious == (1.0,)
    assert m.matched == (2,)


def test_duplicate_predicted_boxes_match_one_true_box_each() -> None:
    # Both predictions are A: one takes A (1.0), the other can only take B (1/3); never A twice.
    m = match_boxes([A, B], [A, A])
    assert m.ious == pytest.approx((1.0, 1 / 3))
    assert sorted(m.matched) == [0, 1]


def test_hungarian_beats_greedy() -> None:
    # IoUs: T1-P1 0.8, T1-P2 0.7, T2-P1 0.4, T2-P2 0.05/0.6. Greedy (T1-P1 first) totals 0.883;
    # the optimal assignment T1-P2 + T2-P1 totals 1.1.
    t1, t2 = strip(0.0, 0.5), strip(0.3, 0.6)
    p1, p2 = strip(0.1, 0.5), strip(0.0, 0.35)
    m = match_boxes([t1, t2], [p1, p2])
    assert m.ious == pytest.approx((0.7, 0.4))
    assert m.matched == (1, 0)


def test_a_disjoint_prediction_is_not_a_match() -> None:
    m = match_boxes([A], [FAR])
    assert m.ious == (0.0,)
    assert m.matched == (None,)


# ------------------------------------------------------------------------------------------ Tag-Recall


def sims(rows: list[list[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=float)


def test_tag_needs_both_iou_and_similarity_above_half() -> None:
    gt = [("red circle", A)]
    assert match_tags(gt, [("red circle", A)], sims([[0.9]])).recalled == (True,)
    assert match_tags(gt, [("blue sky", A)], sims([[0.2]])).recalled == (False,)  # right box, wrong name
    assert match_tags(gt, [("red circle", B)], sims([[1.0]])).recalled == (False,)  # right name, IoU 1/3


@pytest.mark.parametrize("similarity", [0.5, 0.5000001])
def test_thresholds_are_strict(similarity: float) -> None:
    recalled = match_tags([("x", A)], [("x", A)], sims([[similarity]])).recalled
    assert recalled == ((similarity > 0.5),)


def test_iou_of_exactly_half_is_not_enough() -> None:
    # strip(0, 0.5) vs strip(0, 1.0): IoU = 0.5 exactly.
    assert match_tags([("x", strip(0.0, 0.5))], [("x", strip(0.0, 1.0))], sims([[1.0]])).recalled == (False,)


def test_a_phrase_with_several_boxes_is_several_tags() -> None:
    gt = [("candles", A), ("candles", FAR)]
    pred = [("candles", FAR), ("candles", A)]
    m = match_tags(gt, pred, sims([[1.0, 1.0], [1.0, 1.0]]))
    assert m.recalled == (True, True)
    assert m.matched == (1, 0)


def test_one_prediction_recalls_at_most_one_tag() -> None:
    gt = [("candles", A), ("candles", A)]
    m = match_tags(gt, [("candles", A)], sims([[1.0], [1.0]]))
    assert m.count == 1


def test_matching_maximizes_the_number_of_recalled_tags() -> None:
    # P1 is eligible for both T1 and T2, P2 only for T1: the best matching is T1-P2, T2-P1.
    t1, t2 = strip(0.0, 0.5), strip(0.1, 0.55)
    p1, p2 = strip(0.05, 0.5), strip(0.0, 0.45)
    gt, pred = [("a", t1), ("b", t2)], [("a", p1), ("a", p2)]
    m = match_tags(gt, pred, sims([[1.0, 1.0], [1.0, 0.0]]))
    assert m.recalled == (True, True)


def test_no_prediction_recalls_nothing() -> None:
    assert match_tags([("x", A)], [], np.zeros((1, 0))) == TagMatch((False,), (None,), (0.0,))


# ---------------------------------------------------------------------------------------- split rules


def test_split_without_ground_truth_objects_is_null() -> None:
    s = split_grounding([], [], [])
    assert s.miou is None and s.tag_recall is None
    assert "no ground-truth" in (s.null_reason or "")


def test_split_where_no_response_has_a_box_is_null() -> None:
    bm = match_boxes([A, B], [])
    tm = match_tags([("a", A), ("b", B)], [], np.zeros((2, 0)))
    s = split_grounding([bm], [tm], [0])
    assert s.miou is None and s.tag_recall is None and s.gt_boxes == 2


def test_split_mean_is_over_all_true_boxes_and_missing_boxes_count_zero() -> None:
    # item 1: two true boxes, predicted exactly -> 1 + 1; item 2: one true box, no prediction -> 0.
    items = [
        (
            match_boxes([A, FAR], [A, FAR]),
            match_tags([("a", A), ("f", FAR)], [("a", A), ("f", FAR)], np.eye(2)),
            2,
        ),
        (match_boxes([B], []), match_tags([("b", B)], [], np.zeros((1, 0))), 0),
    ]
    s = split_grounding([i[0] for i in items], [i[1] for i in items], [i[2] for i in items])
    assert s.miou == pytest.approx(2 / 3)
    assert s.tag_recall == pytest.approx(2 / 3)
    assert s.null_reason is None


def test_split_inputs_must_be_parallel() -> None:
    with pytest.raises(ValueError, match="parallel"):
        split_grounding([match_boxes([A], [A])], [], [1])
