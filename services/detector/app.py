"""The detector service: ``POST /v1/detect`` runs Grounding DINO over many images × phrases per call.

A thin app over :func:`giqa.backends.factory.make_detector` (:func:`load_backend`: built once, in the
lifespan or by ``giqa serve`` before the port opens, from
``settings.pipeline``: ``detector_model`` or the shipped demo detector, thresholds, NMS, batch size,
device) and the shared scaffolding of :mod:`giqa.service` (error shape, keys, limits, ``/health``,
``/ready`` — 200 once the model is loaded —, ``/metrics``). The contract is :class:`giqa.wire.DetectRequest`
/ :class:`giqa.wire.DetectResponse`: JSON with base64 images (internal service: no multipart). Its client is
:class:`giqa.backends.remote.RemoteDetector`.

Run it with ``giqa serve detector`` or ``uvicorn services.detector.app:app --factory`` (``app()`` builds the
app from :func:`giqa.settings.get_settings`, i.e. the ``GIQA_`` environment).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from giqa.ports import Detector
from giqa.service import ServiceError, require_key
from giqa.service.model import FetchObject, ModelGate, model_app, wire_image
from giqa.settings import Settings, get_settings
from giqa.wire import (
    MAX_DETECT_ITEMS,
    DetectionOut,
    DetectRequest,
    DetectResponse,
    ErrorBody,
)

NAME = "detector"


def load_backend(settings: Settings) -> Detector:
    """The service's detector, through the composition root (:func:`giqa.backends.factory.make_detector`).
    The service runs the model itself: a ``detector_url`` in its settings must not make it a client."""
    from giqa.backends.factory import make_detector

    detector: Detector = make_detector(settings.pipeline.model_copy(update={"detector_url": None}))
    return detector


def create_app_from_settings(
    settings: Settings,
    *,
    backend: Detector | None = None,
    fetch_object: FetchObject | None = None,
) -> FastAPI:
    """The detector app. ``backend``: a detector already built (else :func:`load_backend` at start-up, in
    the lifespan); ``fetch_object``: the object-store reader that makes ``image_key`` items work (else
    they get 400)."""
    app, current = model_app(
        name=NAME,
        settings=settings.service,
        load=lambda: load_backend(settings),
        backend=backend,
        description="Open-vocabulary detection (Grounding DINO): boxes for each phrase in each image.",
        loading="loading the model",
    )
    gate = ModelGate(app, settings.service, item_buckets=(1, 2, 4, 8, 16, 32, MAX_DETECT_ITEMS))
    max_pixels = settings.pipeline.max_image_pixels

    @app.post(
        "/v1/detect",
        response_model=DetectResponse,
        tags=["detector"],
        dependencies=[Depends(require_key("api", settings.service))],
        responses={
            400: {"model": ErrorBody, "description": "an image that cannot be used (detail.item says which)"},
            401: {"model": ErrorBody},
            503: {"model": ErrorBody, "description": "overloaded or still loading; retry after Retry-After"},
        },
        summary="boxes for each phrase in each image",
    )
    async def detect(body: DetectRequest) -> DetectResponse:
        backend = current()
        if backend is None:  # pragma: no cover - requests only arrive after the lifespan
            raise ServiceError(503, "the detector is still loading", code="unavailable")

        def decode() -> list[Any]:
            return [
                wire_image(
                    image=item.image,
                    image_key=item.image_key,
                    where=f"items[{k}].image",
                    max_pixels=max_pixels,
                    fetch=fetch_object,
                    detail={"item": k},
                )
                for k, item in enumerate(body.items)
            ]

        images = await run_in_threadpool(decode)
        phrases = [item.phrases for item in body.items]
        # thresholds of the request, passed only when given (the port's detect_batch has none)
        overrides = {
            name: value
            for name, value in (
                ("box_threshold", body.box_threshold),
                ("text_threshold", body.text_threshold),
            )
            if value is not None
        }
        results, seconds = await gate.run(
            lambda: backend.detect_batch(images, phrases, **overrides), items=len(images)
        )
        return DetectResponse(
            results=[
                [[DetectionOut(box=d.box, score=d.score, label=d.label) for d in found] for found in item]
                for item in results
            ],
            model=str(getattr(backend, "model_path", type(backend).__name__)),
            seconds=seconds,
        )

    return app


def app() -> FastAPI:
    """The app from the environment's settings: ``uvicorn services.detector.app:app --factory``."""
    return create_app_from_settings(get_settings())
