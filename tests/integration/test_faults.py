"""Faults injected into the running platform (real processes: the stack of ``giqa stack``, Postgres, an S3
server on loopback, a Redis server of this module's own), and what must hold after each: the run ends, every
sample has exactly one row per stage (none missing, none doubled), and the exported dataset is byte for
byte that of an undisturbed run of the same input.

Delivery settings that make a killed worker lose nothing (:func:`giqa.infra.queue.make_celery`):

- ``task_acks_late``: a task is acknowledged after it ran, not when it was received, so a worker that
  dies while it holds one leaves the message unacknowledged on the broker.
- ``task_reject_on_worker_lost``: with a prefork pool, a child killed mid-task would otherwise have its
  task acknowledged (acks_late acks on failure); with it, the task is rejected and requeued. The stack's
  workers run solo and threads pools (no children), where the whole worker dies with its task: the message
  simply stays unacknowledged.
- Redis ``visibility_timeout``: Redis keeps an unacknowledged message aside and hands it to another worker
  only once this long has passed since it was delivered (a live worker's restore pass, or a new worker's
  first poll, moves it back to its queue). It must outlast the longest task, or a task still running is
  delivered a second time (harmless here, every stage write is an upsert keyed by (sample, stage), but
  wasted work); the settings refuse a visibility timeout not longer than ``task_time_limit_s``. This module
  sets it to 8 s (tasks take well under 1 s here) so the test waits seconds, not the production hour.
  Note: Celery enforces ``task_time_limit`` only in prefork pools; in solo and threads pools it is a bound
  the operator must keep by configuration (the remote clients' timeouts and retries bound every task).

Each fault and its recovery:

- a Celery worker killed with SIGKILL while it holds a task: a new worker picks the task up after the
  visibility timeout (automatic);
- Redis restarted without persistence: every queued message is gone. Workers and the annotator reconnect by
  themselves; the annotator's stall sweeper (:mod:`services.annotator.sweeper`) finds, once the broker is
  idle, the samples that have not moved and re-sends each from the stage it stopped at (automatic; the
  same as ``giqa runs retry --stalled`` on demand);
- Postgres connections terminated (``pg_terminate_backend``, this session's database only): a statement in
  flight fails with OperationalError, the task retries with backoff, ``pool_pre_ping`` replaces the dead
  connections (automatic);
- the detector service answering 500 or hanging past the client's timeout: the client retries, then the
  task retries with backoff, then the sample is recorded failed at ``detect`` as retryable;
  ``giqa runs retry`` re-processes only those samples, from the detect stage;
- the object store answering 500 for 2.5 s (an HTTP proxy in front of the S3 server): the store client
  retries server errors, the task retries a retryable StorageError with backoff, and a sample whose
  retries ran out is failed retryable for ``giqa runs retry --retryable-only``;
- the LLM answering text that is not JSON: the sample fails at stage1 with the reason, and nothing of it
  is written beyond its failure record.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
pytest.importorskip("redis")

from faults import FlakyProxy, RedisServer, terminate_backends  # noqa: E402
from giqa.llm.server import free_port  # noqa: E402
from giqa.synth import SceneRecord, write_scenes  # noqa: E402
from scripted_backends import serve_scripted_llm  # noqa: E402

pytestmark = pytest.mark.integration

N_SCENES = 8
GARBAGE = " The GARBAGE circle is blurry."  # the scripted LLM answers this sentence with text, not JSON
EXPORTED = ("train.json", "val.json", "box_area.png", "stats.json")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, SceneRecord]]:
    root = tmp_path_factory.mktemp("faults")
    write_scenes(N_SCENES, 31, root / "scenes", progress=False)
    records = {}
    for line in (root / "scenes" / "annotations.jsonl").read_text().splitlines():
        record = SceneRecord.model_validate_json(line)
        records[record.image] = record
    lines = [{"image": i, "description": r.description} for i, r in records.items()]
    first = next(iter(records.values()))
    lines.append({"image": first.image, "description": first.description + GARBAGE})
    descriptions = root / "descriptions.jsonl"
    descriptions.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root, descriptions, records


@pytest.fixture(scope="module")
def platform(
    world: tuple[Path, Path, dict[str, SceneRecord]], pg_url: str, s3_server: str, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    from giqa.infra.stack import Stack, plan
    from giqa.settings import Settings

    root, _, records = world
    logs = tmp_path_factory.mktemp("fault_logs")
    redis = RedisServer(logs).start()
    llm_server, llm_url = serve_scripted_llm(records)
    ports = {name: free_port() for name in ("annotator", "detector", "iqa_filter")}
    proxy = FlakyProxy(f"http://127.0.0.1:{ports['detector']}", hang_s=3.0)
    s3_proxy = FlakyProxy(s3_server)  # every process reaches the object store through it
    queue = {
        "visibility_timeout_s": 8.0,
        "task_time_limit_s": 6.0,
        "max_retries": 2,
        "retry_backoff_s": 0.2,
        "retry_backoff_max_s": 0.5,
        "stall_check_s": 1.0,  # the annotator's sweeper looks every second
        "stall_after_s": 3.0,  # and re-sends samples untouched for 3 s while the broker is idle
    }
    env = {
        "GIQA_DB__URL": pg_url,
        "GIQA_QUEUE__BROKER_URL": redis.url,
        "GIQA_STORAGE__ENDPOINT": s3_proxy.url,
        "GIQA_STORAGE__ACCESS_KEY": "giqa",
        "GIQA_STORAGE__SECRET_KEY": "giqa-test-secret",
        "GIQA_LLM__URL": llm_url,
        "GIQA_LLM__DIALECT": "json_object",
        "GIQA_ANNOTATE__VAL_FRACTION": "0.34",
        "GIQA_DATA_DIR": str(root / "data"),
        "GIQA_PIPELINE__REMOTE_MAX_RETRIES": "1",
        "GIQA_PIPELINE__REMOTE_TIMEOUT_S": "2",
        "OMP_NUM_THREADS": "1",
    } | {f"GIQA_QUEUE__{k.upper()}": str(v) for k, v in queue.items()}
    settings = Settings(
        db={"url": pg_url},
        queue={"broker_url": redis.url, **queue},
        storage={"endpoint": s3_proxy.url, "access_key": "giqa", "secret_key": "giqa-test-secret"},
        llm={"url": llm_url, "dialect": "json_object"},
        data_dir=root / "data",
    )
    repo = Path(__file__).resolve().parents[2]
    the_plan = plan(settings, ports=ports, repo_root=repo)
    the_plan.env["GIQA_PIPELINE__DETECTOR_URL"] = proxy.url  # the detect worker calls it through the proxy
    stack = Stack(the_plan, logs, cwd=repo, extra_env=env)
    try:
        stack.start(timeout_s=120)
        yield {
            "stack": stack,
            "settings": settings,
            "url": the_plan.urls["annotator"],
            "redis": redis,
            "llm": llm_server,
            "proxy": proxy,
            "s3_proxy": s3_proxy,
            "database": pg_url.rsplit("/", 1)[1],
        }
    finally:
        stack.close()
        proxy.close()
        s3_proxy.close()
        llm_server.shutdown()
        llm_server.server_close()
        redis.stop()


# -------------------------------------------------------------------------------------------- helpers


def submit(platform: dict[str, Any], world: tuple[Path, Path, Any]) -> str:
    import httpx

    root, descriptions, records = world
    files = [("descriptions", ("in.jsonl", descriptions.read_bytes(), "application/x-ndjson"))]
    files += [("images", (name, (root / "scenes" / name).read_bytes(), "image/png")) for name in records]
    answer = httpx.post(f"{platform['url']}/v1/runs", files=files, data={"name": "faults"}, timeout=60)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["run_id"])


def show(platform: dict[str, Any], run_id: str) -> dict[str, Any]:
    import httpx

    for _ in range(20):  # the annotator may be reconnecting to Postgres after a fault
        try:
            answer = httpx.get(f"{platform['url']}/v1/runs/{run_id}", timeout=10)
            if answer.status_code == 200:
                return dict(answer.json())
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"the annotator did not answer for run {run_id}")


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, platform: dict[str, Any]) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    stack = platform["stack"]
    logs = "".join(f"\n--- {p.name}\n{stack.log(p.name).read_text()[-1500:]}" for p in stack.plan.processes)
    raise AssertionError(f"{what} not within {timeout_s:.0f} s (dead: {stack.dead()}){logs}")


def wait_ended(platform: dict[str, Any], run_id: str, timeout_s: float = 120) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        run = show(platform, run_id)
        return run if run["state"] in ("done", "failed") else None

    return dict(wait_until(ended, timeout_s, f"run {run_id} ended", platform))


def export(platform: dict[str, Any], run_id: str) -> dict[str, bytes]:
    import httpx

    url = f"{platform['url']}/v1/runs/{run_id}/dataset"
    files = {name: httpx.get(url, params={"file": name}, timeout=30).content for name in EXPORTED}
    # the statistics without the run report, which holds the seconds each stage took (they differ run to run)
    stats = json.loads(files["stats.json"])
    assert stats["report"].pop("seconds_per_stage")
    files["stats.json"] = json.dumps(stats, sort_keys=True).encode()
    return files


def rows(platform: dict[str, Any], run_id: str) -> dict[str, Any]:
    """What the database holds of the run: samples by state, stage rows, duplicates, failures."""
    from sqlalchemy import text

    from giqa.infra.db import make_engine

    engine = make_engine(platform["settings"].db.url)
    try:
        with engine.connect() as c:
            by_state = text("SELECT state, count(*) FROM samples WHERE run_id=:r GROUP BY state")
            states = dict(c.execute(by_state, {"r": run_id}).all())
            attempts = dict(
                c.execute(text("SELECT key, attempts FROM samples WHERE run_id=:r"), {"r": run_id}).all()
            )
            stage_rows = dict(
                c.execute(
                    text(
                        "SELECT r.stage, count(*) FROM stage_results r JOIN samples s ON s.id = r.sample_id "
                        "WHERE s.run_id=:r GROUP BY r.stage"
                    ),
                    {"r": run_id},
                ).all()
            )
            doubled = c.execute(
                text(
                    "SELECT r.sample_id, r.stage, count(*) FROM stage_results r JOIN samples s "
                    "ON s.id = r.sample_id WHERE s.run_id=:r "
                    "GROUP BY r.sample_id, r.stage HAVING count(*) > 1"
                ),
                {"r": run_id},
            ).all()
            failures = c.execute(
                text(
                    "SELECT s.key, f.stage, f.reason, f.retryable, s.state FROM failures f JOIN samples s "
                    "ON s.id = f.sample_id WHERE s.run_id=:r ORDER BY f.id"
                ),
                {"r": run_id},
            ).all()
            stamps = dict(
                c.execute(
                    text(
                        "SELECT s.key || '/' || r.stage, r.updated_at FROM stage_results r JOIN samples s "
                        "ON s.id = r.sample_id WHERE s.run_id=:r"
                    ),
                    {"r": run_id},
                ).all()
            )
    finally:
        engine.dispose()
    return {
        "states": states,
        "attempts": attempts,
        "stages": stage_rows,
        "doubled": doubled,
        "failures": failures,
        "stamps": stamps,
    }


def assert_complete(platform: dict[str, Any], run_id: str, reference: dict[str, Any]) -> dict[str, Any]:
    """The run is done, as the undisturbed one: same samples and stage rows, none doubled, same export."""
    run = wait_ended(platform, run_id)
    assert run["state"] == "done", run
    held = rows(platform, run_id)
    assert held["states"] == {"done": N_SCENES, "failed": 1}, held["states"]
    assert held["stages"] == reference["rows"]["stages"] == {
        "stage1": N_SCENES, "detect": N_SCENES, "assemble": N_SCENES, "vqa": N_SCENES
    }  # fmt: skip
    assert held["doubled"] == []
    assert export(platform, run_id) == reference["export"]
    return held


@pytest.fixture(scope="module")
def reference(platform: dict[str, Any], world: tuple[Path, Path, Any]) -> dict[str, Any]:
    """The undisturbed run every disturbed one is compared with."""
    run_id = submit(platform, world)
    run = wait_ended(platform, run_id)
    assert run["state"] == "done", run
    files = export(platform, run_id)
    assert json.loads(files["train.json"]), "the reference run exported no samples"
    return {"run_id": run_id, "export": files, "rows": rows(platform, run_id)}


def holding_a_stage1_task(platform: dict[str, Any], run_id: str) -> bool:
    """A sample of the run is claimed for stage 1 (running, no stage done): the LLM worker holds its task."""
    held = rows(platform, run_id)
    return held["states"].get("running", 0) > 0 and held["stages"].get("stage1", 0) < N_SCENES - 2


# ---------------------------------------------------------------------------------------------- tests


def test_an_llm_answering_garbage_fails_the_sample_with_its_reason_and_writes_nothing_else(
    reference: dict[str, Any],
) -> None:
    held = reference["rows"]
    assert held["states"] == {"done": N_SCENES, "failed": 1}
    [(key, stage, reason, retryable, state)] = held["failures"]
    assert (stage, retryable, state) == ("stage1", False, "failed")
    assert "JSON" in reason or "json" in reason, reason
    assert not [k for k in held["stamps"] if k.startswith(f"{key}/")], "a failed sample left stage rows"
    train = json.loads(reference["export"]["train.json"]) + json.loads(reference["export"]["val.json"])
    assert all("GARBAGE" not in json.dumps(x) for x in train)


class TouchOnUnpickle:
    """Unpickled, it creates ``marker``: proof that a worker ran code from a message."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.touch, (self.marker,))


def test_garbage_and_pickled_task_messages_are_refused_by_the_real_workers(
    platform: dict[str, Any], reference: dict[str, Any], tmp_path: Path
) -> None:
    from giqa.infra.queue import make_celery
    from services.annotator.tasks import TASK_NAMES

    stack = platform["stack"]
    app = make_celery(platform["settings"])
    before = rows(platform, reference["run_id"])
    marker = tmp_path / "unpickled"
    garbage = ["abc", -1, 0, 2**70, None, [1], {"id": 1}, 99_999_999, "0" * 32, "../../x"]
    sent = 0
    for name in TASK_NAMES.values():
        for value in garbage:
            app.send_task(name, args=[value])
            sent += 1
        # a pickled message: the workers accept JSON only, so it must never be unpickled
        app.send_task(name, args=[TouchOnUnpickle(marker)], serializer="pickle")
    logs = {p.name: stack.log(p.name) for p in stack.plan.processes if p.name.startswith("worker-")}

    def all_refused() -> bool:
        text = "".join(path.read_text(errors="replace") for path in logs.values())
        return text.count("refused a") + text.count("refused an") >= sent and text.count(
            "Refusing to deserialize untrusted content of type pickle"
        ) >= len(TASK_NAMES)

    wait_until(all_refused, 30, "every garbage message refused in the workers' logs", platform)
    assert not marker.exists(), "a worker unpickled a message"
    assert stack.dead() == {}, "a worker died of a garbage message"
    assert rows(platform, reference["run_id"]) == before
    app.close()


def test_a_worker_killed_mid_task_loses_nothing_and_does_nothing_twice(
    platform: dict[str, Any], world: Any, reference: dict[str, Any]
) -> None:
    stack = platform["stack"]
    platform["llm"].delay_s = 0.3  # each LLM answer takes a while: the worker holds its task long enough
    try:
        run_id = submit(platform, world)
        wait_until(lambda: holding_a_stage1_task(platform, run_id), 30, "a stage-1 task in flight", platform)
        victim = stack.running.pop("worker-llm")
        os.killpg(victim.pid, signal.SIGKILL)  # the worker and anything it started, no chance to ack
        victim.wait(timeout=10)
        killed_at = show(platform, run_id)
        assert killed_at["state"] == "running" and killed_at["by_state"]["running"] >= 1, killed_at
    finally:
        platform["llm"].delay_s = 0.0
    worker = next(p for p in stack.plan.processes if p.name == "worker-llm")
    stack.start_one(worker)  # a new worker: the task comes back to it after the visibility timeout
    held = assert_complete(platform, run_id, reference)
    # the killed task ran again (one claim more than any sample of the undisturbed run), its rows once
    assert max(held["attempts"].values()) > max(reference["rows"]["attempts"].values()), held["attempts"]
    assert [f[1:4] for f in held["failures"]] == [f[1:4] for f in reference["rows"]["failures"]]


def test_postgres_connections_dropped_mid_run_are_replaced_and_the_run_finishes(
    platform: dict[str, Any], world: Any, reference: dict[str, Any]
) -> None:
    platform["llm"].delay_s = 0.1
    try:
        run_id = submit(platform, world)
        wait_until(lambda: rows(platform, run_id)["stages"].get("stage1", 0) >= 2, 30, "stage 1 under way",
                   platform)  # fmt: skip
        ended = 0
        for _ in range(3):
            ended += terminate_backends(platform["database"])
            time.sleep(0.5)
        assert ended > 0, "no connection of the platform was open to terminate"
    finally:
        platform["llm"].delay_s = 0.0
    assert_complete(platform, run_id, reference)
    assert platform["stack"].dead() == {}, "a process died of the dropped connections"


def test_a_detector_that_fails_for_a_while_gives_retryable_failures_and_retry_finishes_only_those(
    platform: dict[str, Any], world: Any, reference: dict[str, Any]
) -> None:
    from typer.testing import CliRunner

    from giqa.cli import app as cli

    proxy = platform["proxy"]
    proxy.seen.clear()
    proxy.mode = "hang"  # first past the client's timeout, then plain 500s
    run_id = submit(platform, world)
    wait_until(lambda: proxy.seen.get("hang", 0) >= 2, 60, "the detector timed out twice", platform)
    proxy.mode = "500"
    run = wait_ended(platform, run_id)
    held = rows(platform, run_id)
    assert held["states"] == {"failed": N_SCENES + 1}, held["states"]
    detect_failures = {f[0]: f for f in held["failures"] if f[1] == "detect"}
    assert len(detect_failures) == N_SCENES and all(f[3] for f in detect_failures.values())
    assert all("detector" in f[2] for f in detect_failures.values()), list(detect_failures.values())[0]
    assert held["stages"] == {"stage1": N_SCENES}  # nothing of detect or later was written
    assert proxy.seen["500"] >= N_SCENES * 2, proxy.seen  # the client retried, and the task did
    assert run["state"] == "done"  # the export of what there is: every sample failed

    proxy.mode = "pass"
    stage1_before = {k: v for k, v in held["stamps"].items() if k.endswith("/stage1")}
    # only the retryable failures: the sample the LLM answered with garbage would fail the same way again
    result = CliRunner().invoke(cli, ["runs", "retry", run_id, "--retryable-only", "--url", platform["url"]])
    assert result.exit_code == 0, result.output
    assert f"{N_SCENES} at detect" in result.output, result.output
    after = assert_complete(platform, run_id, reference)
    assert {k: v for k, v in after["stamps"].items() if k.endswith("/stage1")} == stage1_before, (
        "retry ran stage 1 again: it must resume failed samples at the stage that failed"
    )
    assert after["failures"] == [(*f[:4], "done" if f[1] == "detect" else "failed") for f in held["failures"]]


def test_the_object_store_down_for_a_while_is_retried_and_retry_finishes_what_failed(
    platform: dict[str, Any], world: Any, reference: dict[str, Any]
) -> None:
    from typer.testing import CliRunner

    from giqa.cli import app as cli

    store = platform["s3_proxy"]
    store.seen.clear()
    platform["llm"].delay_s = 0.1
    try:
        run_id = submit(platform, world)  # the images are stored before the outage
        wait_until(lambda: rows(platform, run_id)["stages"].get("stage1", 0) >= 1, 30, "stage 1 under way",
                   platform)  # fmt: skip
        store.mode = "500"  # the detect tasks read each image from the store: 2.5 s of server errors
        time.sleep(2.5)
        store.mode = "pass"
    finally:
        platform["llm"].delay_s = 0.0
    assert store.seen.get("500", 0) >= 1, store.seen
    run = wait_ended(platform, run_id)
    held = rows(platform, run_id)
    # the store client's and the task's retries outlast a short outage; what they did not is failed, retryable
    storage_failures = [f for f in held["failures"] if f[1] != "stage1"]
    assert all(f[3] and f[4] == "failed" for f in storage_failures), storage_failures
    if storage_failures:
        result = CliRunner().invoke(
            cli, ["runs", "retry", run_id, "--retryable-only", "--url", platform["url"]]
        )
        assert result.exit_code == 0, result.output
    assert_complete(platform, run_id, reference)
    del run


def test_redis_restarted_mid_run_loses_its_queues_and_the_sweeper_resends_them(
    platform: dict[str, Any], world: Any, reference: dict[str, Any]
) -> None:
    platform["llm"].delay_s = 0.15
    try:
        run_id = submit(platform, world)
        wait_until(lambda: rows(platform, run_id)["stages"].get("stage1", 0) >= 2, 30, "stage 1 under way",
                   platform)  # fmt: skip
        platform["redis"].restart(down_s=1.0)  # no persistence: every queued task is gone
    finally:
        platform["llm"].delay_s = 0.0
    at_restart = show(platform, run_id)
    assert at_restart["state"] == "running" and at_restart["by_state"]["done"] < N_SCENES, at_restart
    assert_complete(platform, run_id, reference)  # no operator action: the annotator's sweeper re-sent them
    sweeps = platform["stack"].log("annotator").read_text()
    assert "had not moved for 3 s: sent again" in sweeps, sweeps[-2000:]
    assert platform["stack"].dead() == {}, "a process died of the broker restart"
