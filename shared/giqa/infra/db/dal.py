"""Keyword-only data-access functions: every query the services and tasks make lives here.

Each function takes the :class:`~sqlalchemy.orm.Session` first and everything else by keyword; none
commits (the caller's :func:`~giqa.infra.db.engine.session_scope` does), so a task's writes are one
transaction. Results come back as frozen views, never ORM objects, so they can cross threads and queues.

Idempotency, which ``acks_late`` re-delivery needs (DESIGN §6): images, samples, stage results and
datasets are upserts keyed by their natural keys (content hash, (run, key), (sample, stage), run), so a
task that runs twice writes the same rows once. Failures are history and are appended.

States (decided): a sample goes pending → running (:func:`claim_sample`) → done | failed; a failed sample
runs again only after :func:`reset_samples`. A run goes pending → running → exporting
(:func:`try_begin_export`, exactly one caller wins) → done (:func:`record_dataset`) | failed | cancelled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import CursorResult, and_, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from giqa.infra.db.models import (
    RUN_STATES,
    SAMPLE_STATES,
    STAGES,
    Dataset,
    Failure,
    Image,
    Run,
    Sample,
    StageResult,
    utcnow,
)

CHUNK = 500  # rows per statement: below SQLite's variable limit, small enough for one round trip
FINAL_RUN_STATES = ("done", "failed", "cancelled")


class NotFoundError(LookupError):
    """A run or sample id that is not in the database."""


@dataclass(frozen=True, slots=True)
class SampleIn:
    """A sample to add: its key within the run, the image path as given, the description, and the stored
    image's SHA-256 (None when the image could not be read: the sample is then failed by the caller)."""

    key: str
    image_ref: str
    description: str
    image_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunView:
    id: str
    name: str
    state: str
    config: dict[str, Any]
    images_prefix: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    dataset_key: str | None
    error: str | None
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # samples by state, every state present


@dataclass(frozen=True, slots=True)
class SampleView:
    id: int
    run_id: str
    key: str
    image_id: str | None
    image_key: str | None
    image_ref: str
    description: str
    state: str
    stage: str | None
    attempts: int
    updated_at: datetime
    payloads: dict[str, dict[str, Any]]  # stage -> payload, only the stages done


@dataclass(frozen=True, slots=True)
class FailureView:
    sample_id: int
    sample_key: str
    stage: str
    reason: str
    retryable: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Progress:
    run_id: str
    total: int
    by_state: dict[str, int]  # samples by state, every state present
    by_stage: dict[str, int]  # stage results by stage, every stage present
    failures: list[FailureView]  # the most recent first


# ----------------------------------------------------------------------------------------------- runs


def create_run(s: Session, *, name: str, config: dict[str, Any], images_prefix: str | None = None) -> str:
    """A new run in state pending; returns its id (a uuid4 hex)."""
    run_id = uuid4().hex
    _text(name, "run name")
    s.add(
        Run(
            id=run_id,
            name=name,
            state="pending",
            config=_json(config, "run config"),
            images_prefix=images_prefix,
        )
    )
    s.flush()
    return run_id


def get_run(s: Session, *, run_id: str) -> RunView | None:
    run = s.get(Run, run_id)
    if run is None:
        return None
    return _run_view(run, _state_counts(s, [run_id]).get(run_id, {}))


def run_config(s: Session, *, run_id: str) -> dict[str, Any]:
    """The config a run was submitted with (cheap: no sample counts, unlike :func:`get_run`)."""
    config = s.scalars(select(Run.config).where(Run.id == run_id)).one_or_none()
    if config is None:
        raise NotFoundError(f"run {run_id} not found")
    return config


def list_runs(s: Session, *, limit: int = 50, offset: int = 0) -> list[RunView]:
    """Runs, the newest first."""
    runs = s.scalars(select(Run).order_by(Run.created_at.desc(), Run.id).limit(limit).offset(offset)).all()
    counts = _state_counts(s, [r.id for r in runs])
    return [_run_view(r, counts.get(r.id, {})) for r in runs]


def set_run_state(s: Session, *, run_id: str, state: str, error: str | None = None) -> None:
    """Set a run's state (and its error); a final state (done, failed, cancelled) stamps ``finished_at``."""
    _check(state, RUN_STATES, "run state")
    now = utcnow()
    values: dict[str, Any] = {"state": state, "error": error, "updated_at": now}
    values["finished_at"] = now if state in FINAL_RUN_STATES else None
    if _changed(s, update(Run).where(Run.id == run_id).values(**values)) == 0:
        raise NotFoundError(f"run {run_id} not found")


def try_begin_export(s: Session, *, run_id: str) -> bool:
    """Move the run from running to exporting when no sample is pending or running; True for the one caller
    that did it. One conditional UPDATE: concurrent callers serialize on the run's row and every one but the
    first sees the state it changed, so exactly one wins. Call it after the transaction that finished the
    caller's sample committed (then the last sample to finish always sees the others done)."""
    busy = exists().where(Sample.run_id == run_id, Sample.state.in_(("pending", "running")))
    statement = (
        update(Run)
        .where(Run.id == run_id, Run.state == "running", ~busy)
        .values(state="exporting", updated_at=utcnow())
    )
    return _changed(s, statement) == 1


def record_dataset(s: Session, *, run_id: str, key: str, val_key: str | None, stats: dict[str, Any]) -> None:
    """Record the run's exported dataset (an upsert: a repeated export replaces it) and mark the run done."""
    now = utcnow()
    done = update(Run).where(Run.id == run_id)
    done = done.values(state="done", dataset_key=key, error=None, updated_at=now, finished_at=now)
    if _changed(s, done) == 0:
        raise NotFoundError(f"run {run_id} not found")
    values = {"key": key, "val_key": val_key, "stats": _json(stats, "dataset stats"), "created_at": now}
    statement = _insert(s, Dataset).values(run_id=run_id, **values)
    s.execute(statement.on_conflict_do_update(index_elements=["run_id"], set_=values))


def dataset_stats(s: Session, *, run_id: str) -> dict[str, Any] | None:
    """The statistics recorded with the run's dataset (None: not exported yet)."""
    return s.scalars(select(Dataset.stats).where(Dataset.run_id == run_id)).one_or_none()


# --------------------------------------------------------------------------------------------- images


def add_image(s: Session, *, sha256: str, key: str, width: int, height: int, nbytes: int, fmt: str) -> None:
    """Record a stored image (idempotent: the same content is one row, whatever adds it)."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"image id must be a lowercase sha256 hex digest, got {sha256!r}")
    row = {"id": sha256, "key": key, "width": width, "height": height, "bytes": nbytes, "format": fmt}
    s.execute(_insert(s, Image).values(row).on_conflict_do_nothing(index_elements=["id"]))


# -------------------------------------------------------------------------------------------- samples


def add_samples(s: Session, *, run_id: str, samples: Sequence[SampleIn]) -> list[int]:
    """Add samples to a run; returns their ids in input order. Idempotent on (run, key): a key already
    there keeps its row as it is and returns its id (so does a key repeated within ``samples``)."""
    if s.get(Run, run_id) is None:
        raise NotFoundError(f"run {run_id} not found")
    for x in samples:
        _text(x.key, "sample key")
        _text(x.image_ref, f"sample {x.key!r}: image path")
        _text(x.description, f"sample {x.key!r}: description")
    now = utcnow()
    for start in range(0, len(samples), CHUNK):
        rows = [
            {
                "run_id": run_id,
                "key": x.key,
                "image_id": x.image_id,
                "image_ref": x.image_ref,
                "description": x.description,
                "state": "pending",
                "attempts": 0,
                "updated_at": now,
            }
            for x in samples[start : start + CHUNK]
        ]
        s.execute(_insert(s, Sample).on_conflict_do_nothing(index_elements=["run_id", "key"]), rows)
    ids: dict[str, int] = {}
    keys = list(dict.fromkeys(x.key for x in samples))
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        found = s.execute(select(Sample.key, Sample.id).where(Sample.run_id == run_id, Sample.key.in_(chunk)))
        ids.update((key, sample_id) for key, sample_id in found)
    return [ids[x.key] for x in samples]


def get_sample(s: Session, *, sample_id: int) -> SampleView:
    views = _sample_views(s, select(Sample).where(Sample.id == sample_id))
    if not views:
        raise NotFoundError(f"sample {sample_id} not found")
    return views[0]


def iter_run_records(s: Session, *, run_id: str, batch: int = CHUNK) -> Iterator[SampleView]:
    """Every sample of the run with its stage payloads, by sample id, read ``batch`` at a time."""
    last = 0
    while True:
        query = (
            select(Sample).where(Sample.run_id == run_id, Sample.id > last).order_by(Sample.id).limit(batch)
        )
        views = _sample_views(s, query)
        yield from views
        if len(views) < batch:
            return
        last = views[-1].id


def claim_sample(s: Session, *, sample_id: int, stage: str) -> bool:
    """Mark the sample running for ``stage`` (attempts + 1); False when it is done or failed, or its run was
    cancelled or failed, so a task delivered again after the sample (or run) ended does nothing. A sample
    left running by a worker that died is claimed again. A failed sample is claimed only after
    :func:`reset_samples`."""
    _check(stage, STAGES, "stage")
    statement = (
        update(Sample)
        .where(
            Sample.id == sample_id,
            Sample.state.in_(("pending", "running")),
            ~exists().where(Run.id == Sample.run_id, Run.state.in_(("cancelled", "failed"))),
        )
        .values(state="running", attempts=Sample.attempts + 1, updated_at=utcnow())
    )
    if _changed(s, statement) == 1:
        return True
    if s.get(Sample, sample_id) is None:
        raise NotFoundError(f"sample {sample_id} not found")
    return False


def upsert_stage(s: Session, *, sample_id: int, stage: str, payload: dict[str, Any], seconds: float) -> None:
    """Store a stage's result (an upsert on (sample, stage): written twice, stored once, the last wins) and
    advance the sample's last stage done (never back: a late re-delivery of an earlier stage keeps it)."""
    _check(stage, STAGES, "stage")
    now = utcnow()
    row = {
        "sample_id": sample_id,
        "stage": stage,
        "payload": _json(payload, f"{stage} payload"),
        "seconds": seconds,
    }
    row["updated_at"] = now
    statement = _insert(s, StageResult).values(row)
    statement = statement.on_conflict_do_update(
        index_elements=["sample_id", "stage"],
        set_={"payload": statement.excluded.payload, "seconds": seconds, "updated_at": now},
    )
    current = s.execute(select(Sample.stage).where(Sample.id == sample_id)).one_or_none()
    if current is None:
        raise NotFoundError(f"sample {sample_id} not found")
    s.execute(statement)
    if current[0] is None or STAGES.index(current[0]) < STAGES.index(stage):
        s.execute(update(Sample).where(Sample.id == sample_id).values(stage=stage, updated_at=now))


def stage_payload(s: Session, *, sample_id: int, stage: str) -> dict[str, Any] | None:
    _check(stage, STAGES, "stage")
    query = select(StageResult.payload).where(StageResult.sample_id == sample_id, StageResult.stage == stage)
    return s.scalars(query).one_or_none()


def finish_sample(s: Session, *, sample_id: int) -> None:
    _set_sample_state(s, sample_id, "done")


def fail_sample(s: Session, *, sample_id: int, stage: str, reason: str, retryable: bool) -> None:
    """Mark the sample failed and append the failure (stage, reason, whether a retry can help)."""
    _check(stage, STAGES, "stage")
    _set_sample_state(s, sample_id, "failed")
    s.add(Failure(sample_id=sample_id, stage=stage, reason=reason, retryable=retryable, created_at=utcnow()))
    s.flush()


def failed_samples(s: Session, *, run_id: str, retryable_only: bool = False) -> list[int]:
    """Ids of the run's failed samples, by id; ``retryable_only``: those whose latest failure is retryable."""
    query = select(Sample.id).where(Sample.run_id == run_id, Sample.state == "failed").order_by(Sample.id)
    if retryable_only:
        earlier = aliased(Failure)
        latest = select(func.max(earlier.id)).where(earlier.sample_id == Sample.id).scalar_subquery()
        query = query.join(Failure, and_(Failure.sample_id == Sample.id, Failure.id == latest))
        query = query.where(Failure.retryable.is_(True))
    return list(s.scalars(query))


def samples_in_state(
    s: Session, *, run_id: str, states: Sequence[str], updated_before: datetime | None = None
) -> list[int]:
    """Ids of the run's samples in ``states`` (e.g. pending ones whose task was never sent), by id;
    ``updated_before``: only those not touched since then."""
    for state in states:
        _check(state, SAMPLE_STATES, "sample state")
    query = select(Sample.id).where(Sample.run_id == run_id, Sample.state.in_(list(states)))
    if updated_before is not None:
        query = query.where(Sample.updated_at < updated_before)
    return list(s.scalars(query.order_by(Sample.id)))


def runs_in_state(s: Session, *, states: Sequence[str], updated_before: datetime | None = None) -> list[str]:
    """Ids of the runs in ``states`` (``updated_before``: not touched since then), the oldest first."""
    for state in states:
        _check(state, RUN_STATES, "run state")
    query = select(Run.id).where(Run.state.in_(list(states)))
    if updated_before is not None:
        query = query.where(Run.updated_at < updated_before)
    return list(s.scalars(query.order_by(Run.created_at)))


def reset_samples(s: Session, *, sample_ids: Sequence[int]) -> int:
    """Put failed samples back to pending for a retry (failure history kept); returns how many were reset.
    Samples that are not failed are left alone. (The run's state is the caller's: set it running again.)"""
    reset = 0
    for start in range(0, len(sample_ids), CHUNK):
        chunk = list(sample_ids[start : start + CHUNK])
        statement = (
            update(Sample)
            .where(Sample.id.in_(chunk), Sample.state == "failed")
            .values(state="pending", updated_at=utcnow())
        )
        reset += _changed(s, statement)
    return reset


def run_progress(s: Session, *, run_id: str, failures_limit: int = 20) -> Progress:
    """Samples by state, stage results by stage, and the most recent failures of a run."""
    by_state = _state_counts(s, [run_id]).get(run_id, dict.fromkeys(SAMPLE_STATES, 0))
    stage_rows = s.execute(
        select(StageResult.stage, func.count())
        .join(Sample, Sample.id == StageResult.sample_id)
        .where(Sample.run_id == run_id)
        .group_by(StageResult.stage)
    )
    by_stage = dict.fromkeys(STAGES, 0) | {row[0]: row[1] for row in stage_rows}
    recent = s.execute(
        select(Failure, Sample.key)
        .join(Sample, Sample.id == Failure.sample_id)
        .where(Sample.run_id == run_id)
        .order_by(Failure.id.desc())
        .limit(failures_limit)
    )
    failures = [
        FailureView(f.sample_id, key, f.stage, f.reason, f.retryable, _utc(f.created_at)) for f, key in recent
    ]
    return Progress(run_id, sum(by_state.values()), by_state, by_stage, failures)


def latest_failures(s: Session, *, run_id: str) -> dict[int, FailureView]:
    """The latest failure of each of the run's failed samples, by sample id (the export's failed records)."""
    earlier = aliased(Failure)
    latest = select(func.max(earlier.id)).where(earlier.sample_id == Sample.id).scalar_subquery()
    rows = s.execute(
        select(Failure, Sample.key)
        .join(Sample, and_(Sample.id == Failure.sample_id, Failure.id == latest))
        .where(Sample.run_id == run_id, Sample.state == "failed")
    )
    return {
        f.sample_id: FailureView(f.sample_id, key, f.stage, f.reason, f.retryable, _utc(f.created_at))
        for f, key in rows
    }


def stage_seconds(s: Session, *, run_id: str) -> dict[int, dict[str, float]]:
    """Seconds each stage took, per sample id of the run (the export's timings and the throughput)."""
    rows = s.execute(
        select(StageResult.sample_id, StageResult.stage, StageResult.seconds)
        .join(Sample, Sample.id == StageResult.sample_id)
        .where(Sample.run_id == run_id)
    )
    out: dict[int, dict[str, float]] = {}
    for sample_id, stage, seconds in rows:
        out.setdefault(sample_id, {})[stage] = seconds
    return {k: {st: v[st] for st in STAGES if st in v} for k, v in out.items()}


# ------------------------------------------------------------------------------------------- helpers


def _insert(s: Session, table: type[Any]) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_update``/``do_nothing`` (Postgres and SQLite)."""
    name = s.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"unsupported database {name!r}")  # pragma: no cover - make_engine refuses others


def _changed(s: Session, statement: Any) -> int:
    """Rows an UPDATE changed."""
    result: CursorResult[Any] = s.execute(statement)  # type: ignore[assignment]
    return result.rowcount


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def _json(value: dict[str, Any], what: str) -> dict[str, Any]:
    """``value`` if it is a JSON object Postgres can store (no NaN or infinity, string keys)."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    try:
        dumped = json.dumps(value, allow_nan=False, ensure_ascii=False)
        dumped.encode("utf-8")  # a lone surrogate (JSON's "\\ud800" decodes to one) is not storable text
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not storable JSON: {exc}") from None
    if "\\u0000" in dumped:
        raise ValueError(f"{what} is not storable JSON: it holds a NUL character (\\u0000)")
    return value


def _text(value: str, what: str) -> str:
    """``value`` if Postgres can store it as text (no NUL character; SQLite would, the two must agree)."""
    if "\x00" in value:
        raise ValueError(f"{what} {value!r} holds a NUL character, which cannot be stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {value!r} is not valid Unicode (a lone surrogate)") from None
    return value


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _set_sample_state(s: Session, sample_id: int, state: str) -> None:
    statement = update(Sample).where(Sample.id == sample_id).values(state=state, updated_at=utcnow())
    if _changed(s, statement) == 0:
        raise NotFoundError(f"sample {sample_id} not found")


def _state_counts(s: Session, run_ids: list[str]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {r: dict.fromkeys(SAMPLE_STATES, 0) for r in run_ids}
    if run_ids:
        rows = s.execute(
            select(Sample.run_id, Sample.state, func.count())
            .where(Sample.run_id.in_(run_ids))
            .group_by(Sample.run_id, Sample.state)
        )
        for run_id, state, n in rows:
            counts[run_id][state] = n
    return counts


def _run_view(run: Run, counts: dict[str, int]) -> RunView:
    counts = dict.fromkeys(SAMPLE_STATES, 0) | counts
    return RunView(
        id=run.id,
        name=run.name,
        state=run.state,
        config=run.config,
        images_prefix=run.images_prefix,
        created_at=_utc(run.created_at),
        updated_at=_utc(run.updated_at),
        finished_at=None if run.finished_at is None else _utc(run.finished_at),
        dataset_key=run.dataset_key,
        error=run.error,
        total=sum(counts.values()),
        counts=counts,
    )


def _sample_views(s: Session, query: Any) -> list[SampleView]:
    rows = s.execute(query.add_columns(Image.key).outerjoin(Image, Image.id == Sample.image_id)).all()
    ids = [sample.id for sample, _ in rows]
    payloads: dict[int, dict[str, dict[str, Any]]] = {i: {} for i in ids}
    if ids:
        results = s.execute(
            select(StageResult.sample_id, StageResult.stage, StageResult.payload).where(
                StageResult.sample_id.in_(ids)
            )
        )
        for sample_id, stage, payload in results:
            payloads[sample_id][stage] = payload
    return [
        SampleView(
            id=x.id,
            run_id=x.run_id,
            key=x.key,
            image_id=x.image_id,
            image_key=image_key,
            image_ref=x.image_ref,
            description=x.description,
            state=x.state,
            stage=x.stage,
            attempts=x.attempts,
            updated_at=_utc(x.updated_at),
            payloads={st: payloads[x.id][st] for st in STAGES if st in payloads[x.id]},
        )
        for x, image_key in rows
    ]


def active_stage_counts(s: Session) -> tuple[dict[str, int], dict[str, int]]:
    """Failures recorded and stage results stored, by stage, over the runs still in flight (pending, running
    or exporting): two grouped counts for ``/metrics`` at scrape time. Every stage is present."""
    active = select(Run.id).where(Run.state.in_(("pending", "running", "exporting")))
    failures = s.execute(
        select(Failure.stage, func.count())
        .join(Sample, Sample.id == Failure.sample_id)
        .where(Sample.run_id.in_(active))
        .group_by(Failure.stage)
    )
    results = s.execute(
        select(StageResult.stage, func.count())
        .join(Sample, Sample.id == StageResult.sample_id)
        .where(Sample.run_id.in_(active))
        .group_by(StageResult.stage)
    )
    return (
        dict.fromkeys(STAGES, 0) | {row[0]: row[1] for row in failures},
        dict.fromkeys(STAGES, 0) | {row[0]: row[1] for row in results},
    )
