"""TransformersVLM's next-token reading on the shipped demo VLM: batched rows of different lengths (left
padding) give the probabilities each row gets alone; the top token is the one greedy decoding writes."""

from __future__ import annotations

import math

import pytest
from PIL import Image

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def vlm():
    from giqa.backends.factory import make_vlm

    return make_vlm()


ITEMS = [
    (Image.new("RGB", (64, 64), (200, 10, 10)), "Is the red circle noisy?", "The red circle is clean."),
    (Image.new("RGB", (80, 40), (10, 200, 10)), "Is it dark?", ""),
    (Image.new("RGB", (64, 64), (90, 90, 200)), "How would you rate the quality of this image?",
     "The quality of the image is"),
]  # fmt: skip


def test_batched_word_probabilities_equal_one_by_one(vlm) -> None:
    words = ["Yes", "No", "good", "poor"]
    alone = [vlm.next_word_probs(image, q, prefix, words) for image, q, prefix in ITEMS]
    batched = vlm.next_word_probs_batch(ITEMS, words)
    for one, many in zip(alone, batched, strict=True):
        assert many == pytest.approx(one, rel=1e-4, abs=1e-7)
        assert all(0 <= p <= 1 for p in one.values()) and sum(one.values()) <= 1 + 1e-6


def test_top_tokens_are_sorted_log_probabilities_led_by_the_greedy_token(vlm) -> None:
    image, question, _ = ITEMS[0]
    (top,) = vlm.next_token_logprobs_batch([(image, question, "")], 5)
    values = [lp for _, lp in top]
    assert len(top) == 5 and values == sorted(values, reverse=True) and all(v <= 0 for v in values)
    assert sum(math.exp(v) for v in values) <= 1 + 1e-6
    first_word = vlm.answer(image, question, max_new_tokens=1)
    assert top[0][0].strip() == first_word.strip()


def test_a_word_the_tokenizer_cannot_write_is_refused(vlm) -> None:
    with pytest.raises(ValueError, match="cannot write the word"):
        vlm.word_token_ids("")
