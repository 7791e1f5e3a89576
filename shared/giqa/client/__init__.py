"""A small typed client of the inference service for downstream apps (sync and async, httpx).

    from giqa.client import InferenceClient, decode_mask

    with InferenceClient("http://127.0.0.1:8000", api_key="...") as client:
        result = client.assess("photo.jpg", mask=True)   # AssessResponse
        for obj in result.objects:
            print(obj.phrase, obj.quality, [b.pixels for b in obj.boxes])
        flagged = decode_mask(result.masks[0])          # bool array (height, width)

Images go up as a multipart upload (a path, bytes or a PIL image) or by their key in the service's object
store (:class:`StoredImage`); answers come back as the pydantic models
of :mod:`giqa.client.contract`, validated. A failure raises :class:`InferenceError` with the service's error
code and message; an overloaded service (503 + Retry-After) is retried ``retries`` times after the delay it
asks for.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from PIL import Image
from pydantic import BaseModel

from giqa.client.contract import (
    AskResponse,
    AssessResponse,
    ModelList,
    Region,
    ScoreResponse,
)
from giqa.client.masks import decode_mask, rle_decode, rle_encode


@dataclass(frozen=True, slots=True)
class StoredImage:
    """An image already in the service's object store, sent by key (``images/...`` or ``uploads/...``)."""

    key: str


ImageInput = str | Path | bytes | Image.Image | StoredImage
R = TypeVar("R", bound=BaseModel)
MAX_RETRY_WAIT_S = 30.0

__all__ = [
    "AsyncInferenceClient",
    "ImageInput",
    "InferenceClient",
    "InferenceError",
    "StoredImage",
    "decode_mask",
    "rle_decode",
    "rle_encode",
]


class InferenceError(Exception):
    """A failure the service answered (or could not be reached for): status, code, message, request id."""

    def __init__(
        self, status: int, code: str, message: str, *, request_id: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (request {request_id})" if request_id else ""))
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after


def _upload(image: ImageInput, data: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(files, form fields) of a request carrying ``image``: the file, or its object-store key."""
    if isinstance(image, StoredImage):
        return {}, data | {"image_key": image.key}
    name, content = _image_bytes(image)
    return {"image": (name, content)}, data


def _image_bytes(image: str | Path | bytes | Image.Image) -> tuple[str, bytes]:
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return "image.png", buffer.getvalue()
    if isinstance(image, bytes):
        return "image", image
    path = Path(image)
    return path.name, path.read_bytes()


def _regions(regions: Sequence[Region | Sequence[float]]) -> str:
    items = [r if isinstance(r, Region) else Region(box=list(r)) for r in regions]
    return json.dumps([r.model_dump() for r in items])


def _form(**fields: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in fields.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(float(value), MAX_RETRY_WAIT_S) if value is not None else None
    except ValueError:
        return None


def _parse(response: httpx.Response, model: type[R]) -> R:
    if response.status_code == 200:
        return model.model_validate(response.json())
    try:
        error = response.json()["error"]
        code, message, request_id = (
            str(error["code"]),
            str(error["message"]),
            str(error.get("request_id", "")),
        )
    except (ValueError, KeyError, TypeError):
        code, message, request_id = "http_error", response.text[:300] or response.reason_phrase, ""
    raise InferenceError(
        response.status_code, code, message, request_id=request_id, retry_after=_retry_after(response)
    )


def _should_retry(response: httpx.Response, attempt: int, retries: int) -> float | None:
    if response.status_code == 503 and attempt < retries:
        return _retry_after(response) or 1.0
    return None


class _Base:
    def __init__(self, base_url: str, api_key: str | None, retries: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.retries = retries

    @staticmethod
    def _assess_form(mask: bool, mask_format: str, max_new_tokens: int | None) -> dict[str, str]:
        return _form(mask=mask, mask_format=mask_format, max_new_tokens=max_new_tokens)

    @staticmethod
    def _ask_form(
        question: str, regions: Sequence[Region | Sequence[float]], max_new_tokens: int | None
    ) -> dict[str, str]:
        return _form(
            question=question, regions=_regions(regions) if regions else None, max_new_tokens=max_new_tokens
        )


class InferenceClient(_Base):
    """Blocking client; one pooled connection set per instance (use it as a context manager or close it)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, retries)
        self.http = httpx.Client(
            base_url=self.base_url, headers=self.headers, timeout=timeout_s, transport=transport
        )

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, image: ImageInput, data: dict[str, str], model: type[R]) -> R:
        files, form = _upload(image, data)
        for attempt in range(self.retries + 1):
            try:
                response = self.http.post(path, files=files or None, data=form)
            except httpx.HTTPError as exc:
                raise InferenceError(0, "unreachable", f"{self.base_url}{path}: {exc}") from exc
            wait = _should_retry(response, attempt, self.retries)
            if wait is None:
                return _parse(response, model)
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def assess(
        self,
        image: ImageInput,
        *,
        mask: bool = False,
        mask_format: str = "png",
        max_new_tokens: int | None = None,
    ) -> AssessResponse:
        """What is wrong with the image's quality and where (``mask``: a mask per quality word)."""
        return self._post(
            "/v1/assess", image, self._assess_form(mask, mask_format, max_new_tokens), AssessResponse
        )

    def ask(
        self,
        image: ImageInput,
        question: str,
        *,
        regions: Sequence[Region | Sequence[float]] = (),
        max_new_tokens: int | None = None,
    ) -> AskResponse:
        """An answer about the image quality; ``regions``: normalized boxes (or :class:`Region`) it names."""
        return self._post("/v1/ask", image, self._ask_form(question, regions, max_new_tokens), AskResponse)

    def score(self, image: ImageInput) -> ScoreResponse:
        """An overall quality score 1-5 with the probability of each level word."""
        return self._post("/v1/score", image, {}, ScoreResponse)

    def models(self) -> ModelList:
        return _parse(self.http.get("/v1/models"), ModelList)

    def ready(self) -> bool:
        try:
            return self.http.get("/ready").status_code == 200
        except httpx.HTTPError:
            return False


class AsyncInferenceClient(_Base):
    """The same calls for asyncio apps (``async with AsyncInferenceClient(url) as client: await ...``)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, retries)
        self.http = httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=timeout_s, transport=transport
        )

    async def __aenter__(self) -> AsyncInferenceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def _post(self, path: str, image: ImageInput, data: dict[str, str], model: type[R]) -> R:
        files, form = _upload(image, data)
        for attempt in range(self.retries + 1):
            try:
                response = await self.http.post(path, files=files or None, data=form)
            except httpx.HTTPError as exc:
                raise InferenceError(0, "unreachable", f"{self.base_url}{path}: {exc}") from exc
            wait = _should_retry(response, attempt, self.retries)
            if wait is None:
                return _parse(response, model)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def assess(
        self,
        image: ImageInput,
        *,
        mask: bool = False,
        mask_format: str = "png",
        max_new_tokens: int | None = None,
    ) -> AssessResponse:
        return await self._post(
            "/v1/assess", image, self._assess_form(mask, mask_format, max_new_tokens), AssessResponse
        )

    async def ask(
        self,
        image: ImageInput,
        question: str,
        *,
        regions: Sequence[Region | Sequence[float]] = (),
        max_new_tokens: int | None = None,
    ) -> AskResponse:
        return await self._post(
            "/v1/ask", image, self._ask_form(question, regions, max_new_tokens), AskResponse
        )

    async def score(self, image: ImageInput) -> ScoreResponse:
        return await self._post("/v1/score", image, {}, ScoreResponse)

    async def models(self) -> ModelList:
        return _parse(await self.http.get("/v1/models"), ModelList)

    async def ready(self) -> bool:
        try:
            return (await self.http.get("/ready")).status_code == 200
        except httpx.HTTPError:
            return False
