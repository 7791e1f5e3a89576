"""A training job whose train worker is killed mid-run resumes through the trainer service and ends where an
uninterrupted job of the same seed ends. Real processes (:func:`jobs_stack.jobs_stack`): the trainer
service, a Celery worker on the ``train`` queue over Redis db 9, Postgres, an S3 server on loopback.

The train task is acknowledged when it starts (a job outlasts any visibility timeout), so nothing comes
back from the broker: the trainer's lost-job sweeper sees the heartbeat stop, puts the job back to
pending and sends it again; the new worker's attempt runs ``giqa train --resume`` in the same job folder
and goes on from the last complete checkpoint. A half-written checkpoint left in the folder (a later
step, no completion marker, truncated weights) is deleted, never loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
pytest.importorskip("redis")
psutil = pytest.importorskip("psutil")

from jobs_stack import FINAL, flushed_redis, jobs_stack, logs, wait_for  # noqa: E402
from training_helpers import SMALL_MODEL, state_dict, synth_export  # noqa: E402

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/9"  # this module's own database
LOST_AFTER_S = 10.0  # a worker silent this long is lost (production: 600 s); room for a loaded machine
STEPS, SAVE_EVERY = 100, 10  # ~0.05 s a step on a quiet machine: seconds to kill it between checkpoints
CONFIG = SMALL_MODEL | {
    "per_device_batch": 4,
    "max_steps": STEPS,
    "save_steps": SAVE_EVERY,
    "save_total_limit": 3,
    "logging_steps": 1,
    "warmup_ratio": 0.0,
    "dataloader_workers": 0,
    "seed": 7,
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, pg_url: str, s3_server: str) -> Iterator[dict[str, Any]]:
    from giqa.infra.storage import put_folder

    root = tmp_path_factory.mktemp("resume")
    data = synth_export(root / "synth", n=6)
    env = {"GIQA_JOBS__LOST_AFTER_S": str(LOST_AFTER_S), "GIQA_JOBS__MAX_ATTEMPTS": "3"}
    with jobs_stack(
        root,
        pg_url=pg_url,
        s3_server=s3_server,
        redis_url=flushed_redis(REDIS_URL),
        only={"trainer", "worker-train"},
        env=env,
    ) as running:
        running["store"].put_file("uploads/resume/llava.json", data)
        put_folder(running["store"], data.parent / "images", "uploads/resume/images/")
        yield running


def submit(stack: dict[str, Any], name: str) -> str:
    import httpx

    body = {
        "name": name,
        "dataset_key": "uploads/resume/llava.json",
        "images_prefix": "uploads/resume",
        "config": CONFIG,
        "checkpoint_name": name,
    }
    created = httpx.post(f"{stack['urls']['trainer']}/v1/jobs", json=body, timeout=30)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def job_url(stack: dict[str, Any], job_id: str) -> str:
    return f"{stack['urls']['trainer']}/v1/jobs/{job_id}"


def registered_weights(stack: dict[str, Any], name: str, into: Path) -> dict[str, Any]:
    """The weights of the checkpoint registered as ``name``, from the bucket."""
    from giqa.infra.storage import get_folder, prefix_of

    return state_dict(get_folder(stack["store"], prefix_of("checkpoints", name), into / name))


def logged_rows(stack: dict[str, Any], job_id: str) -> list[dict[str, Any]]:
    """The job's training log (one row per step: ``step``, ``elapsed_s`` since its attempt began, loss)."""
    from giqa.infra.storage import job_key

    rows = map(json.loads, stack["store"].get_bytes(job_key(job_id, "metrics.jsonl")).splitlines())
    return [row for row in rows if "loss" in row]


def reached(run: Path) -> int:
    """The last step the job's log shows (read without importing the trainer: the kill must be prompt)."""
    steps = [0]
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        try:
            steps.append(int(json.loads(line)["step"]))
        except (json.JSONDecodeError, KeyError):
            continue  # a torn last line
    return max(steps)


def training_processes(stack: dict[str, Any]) -> tuple[Any, list[Any]]:
    """The train worker and the processes under it, once its training child runs."""
    worker = stack["stack"].running["worker-train"]
    deadline = time.monotonic() + 120
    while True:
        children = psutil.Process(worker.pid).children(recursive=True)
        if any("giqa.training.launch" in " ".join(p.cmdline()) for p in children):
            return worker, children
        assert time.monotonic() < deadline, f"no training child under the worker{logs(stack)}"
        time.sleep(0.1)


def kill(stack: dict[str, Any], worker: Any, children: list[Any]) -> None:
    """SIGKILL the train worker and its training child: no chance to report or clean up."""
    os.killpg(worker.pid, signal.SIGKILL)
    for child in children:  # the child runs in a process group of its own (a cancel signals that group)
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.wait(timeout=10)
    del stack["stack"].running["worker-train"]  # not before: the stack stops what it still lists


def test_a_train_worker_killed_mid_run_resumes_to_the_state_of_an_uninterrupted_job(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    from giqa.settings import jobs_dir
    from giqa.training.checkpoints import MARKER
    from processes import wait_gone

    whole_id = submit(stack, "uninterrupted")
    whole = wait_for(job_url(stack, whole_id), stack, lambda j: j["state"] in FINAL, timeout_s=300)
    assert whole["state"] == "succeeded" and whole["attempts"] == 1, f"{whole}{logs(stack)}"
    assert [row["step"] for row in logged_rows(stack, whole_id)] == list(range(1, STEPS + 1))

    job_id = submit(stack, "interrupted")
    run = jobs_dir(stack["settings"]) / job_id / "run"
    worker, children = training_processes(stack)  # found first: the kill must follow the checkpoint at once
    deadline = time.monotonic() + 180
    while not ((run / f"checkpoint-{SAVE_EVERY}" / MARKER).is_file() and reached(run) > SAVE_EVERY):
        assert time.monotonic() < deadline, f"no complete first checkpoint{logs(stack)}"
        time.sleep(0.01)  # then kill: the steps past the checkpoint are lost
    kill(stack, worker, children)
    assert wait_gone(children, timeout_s=10) == [], "the training child outlived its worker"
    killed = wait_for(job_url(stack, job_id), stack, lambda j: True)
    assert killed["state"] == "running" and not (run / "final").exists(), "the job ended before the kill"
    at_kill = reached(run)
    assert at_kill < STEPS - SAVE_EVERY, f"killed too late to prove anything (step {at_kill})"
    complete = max(
        (p for p in run.glob("checkpoint-*") if (p / MARKER).is_file()), key=lambda p: int(p.name[11:])
    )
    saved = int(complete.name.removeprefix("checkpoint-"))

    # a half-written later checkpoint, as a save cut short would leave it: resume must not pick it up
    torn = run / f"checkpoint-{STEPS - SAVE_EVERY}"
    shutil.copytree(complete, torn)
    (torn / MARKER).unlink()
    weights = torn / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])

    # no worker: the sweeper finds the job lost and queues it again (the broker has nothing to redeliver)
    requeued = wait_for(job_url(stack, job_id), stack, lambda j: j["state"] == "pending", timeout_s=60)
    assert requeued["attempts"] == 1 and "queued again to resume" in requeued["error"], requeued
    stack["stack"].start_one(next(p for p in stack["stack"].plan.processes if p.name == "worker-train"))
    done = wait_for(job_url(stack, job_id), stack, lambda j: j["state"] in FINAL, timeout_s=300)
    assert done["state"] == "succeeded", f"{done}{logs(stack)}"
    assert (done["attempts"], done["step"], done["error"]) == (2, STEPS, None)

    # the log shows two attempts (its clock starts again): the second began after the last complete
    # checkpoint, not at step 1, and redid only the steps the kill lost
    rows = logged_rows(stack, job_id)
    steps = [row["step"] for row in rows]
    begins = [i for i in range(1, len(rows)) if rows[i]["elapsed_s"] < rows[i - 1]["elapsed_s"]]
    assert len(begins) == 1 and steps.count(1) == 1, rows
    assert steps[: begins[0]] == list(range(1, at_kill + 1)), steps
    assert steps[begins[0] :] == list(range(saved + 1, STEPS + 1)), (saved, steps)
    assert "resuming from" in stack["stack"].log("worker-train").read_text()

    a = registered_weights(stack, "uninterrupted", tmp_path)
    b = registered_weights(stack, "interrupted", tmp_path)
    assert a.keys() == b.keys() and a
    for key in a:
        assert (a[key] - b[key]).abs().max().item() < 1e-5, key
