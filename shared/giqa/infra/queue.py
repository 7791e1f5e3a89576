"""The task queue: one Celery app built from settings, named queues per resource, JSON only.

Queues (DESIGN §6): ``llm`` (Stage 1 and VQA call the LLM server), ``detect`` (Grounding DINO), ``judge``
(the IQA-Filter and Stages 3–4), ``cpu`` (the export), ``train`` (training jobs: the worker runs ``giqa
train`` as a child process) and ``eval`` (evaluations). A worker listens on the queues whose model it holds,
so GPU workers scale independently of the rest. Tasks are routed by name (:data:`TASK_QUEUES`).

Delivery (decided): ``acks_late`` with ``reject_on_worker_lost``, so a worker that dies mid-task leaves the
task on the broker to run again; that is safe only because every stage's write is an upsert keyed by
(sample, stage). ``prefetch_multiplier=1`` keeps one task per worker process reserved, so a long task does
not hold others hostage. Redis redelivers a task not acknowledged within its visibility timeout, which must
therefore outlast the longest task (the settings refuse otherwise). Such a message comes back only when a
worker scans the broker for expired ones: kombu scans at a worker's start and then every
``unacked_restore_interval × unacked_restore_throttle`` seconds (10 × 10 by default: a task lost with a
killed worker could wait 100 s past its timeout); here every scan runs (throttle 1), every quarter of the
visibility timeout (1–60 s), so a lost task is back within 1.25 timeouts. Messages carry ids and object keys
only, never images or ORM objects; JSON is the only accepted content type, so nothing is unpickled.

Embedded default: with no ``queue.broker_url`` tasks run in-process (Celery's eager mode), the same code.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from giqa.ports import Health
from giqa.settings import QUEUE_NAMES, Settings

# Task name -> queue. A task not listed goes to ``cpu``.
TASK_QUEUES: dict[str, str] = {
    "giqa.annotate.stage1": "llm",
    "giqa.annotate.detect": "detect",
    "giqa.annotate.assemble": "judge",
    "giqa.annotate.vqa": "llm",
    "giqa.annotate.export": "cpu",
    "giqa.jobs.train": "train",
    "giqa.jobs.evaluate": "eval",
}
DEFAULT_QUEUE = "cpu"


def queue_of(task_name: str) -> str:
    return TASK_QUEUES.get(task_name, DEFAULT_QUEUE)


def _route(name: str, _args: Any, _kwargs: Any, _options: Any, **_kw: Any) -> dict[str, str]:
    return {"queue": queue_of(name)}


def restore_interval_s(visibility_timeout_s: float) -> int:
    """Seconds between a worker's scans for unacknowledged messages past their visibility timeout."""
    return int(max(1, min(60, visibility_timeout_s // 4)))


def make_celery(settings: Settings, *, name: str = "giqa") -> Celery:
    """The Celery app the settings describe (see the module docstring for the choices)."""
    q = settings.queue
    eager = q.broker_url is None
    app = Celery(name, broker=q.broker_url or "memory://", set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # a run finishes by counting states in the database, not by results
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=q.task_time_limit_s,
        task_soft_time_limit=max(1.0, q.task_time_limit_s * 0.9),
        broker_transport_options={
            "visibility_timeout": q.visibility_timeout_s,
            "unacked_restore_interval": restore_interval_s(q.visibility_timeout_s),
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        task_routes=(_route,),
        task_default_queue=DEFAULT_QUEUE,
        task_create_missing_queues=True,
        task_always_eager=eager,
        task_eager_propagates=False,  # True would raise Retry out of eager retries; see tasks.enqueue
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


def broker_health(app: Celery, timeout_s: float = 2.0) -> Health:
    """Whether the broker answers (always ok in eager mode: there is none)."""
    if app.conf.task_always_eager:
        return Health(True, "eager: tasks run in-process")
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout_s)
    except Exception as exc:  # kombu raises OperationalError and socket errors alike
        return Health(False, f"broker {app.conf.broker_url} does not answer: {exc}")
    return Health(True)


def worker_argv(
    settings: Settings, queue: str, *, index: int = 1, app: str = "services.worker", pool: str | None = None
) -> list[str]:
    """The ``celery worker`` arguments of a worker on ``queue`` (the stack launcher and the tests use it).

    GPU queues (``detect``, ``judge``) run a ``solo`` pool (CUDA does not survive a fork; concurrency comes
    from more worker processes); the ``llm`` queue waits on HTTP, so it runs threads; ``cpu`` forks.
    """
    if queue not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {queue!r}; the queues are {', '.join(QUEUE_NAMES)}")
    # train and eval: solo, one job at a time per worker, the child process dies with the worker process
    pools = {
        "detect": "solo",
        "judge": "solo",
        "llm": "threads",
        "cpu": "solo",
        "train": "solo",
        "eval": "solo",
    }
    pool = pool or pools[queue]
    argv = ["-A", app, "worker", "-Q", queue, "-P", pool, "-n", f"{queue}{index}@%h", "--without-gossip"]
    argv += ["--without-mingle", "--without-heartbeat", "-l", "INFO"]
    if pool != "solo":
        argv += ["-c", str(settings.queue.concurrency[queue])]
    return argv
