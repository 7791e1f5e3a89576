"""The vLLM-forwarding backend against a local HTTP server that checks each request the way vLLM's
OpenAI-compatible server parses it (``ChatCompletionRequest``): the served model name, message roles and
content parts, ``image_url`` data URLs that decode as images, ``logprobs``/``top_logprobs`` (at most 20,
only with ``logprobs``), ``continue_final_message`` only after a final assistant message and never with
``add_generation_prompt``; it refuses anything else with a 400 like vLLM does, and records each request."""

from __future__ import annotations

import base64
import io
import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from PIL import Image

from giqa.client.contract import AskResponse, AssessResponse, ScoreResponse
from giqa.wire import ErrorBody
from http_servers import JoinedHTTPServer
from inference_helpers import API_KEY, b64, png_bytes

pytestmark = pytest.mark.unit

SERVED = "llava-hf/llava-1.5-7b-hf"
ANSWER = "The [red circle](<21, 63>) is blurry and noisy. No."
KNOWN = {
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stream", "seed",
    "stop", "logprobs", "top_logprobs", "response_format", "continue_final_message", "add_generation_prompt",
    "user", "presence_penalty", "frequency_penalty",
}  # fmt: skip
# next-token log-probabilities the fake model gives (tokens written as vLLM detokenizes them)
YES_NO_TOP = [(" No", -0.3), ("\u2581Yes", -1.5), (".", -2.5)]
LEVEL_TOP = [
    (" poor", -0.5),
    (" fair", -1.2),
    ("good", -2.0),
    (" bad", -3.0),
    (" excellent", -4.0),
    (",", -4.5),
]


def check(body: Any) -> str | None:
    """Why vLLM would refuse ``body`` (None: it would accept it)."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    unknown = set(body) - KNOWN
    if unknown:
        return f"unknown fields {sorted(unknown)}"  # vLLM only warns; the test wants none
    if body.get("model") != SERVED:
        return "model"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    for message in messages:
        if message.get("role") not in ("system", "user", "assistant"):
            return f"bad role {message.get('role')!r}"
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            return "content must be a string or a list of parts"
        for part in content:
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                continue
            if part.get("type") == "image_url" and isinstance(part.get("image_url"), dict):
                url = part["image_url"].get("url", "")
                header, _, data = url.partition(",")
                if not (header.startswith("data:image/") and header.endswith(";base64")):
                    return "image_url must be a base64 data URL here (no fetching)"
                Image.open(io.BytesIO(base64.b64decode(data))).verify()
                continue
            return f"unknown content part {part!r}"
    if body.get("top_logprobs") is not None:
        if not body.get("logprobs"):
            return "when using `top_logprobs`, `logprobs` must be set to true"
        if not 0 <= body["top_logprobs"] <= 20:
            return "top_logprobs must be within [0, 20]"
    if body.get("continue_final_message"):
        if body.get("add_generation_prompt", True):
            return "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
        if messages[-1]["role"] != "assistant":
            return "continue_final_message needs a final assistant message"
    if not isinstance(body.get("max_tokens", 1), int) or body.get("max_tokens", 1) < 1:
        return "max_tokens must be a positive integer"
    return None


class FakeVLLM(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []
    fail = False

    def log_message(self, *args: Any) -> None:
        pass

    def reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self.reply(200, {"object": "list", "data": [{"id": SERVED, "object": "model"}]})
        else:
            self.reply(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if type(self).fail:
            self.reply(500, {"object": "error", "message": "engine dead", "type": "InternalServerError"})
            return
        problem = check(body)
        if problem:
            self.reply(400, {"object": "error", "message": problem, "type": "BadRequestError", "code": 400})
            return
        logprobs = None
        content = ANSWER
        if body.get("logprobs"):
            prefix = body["messages"][-1]["content"] if body.get("continue_final_message") else ""
            top = LEVEL_TOP if "quality of the image is" in prefix else YES_NO_TOP
            top = top[: body.get("top_logprobs", 0)]
            content = top[0][0]
            logprobs = {
                "content": [
                    {
                        "token": top[0][0],
                        "logprob": top[0][1],
                        "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top],
                    }
                ]
            }
        self.reply(
            200,
            {
                "id": "cmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": SERVED,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "logprobs": logprobs,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )


@pytest.fixture()
def vllm_url() -> Iterator[str]:
    FakeVLLM.requests = []
    FakeVLLM.fail = False
    server = JoinedHTTPServer(("127.0.0.1", 0), FakeVLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture()
def client(vllm_url: str) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from giqa.settings import InferenceSettings, Settings
    from services.inference.app import create_app_from_settings

    settings = Settings(inference=InferenceSettings(backend="vllm", model=vllm_url, vllm_concurrency=2))
    app = create_app_from_settings(settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        assert app.state.inference.ready.wait(20), app.state.inference.health()
        yield test_client


def test_assess_ask_and_score_are_forwarded_in_vllms_shape(client: Any) -> None:
    image = png_bytes()
    assess = AssessResponse.model_validate(client.post("/v1/assess", json={"image": b64(image)}).json())
    assert assess.model == SERVED and assess.description == ANSWER
    assert [(o.phrase, o.quality) for o in assess.objects] == [("red circle", ["blurry", "noisy"])]

    ask = AskResponse.model_validate(
        client.post("/v1/ask", json={"image": b64(image), "question": "Is the red circle sharp?"}).json()
    )
    yes, no = math.exp(-1.5), math.exp(-0.3)
    assert (
        ask.answer == ANSWER and ask.p_yes == pytest.approx(yes / (yes + no), abs=1e-5) and ask.yes is False
    )

    score = ScoreResponse.model_validate(client.post("/v1/score", json={"image": b64(image)}).json())
    mass = {
        w: math.exp(lp)
        for w, lp in [("poor", -0.5), ("fair", -1.2), ("good", -2.0), ("bad", -3.0), ("excellent", -4.0)]
    }
    total = sum(mass.values())
    assert score.levels == pytest.approx({w: v / total for w, v in mass.items()}, abs=1e-5)

    # every request the fake server saw passed vLLM's checks (a refused one would have failed above)
    logprob_requests = [r for r in FakeVLLM.requests if r.get("logprobs")]
    assert all(check(r) is None for r in FakeVLLM.requests)
    assert all(r["max_tokens"] == 1 and r["top_logprobs"] == 20 for r in logprob_requests)
    continued = [r for r in logprob_requests if r.get("continue_final_message")]
    assert [r["messages"][-1]["content"] for r in continued[-2:]] == [  # (the first: the warm-up)
        "The [red circle](<21, 63>) is blurry and noisy.",  # P(Yes) is read where the answer says "No"
        "The quality of the image is",
    ]


def test_a_failing_vllm_server_is_a_502_and_the_service_goes_on(client: Any) -> None:
    FakeVLLM.fail = True
    response = client.post("/v1/score", json={"image": b64(png_bytes())})
    assert response.status_code == 502
    error = ErrorBody.model_validate(response.json()).error
    assert error.code == "backend_error" and "engine dead" in error.message
    FakeVLLM.fail = False
    assert client.post("/v1/score", json={"image": b64(png_bytes())}).status_code == 200


def test_the_checker_refuses_what_vllm_refuses() -> None:
    good = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
    assert check(good) is None
    assert "logprobs" in (check(good | {"top_logprobs": 5}) or "")
    assert "Cannot set both" in (check(good | {"continue_final_message": True}) or "")
    assert "final assistant" in (
        check(good | {"continue_final_message": True, "add_generation_prompt": False}) or ""
    )
    assert "unknown fields" in (check(good | {"prompt_logprobs": 1, "foo": 1}) or "")


@pytest.mark.models
def test_the_vllm_backend_pointed_at_this_service_gives_the_same_answers(served, inference_client) -> None:
    """This service speaks the vLLM dialect the backend uses (``logprobs``, ``continue_final_message``),
    so one inference service can front another: the answers match the in-process model's."""
    from pydantic import SecretStr
    from starlette.testclient import TestClient

    from giqa.settings import InferenceSettings, Settings
    from services.inference.app import create_app_from_settings

    settings = Settings(
        inference=InferenceSettings(
            backend="vllm", model=served.url + "/v1", api_key=SecretStr(API_KEY), max_new_tokens=96
        )
    )
    app = create_app_from_settings(settings)
    image = b64(png_bytes())
    question = {"image": image, "question": "Is the image noisy?"}
    with TestClient(app, raise_server_exceptions=False) as front:
        assert app.state.inference.ready.wait(30), app.state.inference.health()
        for path, body in [
            ("/v1/assess", {"image": image}),
            ("/v1/ask", question),
            ("/v1/score", {"image": image}),
        ]:
            forwarded = front.post(path, json=body)
            direct = inference_client.post(path, json=body)
            assert forwarded.status_code == direct.status_code == 200, forwarded.text
            a, b = forwarded.json(), direct.json()
            if path == "/v1/score":  # the forwarded levels come from the served top 20 tokens only
                from giqa.backends.images import decode_image
                from services.inference import answers
                from services.inference.engine import TOP_LOGPROBS, _token_word

                engine, _ = app.state.inference.require_engine()
                item = (decode_image(png_bytes()), answers.SCORE_QUESTION, answers.SCORE_PREFIX)
                seen = {_token_word(token) for token, _ in engine.top_tokens([item], TOP_LOGPROBS)[0]}
                seen &= set(b["levels"])
                # a level word outside the top 20 is invisible to a vLLM client: the service's own Q-Align
                # reading over the visible ones (renormalized; 1/5 each when none is) is what it must give
                _, expected = answers.qalign_score({w: b["levels"][w] for w in seen})
                assert a["levels"] == pytest.approx(expected, abs=1e-3)
            elif path == "/v1/ask":
                assert a["answer"] == b["answer"] and a["p_yes"] == pytest.approx(b["p_yes"], abs=1e-4)
            else:
                assert a["description"] == b["description"] and a["objects"] == b["objects"]
