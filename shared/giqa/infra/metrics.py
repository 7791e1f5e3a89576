"""What operators watch outside the HTTP services: Celery workers' tasks, GPU memory, the queues' depth.

- :class:`WorkerMetrics`: a worker process's own Prometheus registry, fed by Celery's task signals
  (``task_prerun`` starts the clock, ``task_postrun`` observes the latency and counts the outcome from the
  task's final state, so a failure or a retry is counted once) and served by ``prometheus_client``'s HTTP
  server on ``queue.metrics_port`` (``services/worker.py`` starts it at ``worker_init``). Metrics:
  ``giqa_task_seconds`` (histogram) and ``giqa_tasks_total`` (counter), both by ``stage`` (the task name's
  last part: ``stage1``, ``detect``, ``train``...), ``queue`` and ``outcome`` (``success``, ``failure``,
  ``retry``); ``giqa_gpu_memory_bytes`` by ``device`` and ``kind`` (``allocated``, ``reserved``).
- :class:`GpuMemory`: read at scrape, only when torch is already imported by the process (a model worker)
  and CUDA is initialised there; this module never imports torch, so a CPU worker pays nothing.
- :class:`QueueDepth`: ``giqa_queue_depth`` by ``queue`` read at scrape with Redis ``LLEN`` (Celery's Redis
  transport keeps each queue as a list named after it, and its priority sub-queues as ``<name>\\x06\\x16<n>``,
  which are added in), and ``giqa_broker_up`` (0 when Redis does not answer: the scrape still succeeds).
  The annotator's ``/metrics`` carries it, since it is the service that feeds the queues.

Pools: the worker's registry lives in the process that runs the tasks. ``solo`` (the model queues, ``cpu``,
``train``, ``eval``) and ``threads`` (``llm``) run tasks in the worker process itself, so its endpoint sees
every task. A ``prefork`` pool runs tasks in child processes whose registries nobody serves (they are not
aggregated): the parent's endpoint then shows no task metrics, and a warning says so. ``worker_argv`` never
picks prefork; scale a queue with more worker processes instead, each with its own port (or its own pod).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("giqa.metrics")

# kombu's Redis transport: priority sub-queue i of queue q is the list f"{q}{SEP}{i}" (0 is q itself)
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


def stage_of(task_name: str) -> str:
    """``giqa.annotate.detect`` -> ``detect``; the label operators read."""
    return task_name.rsplit(".", 1)[-1] or task_name


class GpuMemory:
    """``giqa_gpu_memory_bytes`` per CUDA device, when this process already uses CUDA (else nothing)."""

    def collect(self) -> Iterable[Any]:
        torch = sys.modules.get("torch")
        if torch is None:
            return
        try:
            if not torch.cuda.is_available() or not torch.cuda.is_initialized():
                return
            family = GaugeMetricFamily(
                "giqa_gpu_memory_bytes",
                "CUDA memory held by this process's tensors",
                labels=["device", "kind"],
            )
            for device in range(torch.cuda.device_count()):
                family.add_metric([str(device), "allocated"], float(torch.cuda.memory_allocated(device)))
                family.add_metric([str(device), "reserved"], float(torch.cuda.memory_reserved(device)))
        except Exception as exc:  # a CUDA error must not fail the scrape
            log.warning("GPU memory not collected: %s", exc)
            return
        yield family

    def describe(self) -> Iterable[Any]:
        return []


class WorkerMetrics:
    """One worker process's registry and the Celery signal handlers that feed it (see the module doc)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.seconds = Histogram(
            "giqa_task_seconds",
            "Celery task run time, by stage, queue and outcome",
            ["stage", "queue", "outcome"],
            registry=self.registry,
            buckets=TASK_BUCKETS,
        )
        self.tasks = Counter(
            "giqa_tasks",
            "Celery tasks run, by stage, queue and outcome (success, failure, retry)",
            ["stage", "queue", "outcome"],
            registry=self.registry,
        )
        self.registry.register(GpuMemory())
        self._started: dict[str, float] = {}
        self.port: int | None = None

    def connect(self) -> None:
        """Listen to the task signals (weakly held handlers would vanish: these are strong references)."""
        from celery.signals import task_postrun, task_prerun

        task_prerun.connect(self.on_prerun, weak=False)
        task_postrun.connect(self.on_postrun, weak=False)

    def on_prerun(self, task_id: str | None = None, **_: Any) -> None:
        if task_id:
            self._started[task_id] = time.perf_counter()

    def on_postrun(
        self, task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
    ) -> None:
        from giqa.infra.queue import queue_of

        started = self._started.pop(task_id or "", None)
        name = str(getattr(task, "name", "") or "unknown")
        outcome = {"SUCCESS": "success", "RETRY": "retry"}.get(str(state), "failure")
        labels = (stage_of(name), queue_of(name), outcome)
        self.tasks.labels(*labels).inc()
        if started is not None:
            self.seconds.labels(*labels).observe(time.perf_counter() - started)

    def serve(self, port: int, *, pool: str = "") -> int | None:
        """Start the HTTP endpoint on ``port`` (all interfaces; 0 picks a free port): the port bound, or
        None when it cannot be bound (logged: a worker without metrics still works its queue)."""
        if "prefork" in pool.lower():
            log.warning(
                "worker metrics: the prefork pool runs tasks in child processes whose metrics this endpoint "
                "does not see; run the queue with -P solo or -P threads (as giqa worker does)"
            )
        try:
            server, _thread = start_http_server(port, registry=self.registry)
        except OSError as exc:  # e.g. two workers on one host given the same queue.metrics_port
            log.error(
                "worker metrics off: port %d cannot be bound (%s); give each worker its own port", port, exc
            )
            return None
        self.port = int(server.server_address[1])
        log.info("worker metrics on :%d/metrics", self.port)
        return self.port


class QueueDepth:
    """``giqa_queue_depth`` by queue and ``giqa_broker_up`` from the Redis broker, read at scrape."""

    def __init__(self, broker_url: str | None, queues: Iterable[str], *, timeout_s: float = 1.0) -> None:
        self.broker_url = broker_url
        self.queues = tuple(queues)
        self.timeout_s = timeout_s

    def depths(self) -> dict[str, int]:
        """Messages waiting per queue (priority sub-queues included); raises when Redis does not answer."""
        import redis

        client = redis.Redis.from_url(
            str(self.broker_url), socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s
        )
        try:
            pipe = client.pipeline(transaction=False)
            for queue in self.queues:
                pipe.llen(queue)
                for step in PRIORITY_STEPS:
                    pipe.llen(f"{queue}{PRIORITY_SEP}{step}")
            counts = pipe.execute()
        finally:
            client.close()
        width = 1 + len(PRIORITY_STEPS)
        return {q: int(sum(counts[i * width : (i + 1) * width])) for i, q in enumerate(self.queues)}

    def collect(self) -> Iterable[Any]:
        if not self.broker_url or not self.broker_url.startswith(("redis://", "rediss://")):
            return  # eager mode (no broker) or a broker whose queues are not Redis lists
        up = GaugeMetricFamily("giqa_broker_up", "1 when the Redis broker answered this scrape")
        try:
            depths = self.depths()
        except Exception as exc:  # the broker is away: say so, and keep /metrics answering
            log.warning("queue depth not collected: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        family = GaugeMetricFamily(
            "giqa_queue_depth", "messages waiting in each Celery queue", labels=["queue"]
        )
        for queue, n in depths.items():
            family.add_metric([queue], float(n))
        yield family

    def describe(self) -> Iterable[Any]:
        return []
