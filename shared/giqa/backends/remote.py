"""HTTP clients of the detector and iqa_filter services implementing :class:`giqa.ports.Detector` and
:class:`giqa.ports.QualityJudge`, so the pipeline uses a remote service exactly like an in-process backend
(the composition root, :mod:`giqa.backends.factory`, picks one or the other from a URL).

The contracts are :mod:`giqa.wire` (``POST /v1/detect``, ``POST /v1/judge``). Images travel as PNG base64,
lossless, so the service decodes the very pixels the caller holds and answers what the in-process backend
would. Each image is sent once per request (the judge's items point at it by index). Work larger than one
request allows (items, phrases, images, bytes) is split into several requests, results in input order.

Failures (:class:`giqa.backends.errors.RemoteBackendError`): connection errors, time-outs, HTTP 5xx, 429 and
503 are retried with exponential backoff (honouring ``Retry-After``) up to ``max_retries`` times, then raised
with ``retryable=True``; a 4xx, or an answer that is not the contract, is raised at once with
``retryable=False`` and the service's own message.
"""

from __future__ import annotations

import base64
import email.utils
import random
import time
from collections.abc import Iterator, Sequence
from typing import Any, Self, TypeVar

import httpx
from PIL import Image
from pydantic import BaseModel, ValidationError

from giqa.backends.errors import RemoteBackendError
from giqa.backends.images import encode_png
from giqa.boxes import Box, as_box
from giqa.ports import Detection, Health, Judgement
from giqa.settings import http_url
from giqa.wire import (
    MAX_DETECT_ITEMS,
    MAX_JUDGE_IMAGES,
    MAX_JUDGE_ITEMS,
    MAX_PHRASE_CHARS,
    MAX_PHRASES,
    DetectResponse,
    ErrorBody,
    JudgeResponse,
)

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024  # under the services' default 20 MiB body limit
_MAX_BACKOFF_S = 8.0
_READY_TIMEOUT_S = 10.0  # a probe: a service that takes longer to say whether it is ready is not
_MAX_RETRY_AFTER_S = 30.0
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

R = TypeVar("R", bound=BaseModel)


def _b64(image: Image.Image) -> str:
    return base64.b64encode(encode_png(image)).decode("ascii")


def retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date); None when absent or
    unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _ServiceClient:
    """One service's base URL, key, pooled httpx client and the retry loop the two ports share."""

    def __init__(
        self,
        url: str,
        *,
        service: str,
        api_key: str | None,
        timeout_s: float,
        max_retries: int,
        backoff_s: float,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if max_retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ValueError("max_retries must be >= 0, timeout_s > 0 and backoff_s >= 0")
        self.url = http_url(url)
        self.service = service
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
        )

    def close(self) -> None:
        self._http.close()

    def ready(self) -> Health:
        try:
            response = self._http.get("/ready", timeout=_READY_TIMEOUT_S)
        except httpx.HTTPError as exc:
            return Health(False, f"{self.service} service at {self.url} unreachable: {type(exc).__name__}")
        try:
            detail = str(response.json().get("detail", ""))
        except (ValueError, AttributeError):
            detail = ""
        if response.status_code != 200:
            return Health(
                False,
                f"{self.service} service at {self.url} not ready (HTTP "
                f"{response.status_code}){': ' + detail if detail else ''}",
            )
        return Health(True, f"{self.service} service at {self.url}: {detail}")

    def post(self, path: str, payload: dict[str, Any], answer: type[R]) -> R:
        """POST ``payload`` as JSON and parse the answer as ``answer``, with the retries of the module doc."""
        last = ""
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            try:
                response = self._http.post(path, json=payload)
            except httpx.TransportError as exc:  # refused, reset, timed out
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code == 200:
                    return self._parse(response, answer)
                message, code = _error_of(response)
                if response.status_code not in _RETRY_STATUSES:
                    raise RemoteBackendError(
                        f"the {self.service} service refused the request (HTTP {response.status_code}"
                        f"{', ' + code if code else ''}): {message}",
                        retryable=False,
                        status=response.status_code,
                        code=code,
                    )
                last = f"HTTP {response.status_code}: {message}"
                wait = retry_after_s(response.headers.get("retry-after"))
            if attempt == self.max_retries:
                break
            backoff = min(_MAX_BACKOFF_S, self.backoff_s * 2**attempt) * (0.5 + random.random() / 2)
            time.sleep(backoff if wait is None else min(wait, _MAX_RETRY_AFTER_S))
        raise RemoteBackendError(
            f"the {self.service} service at {self.url} kept failing ({self.max_retries + 1} attempts); "
            f"last: {last}",
            retryable=True,
        )

    def _parse(self, response: httpx.Response, answer: type[R]) -> R:
        try:
            return answer.model_validate_json(response.content)
        except ValidationError as exc:
            raise RemoteBackendError(
                f"the {self.service} service answered something that is not a {answer.__name__}: "
                f"{str(exc).splitlines()[0]}",
                retryable=False,
                status=response.status_code,
            ) from None


def _error_of(response: httpx.Response) -> tuple[str, str | None]:
    """The message and code of a service's error answer (the one error shape), or the raw text."""
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValidationError:
        return (response.text[:200].strip() or response.reason_phrase, None)
    return body.error.message, body.error.code


def _chunks(sizes: Sequence[int], max_count: int, max_bytes: int) -> Iterator[range]:
    """Consecutive index ranges with at most ``max_count`` members and ``max_bytes`` in all (a single
    member over ``max_bytes`` goes alone; the service's body limit decides about it)."""
    start, total = 0, 0
    for k, size in enumerate(sizes):
        if k > start and (k - start >= max_count or total + size > max_bytes):
            yield range(start, k)
            start, total = k, 0
        total += size
    if start < len(sizes):
        yield range(start, len(sizes))


class _RemoteBackend:
    """What both service clients share: the HTTP client with its retries, the request-size bound, the
    model the service last named, closing, use as a context manager and ``health()`` (``GET /ready``)."""

    def __init__(
        self,
        url: str,
        *,
        service: str,
        batch_size: int,
        max_batch: int,
        api_key: str | None,
        timeout_s: float,
        max_retries: int,
        max_request_bytes: int,
        backoff_s: float,
    ) -> None:
        if not 1 <= batch_size <= max_batch:
            raise ValueError(f"batch_size must be in [1, {max_batch}], got {batch_size}")
        self._client = _ServiceClient(
            url,
            service=service,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
        )
        self.url = self._client.url
        self.batch_size = batch_size
        self.max_request_bytes = max_request_bytes
        self.model = ""  # the service's model, once it answered

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> Health:
        return self._client.ready()


class RemoteDetector(_RemoteBackend):
    """:class:`giqa.ports.Detector` over the detector service's ``POST /v1/detect``.

    ``batch_size``: images per request (at most :data:`giqa.wire.MAX_DETECT_ITEMS`); an image with more
    than :data:`giqa.wire.MAX_PHRASES` phrases is sent as several items. ``box_threshold`` /
    ``text_threshold``: sent with every request when given, else the service's settings apply.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        batch_size: int = 16,
        box_threshold: float | None = None,
        text_threshold: float | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        backoff_s: float = 0.25,
    ) -> None:
        super().__init__(
            url,
            service="detector",
            batch_size=batch_size,
            max_batch=MAX_DETECT_ITEMS,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            max_request_bytes=max_request_bytes,
            backoff_s=backoff_s,
        )
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold

    @property
    def model_path(self) -> str:
        return f"{self.model} at {self.url}" if self.model else self.url

    def detect(self, image: Image.Image, phrases: Sequence[str]) -> list[list[Detection]]:
        return self.detect_batch([image], [phrases])[0]

    def detect_batch(
        self, images: Sequence[Image.Image], phrases: Sequence[Sequence[str]]
    ) -> list[list[list[Detection]]]:
        """Detections per image, per phrase (in the order given), as the in-process detector answers."""
        if len(images) != len(phrases):
            raise ValueError(f"{len(images)} images but {len(phrases)} phrase lists")
        for ps in phrases:
            for phrase in ps:
                if not phrase.strip(" \t\n."):
                    raise ValueError("cannot detect an empty phrase")
                if len(phrase) > MAX_PHRASE_CHARS:
                    raise ValueError(f"phrase is {len(phrase)} characters, over {MAX_PHRASE_CHARS}")
        out: list[list[list[Detection]]] = [[[] for _ in ps] for ps in phrases]
        # wire items: (image index, first phrase index, phrases), at most MAX_PHRASES phrases each
        units = [
            (i, j, list(ps[j : j + MAX_PHRASES]))
            for i, ps in enumerate(phrases)
            for j in range(0, len(ps), MAX_PHRASES)
        ]
        encoded: dict[int, str] = {}
        for i, _, _ in units:
            if i not in encoded:
                encoded[i] = _b64(images[i])
        for span in _chunks([len(encoded[u[0]]) for u in units], self.batch_size, self.max_request_bytes):
            batch = [units[k] for k in span]
            payload: dict[str, Any] = {"items": [{"image": encoded[i], "phrases": ps} for i, _, ps in batch]}
            if self.box_threshold is not None:
                payload["box_threshold"] = self.box_threshold
            if self.text_threshold is not None:
                payload["text_threshold"] = self.text_threshold
            answer = self._client.post("/v1/detect", payload, DetectResponse)
            self.model = answer.model
            if len(answer.results) != len(batch) or any(
                len(r) != len(ps) for r, (_, _, ps) in zip(answer.results, batch, strict=False)
            ):
                raise RemoteBackendError(
                    "the detector service answered a different number of results than it was asked for",
                    retryable=False,
                )
            for (i, j, _), per_phrase in zip(batch, answer.results, strict=True):
                for offset, found in enumerate(per_phrase):
                    out[i][j + offset] = [Detection(d.box, d.score, d.label) for d in found]
        return out


class RemoteJudge(_RemoteBackend):
    """:class:`giqa.ports.QualityJudge` over the iqa_filter service's ``POST /v1/judge``.

    ``batch_size``: items per request (at most :data:`giqa.wire.MAX_JUDGE_ITEMS`); each distinct image
    (by identity) of a request is sent once and its items point at it.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        batch_size: int = MAX_JUDGE_ITEMS,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        backoff_s: float = 0.25,
    ) -> None:
        super().__init__(
            url,
            service="iqa_filter",
            batch_size=batch_size,
            max_batch=MAX_JUDGE_ITEMS,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            max_request_bytes=max_request_bytes,
            backoff_s=backoff_s,
        )

    @property
    def name(self) -> str:
        return f"{self.model or 'remote'} at {self.url}"

    def judge(self, image: Image.Image, box: Box, quality: str) -> Judgement:
        return self.judge_batch([(image, box, quality)])[0]

    def judge_batch(self, items: Sequence[tuple[Image.Image, Box, str]]) -> list[Judgement]:
        out: list[Judgement] = []
        encoded: dict[int, str] = {}  # id(image) -> base64, each image encoded once per call
        start = 0
        while start < len(items):
            images: dict[int, int] = {}  # id(image) -> index in this request
            size, stop = 0, start
            while stop < len(items) and stop - start < self.batch_size:
                image = items[stop][0]
                key = id(image)
                if key not in images:
                    if key not in encoded:
                        encoded[key] = _b64(image)
                    full = len(images) >= MAX_JUDGE_IMAGES
                    if stop > start and (full or size + len(encoded[key]) > self.max_request_bytes):
                        break
                    images[key] = len(images)
                    size += len(encoded[key])
                stop += 1
            out.extend(self._request(items[start:stop], images, encoded))
            start = stop
        return out

    def _request(
        self,
        items: Sequence[tuple[Image.Image, Box, str]],
        images: dict[int, int],
        encoded: dict[int, str],
    ) -> list[Judgement]:
        payload = {
            "images": [encoded[key] for key in images],  # dicts keep insertion order = the indices
            "items": [
                {"image_index": images[id(image)], "box": as_box(box).as_list(), "quality": quality}
                for image, box, quality in items
            ],
        }
        answer = self._client.post("/v1/judge", payload, JudgeResponse)
        self.model = answer.model
        if len(answer.results) != len(items):
            raise RemoteBackendError(
                f"the iqa_filter service answered {len(answer.results)} results for {len(items)} items",
                retryable=False,
            )
        return [Judgement(r.p_yes, r.abstained, r.detail, r.reason) for r in answer.results]
