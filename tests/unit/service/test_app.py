"""The shared service scaffolding (giqa.service): error shape, keys, body and time limits, metrics."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import Depends
from pydantic import BaseModel, SecretStr
from starlette.testclient import TestClient

from giqa.ports import Health
from giqa.service import ServiceError, create_app, require_key
from giqa.settings import ServiceSettings
from giqa.wire import ErrorBody

pytestmark = pytest.mark.unit


class Echo(BaseModel):
    n: int


def make(settings: ServiceSettings | None = None, ready_ok: bool = True) -> TestClient:
    settings = settings or ServiceSettings(max_body_bytes=2048, request_timeout_s=0.5)
    app = create_app(
        name="demo",
        settings=settings,
        ready=lambda: Health(ready_ok, "model loaded" if ready_ok else "loading"),
    )

    @app.post("/v1/echo", dependencies=[Depends(require_key("api", settings))])
    def echo(body: Echo) -> dict[str, int]:
        if body.n < 0:
            raise ServiceError(400, "n must not be negative", code="bad_request")
        if body.n == 13:
            raise RuntimeError("secret internal detail")
        return {"n": body.n}

    @app.post("/v1/ops", dependencies=[Depends(require_key("operator", settings))])
    def ops() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/v1/slow")
    async def slow() -> dict[str, str]:
        import asyncio

        await asyncio.sleep(5)
        return {"late": "yes"}

    return TestClient(app, raise_server_exceptions=False)


def error_of(response: httpx.Response) -> dict:
    body = ErrorBody.model_validate(response.json())  # every failure has the one shape
    assert body.error.request_id == response.headers["x-request-id"]
    return body.error.model_dump()


def test_health_ready_and_request_id_echo() -> None:
    client = make()
    assert client.get("/health").json() == {"status": "ok", "service": "demo", "detail": ""}
    assert client.get("/ready").status_code == 200
    assert make(ready_ok=False).get("/ready").status_code == 503
    response = client.post("/v1/echo", json={"n": 2}, headers={"X-Request-ID": "abc-123"})
    assert response.json() == {"n": 2} and response.headers["x-request-id"] == "abc-123"
    # a request id that could inject into logs is replaced by a fresh one
    odd = client.post("/v1/echo", json={"n": 2}, headers={"X-Request-ID": "a b\tc"})
    assert odd.headers["x-request-id"] != "a b\tc" and len(odd.headers["x-request-id"]) == 16


@pytest.mark.parametrize(
    ("payload", "status", "code", "fragment"),
    [
        ({"n": "x"}, 422, "bad_request", "n:"),
        ({}, 422, "bad_request", "n: Field required"),
        ({"n": -1}, 400, "bad_request", "must not be negative"),
        ({"n": 13}, 500, "internal", "RuntimeError"),
    ],
)
def test_failures_share_one_shape(payload: dict, status: int, code: str, fragment: str) -> None:
    response = make().post("/v1/echo", json=payload)
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code and fragment in error["message"]
    assert "secret internal detail" not in response.text  # internals stay in the log


def test_routing_errors_and_bad_json_share_the_shape() -> None:
    client = make()
    assert error_of(client.get("/nope"))["code"] == "not_found"
    assert error_of(client.get("/v1/echo"))["code"] == "method_not_allowed"
    bad = client.post("/v1/echo", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 422 and error_of(bad)["code"] == "bad_request"


def test_body_limit_declared_and_streamed() -> None:
    client = make()
    big = b'{"n": 1, "pad": "' + b"x" * 4096 + b'"}'
    response = client.post("/v1/echo", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "max_body_bytes" in error_of(response)["message"]

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        for _ in range(10):
            yield b"x" * 512

    streamed = client.post("/v1/echo", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert client.post("/v1/echo", json={"n": 3}).status_code == 200  # still serving


def test_time_limit_answers_504_and_frees_the_request() -> None:
    client = make()
    started = time.perf_counter()
    response = client.get("/v1/slow")
    assert response.status_code == 504 and error_of(response)["code"] == "timeout"
    assert time.perf_counter() - started < 3


def test_keys_by_scope() -> None:
    settings = ServiceSettings(api_keys=[SecretStr("caller-key")], operator_keys=[SecretStr("op-key")])
    client = make(settings)
    missing = client.post("/v1/echo", json={"n": 1})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in error_of(missing)["message"]
    wrong = client.post("/v1/echo", json={"n": 1}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "nope" not in wrong.text
    assert (
        client.post("/v1/echo", json={"n": 1}, headers={"Authorization": "Bearer caller-key"}).status_code
        == 200
    )
    assert (
        client.post("/v1/echo", json={"n": 1}, headers={"Authorization": "Bearer op-key"}).status_code == 200
    )
    # a caller key does not open operator endpoints
    assert client.post("/v1/ops", headers={"Authorization": "Bearer caller-key"}).status_code == 401
    assert client.post("/v1/ops", headers={"Authorization": "Bearer op-key"}).status_code == 200
    assert client.post("/v1/ops", headers={"Authorization": "Basic op-key"}).status_code == 401


def test_no_keys_configured_is_open() -> None:
    assert make().post("/v1/ops").status_code == 200


def test_metrics_count_requests_and_errors() -> None:
    client = make()
    client.post("/v1/echo", json={"n": 1})
    client.post("/v1/echo", json={"n": -1})
    client.get("/nope")
    text = client.get("/metrics").text
    assert 'giqa_http_requests_total{method="POST",route="/v1/echo",status="200"} 1.0' in text
    assert 'giqa_http_requests_total{method="POST",route="/v1/echo",status="400"} 1.0' in text
    assert 'giqa_http_errors_total{code="not_found"} 1.0' in text
    assert 'giqa_http_request_seconds_bucket{le="0.005",route="/v1/echo"}' in text
