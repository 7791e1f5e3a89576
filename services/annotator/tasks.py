"""The annotation run as queued tasks: per sample a chain of stage tasks, then one export per run.

Each stage task is a thin idempotent shell (DESIGN §6) taking a sample id: claim the sample
(:func:`~giqa.infra.db.dal.claim_sample`: a sample already done or failed makes a re-delivered task a
no-op) → load what the stage needs (image bytes from the object store by key, earlier payloads from the
database) → run the pure stage function of :mod:`giqa.pipeline.stages` → upsert its payload keyed by
(sample, stage) → enqueue the next stage. A stage whose payload is already stored (the worker died after
the write, before the next enqueue) is not run again; its successor is enqueued.

Queues (:mod:`giqa.infra.queue`): ``stage1`` and ``vqa`` on ``llm``, ``detect`` on ``detect``, ``assemble``
(IQA-Filter + Box-Merge + fusion) on ``judge``, ``export`` on ``cpu``. A worker builds only the backend its
queue needs, once per process, through :mod:`giqa.backends.factory` (a remote detector or judge when
``pipeline.detector_url``/``judge_url`` is set).

Faults: transient ones (the LLM server or a remote service unreachable or 5xx after the client's own
retries, object storage flagged retryable, a database connection lost) are retried with exponential
backoff (``queue.retry_backoff_s`` doubling up to ``queue.retry_backoff_max_s``, ``queue.max_retries``
times) and recorded as a retryable failure when the retries are spent; permanent ones (an image that does
not decode, an LLM that answers garbage after its own retries, a backend bug) fail the sample with its
stage and reason at once. VQA falls back to the tag templates when its LLM fails, as ``giqa annotate``
does. After a sample ends (done or failed) the task asks :func:`~giqa.infra.db.dal.try_begin_export`;
the one winner enqueues the run's export, which builds the audit records from the database
(:func:`giqa.pipeline.stages.build_record`) and writes the dataset with the one exporter
(:func:`giqa.pipeline.export.export_records`) into the object store.

Batched detection across samples is not done here (one sample per detect task): the detector service
batches within a request, and at the sizes measured the queue overhead is small beside the model.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import shared_task
from celery.exceptions import Retry
from sqlalchemy.exc import OperationalError

from giqa.backends.images import ImageError, decode_image
from giqa.infra.db import dal
from giqa.llm.errors import LLMError, LLMUnavailableError
from giqa.pipeline import stages
from giqa.pipeline.export import EXPORT_FILES, export_records
from giqa.settings import Settings, get_settings

log = logging.getLogger("giqa.annotator.tasks")

CHAIN = stages.STAGES  # stage1 -> detect -> assemble -> vqa
TASK_NAMES = {stage: f"giqa.annotate.{stage}" for stage in CHAIN} | {"export": "giqa.annotate.export"}
# Input problems (an image that does not decode, an empty description) are found at submission, before any
# stage; the database records them at stage1 with this prefix, and the audit record says "input".
INPUT_PREFIX = "input: "
CONTENT_TYPES = {".json": "application/json", ".md": "text/markdown", ".png": "image/png"}


class Transient(Exception):
    """A fault a later attempt may not meet (wraps the original)."""


# --------------------------------------------------------------------------------- the worker context


@dataclass
class WorkerContext:
    """What a worker process holds: settings, database sessions, the object store and the backends its
    queue needs, each built once on first use (a detect worker never loads the LLM or the judge)."""

    settings: Settings
    _sessions: Any = None
    _store: Any = None
    backends: dict[str, Any] = field(default_factory=dict)  # role -> backend; given ones are used as is
    _configs: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stack: ExitStack = field(default_factory=ExitStack)

    @contextmanager
    def session(self) -> Iterator[Any]:
        from giqa.infra.db import session_scope

        if self._sessions is None:
            from giqa.infra.db import engine_from_settings, make_sessionmaker

            self._sessions = make_sessionmaker(engine_from_settings(self.settings))
        with session_scope(self._sessions) as s:
            yield s

    @property
    def store(self) -> Any:
        if self._store is None:
            from giqa.infra.storage import make_store

            self._store = make_store(self.settings)
        return self._store

    def backend(self, role: str) -> Any:
        """``llm``, ``detector`` or ``judge``, built once through the factory (threads share it)."""
        with self._lock:
            if role not in self.backends:
                self.backends[role] = self._build(role)
            return self.backends[role]

    def _build(self, role: str) -> Any:
        from giqa.backends import factory

        p = self.settings.pipeline
        if role == "llm":
            return self._stack.enter_context(factory.make_chat_llm(self.settings, handle_signals=False))
        if role == "detector":
            return factory.make_detector(p)
        if role == "judge":
            return factory.make_judge(p)
        raise ValueError(f"unknown backend role {role!r}")

    def config(self, run_id: str, run_config: Callable[[], dict[str, Any]]) -> Any:
        """The run's :class:`~giqa.pipeline.stages.AnnotateConfig` (the box form chosen at submission),
        read from the database once per run and process."""
        if run_id not in self._configs:
            from giqa.backends.factory import annotate_config

            self._configs[run_id] = annotate_config(self.settings, run_config().get("form"))
        return self._configs[run_id]

    def close(self) -> None:
        self._stack.close()
        for backend in self.backends.values():
            closer = getattr(backend, "close", None)
            if callable(closer):
                closer()
        self.backends.clear()


_context: WorkerContext | None = None
_context_lock = threading.Lock()


def context() -> WorkerContext:
    """This process's context, built from :func:`giqa.settings.get_settings` on first use."""
    global _context
    with _context_lock:
        if _context is None:
            _context = WorkerContext(get_settings())
        return _context


def use_context(ctx: WorkerContext | None) -> WorkerContext | None:
    """Install ``ctx`` as this process's context (tests and the in-process annotator); returns the old one."""
    global _context
    with _context_lock:
        old, _context = _context, ctx
        return old


# ------------------------------------------------------------------------------------------ helpers


def is_transient(exc: BaseException) -> bool:
    """Whether a later attempt may succeed (see the module docstring)."""
    if isinstance(exc, LLMUnavailableError | OperationalError | ConnectionError | TimeoutError):
        return True
    return bool(getattr(exc, "retryable", False))


def enqueue(step: str, *args: Any) -> None:
    """Send the task of ``step`` (a stage or ``export``): routed to its queue by name (in eager mode it runs
    here and now)."""
    result = TASKS[step].apply_async(args=list(args))
    if getattr(result, "maybe_throw", None) and TASKS[step].app.conf.task_always_eager:
        result.maybe_throw()  # a bug in an eager task surfaces here, as it would in a worker's log


def next_stage(done: dict[str, Any]) -> str | None:
    """The first stage of the chain without a payload (None: every stage is done)."""
    return next((stage for stage in CHAIN if stage not in done), None)


def _backoff(task: Any) -> float:
    q = context().settings.queue
    return float(min(q.retry_backoff_max_s, q.retry_backoff_s * 2**task.request.retries))


def after_sample_ended(run_id: str) -> None:
    """The export of the run, if this caller is the one that finds every sample ended."""
    with context().session() as s:
        won = dal.try_begin_export(s, run_id=run_id)
    if won:
        enqueue("export", run_id)


def _fail(sample_id: int, run_id: str, stage: str, exc: BaseException | str, retryable: bool) -> None:
    reason = exc if isinstance(exc, str) else stages.failure_reason(exc)
    with context().session() as s:
        dal.fail_sample(s, sample_id=sample_id, stage=stage, reason=reason, retryable=retryable)
    log.info("sample %s failed at %s: %s", sample_id, stage, reason)
    after_sample_ended(run_id)


def _image(sample: Any, config: Any) -> Any:
    if sample.image_key is None:
        raise ImageError(f"{sample.image_ref}: no stored image")
    data = context().store.get_bytes(sample.image_key)
    return decode_image(data, config.max_image_pixels, where=sample.image_ref)


# --------------------------------------------------------------------------------------- the stages


def _stage1(sample: Any, config: Any) -> dict[str, Any]:
    return stages.run_stage1(context().backend("llm"), sample.description, config)


def _detect(sample: Any, config: Any) -> dict[str, Any]:
    phrases = stages.phrases_of(sample.payloads["stage1"])
    if not phrases:
        return stages.detections_payload([])
    return stages.run_detect(context().backend("detector"), _image(sample, config), phrases)


def _assemble(sample: Any, config: Any) -> dict[str, Any]:
    s1, det = sample.payloads["stage1"], sample.payloads["detect"]
    # the image is needed only where the IQA-Filter looks at crops: a tag with several boxes
    judged = any(len(found) > 1 for found in det.get("detections", []))
    judge = context().backend("judge") if judged else None
    image = _image(sample, config) if judged else None
    return stages.run_assemble(
        sample.key, sample.image_ref, sample.description, s1, det, image, judge, config
    )


def _vqa(sample: Any, config: Any, *, last_try: bool) -> dict[str, Any]:
    return stages.run_vqa(
        context().backend("llm"),
        sample.key,
        sample.image_ref,
        sample.description,
        sample.payloads["assemble"],
        config,
        fallback_on_unavailable=last_try,
    )


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "stage1": _stage1,
    "detect": _detect,
    "assemble": _assemble,
}


def run_stage(task: Any, stage: str, sample_id: int) -> None:
    """One stage of one sample (the body of every stage task; see the module docstring)."""
    ctx = context()
    max_retries = ctx.settings.queue.max_retries
    last_try = task.request.retries >= max_retries
    try:
        with ctx.session() as s:
            if not dal.claim_sample(s, sample_id=sample_id, stage=stage):
                return  # done or failed already: a re-delivered task
            sample = dal.get_sample(s, sample_id=sample_id)
            config = ctx.config(sample.run_id, lambda: dal.run_config(s, run_id=sample.run_id))
        if stage in sample.payloads:  # written before a crash: do not run the model again
            _advance(sample.run_id, sample_id, sample.payloads)
            return
        missing = [st for st in CHAIN[: CHAIN.index(stage)] if st not in sample.payloads]
        if missing:
            raise RuntimeError(f"stage {stage} of sample {sample_id} ran before {', '.join(missing)}")
        started = time.perf_counter()
        try:
            if stage == "vqa":
                payload = _vqa(sample, config, last_try=last_try)
            else:
                payload = RUNNERS[stage](sample, config)
        except Retry:
            raise
        except Exception as exc:
            if is_transient(exc) and not last_try:
                raise task.retry(exc=exc, countdown=_backoff(task), max_retries=max_retries) from exc
            retryable = is_transient(exc)
            if not retryable and not isinstance(exc, LLMError | ImageError | ValueError):
                log.exception("stage %s of sample %s failed", stage, sample_id)
            _fail(sample_id, sample.run_id, stage, exc, retryable)
            return
        seconds = round(time.perf_counter() - started, 4)
        with ctx.session() as s:
            dal.upsert_stage(s, sample_id=sample_id, stage=stage, payload=payload, seconds=seconds)
            if stage == CHAIN[-1]:
                dal.finish_sample(s, sample_id=sample_id)
        _advance(sample.run_id, sample_id, sample.payloads | {stage: payload})
    except OperationalError as exc:  # the database went away between statements: try again later
        if last_try:
            raise
        raise task.retry(exc=exc, countdown=_backoff(task), max_retries=max_retries) from exc


def _advance(run_id: str, sample_id: int, done: dict[str, Any]) -> None:
    following = next_stage(done)
    if following is None:
        with context().session() as s:
            dal.finish_sample(s, sample_id=sample_id)  # idempotent: a re-delivered last stage
        after_sample_ended(run_id)
    else:
        enqueue(following, sample_id)


@shared_task(bind=True, name=TASK_NAMES["stage1"], acks_late=True)
def stage1_task(self: Any, sample_id: int) -> None:
    run_stage(self, "stage1", sample_id)


@shared_task(bind=True, name=TASK_NAMES["detect"], acks_late=True)
def detect_task(self: Any, sample_id: int) -> None:
    run_stage(self, "detect", sample_id)


@shared_task(bind=True, name=TASK_NAMES["assemble"], acks_late=True)
def assemble_task(self: Any, sample_id: int) -> None:
    run_stage(self, "assemble", sample_id)


@shared_task(bind=True, name=TASK_NAMES["vqa"], acks_late=True)
def vqa_task(self: Any, sample_id: int) -> None:
    run_stage(self, "vqa", sample_id)


# ---------------------------------------------------------------------------------------- the export


def run_records(s: Any, run_id: str) -> Iterator[dict[str, Any]]:
    """The run's audit records from the database, by sample id (the order the input gave them)."""
    failures = dal.latest_failures(s, run_id=run_id)
    seconds = dal.stage_seconds(s, run_id=run_id)
    for sample in dal.iter_run_records(s, run_id=run_id):
        failure: dict[str, Any] | None = None
        if sample.state == "failed":
            latest = failures.get(sample.id)
            stage, reason = (
                (latest.stage, latest.reason) if latest else ("input", "failed (no failure recorded)")
            )
            if reason.startswith(INPUT_PREFIX):  # a bad upload, recorded before stage 1
                stage, reason = "input", reason[len(INPUT_PREFIX) :]
            failure = {"stage": stage, "reason": reason, "retryable": bool(latest and latest.retryable)}
        yield stages.build_record(
            sample.key,
            sample.image_ref,
            sample.description,
            sample.payloads,
            timings=seconds.get(sample.id, {}),
            failure=failure,
        )


def export_run(run_id: str) -> dict[str, Any]:
    """Write the run's dataset files into the object store and record the dataset; returns the stats."""
    from giqa.infra.storage import dataset_key

    ctx = context()
    a = ctx.settings.annotate
    with ctx.session() as s:
        entries = [
            (item_id, cls)
            for record in run_records(s, run_id)
            for item_id, cls in record.get("vqa_index") or []
        ]
        with tempfile.TemporaryDirectory(prefix="giqa-export-") as tmp:
            out = Path(tmp)
            summary = export_records(
                entries,
                run_records(s, run_id),
                out,
                seed=a.seed,
                val_fraction=a.val_fraction,
                vqa_limit=a.vqa_limit,
            )
            for name in EXPORT_FILES:
                ctx.store.put_file(
                    dataset_key(run_id, name),
                    out / name,
                    content_type=CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream"),
                )
    with ctx.session() as s:
        dal.record_dataset(
            s,
            run_id=run_id,
            key=dataset_key(run_id, "train.json"),
            val_key=dataset_key(run_id, "val.json"),
            stats=summary,
        )
    return summary


@shared_task(bind=True, name=TASK_NAMES["export"], acks_late=True)
def export_task(self: Any, run_id: str) -> None:
    ctx = context()
    try:
        export_run(run_id)
    except Exception as exc:
        if is_transient(exc) and self.request.retries < ctx.settings.queue.max_retries:
            raise self.retry(exc=exc, countdown=_backoff(self)) from exc
        log.exception("export of run %s failed", run_id)
        with ctx.session() as s:
            dal.set_run_state(s, run_id=run_id, state="failed", error=f"export: {stages.failure_reason(exc)}")


TASKS = {
    "stage1": stage1_task,
    "detect": detect_task,
    "assemble": assemble_task,
    "vqa": vqa_task,
    "export": export_task,
}
