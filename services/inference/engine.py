"""The two model backends behind the service: the checkpoint in-process (transformers) or a vLLM server.

Both do two things, each on a whole batch: generate answers (``("generate", max_new_tokens)`` batches) and
read the probabilities of candidate next words after an answer prefix (``("words", words)`` batches: the
Q-Align score and P(Yes)). :meth:`Engine.run` is what the dynamic batcher calls.

The vLLM backend forwards to vLLM's OpenAI-compatible server: answers through ``/chat/completions`` (the
project's :class:`giqa.predict.remote.OpenAIVisionVLM`), word probabilities through the same endpoint with
``max_tokens=1``, ``logprobs``/``top_logprobs`` and, after a prefix, the prefix as a final assistant message
continued with vLLM's ``continue_final_message`` (and ``add_generation_prompt`` off).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from PIL import Image

from giqa.ports import Health
from giqa.settings import InferenceSettings

WordItem = tuple[Image.Image, str, str]  # (image, question, answer prefix)
DEMO_MODEL_NAME = "giqa-demo-vlm"  # the shipped demo VLM's id in answers and /v1/models
TOP_LOGPROBS = 20  # vLLM's default --max-logprobs allows 20


class BackendError(RuntimeError):
    """The model server behind the service failed (unreachable, an error answer, an answer without the
    fields asked for): the service answers 502."""


class Engine(Protocol):
    @property
    def model_name(self) -> str: ...

    def generate(self, items: Sequence[tuple[Image.Image, str]], max_new_tokens: int) -> list[str]: ...

    def word_probs(self, items: Sequence[WordItem], words: Sequence[str]) -> list[dict[str, float]]: ...

    def top_tokens(self, items: Sequence[WordItem], k: int) -> list[list[tuple[str, float]]]: ...

    def count_tokens(self, text: str) -> int: ...

    def health(self) -> Health: ...


def run_batch(engine: Engine, key: Hashable, payloads: Sequence[Any]) -> list[Any]:
    """One batcher call: ``key`` says which kind of batch ``payloads`` is."""
    if not isinstance(key, tuple) or len(key) != 2:
        raise ValueError(f"unknown batch key {key!r}")
    kind, arg = key
    if kind == "generate":
        return engine.generate(payloads, int(arg))
    if kind == "words":
        return engine.word_probs(payloads, tuple(arg))
    if kind == "top":
        return engine.top_tokens(payloads, int(arg))
    raise ValueError(f"unknown batch kind {kind!r}")


class TransformersEngine:
    """The checkpoint in this process (:class:`giqa.predict.local.TransformersVLM`)."""

    def __init__(self, vlm: Any, served_name: str | None = None) -> None:
        self.vlm = vlm
        self._name = served_name or vlm.model_name

    @property
    def model_name(self) -> str:
        return self._name

    def generate(self, items: Sequence[tuple[Image.Image, str]], max_new_tokens: int) -> list[str]:
        return list(self.vlm.answer_batch(list(items), max_new_tokens=max_new_tokens))

    def word_probs(self, items: Sequence[WordItem], words: Sequence[str]) -> list[dict[str, float]]:
        return list(self.vlm.next_word_probs_batch(list(items), words))

    def top_tokens(self, items: Sequence[WordItem], k: int) -> list[list[tuple[str, float]]]:
        return list(self.vlm.next_token_logprobs_batch(list(items), k))

    def count_tokens(self, text: str) -> int:
        return len(self.vlm.processor.tokenizer.encode(text, add_special_tokens=False))

    def health(self) -> Health:
        health: Health = self.vlm.health()
        return health


def _token_word(token: str) -> str:
    """A vocabulary token as the word it writes: SentencePiece's ▁ and byte-BPE's Ġ are spaces."""
    return token.replace("\u2581", " ").replace("\u0120", " ").strip().lower()


class VLLMEngine:
    """Forwards to a vLLM OpenAI-compatible server (``url`` ends in /v1)."""

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        concurrency: int = 8,
    ) -> None:
        import httpx

        from giqa.predict.remote import OpenAIVisionVLM

        self.vlm = OpenAIVisionVLM.connect(
            url, model=model, api_key=api_key, timeout_s=timeout_s, concurrency=concurrency
        )
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            timeout=timeout_s, headers=headers, limits=httpx.Limits(max_connections=concurrency)
        )
        self.concurrency = concurrency

    @property
    def model_name(self) -> str:
        return self.vlm.model_name

    def generate(self, items: Sequence[tuple[Image.Image, str]], max_new_tokens: int) -> list[str]:
        from giqa.llm.errors import LLMError

        try:
            return list(self.vlm.answer_batch(list(items), max_new_tokens=max_new_tokens))
        except LLMError as exc:
            raise BackendError(f"the vLLM server failed: {exc}") from exc

    def _top_one(self, item: WordItem, k: int) -> list[tuple[str, float]]:
        """The ``k`` most likely next tokens after the question and the answer ``prefix`` (vLLM:
        ``max_tokens=1``, ``logprobs``, and the prefix as a final assistant message it continues)."""
        import httpx

        from giqa.predict.remote import vision_messages

        image, question, prefix = item
        messages: list[dict[str, Any]] = vision_messages(image, question)
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": messages,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": k,
        }
        if prefix.strip():
            messages.append({"role": "assistant", "content": prefix.strip()})
            body |= {"continue_final_message": True, "add_generation_prompt": False}
        try:
            response = self.http.post(self.url + "/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"the vLLM server cannot be reached: {exc}") from exc
        if response.status_code != 200:
            raise BackendError(
                f"the vLLM server answered {response.status_code} to a logprobs request: "
                f"{response.text[:300]}"
            )
        try:
            top = response.json()["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            return [(str(e["token"]), float(e["logprob"])) for e in top if e.get("logprob") is not None]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BackendError(f"the vLLM server's answer carries no top_logprobs: {exc!r}") from exc

    def _many(self, items: Sequence[WordItem], k: int) -> list[list[tuple[str, float]]]:
        if len(items) <= 1:
            return [self._top_one(item, k) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            return list(pool.map(lambda item: self._top_one(item, k), items))

    def top_tokens(self, items: Sequence[WordItem], k: int) -> list[list[tuple[str, float]]]:
        return self._many(items, k)

    def word_probs(self, items: Sequence[WordItem], words: Sequence[str]) -> list[dict[str, float]]:
        """Each word's probability: the summed mass of the top tokens that write it (a word outside the
        top ``TOP_LOGPROBS`` counts as 0)."""
        wanted = {w.lower(): w for w in words}
        out = []
        for top in self._many(items, TOP_LOGPROBS):
            probs = dict.fromkeys(words, 0.0)
            for token, logprob in top:
                word = wanted.get(_token_word(token))
                if word is not None:
                    probs[word] += math.exp(logprob)
            out.append(probs)
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split())  # the server's tokenizer is not here: words stand in

    def health(self) -> Health:
        return self.vlm.health()

    def close(self) -> None:
        self.http.close()
        self.vlm.close()


def build_engine(cfg: InferenceSettings) -> Engine:
    """The configured backend (the composition root's one call; it loads the model, which takes a while)."""
    if cfg.backend == "vllm":
        if not cfg.model or not cfg.model.startswith(("http://", "https://")):
            raise ValueError(
                "the vllm backend needs the server's URL: set GIQA_INFERENCE__MODEL=http://host:8000/v1"
            )
        key = cfg.api_key.get_secret_value() if cfg.api_key else None
        return VLLMEngine(
            cfg.model, model=cfg.served_model_name, api_key=key, concurrency=cfg.vllm_concurrency
        )
    if cfg.model and cfg.model.startswith(("http://", "https://")):
        raise ValueError("a URL model needs the vllm backend: set GIQA_INFERENCE__BACKEND=vllm")
    from giqa.backends.factory import make_vlm

    vlm = make_vlm(cfg.model, device=cfg.device, dtype=cfg.dtype)
    default_name = DEMO_MODEL_NAME if cfg.model is None else None
    return TransformersEngine(vlm, served_name=cfg.served_model_name or default_name)
