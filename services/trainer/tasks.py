"""The ``train`` queue's task: one training job run to its end by :func:`services.trainer.runner.run_job`.

Acknowledged when it starts (``acks_late=False``, unlike the annotation stages): a job runs for hours,
longer than any broker visibility timeout, and must not be delivered to a second worker while the first
still trains. A worker that dies mid-job takes its child with it; the job's heartbeat stops and the service
fails it as lost after ``jobs.lost_after_s``.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from services.annotator.tasks import context
from services.trainer.launchers import TRAIN_TASK
from services.trainer.runner import run_job


@shared_task(bind=True, name=TRAIN_TASK, acks_late=False)
def train_task(self: Any, job_id: str) -> str:  # noqa: ARG001 - bound for the task's request
    return run_job(context(), job_id)
