"""What operators watch, on the real Redis (db 10): the annotator's ``/metrics`` reports each Celery queue's
depth (messages sent with no worker listening), survives a broker that is away, and a real ``giqa worker``
process with ``queue.metrics_port`` serves the latency and outcome of the task it ran."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from giqa.llm.server import free_port
from processes import giqa_cli, spawn

pytestmark = pytest.mark.integration

BROKER = "redis://127.0.0.1:6379/10"


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2):
            return True
    except OSError:
        return False


needs_redis = pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of Prometheus text, or None when it is absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def _by_outcome(text: str, name: str) -> dict[str, float]:
    """``{outcome: value}`` of ``name``'s samples for the export stage on the cpu queue."""
    pattern = re.compile(rf'^{name}\{{outcome="(\w+)",queue="cpu",stage="export"\}} (\S+)$', re.M)
    return {outcome: float(value) for outcome, value in pattern.findall(text)}


@pytest.fixture
def clean_redis() -> None:
    import redis

    client = redis.Redis.from_url(BROKER)
    client.flushdb()
    yield
    client.flushdb()
    client.close()


@needs_redis
def test_metrics_show_the_depth_of_each_queue(tmp_path: Path, clean_redis: None) -> None:
    from fastapi.testclient import TestClient

    from giqa.infra.queue import make_celery
    from giqa.settings import Settings
    from services.annotator.app import create_app_from_settings

    settings = Settings(data_dir=tmp_path / "data", queue={"broker_url": BROKER})
    sender = make_celery(settings)
    for i in range(7):  # no worker listens: the messages wait in the lists
        sender.send_task("giqa.annotate.detect", args=[i])
    for i in range(3):
        sender.send_task("giqa.annotate.export", args=[f"run{i}"], priority=6)  # a priority sub-queue
    with TestClient(create_app_from_settings(settings)) as client:
        text = client.get("/metrics").text
    assert _sample(text, "giqa_broker_up") == 1.0
    assert _sample(text, "giqa_queue_depth", queue="detect") == 7.0
    assert _sample(text, "giqa_queue_depth", queue="cpu") == 3.0
    assert _sample(text, "giqa_queue_depth", queue="llm") == 0.0
    # the runs in flight: none yet, every stage present at 0
    assert _sample(text, "giqa_run_failures", stage="detect") == 0.0


def test_metrics_answer_when_the_broker_is_away(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from giqa.settings import Settings
    from services.annotator.app import create_app_from_settings

    settings = Settings(
        data_dir=tmp_path / "data", queue={"broker_url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    with TestClient(create_app_from_settings(settings)) as client:
        started = time.monotonic()
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert _sample(answer.text, "giqa_broker_up") == 0.0
    assert "giqa_queue_depth" not in answer.text
    assert time.monotonic() - started < 5


@needs_redis
def test_a_worker_serves_its_task_metrics(tmp_path: Path, clean_redis: None) -> None:
    from giqa.infra.queue import make_celery
    from giqa.settings import Settings

    port = free_port()
    env = {
        "GIQA_QUEUE__BROKER_URL": BROKER,
        "GIQA_QUEUE__METRICS_PORT": str(port),
        "GIQA_DATA_DIR": str(tmp_path / "data"),
    }
    worker = spawn(giqa_cli("worker", "--queues", "cpu"), tmp_path, "worker", env=env)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert worker.poll() is None, (tmp_path / "worker.err").read_text()[-2000:]
            assert time.monotonic() < deadline, "the worker's metrics endpoint never answered"
            time.sleep(0.5)
        # an export of a run that does not exist: the task runs (and fails its way) on the cpu queue
        sender = make_celery(Settings(data_dir=tmp_path / "data", queue={"broker_url": BROKER}))
        sender.send_task("giqa.annotate.export", args=["no-such-run"])
        deadline = time.monotonic() + 40
        while True:
            text = httpx.get(url, timeout=2).text
            counts = _by_outcome(text, "giqa_task_seconds_count")
            if sum(counts.values()) >= 1:
                break
            assert worker.poll() is None, (tmp_path / "worker.err").read_text()[-2000:]
            assert time.monotonic() < deadline, text[-2000:]
            time.sleep(0.5)
        # the store is not migrated in this worker's data folder: the task meets a fault and is retried
        # (or fails once its retries are spent); either way it is counted under its stage and queue
        totals = _by_outcome(text, "giqa_tasks_total")
        assert set(totals) <= {"success", "failure", "retry"} and sum(totals.values()) >= 1, text
        assert totals == counts, text
        assert "giqa_gpu_memory_bytes" not in text  # a CPU worker never imports torch for this
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except Exception:
            worker.kill()
            worker.wait()


def test_metrics_count_failures_and_results_of_runs_in_flight_on_postgres(
    tmp_path: Path, pg_url: str
) -> None:
    from fastapi.testclient import TestClient

    from giqa.infra.db import dal
    from giqa.settings import Settings
    from services.annotator.app import create_app_from_settings
    from services.annotator.tasks import WorkerContext

    settings = Settings(data_dir=tmp_path / "data", db={"url": pg_url})
    ctx = WorkerContext(settings)
    with TestClient(create_app_from_settings(settings, ctx=ctx)) as client:

        def scrape() -> tuple[float | None, float | None]:
            text = client.get("/metrics").text
            return _sample(text, "giqa_run_failures", stage="detect"), _sample(
                text, "giqa_run_stage_results", stage="stage1"
            )

        failures_before, results_before = scrape()
        assert failures_before is not None and results_before is not None  # the query runs on Postgres
        with ctx.session() as s:
            live = dal.create_run(s, name="live", config={})
            dal.set_run_state(s, run_id=live, state="running")
            finished = dal.create_run(s, name="finished", config={})
            samples = dal.add_samples(
                s,
                run_id=live,
                samples=[dal.SampleIn(key=k, image_ref=f"{k}.png", description="d") for k in "ab"],
            )
            (old,) = dal.add_samples(
                s, run_id=finished, samples=[dal.SampleIn(key="c", image_ref="c.png", description="d")]
            )
            dal.upsert_stage(s, sample_id=samples[0], stage="stage1", payload={}, seconds=0.1)
            dal.upsert_stage(s, sample_id=samples[1], stage="stage1", payload={}, seconds=0.1)
            dal.fail_sample(s, sample_id=samples[1], stage="detect", reason="boom", retryable=True)
            dal.fail_sample(s, sample_id=old, stage="detect", reason="old", retryable=False)
            dal.set_run_state(s, run_id=finished, state="done")  # not in flight: not counted
        failures_after, results_after = scrape()
    assert (failures_after - failures_before, results_after - results_before) == (1.0, 2.0)
