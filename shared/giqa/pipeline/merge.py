"""Stage 3 Box-Merge (paper Alg. 1 line 13, DESIGN §3.5): fold a tag's boxes that describe one object.

Rule, repeated until nothing changes: boxes ``Ri`` and ``Rj`` merge into their union when

    (area(Ri) < Ta and touch(Ri, Rj))  or  coverage(Ri, Rj) > To

with normalized area, ``coverage(Ri, Rj) = area(Ri ∩ Rj) / area(Ri)`` and touch = intersecting or sharing an
edge. The rule is asymmetric in (i, j), so every pair is tested in both orders: a small box touching a large
one merges, two large touching boxes do not.

Decisions **(decided)** where the paper is silent:

- Comparisons are strict and guarded by ``EPS`` so float error cannot flip a boundary case: an area equal
  to ``Ta`` is not small, a coverage equal to ``To`` does not merge.
- Determinism: the boxes are first sorted into reading order (y1, x1, y2, x2). Each round scans pairs
  ``(i, j), i < j`` in that order and merges the FIRST pair that satisfies the rule; the union replaces
  both, the list is re-sorted and the scan restarts. The result depends only on the multiset of input
  boxes, never on their input order. (Merging is not confluent in general — which pair goes first can
  change the end state — so fixing the order is what makes the output reproducible.)
- The output is in reading order, so Stage 4 writes a tag's boxes top-to-bottom, left-to-right.

Worst case is O(k^3) rule checks for k boxes; a tag has a handful of detections, so that is cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from giqa.boxes import Box, BoxLike, as_box, coverage, touches, union

DEFAULT_AREA_THRESHOLD = 0.256  # Ta, paper §3.2
DEFAULT_OVERLAP_THRESHOLD = 0.95  # To, paper §3.2
EPS = 1e-9  # float guard for the strict comparisons

MergeReason = Literal["small_touch", "coverage"]


@dataclass(frozen=True, slots=True)
class MergeStep:
    """One merge: ``first`` and ``second`` (reading order) became ``result``.

    ``reason`` names the clause that fired and ``covered`` tells which box was the ``Ri`` of the rule
    ("first" or "second") — the small box for ``small_touch``, the covered box for ``coverage``.
    """

    first: Box
    second: Box
    result: Box
    reason: MergeReason
    covered: Literal["first", "second"]
    value: float  # the area (small_touch) or coverage (coverage) that decided

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": self.first.as_list(),
            "second": self.second.as_list(),
            "result": self.result.as_list(),
            "reason": self.reason,
            "covered": self.covered,
            "value": self.value,
        }


def _reading_key(box: Box) -> tuple[float, float, float, float]:
    return (box.y1, box.x1, box.y2, box.x2)


def _check_thresholds(area_threshold: float, overlap_threshold: float) -> None:
    if not 0.0 <= area_threshold <= 1.0:
        raise ValueError(f"area_threshold (Ta) must be in [0, 1], got {area_threshold!r}")
    if not 0.0 <= overlap_threshold <= 1.0:
        raise ValueError(f"overlap_threshold (To) must be in [0, 1], got {overlap_threshold!r}")


def merge_rule(
    ri: BoxLike,
    rj: BoxLike,
    area_threshold: float = DEFAULT_AREA_THRESHOLD,
    overlap_threshold: float = DEFAULT_OVERLAP_THRESHOLD,
) -> tuple[MergeReason, float] | None:
    """The one-directional rule for ``Ri`` against ``Rj``: the clause that fires and its value, or None."""
    a, b = as_box(ri), as_box(rj)
    if a.area < area_threshold - EPS and touches(a, b):
        return "small_touch", a.area
    cov = coverage(a, b)
    if cov > overlap_threshold + EPS:
        return "coverage", cov
    return None


def _pair_decision(
    a: Box, b: Box, area_threshold: float, overlap_threshold: float
) -> tuple[MergeReason, Literal["first", "second"], float] | None:
    forward = merge_rule(a, b, area_threshold, overlap_threshold)
    if forward is not None:
        return forward[0], "first", forward[1]
    backward = merge_rule(b, a, area_threshold, overlap_threshold)
    if backward is not None:
        return backward[0], "second", backward[1]
    return None


def merge_boxes_traced(
    boxes: Iterable[BoxLike],
    area_threshold: float = DEFAULT_AREA_THRESHOLD,
    overlap_threshold: float = DEFAULT_OVERLAP_THRESHOLD,
) -> tuple[list[Box], list[MergeStep]]:
    """Box-Merge with its audit trail: the merged boxes (reading order) and every merge in the order done."""
    _check_thresholds(area_threshold, overlap_threshold)
    current = sorted((as_box(b) for b in boxes), key=_reading_key)
    steps: list[MergeStep] = []
    changed = True
    while changed:
        changed = False
        for i in range(len(current)):
            for j in range(i + 1, len(current)):
                decision = _pair_decision(current[i], current[j], area_threshold, overlap_threshold)
                if decision is None:
                    continue
                reason, covered, value = decision
                merged = union(current[i], current[j])
                steps.append(MergeStep(current[i], current[j], merged, reason, covered, value))
                rest = [box for k, box in enumerate(current) if k not in (i, j)]
                current = sorted([*rest, merged], key=_reading_key)
                changed = True
                break
            if changed:
                break
    return current, steps


def merge_boxes(
    boxes: Sequence[BoxLike] | Iterable[BoxLike],
    area_threshold: float = DEFAULT_AREA_THRESHOLD,
    overlap_threshold: float = DEFAULT_OVERLAP_THRESHOLD,
) -> list[Box]:
    """Box-Merge over ``(x1, y1, x2, y2)`` tuples or :class:`~giqa.boxes.Box` es; the merged list.

    >>> merge_boxes([(0.1, 0.1, 0.2, 0.2), (0.2, 0.1, 0.3, 0.2)])  # two small boxes sharing an edge
    [Box(x1=0.1, y1=0.1, x2=0.3, y2=0.2)]
    """
    return merge_boxes_traced(boxes, area_threshold, overlap_threshold)[0]
