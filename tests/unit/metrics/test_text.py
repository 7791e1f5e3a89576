"""BLEU@4 with coordinates stripped, and the yes/no word of Acc(Y) (hand-computed values)."""

from __future__ import annotations

import math

import pytest

from giqa.metrics.text import bleu4, plain_text, yes_no_correct, yes_no_word

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("Yes.", "yes"),
        ("No.", "no"),
        ("yes", "yes"),
        ("NO!", "no"),
        ("Yes, but no one would notice.", "yes"),
        ("No, yes... hard to say", "no"),
        ("The answer is: no.", "no"),
        ("Not really, it is noisy.", None),  # "not" and "noisy" are not the word "no"
        ("I know the eyes are sharp", None),  # "know", "eyes": no standalone word
        ("nobody", None),
        ("no_entry", None),
        ("(yes)", "yes"),
        ("", None),
    ],
)
def test_first_standalone_yes_no_word(text: str, word: str | None) -> None:
    assert yes_no_word(text) == word


@pytest.mark.parametrize(
    ("response", "answer", "correct"),
    [
        ("Yes, but no...", "Yes.", True),
        ("Yes, but no...", "No.", False),
        ("yes", "Yes.", True),
        ("NO", "No.", True),
        ("It is blurry.", "No.", False),  # no yes/no word at all: wrong
        ("", "Yes.", False),
    ],
)
def test_yes_no_correct(response: str, answer: str, correct: bool) -> None:
    assert yes_no_correct(response, answer) is correct


def test_yes_no_answer_must_have_a_word() -> None:
    with pytest.raises(ValueError, match="yes"):
        yes_no_correct("Yes.", "Blurry.")


def test_bleu_of_identical_texts_is_100() -> None:
    text = "The image is sharp overall, but the red circle on the left is blurry and the sky is noisy."
    assert bleu4([text], [text]) == pytest.approx(100.0)


def test_bleu_hand_computed() -> None:
    # hyp "the cat sat on the mat" vs ref "the cat sat on a mat": precisions 5/6, 3/5, 2/4, 1/3, BP = 1.
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert bleu4(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(expected, abs=1e-6)
    assert math.isclose(expected, 53.7284965, rel_tol=1e-6)


def test_bleu_strips_coordinates_of_either_form_on_both_sides() -> None:
    ref = "The [red circle](<35, 319>) is blurry while the [sky](<0, 399>) is clean and sharp."
    grid = "The [red circle](<35, 319>) is blurry while the [sky](<0, 399>) is clean and sharp."
    norm = (
        "The [red circle](<0.78, 0.08, 0.97, 0.78>) is blurry while the [sky](<0.0, 0.0, 1.0, 1.0>) "
        "is clean and sharp."
    )
    plain = "The red circle is blurry while the sky is clean and sharp."
    assert bleu4([grid], [ref]) == pytest.approx(100.0)
    assert bleu4([norm], [ref]) == pytest.approx(100.0)
    assert bleu4([plain], [ref]) == pytest.approx(100.0)


def test_bleu_is_case_sensitive_and_counts_punctuation() -> None:
    ref = "The red circle is blurry and the blue square is sharp."
    assert bleu4([ref.upper()], [ref]) < 5.0  # only the final "." still matches
    assert bleu4([ref.rstrip(".")], [ref]) < 100.0


def test_bleu_of_empty_hypotheses_is_zero_and_of_nothing_null() -> None:
    assert bleu4([""], ["The image is sharp and clear overall."]) == 0.0
    assert bleu4([], []) is None


def test_bleu_is_a_corpus_score_not_a_mean_of_sentences() -> None:
    refs = ["the cat sat on a mat", "a dog ran in the park today"]
    hyps = ["the cat sat on the mat", "a dog ran in the park today"]
    corpus = bleu4(hyps, refs)
    mean = (bleu4(hyps[:1], refs[:1]) + bleu4(hyps[1:], refs[1:])) / 2  # type: ignore[operator]
    assert corpus is not None and corpus != pytest.approx(mean)


def test_bleu_needs_parallel_lists() -> None:
    with pytest.raises(ValueError):
        bleu4(["a"], [])


def test_plain_text_collapses_whitespace() -> None:
    assert plain_text("The  [cat](<1, 2>)\n is  blurry.") == "The cat is blurry."
