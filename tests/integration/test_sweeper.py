"""The annotator's stall sweeper against a real Redis (db 8, this suite's own): it re-sends the stalled
samples of a running run only while the broker is idle — never while a task is queued or held
unacknowledged (that sample may just be waiting its turn) — and one sweep per period across annotators.
The end-to-end recovery after a Redis restart is in ``test_faults.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
redis = pytest.importorskip("redis")

from giqa.settings import Settings  # noqa: E402

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/8"


@pytest.fixture
def broker() -> Iterator[Any]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.flushdb()  # db 8 is this suite's own
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")
    yield client
    client.flushdb()
    client.close()


def test_stalled_samples_are_resent_only_when_the_broker_is_idle(broker: Any, tmp_path: Path) -> None:
    from giqa.infra.db import dal
    from giqa.infra.db.migrate import upgrade
    from giqa.infra.queue import make_celery
    from giqa.settings import database_url
    from services.annotator.sweeper import broker_idle, max_attempts, sweep
    from services.annotator.tasks import WorkerContext, use_context

    settings = Settings(
        data_dir=tmp_path / "data", queue={"broker_url": REDIS_URL, "stall_check_s": 1, "stall_after_s": 0.2}
    )
    upgrade(database_url(settings))
    app = make_celery(settings)
    app.set_default()
    ctx = WorkerContext(settings)
    previous = use_context(ctx)  # what the annotator's lifespan does: the sweeper works on that context
    with ctx.session() as s:
        run_id = dal.create_run(s, name="stalled", config={})
        samples = [dal.SampleIn(f"k{i}", f"images/{i}.png", "The cat is blurry.") for i in range(3)]
        dal.add_samples(s, run_id=run_id, samples=samples)
        dal.set_run_state(s, run_id=run_id, state="running")
    time.sleep(0.3)  # older than stall_after_s

    broker.rpush("detect", b"a task still waiting")  # a queued task: the sweep must wait
    assert not broker_idle(broker) and sweep(ctx, broker) == {"samples": 0, "exports": 0, "failed": 0}
    broker.delete("detect")
    broker.hset("unacked", "tag", b"a task a worker holds")  # held by a worker: wait too
    assert not broker_idle(broker) and sweep(ctx, broker) == {"samples": 0, "exports": 0, "failed": 0}
    broker.delete("unacked")

    assert broker_idle(broker)
    assert sweep(ctx, broker) == {"samples": 3, "exports": 0, "failed": 0}
    assert broker.llen("llm") == 3  # stage 1 of each sample, on its queue
    broker.delete("llm")
    assert sweep(ctx, broker) == {"samples": 0, "exports": 0, "failed": 0}  # one sweep per period (the lock)

    # a sample whose task never finishes (it kills its worker each time) is failed, not re-sent forever
    broker.delete("giqa:stall-sweep")
    with ctx.session() as s:
        poisoned = dal.samples_in_state(s, run_id=run_id, states=("pending",))[0]
        for _ in range(max_attempts(settings)):
            dal.claim_sample(s, sample_id=poisoned, stage="stage1")
    time.sleep(0.3)
    assert sweep(ctx, broker) == {"samples": 2, "exports": 0, "failed": 1}
    with ctx.session() as s:
        (failure,) = dal.latest_failures(s, run_id=run_id).values()
    assert failure.sample_id == poisoned and failure.retryable and "without finishing" in failure.reason
    use_context(previous)
    ctx.close()
    app.close()
