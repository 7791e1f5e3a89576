"""The inference service as a real uvicorn subprocess (``python -m giqa.cli.serve_inference``): the official
``openai`` client talking to it, and overload (a tiny queue) answered with 503 + Retry-After while it keeps
serving."""

from __future__ import annotations

import base64
import concurrent.futures

import httpx
import pytest

from giqa.wire import ErrorBody
from inference_helpers import API_KEY, Served, b64, png_bytes

pytestmark = pytest.mark.models

IMAGE = png_bytes()


def test_the_openai_client_works_unchanged(served: Served) -> None:
    from openai import AuthenticationError, OpenAI

    client = OpenAI(base_url=served.url + "/v1", api_key=API_KEY, max_retries=0, timeout=30)
    models = client.models.list()
    assert [m.id for m in models.data] == ["giqa-demo-vlm"]
    completion = client.chat.completions.create(
        model="giqa-demo-vlm",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(IMAGE)}},
                    {"type": "text", "text": "Is the image noisy?"},
                ],
            }
        ],
        max_tokens=32,
        temperature=0,
    )
    answer = completion.choices[0].message.content
    assert answer and completion.model == "giqa-demo-vlm" and completion.usage.completion_tokens > 0
    ask = httpx.post(
        served.url + "/v1/ask",
        json={"image": b64(IMAGE), "question": "Is the image noisy?", "max_new_tokens": 32},
        headers={"Authorization": f"Bearer {API_KEY}"},
    ).json()
    assert ask["answer"] == answer
    # the next token's distribution, the way vLLM clients read scores
    first = client.chat.completions.create(
        model="giqa-demo-vlm",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(IMAGE)}},
                    {"type": "text", "text": "Is the image noisy?"},
                ],
            }
        ],
        max_tokens=1,
        logprobs=True,
        top_logprobs=5,
    )
    token = first.choices[0].logprobs.content[0]
    values = [t.logprob for t in token.top_logprobs]
    assert (
        len(values) == 5
        and values == sorted(values, reverse=True)
        and token.token == token.top_logprobs[0].token
    )
    assert answer.startswith(first.choices[0].message.content.strip())  # greedy: the top token comes first
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=served.url + "/v1", api_key="wrong", max_retries=0).models.list()


def test_overload_answers_503_with_retry_after_and_the_service_keeps_serving(served: Served) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {"image": base64.b64encode(IMAGE).decode(), "max_new_tokens": 256}

    def one(_: int) -> httpx.Response:
        return httpx.post(served.url + "/v1/assess", json=body, headers=headers, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(one, range(16)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 3 and statuses.count(503) >= 1, statuses
    for response in responses:
        if response.status_code == 503:
            error = ErrorBody.model_validate(response.json()).error
            assert error.code == "overloaded" and "queue is full" in error.message
            assert int(response.headers["retry-after"]) >= 1
    assert one(0).status_code == 200
    metrics = httpx.get(served.url + "/metrics").text
    assert (
        "giqa_inference_rejected_total" in metrics and 'giqa_http_errors_total{code="overloaded"}' in metrics
    )
