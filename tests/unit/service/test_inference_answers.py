"""The inference service's pure rules: objects and quality words from grounded text, masks and RLE,
referring questions, where P(Yes) is read, the Q-Align score."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from giqa.client.contract import Region
from giqa.client.masks import rle_decode, rle_encode
from giqa.grounded_text import parse_text
from services.inference import answers

pytestmark = pytest.mark.unit


@settings(max_examples=60, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_rle_round_trips_any_mask(mask: np.ndarray) -> None:
    rle = rle_encode(mask)
    assert sum(rle.counts) == mask.size and rle.size == list(mask.shape)
    assert all(c > 0 for c in rle.counts[1:])  # only the leading run of 0s may be empty
    assert (rle_decode(rle) == mask).all()


def test_objects_merge_repeats_and_take_the_quality_words_of_their_sentences() -> None:
    text = (
        "The [red circle](<21, 63>) is noisy and slightly dark. The sky is clear. "
        "The [red circle](<21, 63>, <100, 150>) is blurry. A [sharp cat](<0, 399>) sits."
    )
    objects = answers.grounded_objects(text, parse_text(text), 200, 100, 20, 20)
    assert [o.phrase for o in objects] == ["red circle", "sharp cat"]
    circle, cat = objects
    assert circle.quality == ["noisy", "dark", "blurry"] and circle.polarity == "negative"
    assert len(circle.boxes) == 2 and circle.boxes[0].grid == [21, 63]
    assert cat.quality == ["sharp"] and cat.polarity == "positive"
    assert cat.boxes[0].pixels == [5, 2, 195, 98]  # cell centres of cells 0 and 399


def test_masks_are_the_union_of_the_boxes_per_word() -> None:
    text = "The [a](<0.0, 0.0, 0.5, 0.5>) is blurry. The [b](<0.5, 0.5, 1.0, 1.0>) is blurry and noisy."
    objects = answers.grounded_objects(text, parse_text(text), 10, 10, 20, 20)
    masks = {m.quality: m for m in answers.masks_for(objects, 10, 10, "rle")}
    assert set(masks) == {"blurry", "noisy"}
    assert masks["blurry"].area == pytest.approx(0.5) and masks["noisy"].area == pytest.approx(0.25)
    assert masks["blurry"].polarity == "negative"


def test_referring_question_renders_each_region() -> None:
    regions = [Region(box=[0.0, 0.0, 0.5, 0.5], phrase="Red Circle"), Region(box=[0.5, 0.5, 1.0, 1.0])]
    question = answers.referring_question("Is the red circle sharper than this?", regions, 20, 20)
    assert question == "Is the [red circle](<0, 210>) sharper than this? Region: [the region](<210, 399>)."


@pytest.mark.parametrize(
    ("answer", "prefix"),
    [
        ("The red circle is clean. No.", "The red circle is clean."),
        ("Yes, it is.", ""),
        ("It has no noise. Yes.", "It has no noise."),
        ("Slightly.", ""),
    ],
)
def test_p_yes_is_read_before_the_last_yes_or_no(answer: str, prefix: str) -> None:
    assert answers.yes_no_prefix(answer) == prefix


def test_yes_no_questions_and_p_yes() -> None:
    assert answers.is_yes_no("Is the cat blurry?") and answers.is_yes_no("  does it look noisy?")
    assert not answers.is_yes_no("What is blurry?") and not answers.is_yes_no("Island colours?")
    assert answers.p_yes({"Yes": 0.3, "No": 0.1}) == pytest.approx(0.75)
    assert answers.p_yes({"Yes": 0.0, "No": 0.0}) == 0.5


def test_qalign_score() -> None:
    score, levels = answers.qalign_score({"excellent": 0.2, "good": 0.2, "fair": 0, "poor": 0, "bad": 0})
    assert score == pytest.approx(4.5) and levels["excellent"] == pytest.approx(0.5)
    assert answers.qalign_score({})[0] == pytest.approx(3.0)  # no mass on any level: the middle
