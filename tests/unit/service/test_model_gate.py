"""giqa.service.model.ModelGate: one model call at a time (a torch model must not run two forward passes
at once), 503 overloaded with Retry-After beyond the queue limit, metrics per call."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from giqa.service import ServiceError, create_app
from giqa.service.model import ModelGate
from giqa.settings import ServiceSettings

pytestmark = pytest.mark.unit


def gate_for(**settings: int) -> ModelGate:
    service = ServiceSettings(**settings)
    return ModelGate(create_app(name="t", settings=service), service, item_buckets=(1, 8))


def test_calls_never_overlap_at_concurrency_one() -> None:
    gate = gate_for(model_concurrency=1, max_queued=8)
    running, peak = 0, 0
    lock = threading.Lock()

    def call() -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return 7

    async def main() -> list[tuple[int, float]]:
        return await asyncio.gather(*(gate.run(call, items=2) for _ in range(6)))

    results = asyncio.run(main())
    assert [r for r, _ in results] == [7] * 6 and peak == 1
    assert all(seconds >= 0.015 for _, seconds in results)
    samples = {s.name: s.value for s in gate.items.collect()[0].samples}
    assert samples["giqa_model_items_count"] == 6 and samples["giqa_model_items_sum"] == 12


def test_overloaded_beyond_the_queue_answers_503_with_retry_after() -> None:
    gate = gate_for(model_concurrency=1, max_queued=1)
    release = threading.Event()

    async def main() -> None:
        first = asyncio.create_task(gate.run(lambda: release.wait(10), items=1))
        second = asyncio.create_task(gate.run(lambda: True, items=1))  # queued behind the first
        try:
            for _ in range(1000):  # until both are in hand (a busy machine may take a while)
                if gate._waiting == 2:
                    break
                await asyncio.sleep(0.01)
            with pytest.raises(ServiceError) as caught:
                await gate.run(lambda: True, items=1)
            assert caught.value.status == 503 and caught.value.code == "overloaded"
            assert caught.value.headers == {"Retry-After": "1"}
        finally:
            release.set()  # never leave the worker threads blocked, whatever failed above
        assert (await first)[0] is True and (await second)[0] is True
        assert (await gate.run(lambda: 3, items=1))[0] == 3  # the queue drained: served again

    asyncio.run(main())
