"""The chat client and the embedded server against the real llama.cpp server with SmolLM2-135M."""

from __future__ import annotations

import time

import pytest

from giqa.llm import JSONRequest, LLMError, LLMOutputError, LLMUnavailableError
from giqa.llm.client import OpenAIChatClient
from giqa.llm.jsonout import validate
from giqa.llm.server import EmbeddedLLMServer, EmbeddedServerError, find_smollm2_gguf, free_port
from giqa.ports import ChatLLM

pytestmark = pytest.mark.llm

COLOUR_SCHEMA = {
    "type": "object",
    "properties": {
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
        "objects": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 3},
    },
    "required": ["colour", "objects"],
    "additionalProperties": False,
}
ASK = [
    {"role": "system", "content": "Answer in JSON."},
    {
        "role": "user",
        "content": "The sky is blue and the grass is green. Which colour is the sky? List the objects.",
    },
]


def test_server_is_up_and_healthy(llm_server: EmbeddedLLMServer, llm_client: OpenAIChatClient) -> None:
    assert llm_server.running and llm_server.url.endswith("/v1")
    assert find_smollm2_gguf().suffix == ".gguf"
    health = llm_client.health()
    assert health.ok, health.detail
    assert isinstance(llm_client, ChatLLM)


def test_chat_answers_text(llm_client: OpenAIChatClient) -> None:
    text = llm_client.chat([{"role": "user", "content": "Say hello."}], max_tokens=16)
    assert isinstance(text, str) and text.strip()


def test_chat_json_returns_schema_valid_json(llm_client: OpenAIChatClient) -> None:
    value = llm_client.chat_json(ASK, COLOUR_SCHEMA, max_tokens=64)
    validate(value, COLOUR_SCHEMA)  # the client validated already; this checks it returned what it checked
    assert value["colour"] in ("red", "green", "blue")


def test_unsatisfiable_schema_is_retried_then_refused(llm_client: OpenAIChatClient) -> None:
    # The grammar llama.cpp builds ignores "not", so the model answers JSON that our validation rejects.
    impossible = {
        "type": "object",
        "properties": {"answer": {"type": "string", "maxLength": 10}},
        "required": ["answer"],
        "not": {"required": ["answer"]},
    }
    before = llm_client.stats()
    with pytest.raises(LLMOutputError, match="no valid answer in 3 tries") as info:
        llm_client.chat_json(ASK, impossible, max_tokens=32)
    assert "schema violation" in info.value.problem
    after = llm_client.stats()
    assert after["output_failures"] - before["output_failures"] == 3
    assert after["requests"] - before["requests"] == 3


def test_map_json_runs_concurrently_in_order(llm_client: OpenAIChatClient) -> None:
    requests = [JSONRequest(ASK, COLOUR_SCHEMA, max_tokens=48) for _ in range(4)]
    results = llm_client.map_json(requests, concurrency=2)
    assert len(results) == 4
    for result in results:
        assert not isinstance(result, LLMError), result
        validate(result, COLOUR_SCHEMA)


def test_dead_url_gives_a_clear_error_fast() -> None:
    llm = OpenAIChatClient(f"http://127.0.0.1:{free_port()}/v1", max_retries=2, backoff_s=0.05)
    started = time.perf_counter()
    with pytest.raises(LLMUnavailableError, match="failed 3 times"):
        llm.chat_json(ASK, COLOUR_SCHEMA)
    assert time.perf_counter() - started < 2.0


def test_server_stops_on_error_inside_the_block() -> None:
    server = EmbeddedLLMServer()
    with pytest.raises(RuntimeError, match="boom"), server:
        assert server.running
        raise RuntimeError("boom")
    assert not server.running


def test_missing_gguf_is_refused_before_starting(tmp_path) -> None:
    with pytest.raises(EmbeddedServerError, match="not found"):
        EmbeddedLLMServer(tmp_path / "nope.gguf").start()


def test_a_crashing_server_reports_its_log(tmp_path) -> None:
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"not a gguf file")
    with pytest.raises(EmbeddedServerError, match="exited with code"):
        EmbeddedLLMServer(fake, startup_timeout_s=60).start()
