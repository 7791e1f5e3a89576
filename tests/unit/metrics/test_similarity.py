"""The MiniLM phrase similarity: numpy encoder equals transformers' BertModel; sensible similarities."""

from __future__ import annotations

import numpy as np
import pytest

from giqa.metrics.similarity import MiniLMSimilarity, PhraseSimilarity

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def minilm() -> MiniLMSimilarity:
    return MiniLMSimilarity()


def test_is_a_phrase_similarity(minilm: MiniLMSimilarity) -> None:
    assert isinstance(minilm, PhraseSimilarity)
    assert minilm.name == "sentence-transformers/all-MiniLM-L6-v2"


def test_similarities_rank_sensibly(minilm: MiniLMSimilarity) -> None:
    s = minilm.similarity(["red circle"], ["the red circle", "red circle", "blue ocean waves"])
    assert s.shape == (1, 3)
    assert s[0, 1] == pytest.approx(1.0, abs=1e-5)
    assert s[0, 0] > 0.8 > 0.5 > s[0, 2]


def test_empty_lists_give_empty_matrices(minilm: MiniLMSimilarity) -> None:
    assert minilm.similarity([], ["a"]).shape == (0, 1)
    assert minilm.similarity(["a"], []).shape == (1, 0)


def test_cache_makes_order_and_batching_irrelevant(minilm: MiniLMSimilarity) -> None:
    one = minilm.embed(["sky"])
    many = minilm.embed(["a much longer phrase about candles", "sky"])
    np.testing.assert_allclose(one[0], many[1], atol=1e-6)
