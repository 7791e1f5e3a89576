"""What every HTTP service shares: the app factory, the one error shape, keys, limits and metrics.

A service (``services/<name>/app.py``) is a thin FastAPI app made by :func:`create_app`, which gives it:

- ``GET /health`` (the process is alive), ``GET /ready`` (its backend is loaded and its stores answer: the
  service's own ``ready`` callable decides; 503 until then) and ``GET /metrics`` (Prometheus text: requests
  by route and status, latency histogram, errors by code, plus whatever the service registers on
  ``app.state.metrics``);
- one JSON error shape (:class:`giqa.wire.ErrorBody`) for every failure: validation errors (422), bad input
  the service raises as :class:`ServiceError`, 404/405 from routing, a body over the size limit (413), a
  request over the time limit (504) and any unexpected exception (500, logged with its traceback, the
  message to the client says only that it failed and the request id);
- an ``X-Request-ID`` on every response (the caller's, when it sent a sane one);
- bearer keys by scope (:func:`require_key`): ``api`` for callers of the model endpoints, ``operator`` for
  runs and jobs; operator keys are accepted for ``api`` too. With no keys configured for a scope, the
  scope is open (development); keys are compared in constant time and never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import giqa
from giqa.ports import Health
from giqa.settings import ServiceSettings
from giqa.wire import ErrorBody, ErrorInfo, HealthBody

log = logging.getLogger("giqa.service")

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "bad_request",
    429: "too_many_requests",
    500: "internal",
    502: "backend_error",
    503: "unavailable",
    504: "timeout",
}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ServiceError(Exception):
    """A failure a handler answers with: HTTP status, stable code, one-sentence message."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.message = message
        self.detail = detail
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    request_id: str = "",
    detail: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorInfo(code=code, message=message, detail=detail, request_id=request_id))
    out = dict(headers or {})
    if request_id:
        out["X-Request-ID"] = request_id
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=out)


class ServiceMetrics:
    """The Prometheus registry of one app (one per app, so several apps can live in one test process)."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.service = service
        self.requests = Counter(
            "giqa_http_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "giqa_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.errors = Counter("giqa_http_errors", "error answers by code", ["code"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StateGauge:
    """A gauge by ``state`` (or ``label``) read when Prometheus scrapes (jobs by state from the database).

    ``counts`` answers ``{state: n}``; when it fails (the database is away) the gauge is left out of that
    scrape rather than failing ``/metrics`` (``/ready`` says what is wrong)."""

    def __init__(
        self, name: str, documentation: str, counts: Callable[[], dict[str, int]], *, label: str = "state"
    ) -> None:
        self.name, self.documentation, self.counts, self.label = name, documentation, counts, label

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            counts = self.counts()
        except Exception as exc:  # any store failure: no sample this time
            log.warning("metric %s not collected: %s", self.name, exc)
            return
        family = GaugeMetricFamily(self.name, self.documentation, labels=[self.label])
        for state, n in counts.items():
            family.add_metric([state], n)
        yield family

    def describe(self) -> Iterable[Any]:
        return []  # read at scrape time only (no database call when the collector is registered)


def _body_too_large(limit: int) -> str:
    return f"request body is over the limit of {limit:,} bytes (setting service.max_body_bytes)"


class _Guard:
    """Pure-ASGI middleware: request id, body-size limit (declared and streamed), time limit, metrics.

    The body limit is enforced while the body streams in, so a client that lies about (or omits)
    Content-Length is cut off at the limit too, before the handler holds the whole body in memory.
    """

    def __init__(self, app: ASGIApp, *, settings: ServiceSettings, metrics: ServiceMetrics) -> None:
        self.app = app
        self.limit = settings.max_body_bytes
        self.timeout = settings.request_timeout_s
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "sent": False, "overflow": False}

        async def reply(status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
            response = error_response(status, code, message, request_id=request_id, headers=extra)
            self.metrics.errors.labels(code).inc()
            await response(scope, receive, send)
            state["status"], state["sent"] = status, True

        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            if declared.isdigit():
                await reply(413, "payload_too_large", _body_too_large(self.limit))
            else:
                await reply(400, "bad_request", "Content-Length is not a number")
            self._observe(scope, started, state["status"])
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    state["overflow"] = True
                    raise _TooLarge  # the framework may turn this into its own 400: the 413 below wins
            return message

        async def tracked_send(message: Message) -> None:
            if state.get("overflow"):
                return  # whatever the handler made of the cut-off body, the answer is 413
            if message["type"] == "http.response.start":
                state["status"], state["sent"] = message["status"], True
                headers_out = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in headers_out):
                    headers_out.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers_out
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, limited_receive, tracked_send), self.timeout)
        except _TooLarge:
            pass
        except TimeoutError:
            log.warning(
                "request %s %s timed out after %.0f s", scope.get("method"), scope.get("path"), self.timeout
            )
            if not state["sent"]:
                await reply(
                    504,
                    "timeout",
                    f"the request took longer than {self.timeout:g} s (setting service.request_timeout_s)",
                )
        if state.get("overflow") and not state["sent"]:
            await reply(413, "payload_too_large", _body_too_large(self.limit))
        self._observe(scope, started, state["status"])

    def _observe(self, scope: Scope, started: float, status: int) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or ("unmatched" if status == 404 else scope.get("path", "?"))
        if path in ("/metrics", "/health"):
            return
        self.metrics.requests.labels(path, scope.get("method", "?"), str(status)).inc()
        self.metrics.latency.labels(path).observe(time.perf_counter() - started)


class _TooLarge(Exception):
    pass


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


def _validation_detail(errors: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors without the offending input (it may be a huge payload or a secret)."""
    return [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": err.get("type", ""),
        }
        for err in errors
    ]


def create_app(
    *,
    name: str,
    settings: ServiceSettings,
    ready: Callable[[], Health] | None = None,
    description: str = "",
    lifespan: Any = None,
    version: str | None = None,
) -> FastAPI:
    """A FastAPI app with the shared endpoints, error shape, limits and metrics (see the module doc)."""
    app = FastAPI(
        title=f"giqa {name}",
        description=description,
        version=version or str(giqa.__version__),
        lifespan=lifespan,
        responses={
            422: {"model": ErrorBody, "description": "the request does not match the schema"},
            500: {"model": ErrorBody, "description": "an unexpected failure (see the logs by request id)"},
        },
    )
    metrics = ServiceMetrics(name)
    app.state.metrics = metrics
    app.state.service_name = name
    app.state.settings = settings

    def handled(request: Request, status: int, code: str, message: str, **kw: Any) -> JSONResponse:
        metrics.errors.labels(code).inc()
        return error_response(status, code, message, request_id=_request_id(request), **kw)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return handled(request, exc.status, exc.code, exc.message, detail=exc.detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = _validation_detail(exc.errors())
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        where = ".".join(p for p in first["loc"] if p not in ("body",)) or "request"
        return handled(request, 422, "bad_request", f"{where}: {first['msg']}", detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return handled(
            request,
            exc.status_code,
            STATUS_CODES.get(exc.status_code, "error"),
            message,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s failed", _request_id(request))
        return handled(
            request, 500, "internal", f"the {name} service failed on this request ({type(exc).__name__})"
        )

    @app.get("/health", response_model=HealthBody, tags=["ops"], summary="the process is alive")
    def health() -> HealthBody:
        return HealthBody(status="ok", service=name)

    @app.get(
        "/ready",
        response_model=HealthBody,
        tags=["ops"],
        summary="backend loaded and stores reachable",
        responses={503: {"model": HealthBody}},
    )
    def ready_endpoint() -> Any:
        state = ready() if ready is not None else Health(True)
        body = HealthBody(status="ok" if state.ok else "unavailable", service=name, detail=state.detail)
        return JSONResponse(body.model_dump(), status_code=200 if state.ok else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response)
    def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_Guard, settings=settings, metrics=metrics)
    return app


def require_key(scope: Literal["api", "operator"], settings: ServiceSettings) -> Callable[[Request], None]:
    """A FastAPI dependency that lets a request in only with a bearer key of ``scope`` (see module doc)."""
    operator = [k.get_secret_value().encode() for k in settings.operator_keys]
    keys = (
        operator
        if scope == "operator"
        else [k.get_secret_value().encode() for k in settings.api_keys] + operator
    )

    def check(request: Request) -> None:
        if not keys:
            return
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        given = token.strip().encode()
        # compare against every key (no early exit) so the time taken does not tell which key is near
        matched = False
        for key in keys:
            matched |= hmac.compare_digest(given, key)
        if kind.lower() != "bearer" or not given or not matched:
            raise ServiceError(
                401,
                "a valid API key is required: send 'Authorization: Bearer <key>'"
                if not given
                else f"the key is not valid for {scope} endpoints",
                code="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
