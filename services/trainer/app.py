"""The trainer service: training jobs over REST (operator keys).

- ``POST /v1/jobs``: a job from a dataset (``dataset_key``: a LLaVA JSON in the object store, its images
  under ``images_prefix``; or ``run_id``: an annotation run's exported dataset), a ``preset`` and
  ``config`` (any ``giqa train`` field; the folders are the launcher's), a base model (``tiny``, a folder
  on the training machine, ``key:<store prefix>`` or ``checkpoint:<registered name>``) and the name the
  finished model is registered under. Everything is checked before anything is written: a bad config, a
  dataset not in the store, a checkpoint name taken are 400/409 with nothing stored. 201 with the job.
- ``GET /v1/jobs`` (newest first, ``?state=``), ``GET /v1/jobs/{id}`` (state, step, total steps, loss,
  ETA, attempts, error, the checkpoints it registered), ``POST /v1/jobs/{id}/cancel`` (202; a running
  job's child is killed by its launcher, then the job reads ``cancelled``; 409 for a job that has ended).
- ``GET /v1/checkpoints``, ``GET /v1/checkpoints/{name}``: the registered models the inference service
  and the evaluator load by name.
- ``/health``, ``/ready`` (database, object store and broker answer), ``/metrics``: :mod:`giqa.service`.

Lost jobs: a running job whose launcher has not reported for ``jobs.lost_after_s`` (its train worker
was killed, its node went away) is queued again, and its next attempt resumes from the last complete
checkpoint in the job folder; after ``jobs.max_attempts`` it is failed with the reason
(:func:`giqa.infra.db.jobs_dal.requeue_lost_jobs`). A thread of each trainer process sweeps every quarter
of ``lost_after_s`` (1–60 s), and every read of the jobs sweeps first. The train task itself is
acknowledged when it starts (:mod:`services.trainer.tasks`), so the broker never delivers a job twice.

Launchers: :mod:`services.trainer.launchers`. Run it with ``uvicorn services.trainer.app:app --factory``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import BackgroundTasks, Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from giqa.infra.db import jobs_dal
from giqa.service import ServiceError, require_key
from giqa.service.app import StateGauge
from giqa.settings import Settings, get_settings
from giqa.wire import ErrorBody
from services.annotator.tasks import WorkerContext

NAME = "trainer"
log = logging.getLogger("giqa.trainer")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # a checkpoint name is a store key part and a folder
# fields the launcher sets: a request that names them would write outside its job folder
LAUNCHER_FIELDS = ("data", "image_root", "output_dir", "base_model", "preset", "progress", "resume")


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("job", min_length=1, max_length=200)
    dataset_key: str | None = Field(
        None, min_length=1, max_length=1024, description="LLaVA JSON in the store"
    )
    images_prefix: str | None = Field(
        None, min_length=1, max_length=900, description="store prefix of the images the JSON names"
    )
    run_id: str | None = Field(None, min_length=1, max_length=32, description="an annotation run's dataset")
    preset: Literal["tiny", "paper"] = "tiny"
    config: dict[str, Any] = Field(default_factory=dict, description="giqa train fields (giqa train --help)")
    base_model: str = Field(
        "tiny",
        min_length=1,
        max_length=1024,
        description="tiny, a folder on the training machine, key:<store prefix> or checkpoint:<name>",
    )
    checkpoint_name: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="name the final model is registered under (default: the job's)",
    )
    launcher: Literal["local", "kubernetes"] | None = Field(
        None, description="default: settings jobs.launcher"
    )

    @model_validator(mode="after")
    def _one_dataset(self) -> JobIn:
        if (self.dataset_key is None) == (self.run_id is None):
            raise ValueError("give one of dataset_key (with images_prefix) and run_id")
        return self


class CheckpointOut(BaseModel):
    name: str
    job_id: str | None
    key_prefix: str
    step: int
    metrics: dict[str, Any]
    created_at: str


class JobOut(BaseModel):
    id: str
    name: str
    state: str
    launcher: str
    dataset: str
    base_model: str
    checkpoint_name: str
    step: int
    total_steps: int | None
    loss: float | None
    eta_s: float | None = Field(description="seconds left at the current pace (None until it is known)")
    cancel_requested: bool
    attempts: int = Field(description="claims by a worker: 1, plus 1 for every resume after a lost attempt")
    error: str | None
    k8s_name: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    config: dict[str, Any]
    checkpoints: list[CheckpointOut]


def _iso(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()


def checkpoint_out(c: jobs_dal.CheckpointView) -> CheckpointOut:
    return CheckpointOut(
        name=c.name,
        job_id=c.job_id,
        key_prefix=c.key_prefix,
        step=c.step,
        metrics=c.metrics,
        created_at=c.created_at.isoformat(),
    )


def job_out(job: jobs_dal.JobView) -> JobOut:
    return JobOut(
        id=job.id,
        name=job.name,
        state=job.state,
        launcher=job.launcher,
        dataset=job.dataset_ref,
        base_model=job.base_model,
        checkpoint_name=job.checkpoint_name,
        step=job.step,
        total_steps=job.total_steps,
        loss=job.loss,
        eta_s=job.eta_s,
        cancel_requested=job.cancel_requested,
        attempts=job.attempts,
        error=job.error,
        k8s_name=job.k8s_name,
        created_at=job.created_at.isoformat(),
        started_at=_iso(job.started_at),
        finished_at=_iso(job.finished_at),
        config=job.config,
        checkpoints=[checkpoint_out(c) for c in job.checkpoints],
    )


def check_config(body: JobIn) -> tuple[dict[str, Any], int | None]:
    """The job's config as submitted, checked by the trainer's own parser; its step count when fixed."""
    from giqa.training.config import ConfigError, build_config

    named = sorted(set(body.config) & set(LAUNCHER_FIELDS))
    if named:
        raise ServiceError(
            400, f"config may not set {', '.join(named)}: the request and the launcher set them"
        )
    try:
        config = build_config(
            body.config,
            {
                "preset": body.preset,
                "data": "dataset.json",
                "output_dir": "run",
                "base_model": body.base_model,
            },
        )
    except ConfigError as exc:
        raise ServiceError(400, f"config: {exc}") from exc
    if body.preset == "paper" and body.base_model == "tiny":
        raise ServiceError(400, "the paper preset fine-tunes a LLaVA checkpoint: give base_model")
    return dict(body.config) | {"preset": body.preset}, (config.max_steps if config.max_steps > 0 else None)


def sweep_interval_s(lost_after_s: float) -> float:
    """Seconds between two sweeps for lost jobs: a quarter of the limit, 1 to 60 s."""
    return max(1.0, min(60.0, lost_after_s / 4))


class LostJobSweeper:
    """The thread that sends lost jobs again (see the module docstring); ``sweep`` does one pass."""

    def __init__(self, sweep: Callable[[], None], interval_s: float) -> None:
        self.sweep = sweep
        self.interval_s = interval_s
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="giqa-lost-jobs", daemon=True)

    def start(self) -> Callable[[], None]:
        self.thread.start()
        return self.stop

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                self.sweep()
            except Exception as exc:  # the database or the broker is down: try again next period
                log.info("lost-job sweep skipped: %s: %s", type(exc).__name__, str(exc)[:200])

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)


def load_backend(settings: Settings) -> None:  # noqa: ARG001 - the giqa serve protocol
    """``giqa serve``'s hook: no model here: the train workers or the cluster run the jobs."""
    return None


def create_app_from_settings(
    settings: Settings,
    *,
    backend: Any = None,  # noqa: ARG001 - giqa serve passes load_backend's result
    ctx: WorkerContext | None = None,
    kubernetes_api: Callable[[], Any] | None = None,
) -> FastAPI:
    """The trainer app. ``ctx``: the process's context (else one from ``settings``); ``kubernetes_api``:
    builds the cluster client of the kubernetes launcher (default: the ``kubernetes`` package)."""
    from services.platform import platform_app
    from services.trainer.launchers import TRAIN_TASK, make_launcher

    def sweep_lost() -> None:
        """Lost jobs queued again (and sent) or failed: :func:`jobs_dal.requeue_lost_jobs`."""
        jobs = settings.jobs
        stale = datetime.now(UTC) - timedelta(seconds=jobs.lost_after_s)
        with context.session() as s:
            lost = jobs_dal.requeue_lost_jobs(s, stale_before=stale, max_attempts=jobs.max_attempts)
        for job_id in lost.requeued:  # committed first: the worker that takes it must find it pending
            log.warning(
                "job %s was lost (no report for %.0f s): sent again to resume", job_id, jobs.lost_after_s
            )
            if celery.conf.task_always_eager:  # it would train right here, in a request or the sweep thread
                threading.Thread(target=send, args=(TRAIN_TASK, [job_id]), daemon=True).start()
                continue
            try:
                send(TRAIN_TASK, [job_id])
            except Exception as exc:  # the broker is away: lost again, so the next sweep sends it
                log.warning("job %s could not be sent again (%s); the next sweep tries again", job_id, exc)
                with context.session() as s:
                    jobs_dal.unqueue_job(s, job_id=job_id)
        for job_id in lost.failed:
            log.warning("job %s was lost and has no attempts left: failed", job_id)

    app, context, celery = platform_app(
        settings,
        name=NAME,
        ctx=ctx,
        description="Training jobs: submit, watch step, loss and ETA, cancel; the checkpoints they register.",
        background=lambda _context: LostJobSweeper(
            sweep_lost, sweep_interval_s(settings.jobs.lost_after_s)
        ).start(),
    )

    def count_jobs() -> dict[str, int]:
        with context.session() as s:
            return jobs_dal.count_jobs(s)

    app.state.metrics.registry.register(
        StateGauge("giqa_training_jobs", "training jobs by state", count_jobs)
    )
    operator = [Depends(require_key("operator", settings.service))]
    errors: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 404, 409)}

    def send(task: str, args: list[Any]) -> None:
        from services.trainer.tasks import train_task

        assert task == train_task.name
        result = train_task.apply_async(args=args)
        if celery.conf.task_always_eager and getattr(result, "maybe_throw", None):
            result.maybe_throw()

    def launcher(name: str) -> Any:
        try:
            return make_launcher(
                name, settings, send=send, sessions=context.session, kubernetes_api=kubernetes_api
            )
        except RuntimeError as exc:  # the kubernetes package missing, no cluster config
            raise ServiceError(503, f"the {name} launcher is unavailable: {exc}") from exc

    def synced(job: jobs_dal.JobView) -> jobs_dal.JobView:
        """The job after its launcher had its say (a Kubernetes Job that failed before reporting)."""
        if job.launcher != "kubernetes" or job.state not in ("pending", "running"):
            return job
        try:
            launcher(job.launcher).sync(job)
        except Exception as exc:  # the cluster unreachable: show what the database knows
            log.warning("job %s: cannot read its Kubernetes status: %s", job.id, exc)
            return job
        with context.session() as s:
            return jobs_dal.get_job(s, job_id=job.id) or job

    def validate(body: JobIn) -> dict[str, Any]:
        from giqa.infra.db import dal
        from giqa.infra.storage import StorageError

        config, total = check_config(body)
        checkpoint_name = body.checkpoint_name
        try:
            if body.dataset_key is not None:
                if not context.store.exists(body.dataset_key):
                    raise ServiceError(400, f"no object {body.dataset_key!r} in the store")
                if body.images_prefix is None:
                    raise ServiceError(
                        400, "images_prefix is required with dataset_key (where its images are)"
                    )
                if body.base_model.startswith("key:") and not context.store.list(body.base_model[4:]):
                    raise ServiceError(400, f"no base model under {body.base_model[4:]!r} in the store")
        except StorageError as exc:
            raise ServiceError(503, f"the object store failed: {exc}", code="unavailable") from exc
        with context.session() as s:
            if body.run_id is not None:
                run = dal.get_run(s, run_id=body.run_id)
                if run is None:
                    raise ServiceError(400, f"no annotation run {body.run_id}")
                if run.dataset_key is None:
                    raise ServiceError(409, f"annotation run {body.run_id} has no dataset yet ({run.state})")
            if body.base_model.startswith("checkpoint:"):
                if jobs_dal.get_checkpoint(s, name=body.base_model[11:]) is None:
                    raise ServiceError(400, f"no checkpoint is registered as {body.base_model[11:]!r}")
            if checkpoint_name is not None and jobs_dal.get_checkpoint(s, name=checkpoint_name) is not None:
                raise ServiceError(409, f"checkpoint name {checkpoint_name!r} is taken")
        return {"config": config, "total_steps": total}

    @app.post(
        "/v1/jobs",
        status_code=201,
        response_model=JobOut,
        tags=["jobs"],
        dependencies=operator,
        responses=errors,
        summary="start a training job",
    )
    def submit(body: JobIn, background: BackgroundTasks) -> JobOut:
        checked = validate(body)
        which = body.launcher or settings.jobs.launcher
        chosen = launcher(which)
        dataset_ref = f"run:{body.run_id}" if body.run_id else f"key:{body.dataset_key}"
        with context.session() as s:
            job_id = jobs_dal.create_job(
                s,
                name=body.name,
                launcher=which,
                config=checked["config"],
                dataset_ref=dataset_ref,
                images_prefix=body.images_prefix,
                base_model=body.base_model,
                checkpoint_name=body.checkpoint_name,  # None: the default carries the id, so it is free
                total_steps=checked["total_steps"],
            )
            job = jobs_dal.get_job(s, job_id=job_id)
        assert job is not None
        if which == "local":
            background.add_task(run_in_threadpool, chosen.submit, job)
        else:
            try:
                chosen.submit(job)
            except Exception as exc:
                with context.session() as s:
                    jobs_dal.finish_job(s, job_id=job_id, state="failed", error=f"submit: {exc}")
                raise ServiceError(502, f"the cluster refused the job: {exc}", code="backend_error") from exc
            with context.session() as s:
                job = jobs_dal.get_job(s, job_id=job_id) or job
        return job_out(job)

    @app.get("/v1/jobs", response_model=list[JobOut], tags=["jobs"], dependencies=operator)
    def list_jobs(
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
        state: Literal["pending", "running", "succeeded", "failed", "cancelled"] | None = None,
    ) -> list[JobOut]:
        sweep_lost()
        with context.session() as s:
            found = jobs_dal.list_jobs(s, limit=limit, offset=offset, state=state)
        return [job_out(synced(j)) for j in found]

    @app.get(
        "/v1/jobs/{job_id}", response_model=JobOut, tags=["jobs"], dependencies=operator, responses=errors
    )
    def show_job(job_id: str) -> JobOut:
        sweep_lost()
        with context.session() as s:
            job = jobs_dal.get_job(s, job_id=job_id)
        if job is None:
            raise ServiceError(404, f"job {job_id} not found")
        return job_out(synced(job))

    @app.post(
        "/v1/jobs/{job_id}/cancel",
        status_code=202,
        response_model=JobOut,
        tags=["jobs"],
        dependencies=operator,
        responses=errors,
        summary="cancel a job: a queued one at once, a running one's process is stopped by its launcher",
    )
    def cancel(job_id: str) -> JobOut:
        try:
            with context.session() as s:
                job = jobs_dal.request_cancel(s, job_id=job_id)
        except jobs_dal.NotFoundError as exc:
            raise ServiceError(404, str(exc)) from exc
        except jobs_dal.ConflictError as exc:
            raise ServiceError(409, str(exc)) from exc
        if job.state == "running":
            launcher(job.launcher).cancel(job)
            with context.session() as s:
                job = jobs_dal.get_job(s, job_id=job_id) or job
        return job_out(job)

    @app.get(
        "/v1/checkpoints", response_model=list[CheckpointOut], tags=["checkpoints"], dependencies=operator
    )
    def list_checkpoints(limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[CheckpointOut]:
        with context.session() as s:
            return [checkpoint_out(c) for c in jobs_dal.list_checkpoints(s, limit=limit)]

    @app.get(
        "/v1/checkpoints/{name}",
        response_model=CheckpointOut,
        tags=["checkpoints"],
        dependencies=operator,
        responses=errors,
    )
    def show_checkpoint(name: str) -> CheckpointOut:
        with context.session() as s:
            found = jobs_dal.get_checkpoint(s, name=name)
        if found is None:
            raise ServiceError(404, f"no checkpoint is registered as {name!r}")
        return checkpoint_out(found)

    return app


def app() -> FastAPI:
    """The app from the environment's settings: ``uvicorn services.trainer.app:app --factory``."""
    return create_app_from_settings(get_settings())
