"""LLM-Score, Acc(Y), Acc(W), Acc(Total): the paper's Table 5 arithmetic and the null rules."""

from __future__ import annotations

import pytest

from giqa.metrics.scores import acc_total, acc_w, acc_y, llm_score

pytestmark = pytest.mark.unit


def test_acc_total_reproduces_the_papers_table_5_example() -> None:
    # Grounding-IQA (mPLUG-Owl2-7B): Acc(Y) 0.8444 (= 76/90) and Acc(W) 0.5875 over 90/60 items -> 0.7417.
    assert round(acc_total(76 / 90, 90, 0.5875, 60), 4) == 0.7417  # type: ignore[arg-type]
    # with the rounded printed value the total agrees to the 4th decimal
    assert acc_total(0.8444, 90, 0.5875, 60) == pytest.approx(0.7417, abs=1e-4)


@pytest.mark.parametrize(
    ("acc_y_printed", "acc_w_value", "total"),
    [  # more rows of Table 5 (Acc(Y) printed to 4 decimals is k/90)
        (0.4444, 0.5167, 0.4733),  # LLaVA-v1.5-7B
        (0.5889, 0.5250, 0.5633),  # mPLUG-Owl2-7B
        (0.7777, 0.5458, 0.6850),  # Grounding-IQA (LLaVA-v1.5-7B)
        (0.8333, 0.5625, 0.7250),  # Grounding-IQA (LLaVA-v1.6-7B)
    ],
)
def test_acc_total_matches_other_table_5_rows(acc_y_printed: float, acc_w_value: float, total: float) -> None:
    exact_y = round(acc_y_printed * 90) / 90
    exact_w = round(acc_w_value * 240) / 240  # Acc(W) = sum of 60 scores 0..4 / 240
    assert round(acc_total(exact_y, 90, exact_w, 60), 4) == total  # type: ignore[arg-type]


def test_llm_score_is_25_times_the_mean() -> None:
    assert llm_score([4, 2]) == 75.0
    assert llm_score([0, 0, 0]) == 0.0
    assert llm_score([4] * 5) == 100.0


def test_acc_w_is_mean_over_4() -> None:
    assert acc_w([4, 3, 2, 1, 0]) == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [[5], [-1], [2.5], [True]])
def test_judge_scores_are_integers_0_to_4(bad: list) -> None:
    with pytest.raises(ValueError):
        llm_score(bad)
    with pytest.raises(ValueError):
        acc_w(bad)


def test_no_scores_is_null_not_zero() -> None:
    assert llm_score([]) is None and llm_score(None) is None
    assert acc_w([]) is None
    assert acc_y([]) is None


def test_acc_y_fraction() -> None:
    assert acc_y([True, False, True, True]) == 0.75


def test_acc_total_null_and_degenerate_cases() -> None:
    assert acc_total(None, 0, None, 0) is None  # no vqa items
    assert acc_total(0.8, 90, None, 60) is None  # Acc(W) has items but no judge
    assert acc_total(0.8, 90, None, 0) == pytest.approx(0.8)  # no W items: Acc(Y) alone
    assert acc_total(None, 0, 0.5, 60) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        acc_total(0.5, -1, 0.5, 1)
