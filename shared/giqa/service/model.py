"""What a model-serving service (detector, iqa_filter, later inference) shares on top of
:mod:`giqa.service.app`: images from the wire and one gate in front of a blocking model.

- :func:`wire_image` turns an item's ``image`` (base64) or ``image_key`` (object store) into an RGB image,
  or a 400 with code ``invalid_image`` naming the item, with the checks of :func:`decode_image` (empty,
  corrupt, truncated, over the pixel limit: the header is read before any pixel is decoded).
- :class:`ModelGate` runs the blocking model call in a worker thread, at most ``model_concurrency`` at a
  time (a torch model on one device must not run two forward passes at once), answers 503 ``overloaded``
  with ``Retry-After`` when more than ``max_queued`` requests already wait, and records Prometheus
  histograms of items per call and model seconds. The permit is taken inside the worker thread and held
  until the model returns, so a request cut off by the service's time limit cannot let a second call start
  beside one still running.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from fastapi import FastAPI
from PIL import Image
from prometheus_client import Histogram
from starlette.concurrency import run_in_threadpool

from giqa.backends.images import ImageError, decode_image
from giqa.infra.storage.base import InvalidKey, NotFound, StorageError
from giqa.service.app import ServiceError
from giqa.settings import ServiceSettings

T = TypeVar("T")

# An object-store reader, key -> bytes: ``ObjectStore.get_bytes`` of :mod:`giqa.infra.storage` (its
# NotFound, InvalidKey and StorageError are answered as 400/400/503-or-502); KeyError or FileNotFoundError
# also mean "not there".
FetchObject = Callable[[str], bytes]

NO_STORE = "no object store configured: send the image inline (base64) instead of image_key"


def wire_image(
    *,
    image: str | None,
    image_key: str | None,
    where: str,
    max_pixels: int,
    fetch: FetchObject | None,
    detail: dict[str, object],
) -> Image.Image:
    """The RGB image an item names; :class:`ServiceError` 400 (``detail`` says which item) otherwise."""
    if image_key is not None:
        if fetch is None:
            raise ServiceError(400, NO_STORE, code="bad_request", detail=detail)
        try:
            data = fetch(image_key)
        except (KeyError, FileNotFoundError, NotFound):
            raise ServiceError(
                400, f"{where}: no object {image_key!r} in the store", code="image_not_found", detail=detail
            ) from None
        except InvalidKey as exc:
            raise ServiceError(400, f"{where}: {exc}", code="bad_request", detail=detail) from None
        except StorageError as exc:  # the store itself failed: the caller may retry when it is transient
            raise ServiceError(
                503 if exc.retryable else 502,
                f"{where}: the object store failed: {exc}",
                code="unavailable" if exc.retryable else "backend_error",
                detail=detail,
                headers={"Retry-After": "1"} if exc.retryable else None,
            ) from None
    else:
        try:
            data = base64.b64decode(image or "", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ServiceError(
                400, f"{where} is not valid base64: {exc}", code="invalid_image", detail=detail
            ) from None
    try:
        return decode_image(data, max_pixels, where=where)
    except ImageError as exc:
        raise ServiceError(400, str(exc), code="invalid_image", detail=detail) from None


class ModelGate:
    """The one way a service calls its blocking model (see the module doc)."""

    def __init__(self, app: FastAPI, settings: ServiceSettings, *, item_buckets: tuple[float, ...]) -> None:
        registry = app.state.metrics.registry
        self._permits = threading.BoundedSemaphore(settings.model_concurrency)
        self._waiting = 0
        self._count_lock = threading.Lock()
        self.max_queued = settings.max_queued
        self.concurrency = settings.model_concurrency
        self.items = Histogram(
            "giqa_model_items", "items per model call", registry=registry, buckets=item_buckets
        )
        self.seconds = Histogram(
            "giqa_model_seconds",
            "seconds per model call (waiting for the model excluded)",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )

    async def run(self, call: Callable[[], T], *, items: int) -> tuple[T, float]:
        """``call()`` in a worker thread under the gate; its result and the model seconds."""
        with self._count_lock:
            if self._waiting >= self.max_queued + self.concurrency:
                raise ServiceError(
                    503,
                    f"the model is busy ({self._waiting} requests in hand); retry shortly",
                    code="overloaded",
                    headers={"Retry-After": "1"},
                )
            self._waiting += 1
        try:
            return await run_in_threadpool(self._call, call, items)
        finally:
            with self._count_lock:
                self._waiting -= 1

    def _call(self, call: Callable[[], T], items: int) -> tuple[T, float]:
        with self._permits:
            started = time.perf_counter()
            result = call()
            seconds = time.perf_counter() - started
        self.items.observe(items)
        self.seconds.observe(seconds)
        return result, seconds


def model_app(
    *,
    name: str,
    settings: ServiceSettings,
    load: Callable[[], object],
    backend: object | None = None,
    description: str = "",
    loading: str = "loading the model",
) -> tuple[FastAPI, Callable[[], object | None]]:
    """A service that owns one model: :func:`giqa.service.create_app` whose lifespan runs ``load`` (in a
    thread, so ``/health`` answers meanwhile) unless ``backend`` was given, and whose ``/ready`` is 503
    (``loading``) until the model is there, then the model's own ``health()``. Returns the app and a getter
    of the model (None while loading)."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from giqa.ports import Health
    from giqa.service.app import create_app

    state: dict[str, object | None] = {"backend": backend}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if state["backend"] is None:
            state["backend"] = await run_in_threadpool(load)
        yield

    def ready() -> Health:
        current = state["backend"]
        return Health(False, loading) if current is None else current.health()  # type: ignore[attr-defined]

    app = create_app(name=name, settings=settings, ready=ready, lifespan=lifespan, description=description)
    return app, lambda: state["backend"]
