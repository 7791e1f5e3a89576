"""An OpenAI-compatible vision endpoint (vLLM serving LLaVA) as a :class:`giqa.ports.GroundedVLM`.

It reuses the project's one chat client (:class:`giqa.llm.client.OpenAIChatClient`: pooled httpx, retries,
timeouts); the image travels inline as a base64 PNG data URL in an ``image_url`` content part, the form
vLLM's and OpenAI's chat APIs accept.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from giqa.ports import Health, Message


def image_data_url(image: Image.Image) -> str:
    """``data:image/png;base64,...`` of an image (PNG: lossless, so the model sees the bench's pixels)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def vision_messages(image: Image.Image, question: str) -> list[Message]:
    """One user turn: the image, then the question (the LLaVA order)."""
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image_data_url(image)}},
                {"type": "text", "text": question},
            ],
        }
    ]


class OpenAIVisionVLM:
    """Answers through ``<url>/chat/completions`` at temperature 0, ``concurrency`` requests in flight."""

    def __init__(self, client: Any, *, concurrency: int = 4) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.client = client
        self.concurrency = concurrency

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        concurrency: int = 4,
    ) -> OpenAIVisionVLM:
        """A client for ``url`` (ending in /v1); without ``model``, the server's first listed model."""
        from giqa.llm.client import OpenAIChatClient

        name = model or first_model(url, api_key=api_key)
        client = OpenAIChatClient(
            url,
            model=name,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            concurrency=concurrency,
        )
        return cls(client, concurrency=concurrency)

    @property
    def model_name(self) -> str:
        return str(self.client.model_name)

    def health(self) -> Health:
        health: Health = self.client.health()
        return health

    def answer(self, image: Image.Image, question: str, *, max_new_tokens: int = 256) -> str:
        return str(
            self.client.chat(vision_messages(image, question), temperature=0.0, max_tokens=max_new_tokens)
        ).strip()

    def answer_batch(
        self, items: Sequence[tuple[Image.Image, str]], *, max_new_tokens: int = 256
    ) -> list[str]:
        if len(items) <= 1 or self.concurrency == 1:
            return [self.answer(img, q, max_new_tokens=max_new_tokens) for img, q in items]
        with ThreadPoolExecutor(
            max_workers=min(self.concurrency, len(items)), thread_name_prefix="vlm"
        ) as pool:
            return list(pool.map(lambda it: self.answer(it[0], it[1], max_new_tokens=max_new_tokens), items))

    def close(self) -> None:
        self.client.close()


def first_model(url: str, *, api_key: str | None = None, timeout_s: float = 10.0) -> str:
    """The first model id ``<url>/models`` lists (vLLM serves one model; its name is required)."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=timeout_s)
        response.raise_for_status()
        models = response.json().get("data") or []
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        raise ConnectionError(
            f"cannot list models at {url}/models: {exc}; pass the model name explicitly"
        ) from exc
    if not models or "id" not in models[0]:
        raise ConnectionError(f"{url}/models lists no model; pass the model name explicitly")
    return str(models[0]["id"])
