"""The chat client against a small real HTTP server whose answers the test scripts.

The client is the part under test: retries, backoff, error classes, payload dialects, concurrency. The
server is a real socket server (http.server), so httpx, timeouts and status handling run for real.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from giqa.llm import (
    JSONRequest,
    LLMError,
    LLMOutputError,
    LLMRequestError,
    LLMUnavailableError,
    OpenAIChatClient,
)
from giqa.llm.server import free_port
from giqa.ports import ChatLLM
from giqa.settings import LLMSettings
from http_servers import JoinedHTTPServer

pytestmark = pytest.mark.unit

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["answer"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "user", "content": "Is it?"}]

Reply = tuple[int, str] | Callable[[dict[str, Any]], tuple[int, str]]


def completion(content: str) -> tuple[int, str]:
    body = {
        "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    }
    return 200, json.dumps(body)


class Scripted:
    """A real HTTP server answering each POST with the next scripted reply (the last one repeats)."""

    def __init__(self, replies: list[Reply], delay_s: float = 0.0) -> None:
        self.replies = replies
        self.delay_s = delay_s
        self.payloads: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, json.dumps({"data": [{"id": "scripted"}]}))

            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with scripted.lock:
                    index = len(scripted.payloads)
                    scripted.payloads.append(payload)
                reply = scripted.replies[min(index, len(scripted.replies) - 1)]
                if scripted.delay_s:
                    time.sleep(scripted.delay_s)
                status, body = reply(payload) if callable(reply) else reply
                self._send(status, body)

        self.server = JoinedHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def make(replies: list[Reply], delay_s: float = 0.0) -> Scripted:
        server = Scripted(replies, delay_s).__enter__()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.__exit__()


def client(url: str, **kwargs: Any) -> OpenAIChatClient:
    kwargs.setdefault("backoff_s", 0.01)
    kwargs.setdefault("max_retries", 2)
    return OpenAIChatClient(url, **kwargs)


# ----------------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "kwargs",
    [{"base_url": "localhost:8000/v1"}, {"base_url": "http://x/v1", "dialect": "xml"},
     {"base_url": "http://x/v1", "concurrency": 0}, {"base_url": "http://x/v1", "max_retries": -1}],
)  # fmt: skip
def test_bad_construction_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        OpenAIChatClient(**kwargs)


def test_from_settings_without_url_explains_what_to_do() -> None:
    with pytest.raises(ValueError, match="embedded server"):
        OpenAIChatClient.from_settings(LLMSettings())


def test_from_settings_carries_every_knob() -> None:
    settings = LLMSettings(url="http://h:1/v1/", model="llama3", dialect="json_object", max_retries=5)
    made = OpenAIChatClient.from_settings(settings)
    assert (made.base_url, made.model_name, made.dialect, made.max_retries) == (
        "http://h:1/v1", "llama3", "json_object", 5,
    )  # fmt: skip
    assert isinstance(made, ChatLLM)


# ----------------------------------------------------------------------------------- happy paths


def test_chat_returns_the_text_and_counts_tokens(scripted: Callable[..., Scripted]) -> None:
    server = scripted([completion("Hello there.")])
    llm = client(server.url, model="m1")
    assert llm.chat(MESSAGES, temperature=0.0, max_tokens=9) == "Hello there."
    sent = server.payloads[0]
    assert sent["model"] == "m1" and sent["max_tokens"] == 9 and sent["messages"] == MESSAGES
    assert "response_format" not in sent
    assert llm.stats()["prompt_tokens"] == 7 and llm.stats()["completion_tokens"] == 3


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        ("json_object", {"type": "json_object", "schema": SCHEMA}),
        (
            "json_schema",
            {
                "type": "json_schema",
                "json_schema": {"name": "Verdict", "schema": SCHEMA | {"title": "Verdict"}, "strict": True},
            },
        ),
    ],
)
def test_structured_output_dialects(scripted: Callable[..., Scripted], dialect: str, expected: dict) -> None:
    server = scripted([completion('{"answer": "yes"}')])
    schema = SCHEMA | {"title": "Verdict"} if dialect == "json_schema" else SCHEMA
    assert client(server.url, dialect=dialect).chat_json(MESSAGES, schema) == {"answer": "yes"}
    assert server.payloads[0]["response_format"] == expected


def test_health_lists_models(scripted: Callable[..., Scripted]) -> None:
    health = client(scripted([completion("x")]).url).health()
    assert health.ok and "scripted" in health.detail


# ----------------------------------------------------------------------------------- retries


def test_garbage_then_valid_is_retried_with_feedback(scripted: Callable[..., Scripted]) -> None:
    server = scripted(
        [completion("I think yes!"), completion('{"answer": "maybe"}'), completion('{"answer": "no"}')]
    )
    llm = client(server.url)
    assert llm.chat_json(MESSAGES, SCHEMA) == {"answer": "no"}
    assert len(server.payloads) == 3
    # retries sample differently and tell the model what was wrong
    assert server.payloads[0]["temperature"] == 0.0 and server.payloads[1]["temperature"] > 0.0
    assert "invalid" in server.payloads[2]["messages"][-1]["content"]
    assert "answer" in server.payloads[2]["messages"][-1]["content"]  # names the violation's place
    assert llm.stats()["output_failures"] == 2


def test_persistent_garbage_is_refused_with_a_clear_error(scripted: Callable[..., Scripted]) -> None:
    server = scripted([completion("<<not json at all>>")])
    with pytest.raises(LLMOutputError, match="no valid answer in 3 tries") as info:
        client(server.url, max_retries=2).chat_json(MESSAGES, SCHEMA)
    assert info.value.raw == "<<not json at all>>"
    assert "no complete JSON" in info.value.problem
    assert len(server.payloads) == 3


def test_schema_violation_is_refused(scripted: Callable[..., Scripted]) -> None:
    server = scripted([completion('{"answer": "perhaps", "extra": 1}')])
    with pytest.raises(LLMOutputError, match="schema violation"):
        client(server.url, max_retries=1).chat_json(MESSAGES, SCHEMA)


def test_server_errors_are_retried_then_succeed(scripted: Callable[..., Scripted]) -> None:
    server = scripted([(503, "busy"), (500, "oops"), completion('{"answer": "yes"}')])
    llm = client(server.url)
    assert llm.chat_json(MESSAGES, SCHEMA) == {"answer": "yes"}
    assert llm.stats()["transport_failures"] == 2


def test_persistent_5xx_is_unavailable_and_hints_the_dialect(scripted: Callable[..., Scripted]) -> None:
    server = scripted([(500, '{"error": "response_format json_schema not supported"}')])
    with pytest.raises(LLMUnavailableError, match="GIQA_LLM__DIALECT=json_object"):
        client(server.url, dialect="json_schema").chat_json(MESSAGES, SCHEMA)
    assert len(server.payloads) == 3


def test_non_openai_body_is_retried_as_a_server_fault(scripted: Callable[..., Scripted]) -> None:
    server = scripted([(200, "<html>proxy error</html>"), completion("fine")])
    assert client(server.url).chat(MESSAGES) == "fine"


def test_4xx_is_not_retried(scripted: Callable[..., Scripted]) -> None:
    server = scripted([(400, '{"error": "context too long"}')])
    with pytest.raises(LLMRequestError, match="HTTP 400.*context too long"):
        client(server.url).chat_json(MESSAGES, SCHEMA)
    assert len(server.payloads) == 1


def test_timeouts_are_retried_then_reported(scripted: Callable[..., Scripted]) -> None:
    server = scripted([completion('{"answer": "yes"}')], delay_s=0.5)
    started = time.perf_counter()
    with pytest.raises(LLMUnavailableError, match="timed out"):
        client(server.url, timeout_s=0.1, max_retries=1).chat(MESSAGES)
    assert time.perf_counter() - started < 2.0


def test_dead_url_fails_fast_and_clearly() -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    llm = client(dead, max_retries=2)
    started = time.perf_counter()
    with pytest.raises(LLMUnavailableError, match=r"127\.0\.0\.1.*failed 3 times.*Connect"):
        llm.chat(MESSAGES)
    assert time.perf_counter() - started < 2.0
    assert not llm.health().ok


# ----------------------------------------------------------------------------------- concurrency


def test_map_json_keeps_order_bounds_concurrency_and_isolates_failures(
    scripted: Callable[..., Scripted],
) -> None:
    in_flight = {"now": 0, "max": 0}
    lock = threading.Lock()

    def reply(payload: dict[str, Any]) -> tuple[int, str]:
        with lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        time.sleep(0.05)
        with lock:
            in_flight["now"] -= 1
        word = payload["messages"][0]["content"]
        return completion(json.dumps({"answer": word}) if word in ("yes", "no") else "garbage")

    server = scripted([reply])
    words = ["yes", "no", "bad", "yes", "no", "no", "yes", "bad"]
    requests = [JSONRequest([{"role": "user", "content": w}], SCHEMA) for w in words]
    results = client(server.url, max_retries=0).map_json(requests, concurrency=3)
    for word, result in zip(words, results, strict=True):
        if word == "bad":
            assert isinstance(result, LLMOutputError)
        else:
            assert not isinstance(result, LLMError) and result == {"answer": word}
    assert 2 <= in_flight["max"] <= 3


def test_map_json_of_nothing_is_nothing(scripted: Callable[..., Scripted]) -> None:
    assert client(scripted([completion("x")]).url).map_json([]) == []
