"""The Celery worker entry point for every queue: ``celery -A services.worker worker -Q <queue>``.

The app comes from :func:`giqa.infra.queue.make_celery` (settings from the ``GIQA_`` environment) and
every service's tasks are registered by importing their modules here. Which backends a worker loads follows
from the tasks it receives (a worker on ``detect`` builds only the detector), once per process; they are
closed when the worker process shuts down (the embedded LLM server with them).

With ``queue.metrics_port`` set, the worker serves Prometheus metrics on that port from ``worker_init``
(task latency and outcomes by stage, GPU memory): :mod:`giqa.infra.metrics`.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_init, worker_process_shutdown, worker_shutdown

import services.annotator.tasks as annotator_tasks
import services.evaluator.tasks as evaluator_tasks
import services.trainer.tasks as trainer_tasks
from giqa.infra.metrics import WorkerMetrics
from giqa.infra.queue import make_celery
from giqa.settings import get_settings

app = make_celery(get_settings())
app.set_default()
TASK_MODULES = (annotator_tasks.__name__, trainer_tasks.__name__, evaluator_tasks.__name__)
METRICS = WorkerMetrics()


@worker_init.connect
def _serve_metrics(sender: Any = None, **_: Any) -> None:
    port = get_settings().queue.metrics_port
    if not port:
        return
    METRICS.connect()
    pool = getattr(getattr(sender, "pool_cls", None), "__module__", "") or str(
        getattr(sender, "pool_cls", "")
    )
    METRICS.serve(port, pool=pool)


@worker_shutdown.connect
@worker_process_shutdown.connect
def _close_backends(**_: Any) -> None:
    annotator_tasks.context().close()
