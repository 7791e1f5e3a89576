"""Grounding precision (DESIGN §3.4): category-agnostic mIoU and category-specific Tag-Recall.

Both match predictions to ground truth one-to-one per item with the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``), so a duplicated predicted box can claim at most one ground-truth
box and extra predictions cost nothing. Per-item functions return what matched, so the evaluator can say
why an item scored what it did; the split-level functions apply the null rules.

Null rules **(decided)**, the same for mIoU and Tag-Recall of one split:

- ``None`` (N/A) when no item of the split has ground-truth objects: there is nothing to ground;
- ``None`` (N/A) when none of the responses to those items holds a readable box: the model does not
  ground at all (the paper's Table 5 shows N/A for such models, not 0);
- otherwise a number: the mean over all ground-truth boxes of the split, where an item whose response has
  no box (or no response) contributes 0 for each of its ground-truth boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from giqa.boxes import Box, BoxLike, iou_matrix, to_array

IOU_THRESHOLD = 0.5
SIMILARITY_THRESHOLD = 0.5

PhraseBox = tuple[str, Box]


@dataclass(frozen=True, slots=True)
class BoxMatch:
    """One item's mIoU matching: the IoU each ground-truth box scored, and which prediction it matched."""

    ious: tuple[float, ...]  # one per ground-truth box; 0.0 when unmatched
    matched: tuple[int | None, ...]  # index of the matched predicted box, per ground-truth box

    @property
    def total(self) -> float:
        return float(sum(self.ious))


@dataclass(frozen=True, slots=True)
class TagMatch:
    """One item's Tag-Recall matching: which ground-truth tags were recalled, by which prediction."""

    recalled: tuple[bool, ...]  # one per ground-truth (phrase, box)
    matched: tuple[int | None, ...]  # index of the matched predicted (phrase, box)
    best_iou: tuple[float, ...]  # best IoU any prediction reached for each ground-truth box (for reports)

    @property
    def count(self) -> int:
        return sum(self.recalled)


@dataclass(frozen=True, slots=True)
class SplitGrounding:
    """mIoU and Tag-Recall of one split, with the counts behind them and why a value is null."""

    miou: float | None
    tag_recall: float | None
    gt_boxes: int
    items_with_objects: int
    responses_with_boxes: int
    null_reason: str | None


def match_boxes(gt: Sequence[BoxLike], pred: Sequence[BoxLike]) -> BoxMatch:
    """Hungarian matching maximizing total IoU; each ground-truth box scores its matched IoU or 0."""
    n_gt = len(gt)
    if n_gt == 0:
        return BoxMatch((), ())
    if len(pred) == 0:
        return BoxMatch((0.0,) * n_gt, (None,) * n_gt)
    ious = iou_matrix(to_array(gt), to_array(pred))
    rows, cols = linear_sum_assignment(ious, maximize=True)
    scores = [0.0] * n_gt
    matched: list[int | None] = [None] * n_gt
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if ious[r, c] > 0.0:
            scores[r] = float(ious[r, c])
            matched[r] = c
    return BoxMatch(tuple(scores), tuple(matched))


def match_tags(
    gt: Sequence[PhraseBox],
    pred: Sequence[PhraseBox],
    similarity: np.ndarray,
    *,
    iou_threshold: float = IOU_THRESHOLD,
    similarity_threshold: float = SIMILARITY_THRESHOLD,
) -> TagMatch:
    """One-to-one matching of ground-truth to predicted (phrase, box) pairs.

    A pair is eligible only when IoU > ``iou_threshold`` AND phrase similarity > ``similarity_threshold``
    (both strict, as in the paper's "exceeds"). ``similarity`` has shape (len(gt), len(pred)). The matching
    maximizes the number of recalled tags (then, among equal counts, the summed IoU of the matched pairs).
    """
    n_gt, n_pred = len(gt), len(pred)
    sim = np.asarray(similarity, dtype=np.float64).reshape(n_gt, n_pred)
    if n_gt == 0:
        return TagMatch((), (), ())
    if n_pred == 0:
        return TagMatch((False,) * n_gt, (None,) * n_gt, (0.0,) * n_gt)
    ious = iou_matrix(to_array(b for _, b in gt), to_array(b for _, b in pred))
    eligible = (ious > iou_threshold) & (sim > similarity_threshold)
    # Weight 1 per eligible pair dominates the IoU tie-breaker (IoU/(n+1) sums to < 1 over a matching).
    weight = np.where(eligible, 1.0 + ious / (min(n_gt, n_pred) + 1), 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    recalled = [False] * n_gt
    matched: list[int | None] = [None] * n_gt
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if eligible[r, c]:
            recalled[r] = True
            matched[r] = c
    return TagMatch(tuple(recalled), tuple(matched), tuple(float(v) for v in ious.max(axis=1)))


def split_grounding(
    box_matches: Sequence[BoxMatch], tag_matches: Sequence[TagMatch], predicted_box_counts: Sequence[int]
) -> SplitGrounding:
    """mIoU and Tag-Recall over the items of one split that have ground-truth objects (see module doc).

    The three sequences are parallel, one entry per item with ground-truth objects;
    ``predicted_box_counts`` is how many readable boxes that item's response holds.
    """
    if not (len(box_matches) == len(tag_matches) == len(predicted_box_counts)):
        raise ValueError("box_matches, tag_matches and predicted_box_counts must be parallel")
    gt_boxes = sum(len(m.ious) for m in box_matches)
    with_boxes = sum(1 for n in predicted_box_counts if n > 0)
    items = len(box_matches)
    if gt_boxes == 0:
        return SplitGrounding(None, None, 0, items, with_boxes, "no ground-truth objects in this split")
    if with_boxes == 0:
        return SplitGrounding(
            None, None, gt_boxes, items, 0, "no response to an item with objects holds a readable box"
        )
    miou = sum(m.total for m in box_matches) / gt_boxes
    recall = sum(t.count for t in tag_matches) / gt_boxes
    return SplitGrounding(miou, recall, gt_boxes, items, with_boxes, None)
