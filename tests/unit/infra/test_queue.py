"""The queue settings and the Celery app they build; the stack's process plan (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

pytest.importorskip("celery")

from giqa.infra.queue import TASK_QUEUES, make_celery, queue_of, worker_argv  # noqa: E402
from giqa.infra.stack import plan  # noqa: E402
from giqa.settings import QueueSettings, Settings  # noqa: E402

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"visibility_timeout_s": 600, "task_time_limit_s": 600}, "must be longer than task_time_limit_s"),
        ({"visibility_timeout_s": 100, "task_time_limit_s": 600}, "delivered again"),
        ({"broker_url": "http://127.0.0.1:6379"}, "redis://"),
        ({"concurrency": {"gpu": 2}}, "unknown queues"),
        ({"concurrency": {"llm": 0}}, "at least 1"),
        ({"max_retries": -1}, "greater than or equal to 0"),
    ],
)
def test_bad_queue_settings_are_refused_with_the_reason(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        QueueSettings(**fields)


def test_concurrency_fills_every_queue() -> None:
    expected = {"llm": 4, "detect": 1, "judge": 1, "cpu": 1, "train": 1, "eval": 1}
    assert QueueSettings(concurrency={"llm": 4}).concurrency == expected


def test_the_app_is_json_only_acks_late_and_routes_by_name() -> None:
    app = make_celery(
        Settings(queue={"broker_url": "redis://127.0.0.1:6379/3", "visibility_timeout_s": 7200})
    )
    conf = app.conf
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 7200
    # a task lost with its worker is scanned for every 60 s (kombu's default: every 100 s)
    assert conf.broker_transport_options["unacked_restore_interval"] == 60
    assert conf.broker_transport_options["unacked_restore_throttle"] == 1
    assert not conf.task_always_eager
    assert app.amqp.router.route({}, "giqa.annotate.detect", (), {})["queue"].name == "detect"
    assert {queue_of(name) for name in TASK_QUEUES} == {"llm", "detect", "judge", "cpu", "train", "eval"}
    assert app.amqp.router.route({}, "giqa.jobs.train", (), {})["queue"].name == "train"
    assert app.amqp.router.route({}, "giqa.jobs.evaluate", (), {})["queue"].name == "eval"
    assert queue_of("anything.else") == "cpu"
    assert make_celery(Settings()).conf.task_always_eager  # no broker: tasks run in-process


def test_gpu_queues_run_solo_pools_and_the_llm_queue_threads() -> None:
    settings = Settings(queue={"concurrency": {"llm": 6}})
    assert worker_argv(settings, "detect")[worker_argv(settings, "detect").index("-P") + 1] == "solo"
    llm = worker_argv(settings, "llm")
    assert llm[llm.index("-P") + 1] == "threads" and llm[llm.index("-c") + 1] == "6"
    assert "detect2@%h" in worker_argv(settings, "detect", index=2)
    for queue in ("train", "eval"):  # one job per worker; its child process dies with the worker
        assert worker_argv(settings, queue)[worker_argv(settings, queue).index("-P") + 1] == "solo"
    with pytest.raises(ValueError, match="unknown queue"):
        worker_argv(settings, "gpu")


def test_the_stack_plan_starts_only_what_is_not_configured(tmp_path: Path) -> None:
    bare = plan(Settings(), detect_workers=2, repo_root=tmp_path)
    names = [p.name for p in bare.processes]
    assert names == [
        "s3", "llm", "detector", "iqa_filter", "annotator",
        "worker-llm", "worker-detect1", "worker-detect2", "worker-judge", "worker-cpu",
    ]  # fmt: skip
    assert bare.env["GIQA_LLM__DIALECT"] == "json_object"
    assert bare.env["GIQA_PIPELINE__DETECTOR_URL"] == bare.urls["detector"]
    assert bare.env["PYTHONPATH"].startswith(f"{tmp_path / 'shared'}")
    given = plan(Settings(llm={"url": "http://127.0.0.1:1/v1"}, storage={"endpoint": "http://127.0.0.1:2"}))
    assert "s3" not in [p.name for p in given.processes] and "llm" not in [p.name for p in given.processes]
    assert "GIQA_LLM__URL" not in given.env
