"""Keyword-only data access for training jobs, checkpoints and evaluations (the style of :mod:`.dal`).

Each function takes the :class:`~sqlalchemy.orm.Session` first and everything else by keyword; none commits;
results are frozen views, never ORM objects.

States (decided): a job or an evaluation goes pending → running (:func:`claim_job`, one conditional UPDATE,
so a task delivered twice starts the work once) → succeeded | failed | cancelled. A cancel of a pending job
ends it at once; a cancel of a running job sets ``cancel_requested``, which the launcher polls: it stops the
work and then records ``cancelled`` (so ``cancelled`` means the process is gone). A final state is never
left.

Attempts (decided): every claim counts one (``attempts``), and so does every restart of a killed training
process by the same launcher (:func:`next_attempt`). A running job whose launcher stopped reporting
(``heartbeat_at`` older than a limit: its worker died) goes back to pending to be sent again, where its
next attempt resumes from the last complete checkpoint in the same job folder; once it has used
``max_attempts``, or when it is not the local launcher's, it is failed with the reason instead
(:func:`requeue_lost_jobs`). A launcher reports with the attempt it runs, so a launcher that was presumed
dead but was only cut off learns that its job was handed on and stops (:func:`record_progress`).

Checkpoints are registered by name (unique): the inference service and the evaluator load a model by that
name from ``key_prefix`` in the object store. Registering again from the same job updates the row (a task
that runs twice); a name another job holds is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from giqa.infra.db.dal import NotFoundError, _changed, _check, _json, _text, _utc
from giqa.infra.db.models import (
    JOB_STATES,
    LAUNCHERS,
    MODEL_KINDS,
    Checkpoint,
    EvaluationJob,
    Job,
    utcnow,
)

FINAL_STATES = ("succeeded", "failed", "cancelled")


class ConflictError(ValueError):
    """A request the current state forbids (a checkpoint name taken, a finished job cancelled)."""


@dataclass(frozen=True, slots=True)
class CheckpointView:
    name: str
    job_id: str | None
    key_prefix: str
    local_path: str | None
    step: int
    metrics: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    name: str
    state: str
    launcher: str
    config: dict[str, Any]
    dataset_ref: str
    images_prefix: str | None
    base_model: str
    checkpoint_name: str
    step: int
    total_steps: int | None
    loss: float | None
    eta_s: float | None
    pid: int | None
    k8s_name: str | None
    cancel_requested: bool
    attempts: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    checkpoints: list[CheckpointView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LostJobs:
    """What :func:`requeue_lost_jobs` did: the ids it put back to pending (to be sent again) and failed."""

    requeued: list[str]
    failed: list[str]


@dataclass(frozen=True, slots=True)
class EvaluationView:
    id: str
    name: str
    state: str
    bench_key: str
    images_prefix: str | None
    model_kind: str
    model_ref: str
    judge_url: str | None
    options: dict[str, Any]
    report: dict[str, Any] | None
    report_key: str | None
    items_key: str | None
    chart_key: str | None
    predictions_key: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


# ----------------------------------------------------------------------------------------------- jobs


def create_job(
    s: Session,
    *,
    name: str,
    launcher: str,
    config: dict[str, Any],
    dataset_ref: str,
    base_model: str,
    checkpoint_name: str | None = None,
    images_prefix: str | None = None,
    total_steps: int | None = None,
) -> str:
    """A new training job in state pending; returns its id (a uuid4 hex). ``checkpoint_name``: the name
    the finished job registers its model under; default ``<name as a slug>-<first 12 of the id>``."""
    _check(launcher, LAUNCHERS, "launcher")
    for value, what in ((name, "job name"), (dataset_ref, "dataset"), (base_model, "base model")):
        _text(value, what)
    job_id = uuid4().hex
    if checkpoint_name is None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:100] or "job"
        checkpoint_name = f"{slug}-{job_id[:12]}"
    _text(checkpoint_name, "checkpoint name")
    now = utcnow()
    s.add(
        Job(
            id=job_id,
            name=name,
            state="pending",
            launcher=launcher,
            config=_json(config, "job config"),
            dataset_ref=dataset_ref,
            images_prefix=images_prefix,
            base_model=base_model,
            checkpoint_name=checkpoint_name,
            step=0,
            total_steps=total_steps,
            cancel_requested=False,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    s.flush()
    return job_id


def get_job(s: Session, *, job_id: str) -> JobView | None:
    job = s.get(Job, job_id)
    if job is None:
        return None
    return _job_view(job, list_checkpoints(s, job_id=job_id))


def list_jobs(s: Session, *, limit: int = 50, offset: int = 0, state: str | None = None) -> list[JobView]:
    """Jobs, the newest first (with their checkpoints)."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    if state is not None:
        _check(state, JOB_STATES, "job state")
        query = query.where(Job.state == state)
    jobs = s.scalars(query).all()
    by_job: dict[str, list[CheckpointView]] = {j.id: [] for j in jobs}
    if jobs:
        rows = s.scalars(
            select(Checkpoint).where(Checkpoint.job_id.in_(list(by_job))).order_by(Checkpoint.id)
        )
        for row in rows:
            by_job[row.job_id or ""].append(_checkpoint_view(row))
    return [_job_view(j, by_job[j.id]) for j in jobs]


def claim_job(s: Session, *, job_id: str) -> bool:
    """Move the job from pending to running, one attempt more; False when it is not pending (cancelled, or
    already claimed by another delivery of the same task)."""
    now = utcnow()
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.state == "pending")
        .values(
            state="running",
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, now),  # the first attempt's start
            heartbeat_at=now,
            updated_at=now,
        )
    )
    if _changed(s, statement) == 1:
        return True
    if s.get(Job, job_id) is None:
        raise NotFoundError(f"job {job_id} not found")
    return False


def set_job_process(s: Session, *, job_id: str, pid: int | None = None, k8s_name: str | None = None) -> None:
    """Record what runs the job: the local child's pid, or the Kubernetes object's name."""
    values: dict[str, Any] = {"updated_at": utcnow(), "heartbeat_at": utcnow()}
    if pid is not None:
        values["pid"] = pid
    if k8s_name is not None:
        values["k8s_name"] = k8s_name
    if _changed(s, update(Job).where(Job.id == job_id).values(**values)) == 0:
        raise NotFoundError(f"job {job_id} not found")


def record_progress(
    s: Session,
    *,
    job_id: str,
    step: int | None = None,
    total_steps: int | None = None,
    loss: float | None = None,
    eta_s: float | None = None,
    attempt: int | None = None,
) -> bool:
    """The launcher's report (it also counts as a heartbeat): fields given are set, the others kept.
    ``attempt``: the attempt the launcher runs; False when the job is not running that attempt any more
    (it ended, or it was found lost and handed on: the launcher must stop its process)."""
    now = utcnow()
    values: dict[str, Any] = {"heartbeat_at": now, "updated_at": now}
    for name, value in (("step", step), ("total_steps", total_steps), ("loss", loss), ("eta_s", eta_s)):
        if value is not None:
            values[name] = value
    statement = update(Job).where(Job.id == job_id, Job.state == "running")
    if attempt is not None:
        statement = statement.where(Job.attempts == attempt)
    if _changed(s, statement.values(**values)) == 0:
        if s.get(Job, job_id) is None:
            raise NotFoundError(f"job {job_id} not found")
        return False
    return True


def next_attempt(s: Session, *, job_id: str, attempt: int, max_attempts: int) -> int | None:
    """The running job's attempt after ``attempt`` (its launcher restarts a training process that was
    killed); None when ``max_attempts`` are used up or the job is not running ``attempt``."""
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.state == "running", Job.attempts == attempt, Job.attempts < max_attempts)
        .values(attempts=attempt + 1, heartbeat_at=utcnow(), updated_at=utcnow())
    )
    return attempt + 1 if _changed(s, statement) == 1 else None


def request_cancel(s: Session, *, job_id: str) -> JobView:
    """Cancel a job: a pending one ends at once; a running one gets ``cancel_requested`` for its launcher.
    A job already ended raises :class:`ConflictError`."""
    now = utcnow()
    pending = update(Job).where(Job.id == job_id, Job.state == "pending")
    changed = _changed(
        s, pending.values(state="cancelled", updated_at=now, finished_at=now, error="cancelled")
    )
    running = update(Job).where(Job.id == job_id, Job.state == "running")
    changed += _changed(s, running.values(cancel_requested=True, updated_at=now))
    s.expire_all()
    view = get_job(s, job_id=job_id)
    if view is None:
        raise NotFoundError(f"job {job_id} not found")
    if changed == 0:
        raise ConflictError(f"job {job_id} has ended ({view.state}); there is nothing to cancel")
    return view


def cancel_requested(s: Session, *, job_id: str) -> bool:
    flag = s.scalars(select(Job.cancel_requested).where(Job.id == job_id)).one_or_none()
    if flag is None:
        raise NotFoundError(f"job {job_id} not found")
    return bool(flag)


def finish_job(s: Session, *, job_id: str, state: str, error: str | None = None) -> bool:
    """End a job (succeeded, failed or cancelled); False when it had ended already (a final state stays)."""
    if state not in FINAL_STATES:
        raise ValueError(f"unknown final job state {state!r}; expected one of {', '.join(FINAL_STATES)}")
    now = utcnow()
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.state.not_in(FINAL_STATES))
        .values(
            state=state,
            error=error,
            updated_at=now,
            finished_at=now,
            eta_s=0.0 if state == "succeeded" else None,
        )
    )
    if _changed(s, statement) == 1:
        return True
    if s.get(Job, job_id) is None:
        raise NotFoundError(f"job {job_id} not found")
    return False


def requeue_lost_jobs(s: Session, *, stale_before: datetime, max_attempts: int) -> LostJobs:
    """The running jobs whose launcher last reported before ``stale_before`` (its worker died): a local
    job with attempts left goes back to pending (the caller sends it again; its next claim resumes it), the
    others are failed with the reason. Each row changes by one conditional UPDATE, so of several callers
    sweeping at once exactly one requeues (and sends) a job."""
    lost = s.execute(
        select(Job.id, Job.launcher, Job.attempts).where(
            Job.state == "running", Job.heartbeat_at < stale_before
        )
    ).all()
    requeued, failed = [], []
    for job_id, launcher, attempts in lost:
        now = utcnow()
        still_lost = update(Job).where(
            Job.id == job_id,
            Job.state == "running",
            Job.attempts == attempts,
            Job.heartbeat_at < stale_before,
        )
        if launcher == "local" and attempts < max_attempts:
            note = (
                f"attempt {attempts} of {max_attempts} lost (its worker stopped reporting); "
                "queued again to resume from its last complete checkpoint"
            )
            values: dict[str, Any] = {"state": "pending", "pid": None, "error": note, "updated_at": now}
            if _changed(s, still_lost.values(**values)) == 1:
                requeued.append(job_id)
            continue
        why = (
            f"after {attempts} attempts (jobs.max_attempts)"
            if launcher == "local"
            else f"the {launcher} launcher does not requeue"
        )
        error = (
            f"lost: the launcher stopped reporting (its worker died or was stopped), {why}; submit it again"
        )
        values = {"state": "failed", "error": error, "updated_at": now, "finished_at": now}
        if _changed(s, still_lost.values(**values)) == 1:
            failed.append(job_id)
    return LostJobs(requeued, failed)


def unqueue_job(s: Session, *, job_id: str) -> None:
    """Undo :func:`requeue_lost_jobs` for a job that could not be sent: running (and lost) again, so the
    next sweep requeues it, its attempts unchanged."""
    statement = update(Job).where(Job.id == job_id, Job.state == "pending", Job.attempts > 0)
    _changed(s, statement.values(state="running", updated_at=utcnow()))


def count_jobs(s: Session) -> dict[str, int]:
    """Jobs by state, every state present (the trainer's /metrics)."""
    rows = s.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    return dict.fromkeys(JOB_STATES, 0) | {row[0]: row[1] for row in rows}


# ---------------------------------------------------------------------------------------- checkpoints


def register_checkpoint(
    s: Session,
    *,
    name: str,
    key_prefix: str,
    step: int,
    metrics: dict[str, Any],
    job_id: str | None = None,
    local_path: str | None = None,
) -> CheckpointView:
    """Register a trained model under ``name``; the same job registering again updates its row, a name
    another job (or an import) holds raises :class:`ConflictError`."""
    _text(name, "checkpoint name")
    if not name.strip():
        raise ValueError("checkpoint name must not be empty")
    if not key_prefix.endswith("/"):
        raise ValueError(f"checkpoint key prefix must end in '/', got {key_prefix!r}")
    values = {
        "key_prefix": key_prefix,
        "local_path": local_path,
        "step": step,
        "metrics": _json(metrics, "checkpoint metrics"),
    }
    row = s.scalars(select(Checkpoint).where(Checkpoint.name == name)).one_or_none()
    if row is not None:
        if row.job_id != job_id or job_id is None:
            owner = f"job {row.job_id}" if row.job_id else "an imported model"
            raise ConflictError(f"checkpoint name {name!r} is taken by {owner}")
        for key, value in values.items():
            setattr(row, key, value)
    else:
        row = Checkpoint(name=name, job_id=job_id, created_at=utcnow(), **values)
        s.add(row)
    s.flush()
    return _checkpoint_view(row)


def get_checkpoint(s: Session, *, name: str) -> CheckpointView | None:
    row = s.scalars(select(Checkpoint).where(Checkpoint.name == name)).one_or_none()
    return None if row is None else _checkpoint_view(row)


def list_checkpoints(s: Session, *, job_id: str | None = None, limit: int = 100) -> list[CheckpointView]:
    """Checkpoints, the newest first; ``job_id``: only that job's."""
    query = select(Checkpoint).order_by(Checkpoint.id.desc()).limit(limit)
    if job_id is not None:
        query = query.where(Checkpoint.job_id == job_id)
    return [_checkpoint_view(row) for row in s.scalars(query)]


# ---------------------------------------------------------------------------------------- evaluations


def create_evaluation(
    s: Session,
    *,
    name: str,
    bench_key: str,
    model_kind: str,
    model_ref: str,
    options: dict[str, Any],
    images_prefix: str | None = None,
    judge_url: str | None = None,
) -> str:
    """A new evaluation in state pending; returns its id (a uuid4 hex)."""
    _check(model_kind, MODEL_KINDS, "model kind")
    for value, what in ((name, "evaluation name"), (bench_key, "bench key"), (model_ref, "model")):
        _text(value, what)
    eval_id = uuid4().hex
    now = utcnow()
    s.add(
        EvaluationJob(
            id=eval_id,
            name=name,
            state="pending",
            bench_key=bench_key,
            images_prefix=images_prefix,
            model_kind=model_kind,
            model_ref=model_ref,
            judge_url=judge_url,
            options=_json(options, "evaluation options"),
            created_at=now,
            updated_at=now,
        )
    )
    s.flush()
    return eval_id


def count_evaluations(s: Session) -> dict[str, int]:
    """Evaluations by state, every state present (the evaluator's /metrics)."""
    query = select(EvaluationJob.state, func.count()).group_by(EvaluationJob.state)
    return dict.fromkeys(JOB_STATES, 0) | {row[0]: row[1] for row in s.execute(query).all()}


def get_evaluation(s: Session, *, eval_id: str) -> EvaluationView | None:
    row = s.get(EvaluationJob, eval_id)
    return None if row is None else _evaluation_view(row)


def list_evaluations(
    s: Session, *, limit: int = 50, offset: int = 0, ids: list[str] | None = None
) -> list[EvaluationView]:
    """Evaluations, the newest first; ``ids``: those only."""
    query = select(EvaluationJob).order_by(EvaluationJob.created_at.desc(), EvaluationJob.id)
    if ids is not None:
        query = query.where(EvaluationJob.id.in_(ids))
    return [_evaluation_view(row) for row in s.scalars(query.limit(limit).offset(offset))]


def set_evaluation_model(s: Session, *, eval_id: str, model_ref: str) -> None:
    """Name the model of a pending evaluation (an uploaded predictions file, stored under the evaluation's
    id once the id exists)."""
    _text(model_ref, "model")
    statement = (
        update(EvaluationJob)
        .where(EvaluationJob.id == eval_id, EvaluationJob.state == "pending")
        .values(model_ref=model_ref, updated_at=utcnow())
    )
    if _changed(s, statement) == 0:
        raise NotFoundError(f"evaluation {eval_id} not found or not pending")


def claim_evaluation(s: Session, *, eval_id: str) -> bool:
    """pending → running; False when it is not pending (a task delivered again)."""
    now = utcnow()
    statement = (
        update(EvaluationJob)
        .where(EvaluationJob.id == eval_id, EvaluationJob.state == "pending")
        .values(state="running", started_at=now, updated_at=now)
    )
    if _changed(s, statement) == 1:
        return True
    if s.get(EvaluationJob, eval_id) is None:
        raise NotFoundError(f"evaluation {eval_id} not found")
    return False


def finish_evaluation(
    s: Session,
    *,
    eval_id: str,
    report: dict[str, Any],
    report_key: str,
    items_key: str,
    chart_key: str | None,
    predictions_key: str | None,
) -> None:
    """Record the report and its files and mark the evaluation succeeded."""
    now = utcnow()
    statement = (
        update(EvaluationJob)
        .where(EvaluationJob.id == eval_id)
        .values(
            state="succeeded",
            report=_json(report, "report"),
            report_key=report_key,
            items_key=items_key,
            chart_key=chart_key,
            predictions_key=predictions_key,
            error=None,
            updated_at=now,
            finished_at=now,
        )
    )
    if _changed(s, statement) == 0:
        raise NotFoundError(f"evaluation {eval_id} not found")


def fail_evaluation(s: Session, *, eval_id: str, error: str) -> None:
    now = utcnow()
    statement = (
        update(EvaluationJob)
        .where(EvaluationJob.id == eval_id, EvaluationJob.state.not_in(FINAL_STATES))
        .values(state="failed", error=error, updated_at=now, finished_at=now)
    )
    if _changed(s, statement) == 0 and s.get(EvaluationJob, eval_id) is None:
        raise NotFoundError(f"evaluation {eval_id} not found")


# ------------------------------------------------------------------------------------------- helpers


def _opt(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def _checkpoint_view(row: Checkpoint) -> CheckpointView:
    return CheckpointView(
        name=row.name,
        job_id=row.job_id,
        key_prefix=row.key_prefix,
        local_path=row.local_path,
        step=row.step,
        metrics=row.metrics,
        created_at=_utc(row.created_at),
    )


def _job_view(job: Job, checkpoints: list[CheckpointView]) -> JobView:
    return JobView(
        id=job.id,
        name=job.name,
        state=job.state,
        launcher=job.launcher,
        config=job.config,
        dataset_ref=job.dataset_ref,
        images_prefix=job.images_prefix,
        base_model=job.base_model,
        checkpoint_name=job.checkpoint_name,
        step=job.step,
        total_steps=job.total_steps,
        loss=job.loss,
        eta_s=job.eta_s,
        pid=job.pid,
        k8s_name=job.k8s_name,
        cancel_requested=job.cancel_requested,
        attempts=job.attempts,
        error=job.error,
        created_at=_utc(job.created_at),
        updated_at=_utc(job.updated_at),
        started_at=_opt(job.started_at),
        heartbeat_at=_opt(job.heartbeat_at),
        finished_at=_opt(job.finished_at),
        checkpoints=checkpoints,
    )


def _evaluation_view(row: EvaluationJob) -> EvaluationView:
    return EvaluationView(
        id=row.id,
        name=row.name,
        state=row.state,
        bench_key=row.bench_key,
        images_prefix=row.images_prefix,
        model_kind=row.model_kind,
        model_ref=row.model_ref,
        judge_url=row.judge_url,
        options=row.options,
        report=row.report,
        report_key=row.report_key,
        items_key=row.items_key,
        chart_key=row.chart_key,
        predictions_key=row.predictions_key,
        error=row.error,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        started_at=_opt(row.started_at),
        finished_at=_opt(row.finished_at),
    )
