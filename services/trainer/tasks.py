"""The ``train`` queue's task: one training job run to its end by :func:`services.trainer.runner.run_job`.

Acknowledged when it starts (``acks_late=False``, unlike the annotation stages): a job runs for hours,
longer than any broker visibility timeout, and must not be delivered to a second worker while the first
still trains (``acks_late`` with ``reject_on_worker_lost`` would bring a killed job back only after the
visibility timeout, and would also hand every job that outlasts it to a second worker). Redelivery is the
database's instead: a worker that dies (SIGKILL, the node) takes its child with it, the job's heartbeat
stops, and after ``jobs.lost_after_s`` the trainer service queues it again; the next attempt resumes from
the last complete checkpoint (:mod:`services.trainer.runner`), up to ``jobs.max_attempts``. A worker asked
to stop (SIGTERM: a rollout, a scale-down) stops the child and fails the job with that reason at once.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_shutting_down

from services.annotator.tasks import context
from services.trainer.launchers import TRAIN_TASK
from services.trainer.runner import STOPPING, run_job


@shared_task(bind=True, name=TRAIN_TASK, acks_late=False)
def train_task(self: Any, job_id: str) -> str:  # noqa: ARG001 - bound for the task's request
    return run_job(context(), job_id)


@worker_shutting_down.connect
def _worker_stopping(**_: Any) -> None:
    """SIGTERM to the worker: the running job's child is stopped and the job failed with the reason."""
    STOPPING.set()
