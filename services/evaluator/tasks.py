"""The ``eval`` queue's task: one evaluation by :func:`services.evaluator.runner.run_evaluation`.

Acknowledged when it starts, like training: answering a large bench with a model may outlast the broker's
visibility timeout, and two workers must not score the same evaluation at once.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from services.annotator.tasks import context
from services.evaluator.runner import run_evaluation

EVAL_TASK = "giqa.jobs.evaluate"


@shared_task(bind=True, name=EVAL_TASK, acks_late=False)
def evaluate_task(self: Any, eval_id: str) -> str:  # noqa: ARG001 - bound for the task's request
    return run_evaluation(context(), eval_id)
