"""Split-level scores from per-item results (DESIGN §3.4): LLM-Score, Acc(Y), Acc(W), Acc(Total).

The judge scores each item 0–4 (an integer). ``None`` means "cannot be computed" (no items of that kind,
or no judge configured) and is shown as N/A; it is never silently turned into 0.
"""

from __future__ import annotations

from collections.abc import Sequence

JUDGE_MAX = 4


def _check_judge_scores(scores: Sequence[int]) -> None:
    for s in scores:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= JUDGE_MAX:
            raise ValueError(f"judge scores are integers 0..{JUDGE_MAX}, got {s!r}")


def llm_score(scores: Sequence[int] | None) -> float | None:
    """25 × the mean judge score of the descriptions, 0–100; ``None`` without judge scores."""
    if not scores:
        return None
    _check_judge_scores(scores)
    return 100.0 / JUDGE_MAX * sum(scores) / len(scores)


def acc_w(scores: Sequence[int] | None) -> float | None:
    """The mean judge score of the What/Why/How answers divided by 4, 0–1; ``None`` without scores."""
    if not scores:
        return None
    _check_judge_scores(scores)
    return sum(scores) / (JUDGE_MAX * len(scores))


def acc_y(correct: Sequence[bool]) -> float | None:
    """The fraction of yes/no items answered right; ``None`` without yes/no items."""
    if not correct:
        return None
    return sum(bool(c) for c in correct) / len(correct)


def acc_total(acc_y_value: float | None, n_y: int, acc_w_value: float | None, n_w: int) -> float | None:
    """(n_Y·Acc(Y) + n_W·Acc(W)) / (n_Y + n_W).

    A part with no items drops out (its weight is 0); a part that has items but no value (e.g. Acc(W)
    without a judge) makes the total ``None``: a total over half the questions would mislead.
    """
    if n_y < 0 or n_w < 0:
        raise ValueError("item counts cannot be negative")
    if n_y + n_w == 0:
        return None
    if (n_y and acc_y_value is None) or (n_w and acc_w_value is None):
        return None
    total = (n_y * (acc_y_value or 0.0)) + (n_w * (acc_w_value or 0.0))
    return total / (n_y + n_w)
