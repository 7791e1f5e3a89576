"""Dynamic batching: requests that arrive within a few milliseconds share one model call.

A request is a (key, payload) pair; only payloads with the same key can share a call (the same generation
length, or the same candidate words). One asyncio task collects a batch — the oldest waiting request, then
every waiting request with its key, until ``max_batch_size`` or until ``batch_wait_ms`` has passed since the
batch started — and hands it to ``run(key, payloads)`` in the one worker thread, so the event loop keeps
accepting requests while the model computes (they form the next batch). Under load batches fill up by
themselves; alone, a request waits at most ``batch_wait_ms``.

The queue is bounded: with ``queue_size`` requests already waiting, a new one is refused at once with a 503
and a ``Retry-After`` estimated from the recent batch time. A request cancelled while it waits (its client
left, or the service's time limit fired) leaves the queue at once and frees its slot.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from giqa.service import ServiceError

log = logging.getLogger("giqa.inference")

RunBatch = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request's result and what it cost: seconds queued, seconds of the shared model call, batch size."""

    value: Any
    queue_s: float
    model_s: float
    batch_size: int


@dataclass(slots=True)
class _Job:
    key: Hashable
    payload: Any
    future: asyncio.Future[Outcome]
    enqueued: float = field(default_factory=time.perf_counter)


class BatcherMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_size = Histogram(
            "giqa_inference_batch_size",
            "requests per model call",
            ["kind"],
            registry=registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self.queue_depth = Gauge(
            "giqa_inference_queue_depth", "requests waiting for a batch", registry=registry
        )
        self.queue_wait = Histogram(
            "giqa_inference_queue_seconds",
            "time a request waited for its batch",
            registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.model_time = Histogram(
            "giqa_inference_model_seconds",
            "duration of one batched model call",
            ["kind"],
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.rejected = Counter("giqa_inference_rejected", "requests refused: queue full", registry=registry)


class DynamicBatcher:
    """See the module doc. Use inside a running event loop: ``await start()``, ``await submit(...)``,
    ``await stop()``."""

    def __init__(
        self,
        run: RunBatch,
        *,
        max_batch_size: int,
        batch_wait_ms: float,
        queue_size: int,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if max_batch_size < 1 or queue_size < 1 or batch_wait_ms < 0:
            raise ValueError("max_batch_size and queue_size must be >= 1, batch_wait_ms >= 0")
        self.run = run
        self.max_batch_size = max_batch_size
        self.wait_s = batch_wait_ms / 1000
        self.queue_size = queue_size
        self.metrics = BatcherMetrics(registry or CollectorRegistry())
        self._waiting: deque[_Job] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="giqa-model")
        self._recent_batch_s = 0.1

    @property
    def depth(self) -> int:
        return len(self._waiting)

    async def start(self) -> None:
        if self._task is None:
            self._arrived = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="giqa-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for job in self._waiting:
            if not job.future.done():
                job.future.set_exception(
                    ServiceError(503, "the service is shutting down", code="unavailable")
                )
        self._waiting.clear()
        self._pool.shutdown(wait=True)

    def retry_after_s(self) -> int:
        """Seconds until the queue has room again, estimated from the recent batch time."""
        batches = math.ceil((len(self._waiting) + 1) / self.max_batch_size)
        return max(1, math.ceil(batches * self._recent_batch_s))

    async def submit(self, key: Hashable, payload: Any) -> Outcome:
        """Wait for ``payload``'s turn in a batch of its ``key``; its result with timings."""
        if self._task is None or self._arrived is None:
            raise ServiceError(503, "the model is not loaded yet; retry when /ready answers 200")
        if len(self._waiting) >= self.queue_size:
            self.metrics.rejected.inc()
            raise ServiceError(
                503,
                f"the inference queue is full ({self.queue_size} requests waiting); retry shortly",
                code="overloaded",
                headers={"Retry-After": str(self.retry_after_s())},
            )
        job = _Job(key, payload, asyncio.get_running_loop().create_future())
        self._waiting.append(job)
        self.metrics.queue_depth.set(len(self._waiting))
        self._arrived.set()
        try:
            return await job.future
        except asyncio.CancelledError:
            self._forget(job)
            raise

    def _forget(self, job: _Job) -> None:
        try:
            self._waiting.remove(job)
        except ValueError:
            pass  # already taken into a batch: its result is dropped
        self.metrics.queue_depth.set(len(self._waiting))

    def _take(self, key: Hashable, batch: list[_Job]) -> None:
        """Move waiting jobs of ``key`` into ``batch``, oldest first, up to the batch size."""
        kept: deque[_Job] = deque()
        while self._waiting:
            job = self._waiting.popleft()
            if job.future.done():
                continue
            if job.key == key and len(batch) < self.max_batch_size:
                batch.append(job)
            else:
                kept.append(job)
        self._waiting = kept

    async def _loop(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            while not any(not j.future.done() for j in self._waiting):
                self._waiting.clear()
                self._arrived.clear()
                await self._arrived.wait()
            first = next(j for j in self._waiting if not j.future.done())
            batch: list[_Job] = []
            deadline = loop.time() + self.wait_s
            while True:
                self._take(first.key, batch)
                remaining = deadline - loop.time()
                if len(batch) >= self.max_batch_size or remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    pass
            self.metrics.queue_depth.set(len(self._waiting))
            batch = [j for j in batch if not j.future.done()]
            if not batch:
                continue
            await self._run(first.key, batch)

    async def _run(self, key: Hashable, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        kind = str(key[0]) if isinstance(key, tuple) and key else str(key)
        try:
            results = await loop.run_in_executor(self._pool, self.run, key, [j.payload for j in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"the model returned {len(results)} results for {len(batch)} requests")
        except Exception as exc:  # every request of the batch gets the failure
            log.exception("a batch of %d %s requests failed", len(batch), kind)
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        model_s = time.perf_counter() - started
        self._recent_batch_s = 0.8 * self._recent_batch_s + 0.2 * model_s
        self.metrics.batch_size.labels(kind).observe(len(batch))
        self.metrics.model_time.labels(kind).observe(model_s)
        for job, value in zip(batch, results, strict=True):
            queue_s = started - job.enqueued
            self.metrics.queue_wait.observe(queue_s)
            if not job.future.done():
                job.future.set_result(Outcome(value, queue_s, model_s, len(batch)))
