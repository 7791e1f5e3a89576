"""services.trainer.runner.run_job on embedded defaults (SQLite, the local object folder) with stand-in
children (small Python scripts instead of ``giqa train``), so every path is fast: inputs that cannot be
fetched, a child that fails with its error line, one that succeeds and is published and registered, a
cancel that stops a running child, a child killed by a signal started again with ``resume`` (until the
attempts run out), and an attempt handed on to another worker stopping its child. The real ``giqa train``
child runs in the e2e test, and is resumed after its worker is killed in ``test_train_resume.py``."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from giqa.infra.db import jobs_dal
from giqa.infra.db.migrate import upgrade
from giqa.settings import Settings, database_url
from services.annotator.tasks import WorkerContext
from services.trainer.runner import Child, run_job, start_command

pytestmark = pytest.mark.unit

ROWS = [{"id": "a", "image": "images/a.png", "conversations": []}]

SUCCEEDS = """
import json, pathlib
run = pathlib.Path("run"); (run / "final").mkdir(parents=True)
with (run / "metrics.jsonl").open("w") as f:
    for step in (1, 2, 3):
        row = {"step": step, "max_steps": 3, "elapsed_s": step * 0.5, "loss": 4.0 - step}
        f.write(json.dumps(row) + "\\n")
(run / "final" / "config.json").write_text("{}")
(run / "final" / "model.safetensors").write_bytes(b"weights")
print("trained 3 steps")
"""
FAILS = "import sys; print('loading'); print('error: data: train.json is not a LLaVA JSON list'); sys.exit(2)"
RUNS_LONG = """
import json, pathlib, time
run = pathlib.Path("run"); run.mkdir()
row = {"step": 1, "max_steps": 1000, "elapsed_s": 1.0, "loss": 9.0}
(run / "metrics.jsonl").write_text(json.dumps(row) + "\\n")
time.sleep(120)
"""
# killed by SIGKILL (as by the OOM killer) unless config.yaml says resume: then SUCCEEDS
KILLED_UNLESS_RESUMED = (
    "import os, pathlib, signal\n"
    "if 'resume: true' not in pathlib.Path('config.yaml').read_text():\n"
    "    os.kill(os.getpid(), signal.SIGKILL)\n"
) + SUCCEEDS
KILLED = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"


@pytest.fixture
def ctx(tmp_path: Path) -> Any:
    settings = Settings(
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        jobs={"poll_s": 0.05, "cancel_grace_s": 2, "max_attempts": 2},
    )
    upgrade(database_url(settings))
    context = WorkerContext(settings)
    context.store.put_bytes("uploads/d/llava.json", json.dumps(ROWS).encode())
    context.store.put_bytes("uploads/d/images/a.png", b"png bytes")
    yield context
    context.close()


def new_job(ctx: Any, **kw: Any) -> str:
    args = {
        "name": "j",
        "launcher": "local",
        "config": {"max_steps": 3},
        "dataset_ref": "key:uploads/d/llava.json",
        "images_prefix": "uploads/d",
        "base_model": "tiny",
        "checkpoint_name": "ck-1",
    } | kw
    with ctx.session() as s:
        return jobs_dal.create_job(s, **args)


def script(code: str) -> Any:
    def start(config: Path, folder: Path) -> Child:
        assert config.is_file()
        return start_command([sys.executable, "-c", code], folder)

    return start


def job(ctx: Any, job_id: str) -> jobs_dal.JobView:
    with ctx.session() as s:
        view = jobs_dal.get_job(s, job_id=job_id)
    assert view is not None
    return view


def run_long_child(ctx: Any, job_id: str) -> tuple[threading.Thread, list[str], list[Child]]:
    """``run_job`` in a thread with a child that reports step 1 and then sleeps, once step 1 is in the row;
    the thread, where its result goes and the child."""
    started: list[Child] = []

    def start(config: Path, folder: Path) -> Child:
        started.append(script(RUNS_LONG)(config, folder))
        return started[-1]

    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(run_job(ctx, job_id, start=start)))
    thread.start()
    deadline = time.monotonic() + 30
    while job(ctx, job_id).step < 1:
        assert time.monotonic() < deadline, job(ctx, job_id)
        time.sleep(0.05)
    return thread, result, started


def test_a_succeeding_child_is_published_and_registered(ctx: Any) -> None:
    job_id = new_job(ctx)
    assert run_job(ctx, job_id, start=script(SUCCEEDS)) == "succeeded"
    view = job(ctx, job_id)
    assert (view.state, view.step, view.total_steps, view.loss, view.eta_s) == ("succeeded", 3, 3, 1.0, 0.0)
    [checkpoint] = view.checkpoints
    assert checkpoint.name == "ck-1" and checkpoint.step == 3 and checkpoint.key_prefix == "checkpoints/ck-1/"
    assert sorted(ctx.store.list("checkpoints/ck-1/")) == [
        "checkpoints/ck-1/config.json",
        "checkpoints/ck-1/model.safetensors",
    ]
    assert ctx.store.exists(f"jobs/{job_id}/metrics.jsonl") and ctx.store.exists(f"jobs/{job_id}/train.log")
    folder = ctx.settings.data_dir / "jobs" / job_id
    assert (folder / "data" / "images" / "images" / "a.png").read_bytes() == b"png bytes"
    import yaml

    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["max_steps"] == 3 and config["output_dir"] == str(folder / "run") and not config["progress"]
    assert run_job(ctx, job_id, start=script(SUCCEEDS)) == ""  # delivered again: nothing runs twice


def test_a_failing_child_fails_the_job_with_its_own_error_line(ctx: Any) -> None:
    job_id = new_job(ctx)
    assert run_job(ctx, job_id, start=script(FAILS)) == "failed"
    view = job(ctx, job_id)
    assert view.error == "data: train.json is not a LLaVA JSON list" and view.checkpoints == []


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"dataset_ref": "key:uploads/none.json"}, "input: not in the object store"),
        ({"dataset_ref": "run:" + "0" * 32}, "has no exported dataset"),
        ({"base_model": "checkpoint:nope"}, "no checkpoint is registered as 'nope'"),
        ({"base_model": "key:checkpoints/none/"}, "no base model under 'checkpoints/none/'"),
        ({"images_prefix": None}, "give images_prefix"),
    ],
)
def test_inputs_that_cannot_be_fetched_fail_the_job_before_any_child(
    ctx: Any, fields: dict[str, Any], words: str
) -> None:
    job_id = new_job(ctx, **fields)

    def never(config: Path, folder: Path) -> Child:
        raise AssertionError("no child may start")

    assert run_job(ctx, job_id, start=never) == "failed"
    assert words in (job(ctx, job_id).error or "")


def test_a_cancel_stops_the_running_child(ctx: Any) -> None:
    psutil = pytest.importorskip("psutil")
    job_id = new_job(ctx)
    runner, result, started = run_long_child(ctx, job_id)
    running = job(ctx, job_id)
    assert running.pid == started[0].process.pid and running.eta_s == 999.0
    with ctx.session() as s:
        jobs_dal.request_cancel(s, job_id=job_id)
    runner.join(timeout=30)
    assert result == ["cancelled"] and job(ctx, job_id).state == "cancelled"
    assert not psutil.pid_exists(started[0].process.pid) or (
        psutil.Process(started[0].process.pid).status() == psutil.STATUS_ZOMBIE
    )


def test_a_stopping_worker_stops_the_child_and_fails_the_job_with_the_reason(ctx: Any) -> None:
    from services.trainer import runner

    job_id = new_job(ctx)
    thread, result, started = run_long_child(ctx, job_id)
    try:
        runner.STOPPING.set()  # what Celery's worker_shutting_down does
        thread.join(timeout=30)
    finally:
        runner.STOPPING.clear()
    assert result == ["failed"] and "worker was stopped" in (job(ctx, job_id).error or "")
    assert started[0].process.poll() is not None


def test_a_child_killed_by_a_signal_is_started_again_with_resume(ctx: Any) -> None:
    job_id = new_job(ctx)
    assert run_job(ctx, job_id, start=script(KILLED_UNLESS_RESUMED)) == "succeeded"
    view = job(ctx, job_id)
    assert (view.state, view.attempts, view.step, view.error) == ("succeeded", 2, 3, None)
    import yaml

    config = yaml.safe_load((ctx.settings.data_dir / "jobs" / job_id / "config.yaml").read_text())
    assert config["resume"] is True and config["output_dir"].endswith(f"{job_id}/run")


def test_a_child_killed_in_every_attempt_fails_the_job_with_the_reason(ctx: Any) -> None:
    job_id = new_job(ctx)
    assert run_job(ctx, job_id, start=script(KILLED)) == "failed"
    view = job(ctx, job_id)
    assert view.attempts == 2 and view.checkpoints == []
    assert view.error == "the training process was killed by signal 9 in attempt 2 of 2 (jobs.max_attempts)"


def test_an_attempt_handed_on_stops_its_child_and_leaves_the_job_to_the_new_attempt(ctx: Any) -> None:
    job_id = new_job(ctx)
    thread, result, started = run_long_child(ctx, job_id)
    with ctx.session() as s:  # what a sweep and a new worker's claim do to a worker that was cut off
        assert jobs_dal.next_attempt(s, job_id=job_id, attempt=1, max_attempts=2) == 2
    thread.join(timeout=30)
    assert result == [""] and started[0].process.poll() is not None
    view = job(ctx, job_id)
    assert (view.state, view.attempts) == ("running", 2)  # the new attempt's, untouched


def test_fetching_inputs_keeps_the_job_alive_and_stops_once_it_was_handed_on(
    ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.trainer import runner

    job_id = new_job(ctx)
    beats: list[Any] = []
    fetch = runner.fetch_inputs

    def slow_fetch(context: Any, view: Any, folder: Path) -> Any:
        beats.append(job(ctx, job_id).heartbeat_at)  # the claim's
        deadline = time.monotonic() + 30
        while len(beats) < 3:  # a fetch that takes several polls: the heartbeat thread reports meanwhile
            assert time.monotonic() < deadline, beats
            time.sleep(0.05)
            if (now := job(ctx, job_id).heartbeat_at) != beats[-1]:
                beats.append(now)
        with ctx.session() as s:  # found lost and claimed by another worker meanwhile
            assert jobs_dal.next_attempt(s, job_id=job_id, attempt=1, max_attempts=2) == 2
        return fetch(context, view, folder)

    def never(config: Path, folder: Path) -> Child:
        raise AssertionError("a job handed on must not start a child here")

    monkeypatch.setattr(runner, "fetch_inputs", slow_fetch)
    assert run_job(ctx, job_id, start=never) == ""
    assert beats[0] < beats[1] < beats[2], beats
    assert (job(ctx, job_id).state, job(ctx, job_id).attempts) == ("running", 2)
