"""Training jobs and evaluations end to end: real Postgres, Redis (db 6), an S3 server on loopback (moto),
and the trainer and evaluator services and a Celery worker per queue (``train``, ``eval``) as processes
(:func:`jobs_stack.jobs_stack`).

- A training job submitted over REST runs the tiny preset (a smaller shape, a few steps) in a child
  process of the train worker to the end; step, loss and total steps reach Postgres; the final model lands
  in the bucket, is registered by name, loads from the bucket alone on another machine's cache, and the
  inference service serves it by name (``GIQA_INFERENCE__MODEL=checkpoint:<name>``).
- A cancel stops the child process: it is gone (psutil), the job reads cancelled, nothing is registered.
- An evaluation of the shipped demo VLM, registered as a checkpoint, on a GIQA-Synth bench gives the report
  ``giqa predict`` + ``giqa eval --no-judge`` give on the same input, and its files are in the bucket.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
pytest.importorskip("redis")
psutil = pytest.importorskip("psutil")

from jobs_stack import FINAL, flushed_redis, jobs_stack, logs, wait_for  # noqa: E402
from training_helpers import SMALL_MODEL, synth_export  # noqa: E402

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/6"  # this module's own database
TRAIN_CONFIG = SMALL_MODEL | {
    "per_device_batch": 4,
    "logging_steps": 1,
    "save_steps": 1000,
    "warmup_ratio": 0.0,
    "dataloader_workers": 0,
}
SHIPPED_VLM = Path(__file__).resolve().parents[2] / "shared" / "giqa" / "assets" / "vlm"


@pytest.fixture(scope="module")
def redis_url() -> str:
    return flushed_redis(REDIS_URL)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A GIQA-Synth LLaVA export to train on and a small mixed bench (DES and VQA items) to score."""
    from typer.testing import CliRunner

    from giqa.cli import app

    root = tmp_path_factory.mktemp("jobs")
    data = synth_export(root / "synth", n=6)
    bench_dir = root / "bench"
    result = CliRunner().invoke(
        app, ["synth", "bench", "--out", str(bench_dir), "--size", "64", "--seed", "3", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    lines = (bench_dir / "bench.jsonl").read_text().splitlines()
    des = [x for x in lines if '"task":"des"' in x][:3]
    vqa = [x for x in lines if '"task":"vqa"' in x][:5]
    small = bench_dir / "small.jsonl"
    small.write_text("\n".join(des + vqa) + "\n")
    return {"root": root, "data": data, "bench": small}


@pytest.fixture(scope="module")
def stack(world: dict[str, Path], pg_url: str, s3_server: str, redis_url: str) -> Iterator[dict[str, Any]]:
    from giqa.infra.storage import put_folder

    processes = {"trainer", "evaluator", "worker-train", "worker-eval"}
    with jobs_stack(
        world["root"], pg_url=pg_url, s3_server=s3_server, redis_url=redis_url, only=processes
    ) as running:
        store = running["store"]
        store.put_file("uploads/synth/llava.json", world["data"])
        put_folder(store, world["data"].parent / "images", "uploads/synth/images/")
        store.put_file("benches/small/bench.jsonl", world["bench"])
        put_folder(store, world["bench"].parent / "images", "benches/small/images/")
        yield running


def test_a_training_job_runs_to_the_end_and_registers_its_checkpoint(stack: dict[str, Any]) -> None:
    import httpx

    from giqa.infra.checkpoints import local_checkpoint
    from giqa.infra.db import make_engine, make_sessionmaker, session_scope
    from giqa.infra.storage import job_key, prefix_of
    from giqa.models.llava import load_llava

    url = stack["urls"]["trainer"]
    assert httpx.get(f"{url}/ready").json()["status"] == "ok"
    body = {
        "name": "tiny e2e",
        "dataset_key": "uploads/synth/llava.json",
        "images_prefix": "uploads/synth",
        "config": TRAIN_CONFIG | {"max_steps": 4},
        "checkpoint_name": "tiny-e2e",
    }
    created = httpx.post(f"{url}/v1/jobs", json=body, timeout=30)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["state"] == "pending" and job["total_steps"] == 4 and job["launcher"] == "local"
    done = wait_for(f"{url}/v1/jobs/{job['id']}", stack, lambda j: j["state"] in FINAL)
    assert done["state"] == "succeeded", f"{done}{logs(stack)}"
    assert done["step"] == done["total_steps"] == 4 and done["eta_s"] == 0.0
    assert isinstance(done["loss"], float) and done["error"] is None
    [checkpoint] = done["checkpoints"]
    assert checkpoint["name"] == "tiny-e2e" and checkpoint["step"] == 4
    assert httpx.get(f"{url}/v1/checkpoints/tiny-e2e").json() == checkpoint
    assert httpx.get(f"{url}/v1/jobs", params={"state": "succeeded"}).json()[0]["id"] == job["id"]

    store = stack["store"]
    keys = store.list(prefix_of("checkpoints", "tiny-e2e"))
    assert {k.rsplit("/", 1)[1] for k in keys} >= {"config.json", "model.safetensors", "tokenizer.json"}
    rows = [json.loads(x) for x in store.get_bytes(job_key(job["id"], "metrics.jsonl")).splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4] and rows[-1]["max_steps"] == 4
    assert "loss" in rows[-2] and rows[-2]["loss"] is not None

    # the model by name, from the bucket alone (a machine that did not train it)
    settings = stack["settings"]
    sessions = make_sessionmaker(make_engine(settings.db.url))

    def scope() -> Any:
        return session_scope(sessions)

    folder = local_checkpoint(settings, "tiny-e2e", sessions=scope, store=store, prefer_local=False)
    assert folder == settings.cache_dir / "checkpoints" / "tiny-e2e"
    assert sorted(p.name for p in folder.iterdir()) == sorted(k.rsplit("/", 1)[1] for k in keys)
    model, processor, arch = load_llava(folder, device="cpu")
    assert arch == "llava" and processor is not None and model is not None
    assert "Task giqa.jobs.train[" in stack["stack"].log("worker-train").read_text()

    # the inference service serves it by name (GIQA_INFERENCE__MODEL=checkpoint:tiny-e2e)
    from fastapi.testclient import TestClient

    from services.inference.app import create_app_from_settings as inference_app

    by_name = settings.model_copy(
        update={"inference": settings.inference.model_copy(update={"model": "checkpoint:tiny-e2e"})}
    )
    with TestClient(inference_app(by_name)) as inference:
        deadline = time.monotonic() + 120
        while inference.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, inference.get("/ready").json()
            time.sleep(0.2)
        assert [m["id"] for m in inference.get("/v1/models").json()["data"]] == ["tiny-e2e"]
    assert 'giqa_training_jobs{state="succeeded"}' in httpx.get(f"{url}/metrics").text


def test_a_cancel_stops_the_training_child(stack: dict[str, Any]) -> None:
    import httpx

    from processes import wait_gone

    url = stack["urls"]["trainer"]
    body = {
        "name": "to cancel",
        "dataset_key": "uploads/synth/llava.json",
        "images_prefix": "uploads/synth",
        "config": TRAIN_CONFIG | {"max_steps": 100000},
    }
    job = httpx.post(f"{url}/v1/jobs", json=body, timeout=30).json()
    running = wait_for(
        f"{url}/v1/jobs/{job['id']}", stack, lambda j: j["state"] == "running" and j["step"] > 0
    )
    worker = psutil.Process(stack["stack"].running["worker-train"].pid)
    children = worker.children(recursive=True)
    assert children, "the train worker has no child process"
    train = [p for p in children if "giqa.training.launch" in " ".join(p.cmdline())]
    assert len(train) == 1, [p.cmdline() for p in children]
    cancelled = httpx.post(f"{url}/v1/jobs/{job['id']}/cancel", timeout=30)
    assert cancelled.status_code == 202 and cancelled.json()["cancel_requested"] is True
    final = wait_for(f"{url}/v1/jobs/{job['id']}", stack, lambda j: j["state"] in FINAL, timeout_s=60)
    assert final["state"] == "cancelled" and final["checkpoints"] == []
    assert wait_gone(train, timeout_s=10) == [], "the training child outlived the cancel"
    assert worker.is_running()  # the worker itself goes on
    again = httpx.post(f"{url}/v1/jobs/{job['id']}/cancel", timeout=30)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert running["eta_s"] is None or running["eta_s"] >= 0


def test_bad_job_requests_are_refused_with_nothing_written(stack: dict[str, Any]) -> None:
    import httpx

    url = stack["urls"]["trainer"]
    before = httpx.get(f"{url}/v1/jobs").json()
    base = {"dataset_key": "uploads/synth/llava.json", "images_prefix": "uploads/synth"}
    cases = [
        (base | {"dataset_key": "uploads/none.json"}, 400, "no object"),
        (base | {"config": {"lr": -1}}, 400, "lr and epochs must be positive"),
        (base | {"config": {"output_dir": "/etc"}}, 400, "may not set output_dir"),
        (base | {"config": {"nope": 1}}, 400, "unknown config file key"),
        ({"images_prefix": "x"}, 422, "one of dataset_key"),
        (base | {"checkpoint_name": "../x"}, 422, "checkpoint_name"),
        (base | {"base_model": "checkpoint:missing"}, 400, "no checkpoint is registered"),
        (base | {"run_id": "abc"}, 422, "one of dataset_key"),
    ]
    for body, status, words in cases:
        answer = httpx.post(f"{url}/v1/jobs", json=body, timeout=30)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.json()["error"]["message"], (body, answer.text)
    assert httpx.get(f"{url}/v1/jobs").json() == before
    assert httpx.get(f"{url}/v1/jobs/{'0' * 32}").status_code == 404


def test_an_evaluation_of_a_registered_checkpoint_equals_giqa_eval(
    stack: dict[str, Any], world: dict[str, Path], tmp_path: Path
) -> None:
    import httpx
    from typer.testing import CliRunner

    from giqa.cli import app as cli
    from giqa.infra.db import jobs_dal, make_engine, make_sessionmaker, session_scope
    from giqa.infra.storage import put_folder

    store = stack["store"]
    put_folder(store, SHIPPED_VLM, "checkpoints/demo-vlm/")
    with session_scope(make_sessionmaker(make_engine(stack["settings"].db.url))) as s:
        jobs_dal.register_checkpoint(
            s, name="demo-vlm", key_prefix="checkpoints/demo-vlm/", step=0, metrics={}
        )

    url = stack["urls"]["evaluator"]
    body = {"name": "demo", "bench_key": "benches/small/bench.jsonl", "checkpoint": "demo-vlm"}
    created = httpx.post(f"{url}/v1/evaluations", json=body, timeout=30)
    assert created.status_code == 201, created.text
    done = wait_for(f"{url}/v1/evaluations/{created.json()['id']}", stack, lambda e: e["state"] in FINAL)
    assert done["state"] == "succeeded", f"{done}{logs(stack)}"

    # the reference: giqa predict + giqa eval --no-judge on the same bench and model
    preds, report = tmp_path / "preds.jsonl", tmp_path / "report.json"
    runner = CliRunner()
    predicted = runner.invoke(
        cli,
        [
            "predict",
            "--bench",
            str(world["bench"]),
            "--model",
            str(SHIPPED_VLM),
            "--out",
            str(preds),
            "--quiet",
        ],
    )
    assert predicted.exit_code == 0, predicted.output
    scored = runner.invoke(
        cli,
        [
            "eval",
            "--bench",
            str(world["bench"]),
            "--predictions",
            str(preds),
            "--no-judge",
            "--out",
            str(report),
        ],
    )
    assert scored.exit_code == 0, scored.output
    reference = json.loads(report.read_text())
    assert done["report"] == reference
    assert json.loads(store.get_bytes(done["keys"]["report"])) == reference
    assert store.get_bytes(done["keys"]["predictions"]) == preds.read_bytes()
    items = [json.loads(x) for x in store.get_bytes(done["keys"]["items"]).splitlines()]
    assert items == [json.loads(x) for x in (tmp_path / "report.items.jsonl").read_text().splitlines()]
    assert store.get_bytes(done["keys"]["chart"]).startswith(b"\x89PNG")
    assert httpx.get(done["files"]["chart"]).content.startswith(b"\x89PNG")  # presigned

    # the same predictions uploaded: the same report; both compared side by side
    with preds.open("rb") as handle:
        upload = httpx.post(
            f"{url}/v1/evaluations",
            files={"request": (None, json.dumps({"name": "uploaded", "bench_key": body["bench_key"]})),
                   "predictions": ("preds.jsonl", handle, "application/x-ndjson")},
            timeout=30,
        )  # fmt: skip
    assert upload.status_code == 201, upload.text
    second = wait_for(f"{url}/v1/evaluations/{upload.json()['id']}", stack, lambda e: e["state"] in FINAL)
    assert second["state"] == "succeeded" and second["report"] == reference
    ids = [done["id"], second["id"]]
    compared = httpx.get(f"{url}/v1/evaluations/compare", params={"ids": ids}).json()
    assert [r["name"] for r in compared["reports"]] == ["demo", "uploaded"] and "BLEU@4" in compared["table"]
    chart = httpx.get(f"{url}/v1/evaluations/compare", params={"ids": ids, "chart": "radar"})
    assert chart.headers["content-type"] == "image/png" and chart.content.startswith(b"\x89PNG")
    listed = [e["id"] for e in httpx.get(f"{url}/v1/evaluations").json()]
    assert listed[:2] == [second["id"], done["id"]]
    assert "Task giqa.jobs.evaluate[" in stack["stack"].log("worker-eval").read_text()

    # bad requests: nothing written
    bad = httpx.post(f"{url}/v1/evaluations", json=body | {"checkpoint": "missing"}, timeout=30)
    assert bad.status_code == 400 and "no checkpoint is registered" in bad.json()["error"]["message"]
    bad = httpx.post(f"{url}/v1/evaluations", json={"bench_key": "benches/none.jsonl", "checkpoint": "x"})
    assert bad.status_code == 400 and "no object" in bad.json()["error"]["message"]
    bad = httpx.post(
        f"{url}/v1/evaluations", json={"bench_key": "b", "checkpoint": "x", "model_url": "http://a/v1"}
    )
    assert bad.status_code == 400 and "exactly one model" in bad.json()["error"]["message"]
    assert len(httpx.get(f"{url}/v1/evaluations").json()) == 2


def test_the_jobs_and_evals_commands_against_the_services(stack: dict[str, Any], tmp_path: Path) -> None:
    """``giqa jobs`` / ``giqa evals`` over loopback HTTP on the jobs and evaluations the tests above made."""
    from typer.testing import CliRunner

    from giqa.cli import app as cli

    runner = CliRunner()
    trainer, evaluator = ["--url", stack["urls"]["trainer"]], ["--url", stack["urls"]["evaluator"]]
    listed = runner.invoke(cli, ["jobs", "list", *trainer])
    assert listed.exit_code == 0 and "succeeded" in listed.output and "cancelled" in listed.output
    done_id = next(line.split()[0] for line in listed.output.splitlines() if "tiny e2e" in line)
    shown = runner.invoke(cli, ["jobs", "show", done_id, *trainer])
    assert shown.exit_code == 0 and "step 4/4" in shown.output and "checkpoint tiny-e2e" in shown.output
    assert "tiny-e2e  checkpoints/tiny-e2e/" in runner.invoke(cli, ["jobs", "checkpoints", *trainer]).output
    again = runner.invoke(cli, ["jobs", "cancel", done_id, *trainer])
    assert again.exit_code == 2 and "has ended (succeeded)" in again.output
    refused = runner.invoke(
        cli, ["jobs", "submit", "--dataset-key", "uploads/none.json", "--images-prefix", "x", *trainer]
    )
    assert refused.exit_code == 2 and "no object 'uploads/none.json'" in refused.output
    dead = runner.invoke(cli, ["jobs", "list", "--url", "http://127.0.0.1:9"])
    assert dead.exit_code == 3 and "the trainer at http://127.0.0.1:9 does not answer" in dead.output

    evals = runner.invoke(cli, ["evals", "list", *evaluator])
    ids = [line.split()[0] for line in evals.output.splitlines()]
    assert evals.exit_code == 0 and len(ids) == 2
    shown = runner.invoke(cli, ["evals", "show", ids[0], *evaluator])
    assert shown.exit_code == 0 and "BLEU@4" in shown.output and "report: reports/" in shown.output
    chart = tmp_path / "chart.png"
    compared = runner.invoke(cli, ["evals", "compare", *ids, "--chart", str(chart), *evaluator])
    assert compared.exit_code == 0, compared.output
    assert chart.read_bytes().startswith(b"\x89PNG") and "Acc (Y)" in compared.output


def test_a_stopped_train_worker_stops_its_child_and_fails_the_job(stack: dict[str, Any]) -> None:
    """SIGTERM to the worker (a rollout, a scale-down): the job ends now with the reason, the child is gone,
    and the worker exits (run last: the module's train worker is gone afterwards)."""
    import signal

    import httpx

    from processes import wait_gone

    url = stack["urls"]["trainer"]
    body = {
        "name": "worker stops",
        "dataset_key": "uploads/synth/llava.json",
        "images_prefix": "uploads/synth",
        "config": TRAIN_CONFIG | {"max_steps": 100000},
    }
    job = httpx.post(f"{url}/v1/jobs", json=body, timeout=30).json()
    wait_for(f"{url}/v1/jobs/{job['id']}", stack, lambda j: j["state"] == "running" and j["step"] > 0)
    worker = stack["stack"].running["worker-train"]
    children = psutil.Process(worker.pid).children(recursive=True)
    worker.send_signal(signal.SIGTERM)
    ended = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ended = httpx.get(f"{url}/v1/jobs/{job['id']}", timeout=10).json()
        if ended["state"] in FINAL:
            break
        time.sleep(0.3)
    assert ended is not None and ended["state"] == "failed", ended
    assert "worker was stopped" in ended["error"]
    assert wait_gone(children, timeout_s=15) == []
    assert worker.wait(timeout=30) is not None
