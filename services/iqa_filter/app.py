"""The iqa_filter service: ``POST /v1/judge`` answers "Is the image quality <word>?" for many crops per call.

A thin app over :func:`giqa.backends.factory.make_judge` (:func:`load_backend`: built once, in the
lifespan or by ``giqa serve`` before the port opens, from
``settings.pipeline``: ``judge_backend`` classical or qinstruct, its model, batch size, device) and the
shared scaffolding of :mod:`giqa.service`. The contract is :class:`giqa.wire.JudgeRequest` /
:class:`giqa.wire.JudgeResponse`: JSON with base64 images (internal service: no multipart); an image is
sent once in ``images`` and its items point at it by ``image_index`` (or an item carries its own ``image``
or ``image_key``). Its client is :class:`giqa.backends.remote.RemoteJudge`.

A quality word the judge cannot measure is not an error: the judge abstains (``p_yes`` 0.5, ``abstained``,
a ``reason``), as it does in process, and the IQA-Filter keeps the box.

Run it with ``giqa serve iqa_filter`` or ``uvicorn services.iqa_filter.app:app --factory``.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from PIL import Image
from starlette.concurrency import run_in_threadpool

from giqa.ports import QualityJudge
from giqa.service import ServiceError, require_key
from giqa.service.model import FetchObject, ModelGate, model_app, wire_image
from giqa.settings import Settings, get_settings
from giqa.wire import MAX_JUDGE_ITEMS, ErrorBody, JudgementOut, JudgeRequest, JudgeResponse

NAME = "iqa_filter"


def load_backend(settings: Settings) -> QualityJudge:
    """The service's judge, through the composition root (:func:`giqa.backends.factory.make_judge`).
    The service runs the judge itself: a ``judge_url`` in its settings must not make it a client."""
    from giqa.backends.factory import make_judge

    judge: QualityJudge = make_judge(settings.pipeline.model_copy(update={"judge_url": None}))
    return judge


def create_app_from_settings(
    settings: Settings,
    *,
    backend: QualityJudge | None = None,
    fetch_object: FetchObject | None = None,
) -> FastAPI:
    """The iqa_filter app. ``backend``: a judge already built (else :func:`load_backend` at start-up, in
    the lifespan); ``fetch_object``: the object-store reader that makes ``image_key`` items work (else
    they get 400)."""
    app, current = model_app(
        name=NAME,
        settings=settings.service,
        load=lambda: load_backend(settings),
        backend=backend,
        description='Yes/no quality judging of crops: "Is the image quality <word>?" (Stage 3 IQA-Filter).',
        loading="loading the judge",
    )
    gate = ModelGate(app, settings.service, item_buckets=(1, 4, 16, 64, MAX_JUDGE_ITEMS))
    max_pixels = settings.pipeline.max_image_pixels

    @app.post(
        "/v1/judge",
        response_model=JudgeResponse,
        tags=["iqa_filter"],
        dependencies=[Depends(require_key("api", settings.service))],
        responses={
            400: {
                "model": ErrorBody,
                "description": "an image that cannot be used (detail.image or detail.item says which)",
            },
            401: {"model": ErrorBody},
            503: {"model": ErrorBody, "description": "overloaded or still loading; retry after Retry-After"},
        },
        summary="P(yes) for each (image, box, quality word)",
    )
    async def judge_endpoint(body: JudgeRequest) -> JudgeResponse:
        backend = current()
        if backend is None:  # pragma: no cover - requests only arrive after the lifespan
            raise ServiceError(503, "the judge is still loading", code="unavailable")

        def decode() -> list[Image.Image]:
            shared = [
                wire_image(
                    image=data,
                    image_key=None,
                    where=f"images[{k}]",
                    max_pixels=max_pixels,
                    fetch=fetch_object,
                    detail={"image": k},
                )
                for k, data in enumerate(body.images)
            ]
            return [
                shared[item.image_index]
                if item.image_index is not None
                else wire_image(
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
        items = [(image, item.box, item.quality) for image, item in zip(images, body.items, strict=True)]
        results, seconds = await gate.run(lambda: backend.judge_batch(items), items=len(items))
        return JudgeResponse(
            results=[
                JudgementOut(p_yes=r.p_yes, abstained=r.abstained, reason=r.reason, detail=r.detail)
                for r in results
            ],
            model=str(getattr(backend, "name", type(backend).__name__)),
            seconds=seconds,
        )

    return app


def app() -> FastAPI:
    """The app from the environment's settings: ``uvicorn services.iqa_filter.app:app --factory``."""
    return create_app_from_settings(get_settings())
