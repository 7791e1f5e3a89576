"""The training-jobs platform as real processes for the integration tests: the trainer (and evaluator)
service and workers on the ``train`` (and ``eval``) queues from ``giqa stack``'s plan with ``jobs=True``
(:func:`giqa.infra.stack.plan`), over a Postgres database, a Redis database and an S3 server on loopback.

``test_jobs_e2e.py`` (Redis db 6) and ``test_train_resume.py`` (Redis db 9) each start one per module;
each module owns its Redis database number, which is flushed at the start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from giqa.llm.server import free_port

SECRET = "giqa-test-secret"
FINAL = ("succeeded", "failed", "cancelled")


def flushed_redis(url: str) -> str:
    """``url`` after emptying its database (the module's own); the test is skipped when Redis is away."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {url} is not reachable: {exc}")
    finally:
        client.close()
    return url


@contextmanager
def jobs_stack(
    root: Path,
    *,
    pg_url: str,
    s3_server: str,
    redis_url: str,
    only: set[str],
    env: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """The ``only`` processes of the jobs stack, healthy, with ``root/data`` as their data folder; yields
    the stack, the settings a test process uses to reach the same stores, the services' URLs and the store.
    ``env``: more ``GIQA_*`` variables for the processes (the test's settings do not see them)."""
    from giqa.infra.stack import Stack, plan
    from giqa.infra.storage import make_store
    from giqa.settings import Settings

    variables = {
        "GIQA_DB__URL": pg_url,
        "GIQA_QUEUE__BROKER_URL": redis_url,
        "GIQA_STORAGE__ENDPOINT": s3_server,
        "GIQA_STORAGE__ACCESS_KEY": "giqa",
        "GIQA_STORAGE__SECRET_KEY": SECRET,
        "GIQA_LLM__URL": "http://127.0.0.1:9/v1",  # nothing here calls an LLM
        "GIQA_DATA_DIR": str(root / "data"),
        "GIQA_CACHE_DIR": str(root / "cache"),
        "GIQA_JOBS__POLL_S": "0.3",
        "GIQA_JOBS__CANCEL_GRACE_S": "5",
        "GIQA_PIPELINE__DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    } | (env or {})
    settings = Settings(
        db={"url": pg_url},
        queue={"broker_url": redis_url},
        storage={"endpoint": s3_server, "access_key": "giqa", "secret_key": SECRET},
        llm={"url": "http://127.0.0.1:9/v1"},
        data_dir=root / "data",
        cache_dir=root / "client-cache",
    )
    ports = {name: free_port() for name in ("trainer", "evaluator")}
    repo = Path(__file__).resolve().parents[1]
    the_plan = plan(settings, ports=ports, repo_root=repo, jobs=True)
    running = Stack(the_plan, root / "logs", cwd=repo, extra_env=variables)
    try:
        running.start(timeout_s=120, only=only)
        yield {"stack": running, "settings": settings, "urls": the_plan.urls, "store": make_store(settings)}
    finally:
        running.close()


def logs(stack: dict[str, Any]) -> str:
    running = stack["stack"]
    return "".join(f"\n--- {name}\n{running.log(name).read_text()[-3000:]}" for name in running.running)


def wait_for(
    url: str, stack: dict[str, Any], until: Callable[[dict[str, Any]], Any], timeout_s: float = 150.0
) -> dict[str, Any]:
    """GET ``url`` until ``until(body)``; fails with the processes' logs if one died or time ran out."""
    import httpx

    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = httpx.get(url, timeout=10).json()
        if until(body):
            return body
        assert not stack["stack"].dead(), f"a process died: {stack['stack'].dead()}{logs(stack)}"
        time.sleep(0.3)
    raise AssertionError(f"{url} never reached the state wanted; last: {body}{logs(stack)}")
