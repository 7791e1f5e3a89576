"""Properties of the grounding metrics and the yes/no reader, over random boxes and texts (hypothesis)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giqa.boxes import Box, iou_matrix
from giqa.grid import decode_box, encode_box, format_grid
from giqa.grounded_text import parse_text
from giqa.metrics.grounding import match_boxes, match_tags
from giqa.metrics.text import yes_no_word
from strategies import boxes

pytestmark = pytest.mark.unit

box_lists = st.lists(boxes(), min_size=0, max_size=5)


@settings(max_examples=150, deadline=None)
@given(box_lists, box_lists, st.randoms(use_true_random=False))
def test_miou_is_bounded_one_to_one_and_order_free(
    gt: list[Box], pred: list[Box], rnd: random.Random
) -> None:
    m = match_boxes(gt, pred)
    assert len(m.ious) == len(gt) and all(0.0 <= v <= 1.0 + 1e-12 for v in m.ious)
    used = [j for j in m.matched if j is not None]
    assert len(used) == len(set(used))  # no predicted box serves two true boxes
    shuffled = list(pred)
    rnd.shuffle(shuffled)
    assert match_boxes(gt, shuffled).total == pytest.approx(m.total, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(box_lists, box_lists, boxes())
def test_an_extra_prediction_never_lowers_miou(gt: list[Box], pred: list[Box], extra: Box) -> None:
    assert match_boxes(gt, [*pred, extra]).total >= match_boxes(gt, pred).total - 1e-9


@settings(max_examples=100, deadline=None)
@given(box_lists)
def test_predicting_the_truth_scores_one(gt: list[Box]) -> None:
    degenerate = any(b.area == 0 for b in gt)
    m = match_boxes(gt, gt)
    if not degenerate:
        assert all(v == pytest.approx(1.0) for v in m.ious)


@settings(max_examples=100, deadline=None)
@given(box_lists, box_lists)
def test_tag_recall_never_exceeds_what_iou_alone_allows(gt: list[Box], pred: list[Box]) -> None:
    ones = np.ones((len(gt), len(pred)))
    recalled = match_tags([("x", b) for b in gt], [("x", b) for b in pred], ones).count
    eligible = iou_matrix(gt, pred) > 0.5 if gt and pred else np.zeros((len(gt), len(pred)), bool)
    assert recalled <= min(int(eligible.any(axis=1).sum()), int(eligible.any(axis=0).sum()))
    zeros = np.zeros((len(gt), len(pred)))  # names never similar: nothing is recalled
    assert match_tags([("x", b) for b in gt], [("y", b) for b in pred], zeros).count == 0


@settings(max_examples=150, deadline=None)
@given(boxes())
def test_grid_and_normalized_forms_of_the_same_box_parse_equal(box: Box) -> None:
    cells = encode_box(box)
    decoded = decode_box(*cells)
    grid = parse_text(f"the [cat]({format_grid(*cells)}) is blurry").objects()
    norm = parse_text(
        f"the [cat](<{decoded.x1}, {decoded.y1}, {decoded.x2}, {decoded.y2}>) is blurry"
    ).objects()
    assert len(grid) == len(norm) == 1
    truth = [box]
    assert match_boxes(truth, [grid[0][1]]).ious == pytest.approx(match_boxes(truth, [norm[0][1]]).ious)


words = st.sampled_from(["the", "image", "is", "noisy", "not", "know", "nobody", "eyes", "blurry", ",", "."])


@settings(max_examples=150, deadline=None)
@given(st.lists(words, max_size=8), st.sampled_from(["Yes", "yes", "NO", "no"]), st.lists(words, max_size=8))
def test_the_first_standalone_yes_no_word_wins(before: list[str], word: str, after: list[str]) -> None:
    text = " ".join([*before, word, "but", "yes" if word.lower() == "no" else "no", *after])
    assert yes_no_word(text) == word.lower()
