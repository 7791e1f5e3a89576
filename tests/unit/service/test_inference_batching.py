"""The dynamic batcher of the inference service, on a recording model function: batches fill up to the
size, only same-key requests share a call, the bounded queue answers 503 + Retry-After, a cancelled request
frees its slot, a failing batch fails its requests only."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from giqa.service import ServiceError
from services.inference.batching import DynamicBatcher

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self, delay_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[object, list[object]]] = []
        self.delay_s = delay_s
        self.gate = gate

    def __call__(self, key, payloads):
        if self.gate is not None:
            assert self.gate.wait(10)
        time.sleep(self.delay_s)
        self.calls.append((key, list(payloads)))
        if "boom" in payloads:
            raise RuntimeError("model failed")
        return [f"{key}:{p}" for p in payloads]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_concurrent_requests_share_calls_up_to_the_batch_size() -> None:
    model = Recorder(delay_s=0.05)

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=4, batch_wait_ms=20, queue_size=64)
        await batcher.start()
        try:
            outcomes = await asyncio.gather(*(batcher.submit("k", i) for i in range(10)))
        finally:
            await batcher.stop()
        return outcomes

    outcomes = run(main())
    assert [o.value for o in outcomes] == [f"k:{i}" for i in range(10)]  # each gets its own answer
    sizes = [len(p) for _, p in model.calls]
    assert sum(sizes) == 10 and max(sizes) == 4 and len(sizes) == 3
    assert all(o.batch_size in sizes and o.model_s > 0 for o in outcomes)


def test_only_requests_with_the_same_key_share_a_call() -> None:
    model = Recorder()

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=8, batch_wait_ms=30, queue_size=64)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(("gen", i % 2), i) for i in range(8)))
        finally:
            await batcher.stop()

    outcomes = run(main())
    assert [o.value for o in outcomes] == [f"('gen', {i % 2}):{i}" for i in range(8)]
    assert sorted(p for _, p in model.calls) == [[0, 2, 4, 6], [1, 3, 5, 7]]


def test_a_lone_request_waits_at_most_the_window() -> None:
    async def main():
        batcher = DynamicBatcher(Recorder(), max_batch_size=16, batch_wait_ms=30, queue_size=4)
        await batcher.start()
        try:
            started = time.perf_counter()
            await batcher.submit("k", 1)
            return time.perf_counter() - started
        finally:
            await batcher.stop()

    assert 0.025 <= run(main()) < 1.0


def test_a_full_queue_answers_503_with_retry_after_and_a_cancelled_request_frees_its_slot() -> None:
    gate = threading.Event()
    model = Recorder(gate=gate)

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=1, batch_wait_ms=0, queue_size=2)
        await batcher.start()
        try:
            running = asyncio.create_task(batcher.submit("k", "first"))
            await asyncio.sleep(0.05)
            assert batcher.depth == 0  # the first is taken into the (blocked) call
            waiting = [asyncio.create_task(batcher.submit("k", f"w{i}")) for i in range(2)]
            await asyncio.sleep(0.05)
            assert batcher.depth == 2
            with pytest.raises(ServiceError) as refused:
                await batcher.submit("k", "one too many")
            waiting[0].cancel()
            await asyncio.sleep(0.01)
            assert batcher.depth == 1  # the cancelled request left the queue at once
            late = asyncio.create_task(batcher.submit("k", "late"))
            await asyncio.sleep(0.01)
            gate.set()
            results = await asyncio.gather(running, waiting[1], late)
            return refused.value, [r.value for r in results], batcher.metrics.rejected._value.get()
        finally:
            gate.set()
            await batcher.stop()

    error, values, rejected = run(main())
    assert error.status == 503 and error.code == "overloaded" and "queue is full" in error.message
    assert int(error.headers["Retry-After"]) >= 1
    assert values == ["k:first", "k:w1", "k:late"] and rejected == 1
    assert [p for _, p in model.calls] == [["first"], ["w1"], ["late"]]  # the cancelled one never ran


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on() -> None:
    async def main():
        batcher = DynamicBatcher(Recorder(), max_batch_size=4, batch_wait_ms=20, queue_size=8)
        await batcher.start()
        try:
            failed = await asyncio.gather(
                batcher.submit("k", "boom"), batcher.submit("k", 2), return_exceptions=True
            )
            after = await batcher.submit("k", 3)
            return failed, after.value
        finally:
            await batcher.stop()

    failed, after = run(main())
    assert all(isinstance(f, RuntimeError) for f in failed) and after == "k:3"


def test_submit_before_start_is_a_503() -> None:
    async def main():
        batcher = DynamicBatcher(Recorder(), max_batch_size=1, batch_wait_ms=0, queue_size=1)
        with pytest.raises(ServiceError) as info:
            await batcher.submit("k", 1)
        return info.value.status

    assert run(main()) == 503
