"""The annotator service: annotation runs over REST (operator keys), their work through the Celery queues.

- ``POST /v1/runs``: a run from a multipart upload (a ``descriptions`` file — ``.jsonl`` lines
  ``{"image", "description"}`` or ``.json`` LLaVA records — and ``images`` files named by the paths the
  descriptions use), or from JSON ``{"images_prefix", "descriptions_key"}`` naming objects already in the
  store. 201 with the run id and how many samples start; 400 (nothing written) when the request cannot
  describe a run. See :mod:`services.annotator.runs` for what is checked and stored.
- ``GET /v1/runs``, ``GET /v1/runs/{id}`` (samples by state, results per stage, seconds per stage,
  throughput, the latest failures with stage and reason), ``POST /v1/runs/{id}/retry`` (failed samples
  only), ``GET /v1/runs/{id}/dataset`` (stats and presigned URLs of the files; ``?file=train.json``
  streams one file instead).
- ``GET /ops``: the operator page (runs with progress per stage and failures, a retry button, training jobs,
  evaluations), polling ``GET /v1/ops/summary`` (operator key) — :mod:`services.annotator.ops`.
- ``/health``, ``/ready`` (database, object store and broker answer), ``/metrics``: :mod:`giqa.service`,
  plus ``giqa_queue_depth`` per queue and ``giqa_broker_up`` (Redis, at scrape) and ``giqa_run_failures``,
  ``giqa_run_stage_results`` by stage over the runs in flight (database, at scrape).
- A stall sweeper (:mod:`services.annotator.sweeper`) re-sends the tasks a broker restart lost.

The stages run as tasks (:mod:`services.annotator.tasks`) on the workers of each queue; with no broker
configured they run in this process after the response (Celery eager mode), the embedded default.
Run it with ``uvicorn services.annotator.app:app --factory``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import BackgroundTasks, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from giqa.service import ServiceError, require_key
from giqa.service.app import StateGauge
from giqa.settings import Settings, get_settings
from giqa.wire import ErrorBody
from services.annotator import ops, runs
from services.annotator.sweeper import Sweeper
from services.annotator.tasks import WorkerContext, enqueue

NAME = "annotator"
STATIC = Path(__file__).resolve().parent / "static"


class RunFromStore(BaseModel):
    """A run over objects already in the store: ``<images_prefix>/<image path>`` for every image."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("run", min_length=1, max_length=200)
    images_prefix: str = Field(min_length=1, max_length=900, description="store prefix of the images")
    descriptions_key: str = Field(min_length=1, max_length=1024, description="store key of the descriptions")
    form: Literal["grid", "norm"] | None = Field(None, description="box text form (default: settings)")


class RunCreated(BaseModel):
    run_id: str
    total: int = Field(description="samples in the run")
    started: int = Field(description="samples queued")
    failed_at_input: int = Field(description="samples refused at submission (bad image or description)")


class FailureOut(BaseModel):
    sample_key: str
    stage: str
    reason: str
    retryable: bool
    at: str


class RunOut(BaseModel):
    id: str
    name: str
    state: str
    created_at: str
    finished_at: str | None
    error: str | None
    total: int
    by_state: dict[str, int]


class RunDetail(RunOut):
    by_stage: dict[str, int] = Field(description="stage results stored, per stage")
    stage_seconds: dict[str, dict[str, float]] = Field(description="count, mean_s, total_s per stage")
    elapsed_s: float
    samples_per_s: float
    failures: list[FailureOut] = Field(description="the latest failures, newest first")
    dataset_key: str | None


class RetryOut(BaseModel):
    run_id: str
    retried: int
    by_stage: dict[str, int] = Field(description="samples resumed, by the stage they resume at")


class DatasetOut(BaseModel):
    run_id: str
    files: dict[str, str] = Field(description="file name -> presigned URL (or local path embedded)")
    keys: dict[str, str] = Field(description="file name -> object key")
    stats: dict[str, Any]


def _run_out(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "state": run.state,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error": run.error,
        "total": run.total,
        "by_state": run.counts,
    }


def load_backend(settings: Settings) -> None:  # noqa: ARG001 - the serve table's protocol
    """The annotator owns no model (its workers do): nothing to load before the port opens."""
    return None


def create_app_from_settings(
    settings: Settings,
    *,
    backend: None = None,  # noqa: ARG001 - the serve table's protocol
    ctx: WorkerContext | None = None,
) -> FastAPI:
    """The annotator app. ``ctx``: the process's worker context (else one from ``settings``)."""
    from services.platform import platform_app

    app, context, celery = platform_app(
        settings,
        name=NAME,
        ctx=ctx,
        description="Annotation runs: submit images and descriptions, watch them flow, fetch the dataset.",
        # re-sends what a broker restart lost (Redis only; services.annotator.sweeper)
        background=lambda context: Sweeper(context, settings).start().stop,
    )
    _register_metrics(app, settings, context)
    operator = [Depends(require_key("operator", settings.service))]
    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorBody},
        401: {"model": ErrorBody},
        404: {"model": ErrorBody},
        409: {"model": ErrorBody},
    }
    max_chars = settings.annotate.max_description_chars

    def start_later(background: BackgroundTasks, created: runs.Created) -> None:
        background.add_task(run_in_threadpool, runs.start, context, created.run_id, created.pending)

    @app.post(
        "/v1/runs",
        status_code=201,
        response_model=RunCreated,
        tags=["runs"],
        dependencies=operator,
        responses=errors,
        summary="start a run from an upload (multipart) or from objects in the store (JSON)",
    )
    async def submit(request: Request, background: BackgroundTasks) -> RunCreated:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                body = RunFromStore.model_validate_json(await request.body())
            except ValueError as exc:
                raise ServiceError(400, f"the JSON body is not a run: {exc}".splitlines()[0]) from exc
            created = await run_in_threadpool(_from_store, body)
        elif kind == "multipart/form-data":
            created = await _from_upload(request)
        else:
            raise ServiceError(
                415, "send multipart/form-data (descriptions + images) or application/json (store keys)"
            )
        start_later(background, created)
        return RunCreated(
            run_id=created.run_id,
            total=created.total,
            started=len(created.pending),
            failed_at_input=created.failed,
        )

    def _from_store(body: RunFromStore) -> runs.Created:
        from giqa.infra.storage import InvalidKey, NotFound, StorageError, check_key

        # keys of the configured store only (never URLs: nothing is fetched from where a request points)
        prefix = body.images_prefix.rstrip("/")
        try:
            check_key(body.descriptions_key)
            check_key(f"{prefix}/image")
        except InvalidKey as exc:
            raise ServiceError(400, f"not an object key of the store: {exc}") from None
        try:
            data = context.store.get_bytes(body.descriptions_key)
        except NotFound:
            raise ServiceError(400, f"no object {body.descriptions_key!r} in the store") from None
        except StorageError as exc:
            raise ServiceError(503, f"the object store failed: {exc}", code="unavailable") from exc
        try:
            items = runs.parse_descriptions(data, body.descriptions_key, max_chars=max_chars)
            return runs.create_run(
                context,
                name=body.name,
                items=items,
                image_bytes=lambda ref: context.store.get_bytes(f"{prefix}/{ref}"),
                form=body.form,
                images_prefix=prefix,
            )
        except runs.BadRequest as exc:
            raise ServiceError(400, str(exc)) from exc

    async def _from_upload(request: Request) -> runs.Created:
        limit = settings.annotator.max_upload_images
        try:
            form = await request.form(max_files=limit + 1, max_fields=100)
        except Exception as exc:  # the multipart parser's own errors (too many files, malformed parts)
            raise ServiceError(400, f"the multipart body cannot be read: {exc}") from exc
        try:
            descriptions = form.get("descriptions")
            if descriptions is None or isinstance(descriptions, str):
                raise ServiceError(400, "no 'descriptions' file in the upload (.jsonl or .json)")
            images: dict[str, bytes] = {}
            for part in form.getlist("images"):
                if isinstance(part, str) or not part.filename:
                    raise ServiceError(400, "every 'images' part must be a file named by its image path")
                if part.filename in images:
                    raise ServiceError(400, f"two uploaded images are named {part.filename!r}")
                images[part.filename] = await part.read()
            if len(images) > limit:
                raise ServiceError(400, f"{len(images)} images in one upload, over the limit of {limit:,}")
            name = form.get("name")
            run_name = name if isinstance(name, str) and name.strip() else "run"
            box_form = form.get("form")
            if box_form not in (None, "grid", "norm"):
                raise ServiceError(400, f"form must be 'grid' or 'norm', got {box_form!r}")
            data = await descriptions.read()
            filename = descriptions.filename or "descriptions.jsonl"
        finally:
            await form.close()

        def create() -> runs.Created:
            try:
                items = runs.parse_descriptions(data, filename, max_chars=max_chars)
                return runs.create_run(
                    context,
                    name=run_name[:200],
                    items=items,
                    image_bytes=images.get,
                    form=box_form if isinstance(box_form, str) else None,
                )
            except runs.BadRequest as exc:
                raise ServiceError(400, str(exc)) from exc

        return await run_in_threadpool(create)

    @app.get("/v1/runs", response_model=list[RunOut], tags=["runs"], dependencies=operator)
    def list_runs(
        limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0
    ) -> list[RunOut]:
        from giqa.infra.db import dal

        with context.session() as s:
            return [RunOut(**_run_out(r)) for r in dal.list_runs(s, limit=limit, offset=offset)]

    @app.get(
        "/v1/runs/{run_id}", response_model=RunDetail, tags=["runs"], dependencies=operator, responses=errors
    )
    def show_run(run_id: str) -> RunDetail:
        try:
            info = runs.progress(context, run_id)
        except runs.NotFoundError as exc:
            raise ServiceError(404, str(exc)) from exc
        p = info["progress"]
        return RunDetail(
            **_run_out(info["run"]) | {"by_state": p.by_state},
            by_stage=p.by_stage,
            stage_seconds=info["stage_seconds"],
            elapsed_s=info["elapsed_s"],
            samples_per_s=info["samples_per_s"],
            failures=[
                FailureOut(
                    sample_key=f.sample_key,
                    stage=f.stage,
                    reason=f.reason,
                    retryable=f.retryable,
                    at=f.created_at.isoformat(),
                )
                for f in p.failures
            ],
            dataset_key=info["run"].dataset_key,
        )

    @app.post(
        "/v1/runs/{run_id}/retry",
        response_model=RetryOut,
        tags=["runs"],
        dependencies=operator,
        responses=errors,
        summary="run the failed samples again (those with bad input stay failed)",
    )
    def retry_run(
        run_id: str,
        background: BackgroundTasks,
        retryable_only: Annotated[bool, Query(description="only failures marked retryable")] = False,
        stalled: Annotated[bool, Query(description="also send pending and running samples again")] = False,
    ) -> RetryOut:
        try:
            resume = runs.retry(context, run_id, retryable_only=retryable_only, stalled=stalled)
        except runs.NotFoundError as exc:
            raise ServiceError(404, str(exc)) from exc

        def send() -> None:
            for sample_id, stage in resume:
                enqueue(stage, sample_id)

        background.add_task(run_in_threadpool, send)
        by_stage: dict[str, int] = {}
        for _, stage in resume:
            by_stage[stage] = by_stage.get(stage, 0) + 1
        return RetryOut(run_id=run_id, retried=len(resume), by_stage=by_stage)

    @app.get(
        "/v1/runs/{run_id}/dataset",
        response_model=DatasetOut,
        tags=["runs"],
        dependencies=operator,
        responses=errors | {200: {"content": {"application/octet-stream": {}}}},
        summary="the dataset's stats and file URLs; ?file=<name> streams one file",
    )
    def dataset(run_id: str, file: str | None = None) -> Any:
        from giqa.infra.db import dal

        try:
            run, keys = runs.dataset_files(context, run_id)
        except runs.NotFoundError as exc:
            raise ServiceError(404, str(exc)) from exc
        except runs.Conflict as exc:
            raise ServiceError(409, str(exc)) from exc
        if file is not None:
            if file not in keys:
                raise ServiceError(404, f"no file {file!r}; the dataset has {', '.join(keys)}")
            kind = "image/png" if file.endswith(".png") else "application/json"
            kind = "text/markdown" if file.endswith(".md") else kind
            return Response(context.store.get_bytes(keys[file]), media_type=kind)
        with context.session() as s:
            stats = dal.dataset_stats(s, run_id=run_id) or {}
        del run
        return DatasetOut(
            run_id=run_id,
            files={name: context.store.presigned_get(key) for name, key in keys.items()},
            keys=dict(keys),
            stats=stats,
        )

    @app.get(
        "/v1/ops/summary",
        tags=["ops"],
        dependencies=operator,
        summary="what the operator page shows: recent runs with progress and failures, jobs, evaluations",
    )
    def ops_summary(limit: Annotated[int, Query(ge=1, le=200)] = 20) -> dict[str, Any]:
        return ops.summary(context, limit=limit)

    @app.get("/ops", include_in_schema=False)
    def ops_page() -> FileResponse:
        return FileResponse(STATIC / "ops.html", media_type="text/html")

    app.mount("/ops/static", StaticFiles(directory=STATIC), name="ops-static")
    return app


def _register_metrics(app: FastAPI, settings: Settings, context: WorkerContext) -> None:
    """Queue depth from the broker and per-stage counts of the runs in flight, read at scrape."""
    from giqa.infra.db import dal
    from giqa.infra.metrics import QueueDepth
    from giqa.settings import QUEUE_NAMES

    def stage_counts(which: int) -> dict[str, int]:
        with context.session() as s:
            return dal.active_stage_counts(s)[which]

    registry = app.state.metrics.registry
    registry.register(QueueDepth(settings.queue.broker_url, QUEUE_NAMES))
    registry.register(
        StateGauge(
            "giqa_run_failures",
            "failures recorded in the runs in flight, by stage",
            lambda: stage_counts(0),
            label="stage",
        )
    )
    registry.register(
        StateGauge(
            "giqa_run_stage_results",
            "stage results stored in the runs in flight, by stage",
            lambda: stage_counts(1),
            label="stage",
        )
    )


def app() -> FastAPI:
    """The app from the environment's settings: ``uvicorn services.annotator.app:app --factory``."""
    return create_app_from_settings(get_settings())
