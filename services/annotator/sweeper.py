"""Runs whose tasks the broker lost are sent again, automatically: the annotator's stall sweeper.

A Redis restarted without persistence (or flushed, or failed over to a replica that was behind) loses
every queued task; nothing in the messages that remain says which samples they were for. The database
does: samples still pending or running, and runs still exporting. They cannot be told apart from samples
whose task is merely waiting in a long queue or running — except when the broker is idle. So every
``queue.stall_check_s`` the sweeper (one thread in each annotator process, working on the process's
context; a Redis lock lets one of several replicas sweep per period) looks at the broker, and only when
every queue is empty AND no task is held unacknowledged by a worker (running, or waiting for its retry
countdown) it re-sends, from the stage each stopped at, the samples of running runs untouched for
``queue.stall_after_s``, and the export of runs left exporting that long. A sample already claimed
:func:`max_attempts` times is failed instead (retryable, with the reason): a task that kills its worker
every time must not circle forever. Sending one twice is harmless: every stage write is an upsert keyed
by (sample, stage) and a task for a sample that ended is a no-op. With tasks still queued or held the
sweep waits: whatever was lost is sent once the queues drain. ``giqa runs retry --stalled`` does the
same on demand.

Redis only (the broker the platform runs on: its queues are lists named after the queues, priorities as
suffixed lists, unacknowledged messages in the ``unacked`` hash); another broker has no sweeper.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from giqa.infra.db import dal
from giqa.infra.db.models import utcnow
from giqa.settings import QUEUE_NAMES, Settings
from services.annotator.tasks import CHAIN, WorkerContext, after_sample_ended, enqueue, next_stage

log = logging.getLogger("giqa.annotator.sweeper")

PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport: queue "llm" at priority 3 is the list "llm\x06\x163"
PRIORITY_STEPS = (0, 3, 6, 9)
LOCK_KEY = "giqa:stall-sweep"


def broker_idle(client: Any) -> bool:
    """No message queued on any giqa queue and none held unacknowledged by a worker."""
    keys = [q if p == 0 else f"{q}{PRIORITY_SEP}{p}" for q in QUEUE_NAMES for p in PRIORITY_STEPS]
    pipe = client.pipeline()
    for key in keys:
        pipe.llen(key)
    pipe.hlen("unacked")
    return not any(pipe.execute())


def max_attempts(settings: Settings) -> int:
    """Claims of one sample beyond which the sweeper stops re-sending it and fails it (retryable): twice
    what every stage with every retry would take."""
    return 2 * len(CHAIN) * (settings.queue.max_retries + 1)


def sweep(ctx: WorkerContext, client: Any) -> dict[str, int]:
    """One pass (see the module docstring); how many samples and exports it sent again, and how many
    samples it failed because re-sending them never got them further (a task that kills its worker)."""
    sent = {"samples": 0, "exports": 0, "failed": 0}
    if not broker_idle(client):
        return sent
    q = ctx.settings.queue
    if not client.set(LOCK_KEY, "1", nx=True, px=max(1, int(q.stall_check_s * 1000 * 0.9))):
        return sent  # another annotator swept this period
    cutoff = utcnow() - timedelta(seconds=q.stall_after_s)
    most = max_attempts(ctx.settings)
    resend: list[tuple[int, str]] = []
    given_up: list[str] = []
    with ctx.session() as s:
        exports = dal.runs_in_state(s, states=("exporting",), updated_before=cutoff)
        for run_id in dal.runs_in_state(s, states=("running",)):
            for sample_id in dal.samples_in_state(
                s, run_id=run_id, states=("pending", "running"), updated_before=cutoff
            ):
                view = dal.get_sample(s, sample_id=sample_id)
                stage = next_stage(view.payloads) or "vqa"
                if view.attempts >= most:  # a task that dies every time: stop re-sending it
                    reason = f"stalled at {stage}: sent {view.attempts} times without finishing"
                    dal.fail_sample(s, sample_id=sample_id, stage=stage, reason=reason, retryable=True)
                    given_up.append(run_id)
                else:
                    resend.append((sample_id, stage))
    for run_id in dict.fromkeys(given_up):
        after_sample_ended(run_id)
    for sample_id, stage in resend:
        enqueue(stage, sample_id)
    for run_id in exports:
        enqueue("export", run_id)
    sent = {"samples": len(resend), "exports": len(exports), "failed": len(given_up)}
    if resend or exports:
        log.warning(
            "the broker is idle but %d samples and %d exports had not moved for %.0f s: sent again",
            len(resend), len(exports), q.stall_after_s,
        )  # fmt: skip
    return sent


class Sweeper:
    """The sweeper thread of one annotator process (:meth:`start` does nothing when it is off)."""

    def __init__(self, ctx: WorkerContext, settings: Settings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        q = self.settings.queue
        return bool(
            q.stall_check_s > 0 and q.broker_url and q.broker_url.startswith(("redis://", "rediss://"))
        )

    def start(self) -> Sweeper:
        if self.enabled:
            self.thread = threading.Thread(target=self._loop, name="giqa-stall-sweeper", daemon=True)
            self.thread.start()
        return self

    def _loop(self) -> None:
        import redis

        assert self.settings.queue.broker_url is not None
        client = redis.Redis.from_url(
            self.settings.queue.broker_url, socket_timeout=5, socket_connect_timeout=5
        )
        while not self.stopped.wait(self.settings.queue.stall_check_s):
            try:
                sweep(self.ctx, client)
            except Exception as exc:  # the broker or the database is down: try again next period
                log.info("stall sweep skipped: %s: %s", type(exc).__name__, str(exc)[:200])
        client.close()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
