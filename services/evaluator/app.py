"""The evaluator service: GIQA-Bench evaluations over REST (operator keys).

- ``POST /v1/evaluations``: score a bench in the object store (``bench_key``; its images under
  ``images_prefix``, by default the bench's folder) for one model: ``model_url`` (an OpenAI-compatible
  ``/v1`` server: the inference service, vLLM), ``checkpoint`` (a registered name), or predictions
  (``predictions_key`` in the store, or a ``predictions`` file in a multipart upload whose ``request``
  part is this JSON); ``judge_url`` (an OpenAI-compatible judge) or none (LLM-Score and Acc(W) null, as
  ``giqa eval --no-judge``). Checked before anything is written (400/404 with nothing stored); 201 with
  the evaluation; the scoring runs on the ``eval`` queue (:mod:`services.evaluator.runner`).
- ``GET /v1/evaluations`` (newest first), ``GET /v1/evaluations/{id}`` (state, report, the keys and
  presigned URLs of report.json, items.jsonl, chart.png, predictions.jsonl),
  ``GET /v1/evaluations/compare?ids=a&ids=b`` (the reports side by side and the ``giqa eval compare``
  table; ``&chart=radar|bars`` answers the chart PNG instead).
- ``/health``, ``/ready``, ``/metrics``: :mod:`giqa.service`.

Run it with ``uvicorn services.evaluator.app:app --factory``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import BackgroundTasks, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.concurrency import run_in_threadpool

from giqa.infra.db import jobs_dal
from giqa.service import ServiceError, require_key
from giqa.service.app import StateGauge
from giqa.settings import Settings, get_settings, http_url
from giqa.wire import ErrorBody
from services.annotator.tasks import WorkerContext

NAME = "evaluator"


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("evaluation", min_length=1, max_length=200)
    bench_key: str = Field(min_length=1, max_length=1024, description="bench JSONL in the object store")
    images_prefix: str | None = Field(
        None,
        min_length=1,
        max_length=900,
        description="store prefix of the bench images (default: its folder)",
    )
    model_url: str | None = Field(None, description="OpenAI-compatible server ending in /v1")
    served_model: str | None = Field(None, max_length=200, description="model name at model_url")
    checkpoint: str | None = Field(None, min_length=1, max_length=200, description="a registered checkpoint")
    predictions_key: str | None = Field(None, min_length=1, max_length=1024, description="predictions JSONL")
    judge_url: str | None = Field(None, description="OpenAI-compatible judge ending in /v1; none: no judge")
    limit: int | None = Field(None, ge=1, description="score only the first N bench items")
    max_new_tokens: int = Field(256, ge=1, le=4096)

    @field_validator("model_url", "judge_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @model_validator(mode="after")
    def _one_model(self) -> EvaluationIn:
        given = [self.model_url, self.checkpoint, self.predictions_key]
        if sum(x is not None for x in given) != 1:
            raise ValueError("give exactly one model: model_url, checkpoint or predictions (key or upload)")
        return self


class EvaluationOut(BaseModel):
    id: str
    name: str
    state: str
    bench_key: str
    model_kind: str
    model: str
    judge_url: str | None
    options: dict[str, Any]
    report: dict[str, Any] | None
    keys: dict[str, str] = Field(description="report, items, chart, predictions -> object key")
    files: dict[str, str] = Field(description="the same files as presigned URLs (local paths embedded)")
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class CompareOut(BaseModel):
    reports: list[EvaluationOut]
    table: str = Field(description="the giqa eval compare table")


def load_backend(settings: Settings) -> None:  # noqa: ARG001 - the giqa serve protocol
    """``giqa serve``'s hook: this service holds no model (the eval workers load the models)."""
    return None


def create_app_from_settings(
    settings: Settings,
    *,
    backend: Any = None,  # noqa: ARG001 - giqa serve passes load_backend's result
    ctx: WorkerContext | None = None,
) -> FastAPI:
    """The evaluator app. ``ctx``: the process's context (else one from ``settings``)."""
    from services.platform import platform_app

    app, context, celery = platform_app(
        settings,
        name=NAME,
        ctx=ctx,
        description="GIQA-Bench evaluations: score models or predictions on a stored bench, compare reports.",
    )

    def count_evaluations() -> dict[str, int]:
        with context.session() as s:
            return jobs_dal.count_evaluations(s)

    registry = app.state.metrics.registry
    registry.register(StateGauge("giqa_evaluations", "evaluations by state", count_evaluations))
    operator = [Depends(require_key("operator", settings.service))]
    errors: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 404, 415)}

    def out(view: jobs_dal.EvaluationView) -> EvaluationOut:
        keys = {
            kind: key
            for kind, key in (
                ("report", view.report_key),
                ("items", view.items_key),
                ("chart", view.chart_key),
                ("predictions", view.predictions_key),
            )
            if key
        }
        return EvaluationOut(
            id=view.id,
            name=view.name,
            state=view.state,
            bench_key=view.bench_key,
            model_kind=view.model_kind,
            model=view.model_ref,
            judge_url=view.judge_url,
            options=view.options,
            report=view.report,
            keys=keys,
            files={kind: context.store.presigned_get(key) for kind, key in keys.items()},
            error=view.error,
            created_at=view.created_at.isoformat(),
            started_at=None if view.started_at is None else view.started_at.isoformat(),
            finished_at=None if view.finished_at is None else view.finished_at.isoformat(),
        )

    def send(eval_id: str) -> None:
        from services.evaluator.tasks import evaluate_task

        result = evaluate_task.apply_async(args=[eval_id])
        if celery.conf.task_always_eager and getattr(result, "maybe_throw", None):
            result.maybe_throw()

    def create(body: EvaluationIn, upload: bytes | None) -> jobs_dal.EvaluationView:
        from giqa.evaluation.io import BenchError, read_bench
        from giqa.infra.storage import NotFound, StorageError, upload_key

        try:
            with tempfile.TemporaryDirectory(prefix="giqa-bench-") as tmp:
                bench = Path(tmp) / "bench.jsonl"
                context.store.get_file(body.bench_key, bench)
                items = read_bench(bench)
            if upload is None and body.predictions_key and not context.store.exists(body.predictions_key):
                raise ServiceError(400, f"no object {body.predictions_key!r} in the store")
        except NotFound:
            raise ServiceError(400, f"no object {body.bench_key!r} in the store") from None
        except BenchError as exc:
            raise ServiceError(400, f"the bench {body.bench_key!r} cannot be scored: {exc}") from exc
        except StorageError as exc:
            raise ServiceError(503, f"the object store failed: {exc}", code="unavailable") from exc
        if upload is not None:
            _check_predictions(upload, [it.id for it in items])
        kind, ref = (
            ("url", body.model_url)
            if body.model_url
            else ("checkpoint", body.checkpoint)
            if body.checkpoint
            else ("predictions", body.predictions_key or "upload")
        )
        with context.session() as s:
            if kind == "checkpoint" and jobs_dal.get_checkpoint(s, name=ref or "") is None:
                raise ServiceError(400, f"no checkpoint is registered as {ref!r}")
        options = {
            "limit": body.limit,
            "max_new_tokens": body.max_new_tokens,
            "served_model": body.served_model,
        }
        with context.session() as s:
            eval_id = jobs_dal.create_evaluation(
                s,
                name=body.name,
                bench_key=body.bench_key,
                images_prefix=body.images_prefix,
                model_kind=kind,
                model_ref=ref or "",
                judge_url=body.judge_url,
                options=options,
            )
            if upload is not None:  # stored under the evaluation's id, then named in its row
                key = upload_key(eval_id, "predictions.jsonl")
                context.store.put_bytes(key, upload, content_type="application/x-ndjson")
                jobs_dal.set_evaluation_model(s, eval_id=eval_id, model_ref=key)
            view = jobs_dal.get_evaluation(s, eval_id=eval_id)
        assert view is not None
        return view

    @app.post(
        "/v1/evaluations",
        status_code=201,
        response_model=EvaluationOut,
        tags=["evaluations"],
        dependencies=operator,
        responses=errors,
        summary="score a model (URL or checkpoint) or predictions on a bench in the store",
    )
    async def submit(request: Request, background: BackgroundTasks) -> EvaluationOut:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        upload: bytes | None = None
        if kind == "application/json":
            raw = await request.body()
        elif kind == "multipart/form-data":
            form = await request.form(max_files=2, max_fields=10)
            try:
                part, file = form.get("request"), form.get("predictions")
                if part is None or file is None or isinstance(file, str):
                    raise ServiceError(
                        400, "a multipart upload needs a 'request' JSON part and a 'predictions' file"
                    )
                raw = part.encode() if isinstance(part, str) else await part.read()
                upload = await file.read()
            finally:
                await form.close()
        else:
            raise ServiceError(
                415, "send application/json, or multipart/form-data (request + predictions file)"
            )
        try:
            body = EvaluationIn.model_validate_json(raw) if upload is None else _with_upload(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "request"
            raise ServiceError(400, f"{where}: {first['msg']}") from exc
        view = await run_in_threadpool(create, body, upload)
        background.add_task(run_in_threadpool, send, view.id)
        return out(view)

    @app.get(
        "/v1/evaluations", response_model=list[EvaluationOut], tags=["evaluations"], dependencies=operator
    )
    def list_evaluations(
        limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0
    ) -> list[EvaluationOut]:
        with context.session() as s:
            return [out(v) for v in jobs_dal.list_evaluations(s, limit=limit, offset=offset)]

    @app.get(
        "/v1/evaluations/compare",
        response_model=CompareOut,
        tags=["evaluations"],
        dependencies=operator,
        responses=errors | {200: {"content": {"image/png": {}}}},
        summary="reports side by side: the table, or the chart with ?chart=radar|bars",
    )
    def compare(
        ids: Annotated[list[str], Query(min_length=1, max_length=20)],
        chart: Literal["radar", "bars"] | None = None,
    ) -> Any:
        from giqa.evaluation.compare import compare_chart
        from giqa.evaluation.table import format_table

        with context.session() as s:
            found = {v.id: v for v in jobs_dal.list_evaluations(s, ids=list(ids), limit=len(ids))}
        missing = [i for i in ids if i not in found]
        if missing:
            raise ServiceError(404, f"no evaluation {', '.join(missing)}")
        unscored = [i for i in ids if found[i].report is None]
        if unscored:
            raise ServiceError(409, f"evaluation {', '.join(unscored)} has no report yet", code="conflict")
        rows = [(found[i].name, found[i].report or {}) for i in ids]
        if chart is not None:
            with tempfile.TemporaryDirectory(prefix="giqa-chart-") as tmp:
                path = compare_chart(rows, Path(tmp) / "chart.png", kind=chart)
                return Response(path.read_bytes(), media_type="image/png")
        return CompareOut(reports=[out(found[i]) for i in ids], table=format_table(rows))

    @app.get(
        "/v1/evaluations/{eval_id}",
        response_model=EvaluationOut,
        tags=["evaluations"],
        dependencies=operator,
        responses=errors,
    )
    def show(eval_id: str) -> EvaluationOut:
        with context.session() as s:
            view = jobs_dal.get_evaluation(s, eval_id=eval_id)
        if view is None:
            raise ServiceError(404, f"evaluation {eval_id} not found")
        return out(view)

    return app


def _with_upload(raw: bytes) -> EvaluationIn:
    """The request of a multipart upload: its predictions are the uploaded file."""
    import json

    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServiceError(400, f"the 'request' part is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ServiceError(400, "the 'request' part must be a JSON object")
    if data.get("predictions_key") is not None:
        raise ServiceError(400, "give predictions_key or a predictions file, not both")
    return EvaluationIn.model_validate(data | {"predictions_key": "upload"})


def _check_predictions(data: bytes, bench_ids: list[str]) -> None:
    """An uploaded predictions file that would score nothing is refused before anything is stored."""
    from giqa.evaluation.io import PredictionsError, read_predictions

    with tempfile.TemporaryDirectory(prefix="giqa-preds-") as tmp:
        path = Path(tmp) / "predictions.jsonl"
        path.write_bytes(data)
        try:
            read_predictions(path, bench_ids)
        except PredictionsError as exc:
            raise ServiceError(400, f"the predictions file cannot be scored: {exc}") from exc


def app() -> FastAPI:
    """The app from the environment's settings: ``uvicorn services.evaluator.app:app --factory``."""
    return create_app_from_settings(get_settings())
