"""The box-token loss weight: which tokens are numbers, and a loss that is the model's own at weight 1."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.loss.loss_utils import ForCausalLMLoss

from giqa.models.tokenizer import GRID_CELLS, build_tokenizer
from giqa.training.config import ConfigError, build_config
from giqa.training.trainer import WeightedTokenLoss, number_token_ids


class _Vocab:
    def __init__(self, vocab: dict[str, int]) -> None:
        self.vocab = vocab

    def get_vocab(self) -> dict[str, int]:
        return self.vocab


def test_the_tiny_tokenizer_s_number_tokens_are_the_grid_indices_and_nothing_else() -> None:
    tok = build_tokenizer(["The [red circle](<12, 345>) is blurry."])
    ids = set(number_token_ids(tok))
    for cell in (0, 12, 345, GRID_CELLS - 1):
        assert tok.convert_tokens_to_ids(str(cell)) in ids
    for word in ("red", "circle", "blurry", "<", ",", ">", "[", "("):
        assert tok.convert_tokens_to_ids(word) not in ids


def test_bpe_and_sentencepiece_digit_pieces_count_but_words_with_digits_do_not() -> None:
    vocab = {"\u01201": 0, "\u25812": 1, "34": 2, "\u0120x2": 3, "a1": 4, "\u0120": 5, "\u00b2": 6, "<": 7}
    assert number_token_ids(_Vocab(vocab)) == [0, 1, 2]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    items=st.one_of(st.none(), st.integers(1, 40)),
)
def test_weight_one_is_the_model_s_own_causal_lm_loss(seed: int, items: int | None) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 7, 11, generator=gen)
    labels = torch.randint(0, 11, (2, 7), generator=gen)
    labels[torch.rand(2, 7, generator=gen) < 0.4] = -100
    labels[0, 1] = 3  # at least one labelled token after the shift
    loss = WeightedTokenLoss([3, 4], 1.0)({"logits": logits}, labels, items)
    ref = ForCausalLMLoss(logits, labels, 11, num_items_in_batch=items)
    assert torch.allclose(loss, ref, atol=1e-5)


def test_a_weight_scales_exactly_the_number_tokens_terms() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 6, requires_grad=True)
    labels = torch.tensor([[-100, 2, 4, 1, 4]])  # predicted from positions 0..3: 2, 4, 1, 4
    per = torch.nn.functional.cross_entropy(logits[0, :4], labels[0, 1:], reduction="none")
    loss = WeightedTokenLoss([4], 5.0)({"logits": logits}, labels)
    assert torch.allclose(loss, (per[0] + 5 * per[1] + per[2] + 5 * per[3]) / 4)
    loss.backward()
    grad = logits.grad
    assert grad is not None
    base = torch.autograd.grad(per.sum() / 4, logits)[0]
    # number-token positions (1 and 3) carry five times the plain gradient, the others the same
    assert torch.allclose(grad[0, [1, 3]], 5 * base[0, [1, 3]], atol=1e-6)
    assert torch.allclose(grad[0, [0, 2]], base[0, [0, 2]], atol=1e-6)
    assert torch.count_nonzero(grad[0, 4]) == 0  # the last position predicts nothing


def test_a_weight_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="box_token_weight"):
        build_config({"data": "d.json", "output_dir": "o", "box_token_weight": 0})
