"""An OpenAI-compatible chat client (httpx) implementing :class:`giqa.ports.ChatLLM`.

Production talks to vLLM (``response_format`` ``json_schema``); the embedded default is llama.cpp's server,
which wants ``json_object`` + ``schema`` and answers HTTP 500 to ``json_schema`` — hence the ``dialect``
setting. Every structured answer is parsed and validated here, whatever the server promises: a model that
keeps answering garbage ends in :class:`LLMOutputError`, a server that keeps failing in
:class:`LLMUnavailableError`, both after bounded retries.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from giqa.llm.errors import LLMError, LLMOutputError, LLMRequestError, LLMUnavailableError
from giqa.llm.jsonout import JSONOutputError, check_schema, parse_and_validate
from giqa.ports import Health, Message
from giqa.settings import LLMSettings

Dialect = Literal["json_schema", "json_object"]
DIALECTS: tuple[Dialect, ...] = ("json_schema", "json_object")

_MAX_BACKOFF_S = 8.0
_RAW_FEEDBACK_CHARS = 400  # how much of a rejected answer is echoed back to the model on retry
_OUTPUT_RETRY_TEMPERATURE = 0.3  # added per retry: at temperature 0 the same prompt gives the same bad answer


@dataclass(frozen=True, slots=True)
class JSONRequest:
    """One structured-output request for :meth:`OpenAIChatClient.map_json`."""

    messages: Sequence[Message]
    schema: dict[str, Any]
    temperature: float = 0.0
    max_tokens: int = 512


class _Retryable(Exception):
    """Internal: one attempt failed in a way another attempt may fix."""

    def __init__(self, kind: Literal["transport", "output"], message: str, raw: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.raw = raw


class OpenAIChatClient:
    """Chat completions against ``<base_url>/chat/completions`` (``base_url`` ends in ``/v1``).

    Thread-safe: one pooled httpx client is shared by :meth:`map_json`'s worker threads.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "default",
        api_key: str | None = None,
        dialect: Dialect = "json_schema",
        timeout_s: float = 60.0,
        max_retries: int = 3,
        concurrency: int = 4,
        backoff_s: float = 0.25,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"LLM base URL must start with http:// or https://, got {base_url!r}")
        if dialect not in DIALECTS:
            raise ValueError(f"unknown structured-output dialect {dialect!r}; expected one of {DIALECTS}")
        if max_retries < 0 or concurrency < 1 or timeout_s <= 0:
            raise ValueError("max_retries must be >= 0, concurrency >= 1 and timeout_s > 0")
        self.base_url = base_url.rstrip("/")
        self._model = model
        self.dialect: Dialect = dialect
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
            limits=httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2),
        )
        self._lock = threading.Lock()
        self._stats: dict[str, float] = {
            "requests": 0,
            "transport_failures": 0,
            "output_failures": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "seconds": 0.0,
        }

    # ------------------------------------------------------------------------------------ construction

    @classmethod
    def from_settings(cls, settings: LLMSettings, *, url: str | None = None) -> OpenAIChatClient:
        """A client for the configured server; ``url`` overrides ``settings.url`` (an embedded server)."""
        base_url = url or settings.url
        if not base_url:
            raise ValueError(
                "no LLM URL configured (GIQA_LLM__URL); start the embedded server "
                "(giqa.llm.server.EmbeddedLLMServer / `giqa llm serve`) or point to a vLLM server"
            )
        return cls(
            base_url,
            model=settings.model,
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            dialect=settings.dialect,
            timeout_s=settings.timeout_s,
            max_retries=settings.max_retries,
            concurrency=settings.concurrency,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAIChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ the port

    @property
    def model_name(self) -> str:
        return self._model

    def stats(self) -> dict[str, float]:
        """Counters since construction: requests, failures by kind, tokens, seconds spent waiting."""
        with self._lock:
            return dict(self._stats)

    def health(self) -> Health:
        try:
            response = self._http.get("/models")
        except httpx.HTTPError as exc:
            return Health(False, f"{self.base_url} unreachable: {type(exc).__name__}: {exc}")
        if response.status_code != 200:
            return Health(False, f"{self.base_url}/models answered HTTP {response.status_code}")
        try:
            ids = [m.get("id", "?") for m in response.json().get("data", [])]
        except (ValueError, AttributeError):
            return Health(False, f"{self.base_url}/models answered something that is not a model list")
        return Health(True, "models: " + ", ".join(map(str, ids)))

    def chat(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 512) -> str:
        payload = self._payload(messages, temperature, max_tokens)
        return self._with_retries(lambda _attempt: self._complete(payload), what="chat")

    def chat_json(
        self,
        messages: Sequence[Message],
        schema: dict[str, Any],
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
    ) -> Any:
        """Schema-valid JSON from the model, or :class:`LLMOutputError` after the retries."""
        check_schema(schema)
        messages = list(messages)
        feedback: list[Message] = []

        def attempt(number: int) -> Any:
            # After a rejected answer: sample a little differently and tell the model what was wrong.
            temp = temperature + _OUTPUT_RETRY_TEMPERATURE * number if number else temperature
            payload = self._payload(messages + feedback, temp, max_tokens)
            payload["response_format"] = self._response_format(schema)
            raw = self._complete(payload)
            try:
                return parse_and_validate(raw, schema)
            except JSONOutputError as exc:
                with self._lock:
                    self._stats["output_failures"] += 1
                feedback[:] = [
                    {"role": "assistant", "content": raw[:_RAW_FEEDBACK_CHARS]},
                    {"role": "user", "content": f"That answer is invalid ({exc}). Reply with JSON only."},
                ]
                raise _Retryable("output", str(exc), raw) from exc

        return self._with_retries(attempt, what="chat_json")

    def map_json(
        self, requests: Iterable[JSONRequest], *, concurrency: int | None = None
    ) -> list[Any | LLMError]:
        """:meth:`chat_json` over many requests, at most ``concurrency`` in flight, results in input order.

        A request that fails yields its :class:`LLMError` in its slot instead of failing the batch.
        """
        items = list(requests)
        workers = max(1, min(concurrency or self.concurrency, len(items) or 1))

        def one(request: JSONRequest) -> Any | LLMError:
            try:
                return self.chat_json(
                    request.messages,
                    request.schema,
                    temperature=request.temperature,
                    max_tokens=request.max_tokens,
                )
            except LLMError as exc:
                return exc

        if workers == 1:
            return [one(r) for r in items]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="giqa-llm") as pool:
            return list(pool.map(one, items))

    # ------------------------------------------------------------------------------------ internals

    def _payload(self, messages: Sequence[Message], temperature: float, max_tokens: int) -> dict[str, Any]:
        if not messages:
            raise ValueError("a chat request needs at least one message")
        return {
            "model": self._model,
            "messages": list(messages),
            "temperature": float(temperature),
            "max_tokens": int(max_tokens),
        }

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.dialect == "json_object":
            return {"type": "json_object", "schema": schema}
        name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title", "output")))[:64] or "output"
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}

    def _complete(self, payload: dict[str, Any]) -> str:
        """One POST; the answer's text, or _Retryable / LLMRequestError."""
        started = time.perf_counter()
        try:
            response = self._http.post("/chat/completions", json=payload)
        except httpx.TimeoutException as exc:
            raise _Retryable("transport", f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Retryable("transport", f"{type(exc).__name__}: {exc}") from exc
        finally:
            with self._lock:
                self._stats["requests"] += 1
                self._stats["seconds"] += time.perf_counter() - started
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable("transport", f"HTTP {response.status_code}: {self._body_hint(response)}")
        if response.status_code >= 400:
            raise LLMRequestError(
                f"{self.base_url}/chat/completions refused the request: HTTP {response.status_code}: "
                f"{self._body_hint(response)}"
            )
        try:
            data = response.json()
            content = data["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise _Retryable("transport", f"not an OpenAI chat completion: {response.text[:120]!r}") from exc
        usage = data.get("usage") or {}
        with self._lock:
            self._stats["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            self._stats["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        return str(content)

    def _body_hint(self, response: httpx.Response) -> str:
        body = response.text[:300].replace("\n", " ")
        if self.dialect == "json_schema" and "json_schema" in body:
            body += " (llama.cpp servers need dialect 'json_object': set GIQA_LLM__DIALECT=json_object)"
        return body

    def _with_retries(self, attempt: Callable[[int], Any], *, what: str) -> Any:
        last: _Retryable | None = None
        for number in range(self.max_retries + 1):
            try:
                return attempt(number)
            except _Retryable as exc:
                last = exc
                if exc.kind == "transport":
                    with self._lock:
                        self._stats["transport_failures"] += 1
                    if number < self.max_retries:
                        delay = min(_MAX_BACKOFF_S, self.backoff_s * 2**number)
                        time.sleep(delay * (0.5 + random.random() / 2))  # jitter: no thundering herd
        assert last is not None
        tries = self.max_retries + 1
        if last.kind == "output":
            raise LLMOutputError(
                f"{what}: the model at {self.base_url} gave no valid answer in {tries} tries; "
                f"last problem: {last}",
                raw=last.raw,
                problem=str(last),
            )
        raise LLMUnavailableError(f"{what}: {self.base_url} failed {tries} times; last error: {last}")


def dumps_compact(value: Any) -> str:
    """JSON as it is shown to a model in a prompt (compact, unicode kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
