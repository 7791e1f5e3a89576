"""The numpy MiniLM encoder of giqa.metrics.similarity against transformers' BertModel on the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from giqa.metrics.similarity import MiniLMSimilarity

pytestmark = pytest.mark.models

PHRASES = ["red circle", "the red circle", "blurry sky", "candles", "a person's left hand", "x" * 5, "\u72d7"]


@pytest.fixture(scope="module")
def minilm() -> MiniLMSimilarity:
    return MiniLMSimilarity()


def test_numpy_encoder_matches_transformers_bert(minilm: MiniLMSimilarity) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from giqa.metrics.similarity import minilm_path

    path = minilm_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()
    batch = tok(PHRASES, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()
    ours = minilm.embed(PHRASES)
    assert ours.shape == (len(PHRASES), 384)
    np.testing.assert_allclose(ours, ref, atol=2e-5)
