"""The run database's tables as typed SQLAlchemy 2 models (DESIGN §6): runs, images, samples, stage results,
failures, datasets; training jobs, the checkpoints they register, evaluations.

(decided) States are short strings with CHECK constraints rather than database enums: adding a state is
then a one-line migration on Postgres and SQLite alike. JSON columns are JSONB on Postgres. Constraint
names follow one naming convention so migrations name them the same on every database. Timestamps are
UTC; SQLite gives them back without a zone, the data-access layer adds it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RUN_STATES = ("pending", "running", "exporting", "done", "failed", "cancelled")
SAMPLE_STATES = ("pending", "running", "done", "failed")
STAGES = ("stage1", "detect", "judge", "assemble", "vqa")  # pipeline order
JOB_STATES = ("pending", "running", "succeeded", "failed", "cancelled")  # jobs and evaluations alike
LAUNCHERS = ("local", "kubernetes")
MODEL_KINDS = ("url", "checkpoint", "predictions")  # what an evaluation scores

JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONType, datetime: DateTime(timezone=True)}


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (CheckConstraint(_one_of("state", RUN_STATES), name="state"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    config: Mapped[dict[str, Any]]
    images_prefix: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    dataset_key: Mapped[str | None] = mapped_column(String(1024))
    error: Mapped[str | None] = mapped_column(Text)


class Image(Base):
    """One stored image, addressed by the SHA-256 of its bytes (so the same image is stored once)."""

    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex
    key: Mapped[str] = mapped_column(String(1024))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(16))


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("run_id", "key"),
        CheckConstraint(_one_of("state", SAMPLE_STATES), name="state"),
        Index(None, "run_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(512))
    image_id: Mapped[str | None] = mapped_column(ForeignKey("images.id"))  # None: the image was bad
    image_ref: Mapped[str] = mapped_column(Text)  # the image path as the input gave it
    description: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    stage: Mapped[str | None] = mapped_column(String(16))  # the last stage done
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class StageResult(Base):
    __tablename__ = "stage_results"
    __table_args__ = (
        UniqueConstraint("sample_id", "stage"),
        CheckConstraint(_one_of("stage", STAGES), name="stage"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]]
    seconds: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Failure(Base):
    """One failure occurrence (history is kept: a retried sample keeps its earlier failures)."""

    __tablename__ = "failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    retryable: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), unique=True)
    key: Mapped[str] = mapped_column(String(1024))  # object key of train.json
    val_key: Mapped[str | None] = mapped_column(String(1024))
    stats: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A training job: ``giqa train`` run by a launcher, its progress as the metrics file reports it."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_one_of("state", JOB_STATES), name="state"),
        CheckConstraint(_one_of("launcher", LAUNCHERS), name="launcher"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    launcher: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]]  # giqa train fields as submitted (the launcher sets the folders)
    dataset_ref: Mapped[str] = mapped_column(String(1024))  # store key of the LLaVA JSON, or run:<id>
    images_prefix: Mapped[str | None] = mapped_column(String(1024))
    base_model: Mapped[str] = mapped_column(String(1024))  # tiny, a folder on the worker, or key:<prefix>
    checkpoint_name: Mapped[str] = mapped_column(String(200))  # the name the finished job registers
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[float | None] = mapped_column(Float)
    pid: Mapped[int | None] = mapped_column(Integer)  # the local launcher's child process
    k8s_name: Mapped[str | None] = mapped_column(String(253))  # the Kubernetes object
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims: 1 + the times it resumed
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]  # the launcher's last report; a stale one marks the job lost
    finished_at: Mapped[datetime | None]


class Checkpoint(Base):
    """A trained model by name: where its files are in the object store (and on the worker that made it)."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    key_prefix: Mapped[str] = mapped_column(String(1024))  # checkpoints/<name>/, ending in /
    local_path: Mapped[str | None] = mapped_column(String(1024))
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvaluationJob(Base):
    """An evaluation: a bench scored for one model; the report inline, its files in the object store."""

    __tablename__ = "evaluations"
    __table_args__ = (
        CheckConstraint(_one_of("state", JOB_STATES), name="state"),
        CheckConstraint(_one_of("model_kind", MODEL_KINDS), name="model_kind"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    bench_key: Mapped[str] = mapped_column(String(1024))
    images_prefix: Mapped[str | None] = mapped_column(String(1024))
    model_kind: Mapped[str] = mapped_column(String(16))
    model_ref: Mapped[str] = mapped_column(String(1024))  # URL, checkpoint name or predictions key
    judge_url: Mapped[str | None] = mapped_column(String(1024))
    options: Mapped[dict[str, Any]]  # limit, max_new_tokens, served model name
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    report_key: Mapped[str | None] = mapped_column(String(1024))
    items_key: Mapped[str | None] = mapped_column(String(1024))
    chart_key: Mapped[str | None] = mapped_column(String(1024))
    predictions_key: Mapped[str | None] = mapped_column(String(1024))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
